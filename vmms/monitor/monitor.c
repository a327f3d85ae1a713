/*
 * monitor.c: an introspection monitor (role "monitor").
 *
 * Every event routed to the monitor is written as one JSON object on one line
 * to its output descriptor, then answered with a reply configured by args.
 * A regular output file is written with one pwrite(2) per line at an offset
 * kept in the saved state, so that a parallel monitor that dies after
 * writing a line and before its record is committed has the line rewritten
 * in place, not repeated, by its successor; any other output (a pipe, a
 * terminal, a file opened O_APPEND) gets one write(2) per line, and such a
 * line may repeat after a crash (vmms/role_util.h, role_out). Args:
 *
 *   read=N          IN and MMIO read value (default 0); an INS fills every
 *                   element with it
 *   msr_read=N      RDMSR value (default 0)
 *   msr=ok|gp       "gp" answers #GP to every RDMSR and WRMSR (default ok)
 *   exception=consume|reinject|end
 *                   consume (default): the exception is handled; reinject:
 *                   deliver a host-debug exception (VMMUX_EVF_HOSTDEBUG) to
 *                   the guest, a guest-reported one is still consumed; end:
 *                   end the run as a guest crash
 *   shutdown=reset|end
 *                   a triple fault resets the VM (default) or ends the run
 *
 * Numbers are decimal or 0x hex. Every other event is answered
 * VMMUX_ACT_DONE. The line, fields in this order:
 *   {"vmm":NAME,"type":"io","write":true,"key":"0x80","size":1,"count":1,
 *    "value":"0x12","vcpu":0,"src":"vcpu","src_id":0,"flags":["write"],
 *    "action":"done"}
 * key is a hex string for io, mmio and msr events, a decimal number for the
 * others; vcpu is null for VMMUX_NO_VCPU; "reply" (hex string) follows for
 * io, mmio and msr reads answered with a value; "aux" (hex string) for
 * exceptions; "data" (hex string of the first 64 bytes, "data_len" the
 * total) for string I/O, the guest's bytes for OUTS and the filled bytes for
 * INS; "unrouted":true when the event reached the monitor as a type default.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <vmmux/vmmux.h>

#include "../role_util.h"
#include "../roles.h"

#define MONITOR_DATA_MAX 64
#define MONITOR_LINE_MAX 1024

enum { MSR_OK = 0, MSR_GP };
enum { EXC_CONSUME = 0, EXC_REINJECT, EXC_END };
enum { SHUT_RESET = 0, SHUT_END };

struct monitor {
	uint64_t read_value;
	uint64_t msr_read_value;
	size_t msr_mode, exception_mode, shutdown_mode;
	size_t forward; /* hand device events on (needs the "forward" grant) */
	bool forward_refused_logged;
	struct role_out out;
	bool output_error_logged;
};

/* Saved state, version 1: where the next line goes in the output file. */
#define MONITOR_STATE_MAGIC   0x314e4f4du /* "MON1" */
#define MONITOR_STATE_VERSION 1
struct monitor_state_v1 {
	struct role_state_hdr hdr;
	struct role_out_state out;
};
_Static_assert(sizeof(struct monitor_state_v1) == 32, "monitor state layout");

static const char *const forward_modes[] = {"no", "yes"};

/* Hand a device event on to whoever the routes keyed by this VMM name. */
static void monitor_forward(struct vmmux_ctx *ctx, const struct vmmux_event *ev)
{
	switch (ev->type) {
	case VMMUX_EV_IO:
	case VMMUX_EV_MMIO:
	case VMMUX_EV_MSR:
	case VMMUX_EV_HLT:
	case VMMUX_EV_HYPERCALL:
	case VMMUX_EV_SHUTDOWN:
		break;
	default:
		return;
	}
	if (ev->data != NULL)
		return; /* string I/O is not handed on: its data lives in this call */
	struct vmmux_event copy = *ev;
	struct monitor *m = vmmux_priv(ctx);
	if (vmmux_raise(ctx, &copy) < 0 && !m->forward_refused_logged) {
		/* e.g. a posted write, which a parallel VMM serves outside any
		 * request: nothing to hand a copy on with (src/vmm/grants.h) */
		m->forward_refused_logged = true;
		vmmux_log(ctx, VMMUX_LOG_WARN,
			  "could not hand an event on (raise refused; logged once)");
	}
}

