/*
 * vmm.h: writing a parallel VMM, a separate process that the main VMM
 * (vmmux) starts, sandboxes and sends the events its routes name.
 *
 * A parallel VMM is a role (vmmux.h) and a main function:
 *
 *     #include <vmmux/vmm.h>
 *
 *     static int my_handle(struct vmmux_ctx *ctx, const struct vmmux_event *ev,
 *                          struct vmmux_reply *rep) { ... }
 *     static const struct vmmux_role my_role = {
 *             .abi_version = VMMUX_ROLE_ABI_VERSION, .name = "my-device",
 *             .handle = my_handle,
 *     };
 *     int main(void) { return vmmux_vmm_main(&my_role); }
 *
 * built against the installed header and static library:
 *     cc my_vmm.c $(pkg-config --cflags --libs vmmux-vmm) -o my-vmm
 * and named in the main VMM's config:
 *     {"name": "dev", "program": "/usr/local/bin/my-vmm",
 *      "placement": "parallel", "memory": ["0x100000+0x10000"]}
 *
 * vmmux_vmm_main does the set-up with the main VMM over the descriptor it
 * inherited (protocol version and features, arguments, the guest-memory
 * windows granted to this VMM, its input/output descriptors and interrupt
 * lines), calls the role's init, locks the process down (a seccomp filter
 * that forbids opening files (in sanitizer builds read-only opens remain, for
 * the runtime's reports), sockets and new memory mappings of descriptors),
 * and then serves events until the main VMM stops it. The role
 * runs exactly as it would inside the main VMM: the same callbacks, the same
 * vmmux_ctx calls (guest memory through vmmux_gm_read/vmmux_gm_write, checked
 * against the granted windows; events raised with vmmux_raise).
 */
#ifndef VMMUX_VMM_H
#define VMMUX_VMM_H

#include <vmmux/vmmux.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Run ROLE as a parallel VMM. Returns the process's exit status: 0 when the
 * main VMM stopped it, non-zero (with a message on stderr) when the set-up
 * failed: not started by vmmux, incompatible protocol version, bad
 * arguments (the role's init failed), a window that could not be mapped.
 */
VMMUX_API int vmmux_vmm_main(const struct vmmux_role *role);

/*
 * Exactly-once delivery (docs/parallel-vmm.md, "Exactly-once delivery").
 * During handle: the sequence number vmmux gave the event being handled,
 * unique among this VMM's events for the whole run (a restarted process
 * sees the same numbers for the events it is given again); 0 outside
 * handle, for doorbell rings, which carry none, and in a role running
 * inside vmmux itself (never re-delivered). Numbers grow in the
 * order vmmux sends the events of one kind (synchronous ones from 1,
 * posted writes with bit 63 set), but events of several vCPUs may be
 * handled in another order: compare for equality only. An event given
 * again after a crash has VMMUX_EVF_REDELIVERED in its flags. The library
 * commits the number, the reply and the raised events with the state that
 * save returns, in one step, and answers an event whose number it finds
 * committed from that record, without calling handle: a role with save and
 * restore gets exactly once for its state and its replies; what handle
 * does outside its state (output, guest memory) a role makes idempotent
 * with this number. New with version 2 of the transport region: a program
 * linked with an older library fails its set-up with vmmux ("the transport
 * region is not valid"); the role ABI is unchanged.
 */
VMMUX_API uint64_t vmmux_event_seq(struct vmmux_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif
