/*
 * debug_exit.c: an exit-code port in the manner of QEMU's isa-debug-exit
 * (role "debug-exit").
 *
 * A write of V, of any width, to any port in [iobase, iobase+iosize) asks to
 * end the run with status ((V << 1) | 1) & 0xff: the role raises
 * VMMUX_EV_REQUEST with key VMMUX_REQ_EXIT and that status, on behalf of the
 * writing vCPU. The status is always odd, so that a guest's own exit cannot
 * be mistaken for a clean vmmux exit (0). Reads return 0. The device has no
 * state.
 */
#include <errno.h>
#include <stdint.h>

#include <vmmux/vmmux.h>

#include "../role_util.h"
#include "../roles.h"

#define DEBUG_EXIT_IOBASE 0xf4
#define DEBUG_EXIT_IOSIZE 4

struct debug_exit {
	uint16_t iobase;
	uint32_t iosize;
};

static int debug_exit_init(struct vmmux_ctx *ctx)
{
	struct debug_exit *d = vmmux_priv(ctx);
	uint64_t base, size;

	if (role_arg_u64(ctx, "iobase", DEBUG_EXIT_IOBASE, 0, 0xffff, &base) < 0 ||
	    role_arg_u64(ctx, "iosize", DEBUG_EXIT_IOSIZE, 1, 0x10000, &size) < 0)
		return -EINVAL;
	if (base + size > 0x10000) {
		vmmux_log(ctx, VMMUX_LOG_ERROR,
			  "arg \"iosize\": %llu ports from iobase 0x%llx pass port 0xffff",
			  (unsigned long long)size, (unsigned long long)base);
		return -EINVAL;
	}
	d->iobase = (uint16_t)base;
	d->iosize = (uint32_t)size;
	return 0;
}

static int debug_exit_handle(struct vmmux_ctx *ctx, const struct vmmux_event *ev,
			     struct vmmux_reply *rep)
{
	struct debug_exit *d = vmmux_priv(ctx);
	uint64_t v, status;

	if (!role_is_plain_io(ev))
		return -EINVAL;
	if (ev->key < d->iobase || ev->key >= (uint64_t)d->iobase + d->iosize)
		return -ERANGE;
	if (!(ev->flags & VMMUX_EVF_WRITE)) {
		rep->value = 0;
		return 0;
	}
	v = ev->value & role_size_mask(ev->size);
	status = ((v << 1) | 1) & 0xff;
	vmmux_log(ctx, VMMUX_LOG_INFO, "guest wrote 0x%llx to port 0x%llx: exit status %llu",
		  (unsigned long long)v, (unsigned long long)ev->key, (unsigned long long)status);
	if (role_raise(ctx, VMMUX_EV_REQUEST, 0, VMMUX_REQ_EXIT, status, 0, ev->vcpu) < 0)
		return -EAGAIN;
	return 0;
}

static const char *const debug_exit_args[] = {"iobase", "iosize", NULL};

static const char *const debug_exit_raises[] = {"request:exit", NULL};

const struct vmmux_role vmmux_role_debug_exit = {
    .abi_version = VMMUX_ROLE_ABI_VERSION,
    .name = "debug-exit",
    .summary = "isa-debug-exit port: a write of V ends the run with status (V << 1) | 1",
    .priv_size = sizeof(struct debug_exit),
    .init = debug_exit_init,
    .handle = debug_exit_handle,
    .args = debug_exit_args,
    .raises = debug_exit_raises,
};
