/*
 * hvt_role.c: the "hvt" role's entry in the role table (hvt_roles.h). The
 * role is the main VMM's part of an hvt guest; its implementation
 * (hvt_core.c) touches the machine, so it is reached through
 * hvt_core_impl, which only the vmmux process that runs an hvt guest sets.
 * Anywhere else (a parallel VMM process, a program serving roles) the role
 * refuses to start.
 */
#include <stddef.h>

#include "hvt/hvt_roles.h"

const struct vmmux_role *hvt_core_impl;

static int role_init(struct vmmux_ctx *ctx)
{
	if (hvt_core_impl == NULL) {
		vmmux_log(ctx, VMMUX_LOG_ERROR,
			  "role hvt runs only inside the vmmux process of an hvt guest (vmmux "
			  "hvt); it cannot be a parallel VMM");
		return -1;
	}
	return hvt_core_impl->init ? hvt_core_impl->init(ctx) : 0;
}

static int role_handle(struct vmmux_ctx *ctx, const struct vmmux_event *ev, struct vmmux_reply *rep)
{
	return hvt_core_impl ? hvt_core_impl->handle(ctx, ev, rep) : -1;
}

const struct vmmux_role hvt_core_role = {
    .abi_version = VMMUX_ROLE_ABI_VERSION,
    .name = "hvt",
    .summary = "Solo5 hvt guest, main VMM part: boot state, walltime/poll/halt, hvt faults "
	       "(vmmux hvt sets it up)",
    .priv_size = sizeof(void *), /* unused: the state is the run's (hvt_host) */
    .init = role_init,
    .handle = role_handle,
};
