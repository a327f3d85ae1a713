/*
 * vmm_raiser: a parallel VMM (built on the VMM library) that raises a reset
 * of the VM, platform:reset, while it handles the first port write it sees;
 * whether that is allowed is the grants' business (raise=platform:reset).
 *
 * Argument: read=N (the value reads get, default 0x5a). Each event is logged
 * as "vmm 'NAME': event K: DESCRIPTION" (warn level), the raise as "raised
 * platform reset" and a reset of its role as "role reset". It raises once in
 * all: the flag is part of its saved state (carried into a restarted
 * instance) and survives the reset of the VM.
 */
#include "testvmm.h"

#define STATE_MAGIC 0x52534952u /* "RISR" */

struct raiser {
	uint64_t read;
	uint32_t events;
	bool raised;
};

struct raiser_state {
	uint32_t magic;
	uint32_t events;
	uint32_t raised;
};

static int raiser_init(struct vmmux_ctx *ctx)
{
	struct raiser *r = vmmux_priv(ctx);
	return tv_arg_u64(ctx, "read", 0x5a, &r->read) < 0 ? -EINVAL : 0;
}

static int raiser_handle(struct vmmux_ctx *ctx, const struct vmmux_event *ev,
			 struct vmmux_reply *rep)
{
	struct raiser *r = vmmux_priv(ctx);
	char desc[128];
	r->events++;
	tv_describe(ev, desc, sizeof(desc));
	vmmux_log(ctx, VMMUX_LOG_WARN, "event %u: %s", r->events, desc);
	if (!r->raised && (ev->flags & VMMUX_EVF_WRITE)) {
		struct vmmux_event reset = {
		    .type = VMMUX_EV_PLATFORM,
		    .key = VMMUX_PLAT_RESET,
		    .count = 1,
		    .vcpu = ev->vcpu,
		};
		r->raised = true;
		int rc = vmmux_raise(ctx, &reset);
		vmmux_log(ctx, VMMUX_LOG_WARN, "raised platform reset: %d", rc);
	}
	tv_answer_read(ev, rep, r->read);
	return 0;
}

static void raiser_reset(struct vmmux_ctx *ctx)
{
	vmmux_log(ctx, VMMUX_LOG_WARN, "role reset");
}

static long raiser_save(struct vmmux_ctx *ctx, void *buf, size_t cap)
{
	struct raiser *r = vmmux_priv(ctx);
	struct raiser_state st = {STATE_MAGIC, r->events, r->raised};
	if (cap < sizeof(st))
		return -1;
	memcpy(buf, &st, sizeof(st));
	return (long)sizeof(st);
}

static int raiser_restore(struct vmmux_ctx *ctx, const void *buf, size_t len)
{
	struct raiser *r = vmmux_priv(ctx);
	struct raiser_state st;
	if (len != sizeof(st))
		return -EINVAL;
	memcpy(&st, buf, sizeof(st));
	if (st.magic != STATE_MAGIC || st.raised > 1)
		return -EINVAL;
	r->events = st.events;
	r->raised = st.raised;
	vmmux_log(ctx, VMMUX_LOG_WARN, "restored after event %u", r->events);
	return 0;
}

static const char *const raiser_args[] = {"read", NULL};

static const struct vmmux_role raiser_role = {
    .abi_version = VMMUX_ROLE_ABI_VERSION,
    .name = "raiser-test",
    .summary = "raises platform:reset on the first port write",
    .priv_size = sizeof(struct raiser),
    .init = raiser_init,
    .handle = raiser_handle,
    .reset = raiser_reset,
    .save = raiser_save,
    .restore = raiser_restore,
    .args = raiser_args,
};

int main(void)
{
	return vmmux_vmm_main(&raiser_role);
}
