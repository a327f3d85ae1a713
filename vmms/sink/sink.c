/*
 * sink: a VMM that accepts every event and does nothing with it: reads of
 * io, mmio and MSRs return the value of its "read" argument (default 0; INS
 * fills the buffer with its low byte), writes are dropped, every other event
 * is consumed. It costs as little as a role can, which makes it the yardstick
 * of the transition itself (the benchmarks route to it).
 */
#include <stdint.h>
#include <string.h>

#include <vmmux/vmmux.h>

#include "../role_util.h"
#include "../roles.h"

struct sink {
	uint64_t read_value;
};

static int sink_init(struct vmmux_ctx *ctx)
{
	struct sink *s = vmmux_priv(ctx);
	return role_arg_u64(ctx, "read", 0, 0, UINT64_MAX, &s->read_value);
}

static int sink_handle(struct vmmux_ctx *ctx, const struct vmmux_event *ev, struct vmmux_reply *rep)
{
	const struct sink *s = vmmux_priv(ctx);
	rep->action = VMMUX_ACT_DONE;
	if (ev->type == VMMUX_EV_SHUTDOWN)
		rep->action = VMMUX_ACT_END;
	if (ev->flags & VMMUX_EVF_WRITE)
		return 0;
	switch (ev->type) {
	case VMMUX_EV_IO:
		if (ev->data)
			memset(ev->data, (int)(s->read_value & 0xff), (size_t)ev->size * ev->count);
		/* fall through */
	case VMMUX_EV_MMIO:
	case VMMUX_EV_MSR:
		rep->value = s->read_value;
		break;
	default:
		break;
	}
	return 0;
}

static const char *const sink_args[] = {"read", NULL};

const struct vmmux_role vmmux_role_sink = {
    .abi_version = VMMUX_ROLE_ABI_VERSION,
    .name = "sink",
    .summary = "accepts every event and does nothing: reads return its 'read' value",
    .priv_size = sizeof(struct sink),
    .init = sink_init,
    .handle = sink_handle,
    .args = sink_args,
};
