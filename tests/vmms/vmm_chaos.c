/*
 * vmm_chaos: a third party's parallel VMM for the chaos harness
 * (tests/chaos/chaos.py), built on the VMM library like any external
 * program. It is a register file: a port write stores the value, a read of
 * the same port returns the last value stored there (0 before any), so the
 * guest (guest/tests/chaos.c, port 0x90) checks that what it wrote survives
 * kills, restarts and swaps of this VMM. The registers are its saved state.
 *
 * A doorbell signal (a write event flagged VMMUX_EVF_DOORBELL, whose value
 * is not the guest's) adds one to its port's register instead, so that the
 * guest reads back how many rings reached the state (port 0x9d).
 *
 * Every write it handles is logged on its output descriptor as one line,
 * one write(2) each:
 *
 *   w VCPU PORT VALUE\n        (decimal vCPU, "-" for none; hex port and value)
 *
 * so that the harness counts what reached the VMM, not what vmmux says.
 * Argument: delay=US, a pause of US microseconds after a write is logged
 * and applied and before its reply (default 0): a window in which the side
 * effect has happened and the reply is not yet written. Ports: any (the
 * route decides), up to CHAOS_REGS distinct ports (key & (CHAOS_REGS - 1)
 * picks the register).
 */
#include <time.h>
#include <unistd.h>

#include "testvmm.h"

#define STATE_MAGIC 0x534f4148u /* "HAOS" */
#define CHAOS_REGS  16u

struct chaos_state {
	uint32_t magic;
	uint32_t pad;
	uint64_t writes;
	uint64_t reg[CHAOS_REGS];
};

struct chaos {
	struct chaos_state st;
	uint64_t delay_us;
};

static int chaos_init(struct vmmux_ctx *ctx)
{
	struct chaos *c = vmmux_priv(ctx);
	memset(&c->st, 0, sizeof(c->st));
	c->st.magic = STATE_MAGIC;
	return tv_arg_u64(ctx, "delay", 0, &c->delay_us) < 0 ? -EINVAL : 0;
}

static int chaos_handle(struct vmmux_ctx *ctx, const struct vmmux_event *ev,
			struct vmmux_reply *rep)
{
	struct chaos *c = vmmux_priv(ctx);
	if (ev->type != VMMUX_EV_IO || (ev->flags & VMMUX_EVF_STRING))
		return -EINVAL;
	uint64_t *reg = &c->st.reg[ev->key & (CHAOS_REGS - 1)];
	if (!(ev->flags & VMMUX_EVF_WRITE)) {
		rep->value = *reg;
		return 0;
	}
	if (ev->flags & VMMUX_EVF_DOORBELL)
		*reg += 1;
	else
		*reg = ev->value;
	c->st.writes++;
	int fd = vmmux_output_fd(ctx);
	if (fd >= 0) {
		char line[96];
		int n;
		if (ev->vcpu == VMMUX_NO_VCPU)
			n = snprintf(line, sizeof(line), "w - 0x%llx 0x%llx\n",
				     (unsigned long long)ev->key, (unsigned long long)ev->value);
		else
			n = snprintf(line, sizeof(line), "w %u 0x%llx 0x%llx\n", ev->vcpu,
				     (unsigned long long)ev->key, (unsigned long long)ev->value);
		if (n > 0 && write(fd, line, (size_t)n) != n)
			vmmux_log(ctx, VMMUX_LOG_WARN, "output: a short write");
	}
	if (c->delay_us > 0) {
		struct timespec ts = {.tv_sec = (time_t)(c->delay_us / 1000000),
				      .tv_nsec = (long)(c->delay_us % 1000000) * 1000};
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
	}
	return 0;
}

static void chaos_reset(struct vmmux_ctx *ctx)
{
	struct chaos *c = vmmux_priv(ctx);
	memset(&c->st, 0, sizeof(c->st));
	c->st.magic = STATE_MAGIC;
}

static long chaos_save(struct vmmux_ctx *ctx, void *buf, size_t cap)
{
	struct chaos *c = vmmux_priv(ctx);
	if (cap < sizeof(c->st))
		return -1;
	memcpy(buf, &c->st, sizeof(c->st));
	return (long)sizeof(c->st);
}

static int chaos_restore(struct vmmux_ctx *ctx, const void *buf, size_t len)
{
	struct chaos *c = vmmux_priv(ctx);
	struct chaos_state st;
	if (len != sizeof(st))
		return -EINVAL;
	memcpy(&st, buf, sizeof(st));
	if (st.magic != STATE_MAGIC)
		return -EINVAL;
	c->st = st;
	return 0;
}

static const char *const chaos_args[] = {"delay", NULL};

static const struct vmmux_role chaos_role = {
    .abi_version = VMMUX_ROLE_ABI_VERSION,
    .name = "chaos-regs",
    .summary = "a register file per port, every write logged",
    .priv_size = sizeof(struct chaos),
    .init = chaos_init,
    .handle = chaos_handle,
    .reset = chaos_reset,
    .save = chaos_save,
    .restore = chaos_restore,
    .args = chaos_args,
};

int main(void)
{
	return vmmux_vmm_main(&chaos_role);
}
