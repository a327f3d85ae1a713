/*
 * sink: a VMM that accepts every event and does nothing with it: reads of
 * io, mmio and MSRs return the value of its "read" argument (default 0; INS
 * fills the buffer with its low byte), writes are dropped, every other event
 * is consumed. It costs as little as a role can, which makes it the yardstick
 * of the transition itself (the benchmarks route to it). With a "delay" (a
 * duration: 2ms, 500us ...) it sleeps that long before answering each
 * event, which makes a VMM of known service time (load-aware routing is
 * tested with it).
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <vmmux/vmmux.h>

#include "../role_util.h"
#include "../roles.h"

#define SINK_DELAY_MAX_NS 1000000000ull /* 1 s, a parallel VMM's default timeout */

struct sink {
	uint64_t read_value;
	uint64_t delay_ns;
};

/* "delay": a number and a unit (ns, us, ms, s), at most 1 s; 0 by default. */
static int sink_arg_delay(struct vmmux_ctx *ctx, uint64_t *out)
{
	static const struct {
		const char *unit;
		uint64_t ns;
	} units[] = {{"ns", 1}, {"us", 1000}, {"ms", 1000000}, {"s", 1000000000}};
	const char *s = vmmux_arg(ctx, "delay");
	*out = 0;
	if (s == NULL)
		return 0;
	size_t digits = 0;
	uint64_t v = 0;
	while (s[digits] >= '0' && s[digits] <= '9' && v <= SINK_DELAY_MAX_NS)
		v = v * 10 + (uint64_t)(s[digits++] - '0');
	for (size_t i = 0; digits > 0 && i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(s + digits, units[i].unit) != 0)
			continue;
		if (v > SINK_DELAY_MAX_NS / units[i].ns)
			break;
		*out = v * units[i].ns;
		return 0;
	}
	vmmux_log(ctx, VMMUX_LOG_ERROR,
		  "arg \"delay\": \"%s\" is not a duration from 0 to 1s (a number and a unit: ns, "
		  "us, ms, s)",
		  s);
	return -EINVAL;
}

static int sink_init(struct vmmux_ctx *ctx)
{
	struct sink *s = vmmux_priv(ctx);
	if (sink_arg_delay(ctx, &s->delay_ns) < 0)
		return -EINVAL;
	return role_arg_u64(ctx, "read", 0, 0, UINT64_MAX, &s->read_value);
}

/* Sleep NS nanoseconds (CLOCK_MONOTONIC; a signal only interrupts it). */
static void sink_sleep(uint64_t ns)
{
	struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u),
			      .tv_nsec = (long)(ns % 1000000000u)};
	while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
		;
}

static int sink_handle(struct vmmux_ctx *ctx, const struct vmmux_event *ev, struct vmmux_reply *rep)
{
	const struct sink *s = vmmux_priv(ctx);
	if (s->delay_ns)
		sink_sleep(s->delay_ns);
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

static const char *const sink_args[] = {"read", "delay", NULL};

const struct vmmux_role vmmux_role_sink = {
    .abi_version = VMMUX_ROLE_ABI_VERSION,
    .name = "sink",
    .summary = "accepts every event and does nothing: reads return its 'read' value, after "
	       "its 'delay'",
    .priv_size = sizeof(struct sink),
    .init = sink_init,
    .handle = sink_handle,
    .args = sink_args,
};