static const char *const type_names[VMMUX_EV__COUNT] = VMMUX_EV_NAMES;

static const char *const action_names[VMMUX_ACT__COUNT] = VMMUX_ACT_NAMES;

static const struct {
	uint16_t flag;
	const char *name;
} flag_names[] = {
    {VMMUX_EVF_WRITE, "write"},
    {VMMUX_EVF_STRING, "string"},
    {VMMUX_EVF_HOSTDEBUG, "hostdebug"},
    {VMMUX_EVF_GUEST_REPORTED, "guest_reported"},
    {VMMUX_EVF_UNKNOWN_MSR, "unknown_msr"},
    {VMMUX_EVF_UNROUTED, "unrouted"},
    {VMMUX_EVF_DOORBELL, "doorbell"},
    {VMMUX_EVF_COALESCED, "coalesced"},
};

static const char *const msr_modes[] = {"ok", "gp"};
static const char *const exception_modes[] = {"consume", "reinject", "end"};
static const char *const shutdown_modes[] = {"reset", "end"};

/* A line being built; overflow is remembered and the line dropped. */
struct line {
	char buf[MONITOR_LINE_MAX];
	size_t len;
	bool overflow;
};

static void line_add(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void line_add(struct line *l, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (l->overflow)
		return;
	va_start(ap, fmt);
	n = vsnprintf(l->buf + l->len, sizeof(l->buf) - l->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(l->buf) - l->len) {
		l->overflow = true;
		return;
	}
	l->len += (size_t)n;
}

/*
 * Add S as a JSON string. VMM names are restricted by the config to
 * [a-z0-9_-], but the host's word is not relied upon: quotes, backslashes
 * and control characters are escaped.
 */
static void line_add_string(struct line *l, const char *s)
{
	line_add(l, "\"");
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			line_add(l, "\\%c", c);
		else if (c < 0x20)
			line_add(l, "\\u%04x", c);
		else
			line_add(l, "%c", c);
	}
	line_add(l, "\"");
}

static bool monitor_key_is_hex(uint16_t type)
{
	return type == VMMUX_EV_IO || type == VMMUX_EV_MMIO || type == VMMUX_EV_MSR;
}

/* Check what the monitor accepts; -EINVAL for a malformed event. */
static int monitor_check(const struct vmmux_event *ev)
{
	if (ev->type >= VMMUX_EV__COUNT)
		return -EINVAL;
	if (ev->type == VMMUX_EV_IO) {
		if (ev->size != 1 && ev->size != 2 && ev->size != 4)
			return -EINVAL;
		if (ev->flags & VMMUX_EVF_STRING) {
			if (!ev->data || ev->count == 0 || ev->count > SIZE_MAX / ev->size)
				return -EINVAL;
		} else if (ev->count != 1) {
			return -EINVAL;
		}
	} else if (ev->flags & VMMUX_EVF_STRING) {
		return -EINVAL;
	}
	if (ev->type == VMMUX_EV_MMIO && ev->size != 1 && ev->size != 2 && ev->size != 4 &&
	    ev->size != 8)
		return -EINVAL;
	return 0;
}

/* The reply for EV; *has_value says whether rep->value is a read result. */
static void monitor_reply(const struct monitor *m, const struct vmmux_event *ev,
			  struct vmmux_reply *rep, bool *has_value)
{
	bool write = ev->flags & VMMUX_EVF_WRITE;

