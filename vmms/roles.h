/*
 * roles.h: the built-in roles, each defined in its own directory under vmms/
 * and written only against include/vmmux/vmmux.h. vmms/roles.c collects them
 * in the table behind role_find() and role_at() (src/vmm/vmm.h).
 *
 * vmms/README.md documents every role: ports, registers, args, replies and
 * raised events.
 */
#ifndef VMMUX_VMMS_ROLES_H
#define VMMUX_VMMS_ROLES_H

#include <vmmux/vmmux.h>

extern const struct vmmux_role vmmux_role_uart16550;	/* "uart16550" */
extern const struct vmmux_role vmmux_role_debug_exit;	/* "debug-exit" */
extern const struct vmmux_role vmmux_role_chipset;	/* "chipset" */
extern const struct vmmux_role vmmux_role_smm;		/* "smm" */
extern const struct vmmux_role vmmux_role_monitor;	/* "monitor" */
extern const struct vmmux_role vmmux_role_fault_report; /* "fault-report" */
extern const struct vmmux_role vmmux_role_sink;		/* "sink" */
/* "gdbstub": main VMM only (it needs the machine, src/vmm/debug.h) */
extern const struct vmmux_role vmmux_role_gdbstub;

#endif
