/*
 * vmm_worker: a parallel VMM (built on the VMM library, like a third party's)
 * that records every port event it handles on its output descriptor, so that
 * a test counts what reached each VMM at the VMM itself, not from vmmux's
 * statistics.
 *
 * Output: one line per port event, "E VCPU PORT VALUE T" for a write (E =
 * w) or a read (E = r, VALUE = the answer), decimal VCPU, hex PORT and
 * VALUE, T the CLOCK_MONOTONIC time (ns) at which it began to handle it
 * (comparable between VMMs: events of one vCPU are ordered by it);
 * "restored N" when it takes over the state of an instance it replaces (N =
 * the events that one had handled); "done N" when vmmux stops it.
 *
 * Arguments (all optional, decimal or 0x hex):
 *   read=N         the value reads get (default 0)
 *   delay_us=N     sleep N us before answering each event (a service time
 *                  that costs no CPU; default 0)
 *   busy=1         burn CPU whenever no request is pending: it needs an
 *                  input that is always readable (input=/dev/zero), whose
 *                  callback spins for 50 us per call and then returns, so
 *                  that a request waits at most that long. The process is
 *                  CPU-bound (its /proc/PID/stat times grow at about one
 *                  CPU) without being slow to answer.
 *   restore_ms=N   take N ms to restore the state of the instance it
 *                  replaces (a hot swap): the swap's window, during which
 *                  vmmux holds this VMM's events back, lasts that long.
 *
 * State (save/restore): the number of events handled, carried into an
 * instance that replaces it.
 */
#include <stdarg.h>
#include <time.h>
#include <unistd.h>

#include "testvmm.h"

#define WORKER_STATE_MAGIC 0x4b524f57u /* "WORK" */
#define BUSY_SPIN_NS	   50000ull

struct worker {
	uint64_t read, delay_us, busy, restore_ms;
	uint64_t events;
};

struct worker_state {
	uint32_t magic;
	uint32_t pad;
	uint64_t events;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull),
			      .tv_nsec = (long)(ns % 1000000000ull)};
	while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
		;
}

static void out_line(struct vmmux_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void out_line(struct vmmux_ctx *ctx, const char *fmt, ...)
{
	char line[128];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	int fd = vmmux_output_fd(ctx);
	if (fd >= 0 && n > 0 && write(fd, line, (size_t)n < sizeof(line) ? (size_t)n : 0) < 0)
		vmmux_log(ctx, VMMUX_LOG_WARN, "output: %s", strerror(errno));
}

static int worker_init(struct vmmux_ctx *ctx)
{
	struct worker *w = vmmux_priv(ctx);
	if (tv_arg_u64(ctx, "read", 0, &w->read) < 0 ||
	    tv_arg_u64(ctx, "delay_us", 0, &w->delay_us) < 0 ||
	    tv_arg_u64(ctx, "busy", 0, &w->busy) < 0 ||
	    tv_arg_u64(ctx, "restore_ms", 0, &w->restore_ms) < 0)
		return -EINVAL;
	if (w->busy && vmmux_input_fd(ctx) < 0) {
		vmmux_log(ctx, VMMUX_LOG_ERROR, "busy=1 needs an input (input=/dev/zero)");
		return -EINVAL;
	}
	return 0;
}

static int worker_handle(struct vmmux_ctx *ctx, const struct vmmux_event *ev,
			 struct vmmux_reply *rep)
{
	struct worker *w = vmmux_priv(ctx);
	uint64_t t = now_ns();
	if (ev->type != VMMUX_EV_IO)
		return -EINVAL;
	w->events++;
	if (w->delay_us)
		sleep_ns(w->delay_us * 1000ull);
	bool write = ev->flags & VMMUX_EVF_WRITE;
	tv_answer_read(ev, rep, w->read);
	out_line(ctx, "%c %u %llx %llx %llu\n", write ? 'w' : 'r', ev->vcpu,
		 (unsigned long long)ev->key, (unsigned long long)(write ? ev->value : w->read),
		 (unsigned long long)t);
	return 0;
}

/* busy=1: the input is always readable; spin, then let requests in. */
static int worker_input(struct vmmux_ctx *ctx)
{
	struct worker *w = vmmux_priv(ctx);
	char buf[64];
	ssize_t n = read(vmmux_input_fd(ctx), buf, sizeof(buf));
	if (n <= 0)
		return -1;
	if (w->busy) {
		uint64_t end = now_ns() + BUSY_SPIN_NS;
		while (now_ns() < end)
			;
	}
	return (int)n;
}

static long worker_save(struct vmmux_ctx *ctx, void *buf, size_t cap)
{
	const struct worker *w = vmmux_priv(ctx);
	struct worker_state s = {.magic = WORKER_STATE_MAGIC, .events = w->events};
	if (cap < sizeof(s))
		return -1;
	memcpy(buf, &s, sizeof(s));
	return (long)sizeof(s);
}

static int worker_restore(struct vmmux_ctx *ctx, const void *buf, size_t len)
{
	struct worker *w = vmmux_priv(ctx);
	struct worker_state s;
	if (len != sizeof(s))
		return -1;
	memcpy(&s, buf, sizeof(s));
	if (s.magic != WORKER_STATE_MAGIC)
		return -1;
	if (w->restore_ms)
		sleep_ns(w->restore_ms * 1000000ull);
	w->events = s.events;
	out_line(ctx, "restored %llu\n", (unsigned long long)s.events);
	return 0;
}

static void worker_fini(struct vmmux_ctx *ctx)
{
	const struct worker *w = vmmux_priv(ctx);
	out_line(ctx, "done %llu\n", (unsigned long long)w->events);
}

static const char *const worker_args[] = {"read", "delay_us", "busy", "restore_ms", NULL};
static const char *const worker_raises[] = {NULL};

static const struct vmmux_role worker_role = {
    .abi_version = VMMUX_ROLE_ABI_VERSION,
    .name = "worker",
    .summary = "records each port event it handles on its output (a test VMM)",
    .priv_size = sizeof(struct worker),
    .init = worker_init,
    .fini = worker_fini,
    .handle = worker_handle,
    .input = worker_input,
    .save = worker_save,
    .restore = worker_restore,
    .args = worker_args,
    .raises = worker_raises,
};

int main(void)
{
	return vmmux_vmm_main(&worker_role);
}