	*has_value = false;
	rep->action = VMMUX_ACT_DONE;
	switch (ev->type) {
	case VMMUX_EV_IO:
	case VMMUX_EV_MMIO:
		if (!write) {
			rep->value = m->read_value & role_size_mask(ev->size);
			*has_value = true;
		}
		if (!write && (ev->flags & VMMUX_EVF_STRING)) {
			uint8_t *data = ev->data;

			for (uint32_t i = 0; i < ev->count; i++)
				for (unsigned b = 0; b < ev->size; b++)
					data[(size_t)i * ev->size + b] =
					    (uint8_t)(m->read_value >> (8 * b));
		}
		break;
	case VMMUX_EV_MSR:
		if (m->msr_mode == MSR_GP) {
			rep->action = VMMUX_ACT_GP;
		} else if (!write) {
			rep->value = m->msr_read_value;
			*has_value = true;
		}
		break;
	case VMMUX_EV_EXCEPTION:
		if (m->exception_mode == EXC_END)
			rep->action = VMMUX_ACT_END;
		else if (m->exception_mode == EXC_REINJECT && (ev->flags & VMMUX_EVF_HOSTDEBUG) &&
			 !(ev->flags & VMMUX_EVF_GUEST_REPORTED))
			rep->action = VMMUX_ACT_REINJECT;
		break;
	case VMMUX_EV_SHUTDOWN:
		rep->action = m->shutdown_mode == SHUT_END ? VMMUX_ACT_END : VMMUX_ACT_RESET;
		break;
	default:
		break;
	}
}

static void monitor_format(struct vmmux_ctx *ctx, const struct vmmux_event *ev,
			   const struct vmmux_reply *rep, bool has_value, struct line *l)
{
	static const char *const src_names[] = {"vcpu", "vmm", "host"};
	bool first = true;

	line_add(l, "{\"vmm\":");
	line_add_string(l, vmmux_name(ctx));
	line_add(l, ",\"type\":\"%s\",\"write\":%s", type_names[ev->type],
		 (ev->flags & VMMUX_EVF_WRITE) ? "true" : "false");
	if (monitor_key_is_hex(ev->type))
		line_add(l, ",\"key\":\"0x%llx\"", (unsigned long long)ev->key);
	else
		line_add(l, ",\"key\":%llu", (unsigned long long)ev->key);
	line_add(l, ",\"size\":%u,\"count\":%lu,\"value\":\"0x%llx\"", ev->size,
		 (unsigned long)ev->count, (unsigned long long)ev->value);
	if (ev->vcpu == VMMUX_NO_VCPU)
		line_add(l, ",\"vcpu\":null");
	else
		line_add(l, ",\"vcpu\":%u", ev->vcpu);
	if (ev->src_kind < sizeof(src_names) / sizeof(src_names[0]))
		line_add(l, ",\"src\":\"%s\"", src_names[ev->src_kind]);
	else
		line_add(l, ",\"src\":%u", ev->src_kind);
	line_add(l, ",\"src_id\":%u,\"gen\":%llu,\"flags\":[", ev->src_id,
		 (unsigned long long)ev->generation);
	for (size_t i = 0; i < sizeof(flag_names) / sizeof(flag_names[0]); i++) {
		if (ev->flags & flag_names[i].flag) {
			line_add(l, "%s\"%s\"", first ? "" : ",", flag_names[i].name);
			first = false;
		}
	}
	line_add(l, "],\"action\":\"%s\"", action_names[rep->action]);
	if (has_value)
		line_add(l, ",\"reply\":\"0x%llx\"", (unsigned long long)rep->value);
	if (ev->type == VMMUX_EV_EXCEPTION)
		line_add(l, ",\"aux\":\"0x%llx\"", (unsigned long long)ev->aux);
	if (ev->flags & VMMUX_EVF_STRING) {
		size_t total = (size_t)ev->count * ev->size;
		size_t shown = total < MONITOR_DATA_MAX ? total : MONITOR_DATA_MAX;
		const uint8_t *data = ev->data;

		line_add(l, ",\"data\":\"");
		for (size_t i = 0; i < shown; i++)
			line_add(l, "%02x", data[i]);
		line_add(l, "\",\"data_len\":%zu", total);
	}
	if (ev->flags & VMMUX_EVF_UNROUTED)
		line_add(l, ",\"unrouted\":true");
	line_add(l, "}\n");
}

static int monitor_handle(struct vmmux_ctx *ctx, const struct vmmux_event *ev,
			  struct vmmux_reply *rep)
{
	struct monitor *m = vmmux_priv(ctx);
	struct line l;
	bool has_value;
	int fd, ret;

