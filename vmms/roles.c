/*
 * roles.c: the table of built-in roles (role_find, role_at of src/vmm/vmm.h).
 */
#include <stddef.h>
#include <string.h>

#include "roles.h"
#include "fwcfg/fwcfg.h"
#include "hvt/hvt_roles.h"
#include "vmm/vmm.h"

static const struct vmmux_role *const role_table[] = {
    &vmmux_role_uart16550, &vmmux_role_debug_exit,   &vmmux_role_chipset, &vmmux_role_smm,
    &vmmux_role_monitor,   &vmmux_role_fault_report, &vmmux_role_sink,	  &vmmux_role_fwcfg,
    &hvt_console_role,	   &vmmux_role_hvt_block,    &vmmux_role_hvt_net, &vmmux_role_gdbstub,
};

const struct vmmux_role *role_find(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < sizeof(role_table) / sizeof(role_table[0]); i++) {
		if (strcmp(role_table[i]->name, name) == 0)
			return role_table[i];
	}
	return NULL;
}

const struct vmmux_role *role_at(size_t i)
{
	if (i >= sizeof(role_table) / sizeof(role_table[0]))
		return NULL;
	return role_table[i];
}
