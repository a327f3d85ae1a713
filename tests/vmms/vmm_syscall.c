/*
 * vmm_syscall: a parallel VMM (built on the VMM library) that makes a system
 * call its sandbox forbids, socket(2), while it handles an event: the
 * kernel kills it with SIGSYS.
 *
 * Arguments: read=N (the value reads get, default 0x5a), crash_at=K (the
 * event, counted from 1, during which a fresh instance calls socket();
 * default 2). Each event it handles is logged as
 *
 *     vmm 'NAME': event K: io write port 0x80 size 1 value 0x12
 *
 * (vmmux's log, warn level). Its state (the number of events handled) is
 * saved after each event; an instance that was given a predecessor's state
 * (a restarted one) logs "restored after event K" and never crashes, so
 * the re-delivered event is handled normally, with its number again.
 */
#include <sys/socket.h>

#include "testvmm.h"

#define STATE_MAGIC 0x53595343u /* "CSYS" */

struct sc {
	uint64_t read;
	uint64_t crash_at;
	uint32_t events;
	bool restored;
};

struct sc_state {
	uint32_t magic;
	uint32_t events;
};

static int sc_init(struct vmmux_ctx *ctx)
{
	struct sc *s = vmmux_priv(ctx);
	if (tv_arg_u64(ctx, "read", 0x5a, &s->read) < 0 ||
	    tv_arg_u64(ctx, "crash_at", 2, &s->crash_at) < 0)
		return -EINVAL;
	return 0;
}

static int sc_handle(struct vmmux_ctx *ctx, const struct vmmux_event *ev, struct vmmux_reply *rep)
{
	struct sc *s = vmmux_priv(ctx);
	char desc[128];
	s->events++;
	tv_describe(ev, desc, sizeof(desc));
	vmmux_log(ctx, VMMUX_LOG_WARN, "event %u: %s", s->events, desc);
	if (!s->restored && s->events == s->crash_at) {
		vmmux_log(ctx, VMMUX_LOG_WARN, "calling socket()");
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		vmmux_log(ctx, VMMUX_LOG_ERROR, "ALLOWED: socket() returned %d", fd);
		return -EPERM;
	}
	tv_answer_read(ev, rep, s->read);
	return 0;
}

static long sc_save(struct vmmux_ctx *ctx, void *buf, size_t cap)
{
	struct sc *s = vmmux_priv(ctx);
	struct sc_state st = {STATE_MAGIC, s->events};
	if (cap < sizeof(st))
		return -1;
	memcpy(buf, &st, sizeof(st));
	return (long)sizeof(st);
}

static int sc_restore(struct vmmux_ctx *ctx, const void *buf, size_t len)
{
	struct sc *s = vmmux_priv(ctx);
	struct sc_state st;
	if (len != sizeof(st))
		return -EINVAL;
	memcpy(&st, buf, sizeof(st));
	if (st.magic != STATE_MAGIC)
		return -EINVAL;
	s->events = st.events;
	s->restored = true;
	vmmux_log(ctx, VMMUX_LOG_WARN, "restored after event %u", s->events);
	return 0;
}

static const char *const sc_args[] = {"read", "crash_at", NULL};

static const struct vmmux_role sc_role = {
    .abi_version = VMMUX_ROLE_ABI_VERSION,
    .name = "syscall-test",
    .summary = "calls socket() while handling an event (dies of SIGSYS)",
    .priv_size = sizeof(struct sc),
    .init = sc_init,
    .handle = sc_handle,
    .save = sc_save,
    .restore = sc_restore,
    .args = sc_args,
};

int main(void)
{
	return vmmux_vmm_main(&sc_role);
}
