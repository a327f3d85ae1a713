/*
 * vmmlib.h: the parallel VMM library's entry points (the public one is
 * vmmux_vmm_main in include/vmmux/vmm.h).
 *
 * The library runs in the parallel VMM's process: it completes the set-up
 * with the main VMM over HS_SOCKET_FD (src/transport/handshake.h), maps the
 * granted guest-memory windows, gives the role its context (src/vmm/ctx.h),
 * locks the process down with the stage-2 seccomp filter, and serves the
 * requests of the transport region (src/transport/transport.h) until the
 * main VMM closes the socket.
 */
#ifndef VMMUX_VMMLIB_VMMLIB_H
#define VMMUX_VMMLIB_VMMLIB_H

#include <vmmux/vmmux.h>

/* Finds a built-in role by the name the main VMM sends (role_find). */
typedef const struct vmmux_role *(*vmmlib_find_fn)(const char *name);

/*
 * Serve as a parallel VMM. With OWN, the process's own role (a third
 * party's program); without, the role the hello names, found with FIND
 * (vmmux's `vmm` command). Returns the exit status.
 */
int vmmlib_run(const struct vmmux_role *own, vmmlib_find_fn find);

#endif