	ret = monitor_check(ev);
	if (ret < 0)
		return ret;
	monitor_reply(m, ev, rep, &has_value);
	if (m->forward)
		monitor_forward(ctx, ev);

	fd = vmmux_output_fd(ctx);
	if (fd < 0)
		return 0;
	l.len = 0;
	l.overflow = false;
	monitor_format(ctx, ev, rep, has_value, &l);
	if (l.overflow) {
		vmmux_log(ctx, VMMUX_LOG_WARN, "event line longer than %d bytes: not written",
			  MONITOR_LINE_MAX);
		return 0;
	}
	if (role_out_write(ctx, &m->out, l.buf, l.len) < 0 && !m->output_error_logged) {
		vmmux_log(ctx, VMMUX_LOG_WARN, "output descriptor %d: %s; event lines are dropped",
			  fd, strerror(errno));
		m->output_error_logged = true;
	}
	return 0;
}

static int monitor_init(struct vmmux_ctx *ctx)
{
	struct monitor *m = vmmux_priv(ctx);

	if (role_arg_u64(ctx, "read", 0, 0, UINT64_MAX, &m->read_value) < 0 ||
	    role_arg_u64(ctx, "msr_read", 0, 0, UINT64_MAX, &m->msr_read_value) < 0 ||
	    role_arg_choice(ctx, "msr", msr_modes, 2, MSR_OK, &m->msr_mode) < 0 ||
	    role_arg_choice(ctx, "exception", exception_modes, 3, EXC_CONSUME, &m->exception_mode) <
		0 ||
	    role_arg_choice(ctx, "shutdown", shutdown_modes, 2, SHUT_RESET, &m->shutdown_mode) <
		0 ||
	    role_arg_choice(ctx, "forward", forward_modes, 2, 0, &m->forward) < 0)
		return -EINVAL;
	role_out_init(ctx, &m->out);
	if (vmmux_output_fd(ctx) < 0)
		vmmux_log(ctx, VMMUX_LOG_WARN,
			  "no output configured: events are answered, not "
			  "logged");
	return 0;
}

static long monitor_save(struct vmmux_ctx *ctx, void *buf, size_t cap)
{
	struct monitor *m = vmmux_priv(ctx);
	struct monitor_state_v1 st;

	if (!buf || cap < sizeof(st))
		return -1;
	memset(&st, 0, sizeof(st));
	st.hdr.magic = MONITOR_STATE_MAGIC;
	st.hdr.version = MONITOR_STATE_VERSION;
	st.hdr.size = sizeof(st);
	role_out_save(&m->out, &st.out);
	memcpy(buf, &st, sizeof(st));
	return (long)sizeof(st);
}

static int monitor_restore(struct vmmux_ctx *ctx, const void *buf, size_t len)
{
	struct monitor *m = vmmux_priv(ctx);
	struct monitor_state_v1 st;

	if (!buf || len != sizeof(st)) {
		vmmux_log(ctx, VMMUX_LOG_ERROR, "restore: state of %zu bytes, not %zu", len,
			  sizeof(st));
		return -EINVAL;
	}
	memcpy(&st, buf, sizeof(st));
	if (st.hdr.magic != MONITOR_STATE_MAGIC || st.hdr.version != MONITOR_STATE_VERSION ||
	    st.hdr.size != sizeof(st)) {
		vmmux_log(ctx, VMMUX_LOG_ERROR, "restore: not a monitor state (magic or version)");
		return -EINVAL;
	}
	role_out_restore(&m->out, &st.out);
	return 0;
}

static const char *const monitor_args[] = {"read",     "msr_read", "msr", "exception",
					   "shutdown", "forward",  NULL};

const struct vmmux_role vmmux_role_monitor = {
    .abi_version = VMMUX_ROLE_ABI_VERSION,
    .name = "monitor",
    .summary = "logs every event as a JSON line and answers with configured replies",
    .priv_size = sizeof(struct monitor),
    .init = monitor_init,
    .handle = monitor_handle,
    .save = monitor_save,
    .restore = monitor_restore,
    .args = monitor_args,
};
