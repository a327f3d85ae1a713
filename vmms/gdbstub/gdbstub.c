/*
 * gdbstub.c: the "gdbstub" role, a GDB remote stub (docs/debugging.md).
 *
 * Events: the routing table sends it the debug exceptions, #DB (vector 1:
 * single-step, hardware breakpoints and watchpoints through KVM guest debug)
 * and #BP (vector 3, where the host reports int3), with `exception:1=NAME`
 * and `exception:3=NAME` (`vmmux run --gdb` installs both). A debug event
 * that arrives while a debugger is attached is a stop: handle() records it,
 * asks every vCPU to hold (vmm/debug.h) and wakes the stub's thread; the
 * vCPU itself holds before its next KVM_RUN. Without a debugger the event is
 * consumed.
 *
 * The stub's thread owns the socket (TCP or Unix, args "listen"): it accepts
 * one debugger at a time and speaks the remote serial protocol (rsp.h) in
 * all-stop mode: while the guest runs it waits for a stop or the
 * debugger's interrupt (0x03); while the guest is held it serves register,
 * memory, breakpoint and thread requests and resumes on c/s/vCont. Threads
 * are vCPUs (thread id = vCPU index + 1). Attaching stops the guest; with
 * args wait=yes the vCPUs hold before their first instruction until a
 * debugger continues them.
 *
 * The role needs the machine (registers, guest debug), which exists only in
 * the main VMM's process: it refuses to start anywhere else.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "../role_util.h"
#include "config/config.h"
#include "regs.h"
#include "rsp.h"
#include "vmm/debug.h"
#include "vmm/machine.h"

#include <vmmux/vmmux.h>

#define GDB_SIGINT  2
#define GDB_SIGILL  4
#define GDB_SIGTRAP 5
#define GDB_SIGFPE  8
#define GDB_SIGSEGV 11

#define KILL_STATUS 137 /* the run's status after 'k': as if killed by SIGKILL */
#define MAX_SWBP    64

enum stop_kind {
	STOP_NONE = 0,
	STOP_STEP,
	STOP_HWBREAK,
	STOP_WATCH,
	STOP_AWATCH,
	STOP_SWBREAK,
	STOP_SIGNAL
};

struct stop {
	bool pending;
	enum stop_kind kind;
	int sig;
	uint64_t addr; /* watch: the data address */
	uint64_t pc;   /* RIP at the stop (a hardware breakpoint's address) */
};

struct hwbp {
	bool used;
	int type; /* Z type: 1 exec, 2 write, 4 access */
	uint64_t addr;
	unsigned len; /* bytes (1 for exec) */
};

struct swbp {
	bool used;
	uint64_t addr;
	uint8_t orig;
};

enum action { ACT_HOLD = 0, ACT_CONT, ACT_STEP };

struct gdbstub {
	struct vmmux_ctx *ctx;
	int listen_fd, client_fd, wake_fd;
	char listen_desc[128];
	char unix_path[108];
	bool wait_first;
	pthread_t thread;
	bool thread_started;
	_Atomic bool quit;
	_Atomic bool attached; /* a debugger is connected */
	bool detached;	       /* it detached or killed: wait for it to close */

	pthread_mutex_t lock; /* stops: the vCPU threads record, the stub reports */
	struct stop stops[CPUS_MAX];

	/* the stub's thread only */
	unsigned ncpus;
	bool running;	    /* resumed by the debugger, no stop reported since */
	unsigned g_cpu;	    /* Hg: registers and memory */
	unsigned c_cpu;	    /* Hc, and the last stop's vCPU */
	char last_stop[96]; /* the reply to '?' */
	struct hwbp hw[4];
	struct swbp sw[MAX_SWBP];
	/* Watchpoints by single-step: the vCPUs that continue are stepped and
	 * the watched bytes compared after each step (see resume_vcpus). */
	bool stepwatch;
	enum action last_act[CPUS_MAX];
	uint8_t watch_val[4][8];
	struct rsp_rx rx;
	char out[RSP_PAYLOAD_MAX + 16];	 /* a reply's payload */
	char frame[RSP_PAYLOAD_MAX * 2]; /* its framing, kept for a resend */
	long frame_len;
	char xml[8192];
	long xml_len;
};

/* ---------------------------------------------------------------------- */
/* The event side (vCPU threads)                                            */
/* ---------------------------------------------------------------------- */

static int vector_signal(uint64_t vec)
{
	switch (vec) {
	case 0:
	case 16:
	case 19:
		return GDB_SIGFPE;
	case 1:
	case 3:
		return GDB_SIGTRAP;
	case 6:
		return GDB_SIGILL;
	default:
		return GDB_SIGSEGV;
	}
}

static void wake(struct gdbstub *g)
{
	uint64_t one = 1;
	ssize_t w = write(g->wake_fd, &one, sizeof(one));
	(void)w;
}

static int gdb_handle(struct vmmux_ctx *ctx, const struct vmmux_event *ev, struct vmmux_reply *rep)
{
	struct gdbstub *g = vmmux_priv(ctx);
	rep->action = VMMUX_ACT_DONE;
	rep->value = 0;
	if (ev->type != VMMUX_EV_EXCEPTION || ev->vcpu >= g->ncpus)
		return 0;
	struct stop s = {.pending = true, .sig = vector_signal(ev->key), .pc = ev->value};
	if (ev->key == VMMUX_VEC_BP && (ev->flags & VMMUX_EVF_HOSTDEBUG)) {
		s.kind = STOP_SWBREAK; /* an int3 the stub planted (--sw-breakpoints) */
	} else if (ev->key == VMMUX_VEC_DB && (ev->flags & VMMUX_EVF_HOSTDEBUG)) {
		s.kind = STOP_STEP;
		pthread_mutex_lock(&g->lock);
		for (unsigned i = 0; i < 4; i++) {
			if (!(ev->aux & (1u << i)) || !g->hw[i].used)
				continue;
			s.kind = g->hw[i].type == 1   ? STOP_HWBREAK
				 : g->hw[i].type == 2 ? STOP_WATCH
						      : STOP_AWATCH;
			s.addr = g->hw[i].addr;
			break;
		}
		pthread_mutex_unlock(&g->lock);
	} else {
		s.kind = STOP_SIGNAL;
	}
	/* Recorded and held under the lock, so that a detach (which clears
	 * the stops and releases the vCPUs under it) never leaves the guest
	 * held with no debugger. */
	pthread_mutex_lock(&g->lock);
	bool attached = atomic_load(&g->attached);
	if (attached) {
		g->stops[ev->vcpu] = s;
		debug_hold(DEBUG_ALL);
	}
	pthread_mutex_unlock(&g->lock);
	if (attached) {
		wake(g);
		return 0;
	}
	/* No debugger: a leftover debug exception is consumed; an exception
	 * the guest reported ends the run as the main VMM's default would. */
	if (!(ev->flags & VMMUX_EVF_HOSTDEBUG)) {
		vmmux_log(ctx, VMMUX_LOG_INFO,
			  "vCPU %u reported exception %llu with no debugger attached: the guest "
			  "crashed",
			  ev->vcpu, (unsigned long long)ev->key);
		rep->action = VMMUX_ACT_END;
	}
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Sending                                                                  */
/* ---------------------------------------------------------------------- */

static int send_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n > 0) {
		ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

static int send_packet_n(struct gdbstub *g, const char *payload, size_t len)
{
	g->frame_len = rsp_frame(payload, len, true, g->frame, sizeof(g->frame));
	if (g->frame_len < 0)
		return -1;
	return send_all(g->client_fd, g->frame, (size_t)g->frame_len);
}

static int send_packet(struct gdbstub *g, const char *payload)
{
	return send_packet_n(g, payload, strlen(payload));
}

/* ---------------------------------------------------------------------- */
/* Stops                                                                    */
/* ---------------------------------------------------------------------- */

static void format_stop(struct gdbstub *g, unsigned cpu, const struct stop *s)
{
	char extra[48] = "";
	switch (s->kind) {
	case STOP_HWBREAK:
		snprintf(extra, sizeof(extra), "hwbreak:;");
		break;
	case STOP_SWBREAK:
		snprintf(extra, sizeof(extra), "swbreak:;");
		break;
	case STOP_WATCH:
		snprintf(extra, sizeof(extra), "watch:%llx;", (unsigned long long)s->addr);
		break;
	case STOP_AWATCH:
		snprintf(extra, sizeof(extra), "awatch:%llx;", (unsigned long long)s->addr);
		break;
	default:
		break;
	}
	snprintf(g->last_stop, sizeof(g->last_stop), "T%02xthread:%x;%s", s->sig & 0xff, cpu + 1,
		 extra);
}

/* Hold every vCPU and wait for it; -1 when the run ends meanwhile. */
static int hold_all(struct gdbstub *g)
{
	(void)g;
	debug_hold(DEBUG_ALL);
	return debug_wait_held();
}

/* Whether vCPU I counts for ACT: NULL (any vCPU) or its action is not HOLD. */
static bool resumed(const enum action *act, unsigned i)
{
	return act == NULL || act[i] != ACT_HOLD;
}

/* A stop of a vCPU that ACT resumed is pending (g->lock held by caller). */
static bool has_stop_locked(struct gdbstub *g, const enum action *act)
{
	for (unsigned i = 0; i < g->ncpus; i++)
		if (g->stops[i].pending && resumed(act, i))
			return true;
	return false;
}

static bool has_stop(struct gdbstub *g, const enum action *act)
{
	pthread_mutex_lock(&g->lock);
	bool any = has_stop_locked(g, act);
	pthread_mutex_unlock(&g->lock);
	return any;
}

/*
 * A pending stop of a vCPU that ACT resumes (NULL: any), first by vCPU
 * index: its vCPU, or -1. Clears it. A vCPU's stop stays pending while the
 * debugger keeps that vCPU stopped (gdb must not hear of a thread it did not
 * resume). A hardware breakpoint's stop whose breakpoint the debugger has
 * removed meanwhile is dropped: the instruction there has not run yet.
 */
static int take_stop(struct gdbstub *g, struct stop *out, const enum action *act)
{
	int cpu = -1;
	pthread_mutex_lock(&g->lock);
	for (unsigned i = 0; i < g->ncpus && cpu < 0; i++) {
		struct stop *s = &g->stops[i];
		if (!s->pending || !resumed(act, i))
			continue;
		s->pending = false;
		if (s->kind == STOP_HWBREAK) {
			bool still = false;
			for (unsigned k = 0; k < 4; k++)
				still |=
				    g->hw[k].used && g->hw[k].type == 1 && g->hw[k].addr == s->pc;
			if (!still)
				continue;
		}
		*out = *s;
		cpu = (int)i;
	}
	pthread_mutex_unlock(&g->lock);
	return cpu;
}

static void resume_vcpus(struct gdbstub *g);
static int watch_changed(struct gdbstub *g);

/*
 * With watchpoints set, the vCPUs that continue run by single steps: a step
 * of one of them is not a stop for the debugger unless a watched value
 * changed. Called with every vCPU held and a stop pending; returns true
 * when the stops were all such steps and the vCPUs run on, else false with
 * the stop to report left pending (a changed value becomes a watch stop).
 */
static bool stepwatch_absorb(struct gdbstub *g)
{
	bool other = false;
	int stepper = -1;
	pthread_mutex_lock(&g->lock);
	for (unsigned i = 0; i < g->ncpus; i++) {
		if (!g->stops[i].pending || g->last_act[i] == ACT_HOLD)
			continue;
		if (g->stops[i].kind == STOP_STEP && g->last_act[i] == ACT_CONT) {
			g->stops[i].pending = false;
			if (stepper < 0)
				stepper = (int)i;
		} else {
			other = true;
		}
	}
	pthread_mutex_unlock(&g->lock);
	if (other)
		return false;
	int w = watch_changed(g);
	if (w < 0 || stepper < 0) {
		resume_vcpus(g);
		return true;
	}
	pthread_mutex_lock(&g->lock);
	g->stops[stepper] = (struct stop){.pending = true,
					  .kind = g->hw[w].type == 2 ? STOP_WATCH : STOP_AWATCH,
					  .sig = GDB_SIGTRAP,
					  .addr = g->hw[w].addr};
	pthread_mutex_unlock(&g->lock);
	return false;
}

/* The guest stopped (or the debugger interrupted it): hold every vCPU and
 * report. Returns -1 when the run ended meanwhile. */
static int report_stop(struct gdbstub *g, bool interrupted)
{
	if (hold_all(g) < 0)
		return -1;
	if (!interrupted && g->stepwatch && stepwatch_absorb(g))
		return 0;
	/* Single-step is the debugger's to ask again at the next resume. */
	for (unsigned i = 0; i < g->ncpus; i++)
		debug_set_step(i, false);
	struct stop s;
	int cpu = take_stop(g, &s, g->last_act);
	if (cpu < 0) {
		if (!interrupted) {
			/* nothing to report after all (a stop dropped): run on */
			resume_vcpus(g);
			return 0;
		}
		s = (struct stop){.pending = true, .kind = STOP_SIGNAL, .sig = GDB_SIGINT};
		cpu = (int)g->c_cpu;
	}
	g->running = false;
	g->c_cpu = g->g_cpu = (unsigned)cpu;
	format_stop(g, (unsigned)cpu, &s);
	return send_packet(g, g->last_stop);
}

/* ---------------------------------------------------------------------- */
/* Breakpoints                                                              */
/* ---------------------------------------------------------------------- */

static void program_hw(struct gdbstub *g)
{
	uint64_t dr[4] = {0}, dr7 = 0;
	for (unsigned i = 0; i < 4; i++) {
		if (!g->hw[i].used)
			continue;
		unsigned rw = g->hw[i].type == 1 ? 0 : g->hw[i].type == 2 ? 1 : 3;
		unsigned len = 0;
		if (g->hw[i].type != 1)
			len = g->hw[i].len == 1	  ? 0
			      : g->hw[i].len == 2 ? 1
			      : g->hw[i].len == 8 ? 2
						  : 3;
		dr[i] = g->hw[i].addr;
		dr7 |= 1ull << (2 * i);				  /* Ln */
		dr7 |= (uint64_t)(rw | len << 2) << (16 + 4 * i); /* RWn, LENn */
	}
	debug_set_hw(dr, dr7);
}

/* Z1/Z2/Z4 and their z: returns the reply. */
static const char *hw_breakpoint(struct gdbstub *g, bool insert, int type, uint64_t addr,
				 uint64_t kind)
{
	unsigned len = type == 1 ? 1 : (unsigned)kind;
	if (type != 1 && (len != 1 && len != 2 && len != 4 && len != 8))
		return "E16"; /* the debug registers watch 1, 2, 4 or 8 bytes */
	if (type != 1 && (addr & (len - 1)))
		return "E16"; /* ... aligned to their length */
	pthread_mutex_lock(&g->lock);
	int slot = -1;
	for (int i = 0; i < 4; i++)
		if (g->hw[i].used && g->hw[i].type == type && g->hw[i].addr == addr &&
		    g->hw[i].len == len)
			slot = i;
	if (insert && slot < 0) {
		for (int i = 0; i < 4 && slot < 0; i++)
			if (!g->hw[i].used)
				slot = i;
		if (slot < 0) {
			pthread_mutex_unlock(&g->lock);
			vmmux_log(
			    g->ctx, VMMUX_LOG_WARN,
			    "the debugger asked for a fifth hardware breakpoint or watchpoint: "
			    "x86 has four debug registers (DR0-DR3)");
			return "E1c"; /* ENOSPC */
		}
		g->hw[slot] = (struct hwbp){.used = true, .type = type, .addr = addr, .len = len};
	} else if (!insert && slot >= 0) {
		g->hw[slot].used = false;
	}
	pthread_mutex_unlock(&g->lock);
	program_hw(g);
	return "OK";
}

/* Z0/z0: int3 in guest memory, where the host reports #BP (--sw-breakpoints). */
static const char *sw_breakpoint(struct gdbstub *g, bool insert, uint64_t addr)
{
	struct errbuf e;
	if (!machine_config()->sw_breakpoints) {
		static bool told;
		if (!told)
			vmmux_log(g->ctx, VMMUX_LOG_WARN,
				  "software breakpoints (gdb's break) are off: KVM on this host "
				  "cannot report int3 (docs/host-limits.md, bp-guest-debug); use "
				  "hbreak, or --sw-breakpoints on a host with hardware VMX");
		told = true;
		return "E01";
	}
	int slot = -1;
	for (int i = 0; i < MAX_SWBP; i++)
		if (g->sw[i].used && g->sw[i].addr == addr)
			slot = i;
	if (insert) {
		if (slot >= 0)
			return "OK";
		for (int i = 0; i < MAX_SWBP && slot < 0; i++)
			if (!g->sw[i].used)
				slot = i;
		if (slot < 0)
			return "E1c";
		uint8_t orig, cc = 0xcc;
		if (debug_read_virt(g->g_cpu, addr, &orig, 1, &e) != 1 ||
		    debug_write_virt(g->g_cpu, addr, &cc, 1, &e) != 1)
			return "E0e";
		g->sw[slot] = (struct swbp){.used = true, .addr = addr, .orig = orig};
		return "OK";
	}
	if (slot < 0)
		return "OK";
	debug_write_virt(g->g_cpu, addr, &g->sw[slot].orig, 1, &e);
	g->sw[slot].used = false;
	return "OK";
}

static void clear_breakpoints(struct gdbstub *g)
{
	struct errbuf e;
	for (int i = 0; i < MAX_SWBP; i++)
		if (g->sw[i].used) {
			debug_write_virt(g->g_cpu, g->sw[i].addr, &g->sw[i].orig, 1, &e);
			g->sw[i].used = false;
		}
	pthread_mutex_lock(&g->lock);
	memset(g->hw, 0, sizeof(g->hw));
	pthread_mutex_unlock(&g->lock);
	debug_clear();
}

/* ---------------------------------------------------------------------- */
/* Requests                                                                 */
/* ---------------------------------------------------------------------- */

static bool cpu_long_mode(unsigned cpu)
{
	struct debug_regs r;
	struct errbuf e;
	if (debug_get_regs(cpu, &r, &e) < 0)
		return true;
	return (r.sregs.efer >> 10) & 1; /* LMA */
}

/* A thread id as GDB writes it: -1 (all), 0 (any), or vCPU + 1 in hex.
 * Returns the vCPU, or -1 for all/any, or -2 when not a vCPU. */
static int parse_thread(struct gdbstub *g, const char **s)
{
	uint64_t t;
	if (**s == '-' && (*s)[1] == '1') {
		*s += 2;
		return -1;
	}
	if (**s == 'p') { /* multiprocess form pPID.TID */
		const char *dot = strchr(*s, '.');
		if (dot == NULL)
			return -2;
		*s = dot + 1;
		if (**s == '-' && (*s)[1] == '1') {
			*s += 2;
			return -1;
		}
	}
	if (rsp_parse_hex(s, &t) < 0)
		return -2;
	if (t == 0)
		return -1;
	if (t > g->ncpus)
		return -2;
	return (int)(t - 1);
}

static int resume(struct gdbstub *g, const enum action *act)
{
	/* A vCPU that stopped while another's stop was being reported: report
	 * it now, without running anything. */
	struct stop s;
	int cpu = take_stop(g, &s, act);
	if (cpu >= 0) {
		g->c_cpu = g->g_cpu = (unsigned)cpu;
		format_stop(g, (unsigned)cpu, &s);
		return send_packet(g, g->last_stop);
	}
	memcpy(g->last_act, act, sizeof(g->last_act[0]) * g->ncpus);
	g->stepwatch = false;
	for (unsigned i = 0; i < 4; i++)
		g->stepwatch |= g->hw[i].used && g->hw[i].type != 1;
	if (g->stepwatch)
		watch_changed(g); /* the values to compare with */
	g->running = true;
	resume_vcpus(g);
	return 0;
}

/* Let the vCPUs run as the last resume said (vCPUs held). */
static void resume_vcpus(struct gdbstub *g)
{
	for (unsigned i = 0; i < g->ncpus; i++)
		debug_set_step(i, g->last_act[i] == ACT_STEP ||
				      (g->stepwatch && g->last_act[i] == ACT_CONT));
	for (unsigned i = 0; i < g->ncpus; i++)
		if (g->last_act[i] != ACT_HOLD)
			debug_release(i);
}

/* The first watchpoint whose bytes differ from the last look (which this
 * updates), or -1. Read through vCPU c_cpu's page tables. */
static int watch_changed(struct gdbstub *g)
{
	int first = -1;
	for (int i = 0; i < 4; i++) {
		if (!g->hw[i].used || g->hw[i].type == 1)
			continue;
		uint8_t now[8] = {0};
		struct errbuf e;
		if (debug_read_virt(g->c_cpu, g->hw[i].addr, now, g->hw[i].len, &e) !=
		    (long)g->hw[i].len)
			continue;
		if (memcmp(now, g->watch_val[i], g->hw[i].len) != 0 && first < 0)
			first = i;
		memcpy(g->watch_val[i], now, g->hw[i].len);
	}
	return first;
}

/* vCont;ACTION[:THREAD];... */
static int handle_vcont(struct gdbstub *g, const char *p)
{
	enum action act[CPUS_MAX];
	bool set[CPUS_MAX] = {false};
	memset(act, 0, sizeof(act));
	while (*p == ';') {
		p++;
		enum action a;
		char c = *p++;
		if (c == 'c' || c == 'C')
			a = ACT_CONT;
		else if (c == 's' || c == 'S')
			a = ACT_STEP;
		else
			return send_packet(g, "E16");
		if (c == 'C' || c == 'S') { /* the signal is not delivered */
			uint64_t sig;
			if (rsp_parse_hex(&p, &sig) < 0)
				return send_packet(g, "E16");
		}
		int cpu = -1;
		if (*p == ':') {
			p++;
			cpu = parse_thread(g, &p);
			if (cpu == -2)
				return send_packet(g, "E16");
		}
		for (unsigned i = 0; i < g->ncpus; i++)
			if (!set[i] && (cpu < 0 || (unsigned)cpu == i)) {
				act[i] = a;
				set[i] = true;
			}
	}
	if (*p != '\0')
		return send_packet(g, "E16");
	return resume(g, act);
}

static int handle_c_s(struct gdbstub *g, const char *p, bool step)
{
	enum action act[CPUS_MAX];
	if (*p) { /* resume at an address */
		uint64_t addr;
		struct debug_regs r;
		struct errbuf e;
		if (rsp_parse_hex(&p, &addr) < 0 || debug_get_regs(g->c_cpu, &r, &e) < 0)
			return send_packet(g, "E16");
		r.regs.rip = addr;
		if (debug_set_regs(g->c_cpu, &r, &e) < 0)
			return send_packet(g, "E0e");
	}
	for (unsigned i = 0; i < g->ncpus; i++)
		act[i] = i == g->c_cpu && step ? ACT_STEP : ACT_CONT;
	return resume(g, act);
}

static int handle_xfer(struct gdbstub *g, const char *p)
{
	/* qXfer:features:read:target.xml:OFFSET,LENGTH */
	const char *pre = "qXfer:features:read:target.xml:";
	uint64_t off, len;
	if (strncmp(p, pre, strlen(pre)) != 0)
		return send_packet(g, "");
	p += strlen(pre);
	if (rsp_parse_hex(&p, &off) < 0 || *p++ != ',' || rsp_parse_hex(&p, &len) < 0)
		return send_packet(g, "E16");
	if (off == 0 || g->xml_len <= 0)
		g->xml_len = gdb_target_xml(cpu_long_mode(0), g->xml, sizeof(g->xml));
	if (g->xml_len < 0)
		return send_packet(g, "E0c");
	if (off >= (uint64_t)g->xml_len)
		return send_packet(g, "l");
	if (len > RSP_PAYLOAD_MAX - 16)
		len = RSP_PAYLOAD_MAX - 16;
	size_t n = (size_t)g->xml_len - (size_t)off;
	bool last = n <= len;
	if (!last)
		n = (size_t)len;
	g->out[0] = last ? 'l' : 'm';
	memcpy(g->out + 1, g->xml + off, n);
	return send_packet_n(g, g->out, n + 1);
}

static int handle_query(struct gdbstub *g, const char *p)
{
	if (strncmp(p, "qSupported", 10) == 0) {
		snprintf(g->out, sizeof(g->out),
			 "PacketSize=%x;qXfer:features:read+;swbreak+;hwbreak+", RSP_PAYLOAD_MAX);
		return send_packet(g, g->out);
	}
	if (strncmp(p, "qXfer:", 6) == 0)
		return handle_xfer(g, p);
	if (strcmp(p, "qAttached") == 0 || strncmp(p, "qAttached:", 10) == 0)
		return send_packet(g, "1");
	if (strcmp(p, "qC") == 0) {
		snprintf(g->out, sizeof(g->out), "QC%x", g->c_cpu + 1);
		return send_packet(g, g->out);
	}
	if (strcmp(p, "qfThreadInfo") == 0) {
		size_t used = 0;
		g->out[used++] = 'm';
		for (unsigned i = 0; i < g->ncpus; i++)
			used += (size_t)snprintf(g->out + used, sizeof(g->out) - used, "%s%x",
						 i ? "," : "", i + 1);
		return send_packet(g, g->out);
	}
	if (strcmp(p, "qsThreadInfo") == 0)
		return send_packet(g, "l");
	if (strncmp(p, "qThreadExtraInfo,", 17) == 0) {
		const char *t = p + 17;
		int cpu = parse_thread(g, &t);
		if (cpu < 0)
			return send_packet(g, "E16");
		char text[32];
		int n = snprintf(text, sizeof(text), "vCPU %d", cpu);
		rsp_hex_encode(text, (size_t)n, g->out);
		g->out[2 * n] = '\0';
		return send_packet(g, g->out);
	}
	if (strncmp(p, "qSymbol", 7) == 0)
		return send_packet(g, "OK");
	return send_packet(g, ""); /* not supported */
}

static int handle_memory(struct gdbstub *g, char cmd, const char *p, size_t plen)
{
	uint64_t addr, len;
	struct errbuf e;
	const char *start = p;
	if (rsp_parse_hex(&p, &addr) < 0 || *p++ != ',' || rsp_parse_hex(&p, &len) < 0)
		return send_packet(g, "E16");
	if (cmd == 'm') {
		if (len > (RSP_PAYLOAD_MAX - 16) / 2)
			len = (RSP_PAYLOAD_MAX - 16) / 2;
		uint8_t buf[(RSP_PAYLOAD_MAX - 16) / 2];
		long n = debug_read_virt(g->g_cpu, addr, buf, (size_t)len, &e);
		if (n < 0) {
			vmmux_log(g->ctx, VMMUX_LOG_DEBUG, "read: %s", e.msg);
			return send_packet(g, "E0e");
		}
		rsp_hex_encode(buf, (size_t)n, g->out);
		g->out[2 * n] = '\0';
		return send_packet(g, g->out);
	}
	if (*p++ != ':')
		return send_packet(g, "E16");
	uint8_t buf[RSP_PAYLOAD_MAX];
	size_t have = plen - (size_t)(p - start) - 1; /* bytes after ':' */
	if (cmd == 'M') {
		if (len > sizeof(buf) || have != 2 * len || rsp_hex_decode(p, (size_t)len, buf) < 0)
			return send_packet(g, "E16");
	} else { /* 'X': binary, already unescaped */
		if (len > sizeof(buf) || have != len)
			return send_packet(g, "E16");
		memcpy(buf, p, (size_t)len);
	}
	if (len == 0)
		return send_packet(g, "OK");
	long n = debug_write_virt(g->g_cpu, addr, buf, (size_t)len, &e);
	if (n != (long)len) {
		vmmux_log(g->ctx, VMMUX_LOG_DEBUG, "write: %s", n < 0 ? e.msg : "partial");
		return send_packet(g, "E0e");
	}
	return send_packet(g, "OK");
}

static int handle_regs(struct gdbstub *g, char cmd, const char *p, size_t plen)
{
	struct debug_regs r;
	struct errbuf e;
	if (debug_get_regs(g->g_cpu, &r, &e) < 0) {
		vmmux_log(g->ctx, VMMUX_LOG_ERROR, "%s", e.msg);
		return send_packet(g, "E0e");
	}
	bool lm = (r.sregs.efer >> 10) & 1;
	/* The register set follows the target description GDB was given. */
	if (g->xml_len > 0)
		lm = strstr(g->xml, "x86-64") != NULL;
	if (cmd == 'g') {
		long n = gdb_regs_encode(lm, &r, g->out, sizeof(g->out) - 1);
		if (n < 0)
			return send_packet(g, "E0c");
		g->out[n] = '\0';
		return send_packet(g, g->out);
	}
	if (cmd == 'G') {
		if (gdb_regs_decode(lm, &r, p, plen - 1) < 0)
			return send_packet(g, "E16");
	} else {
		uint64_t regno;
		if (rsp_parse_hex(&p, &regno) < 0)
			return send_packet(g, "E16");
		if (cmd == 'p') {
			long n = gdb_reg_encode(lm, (size_t)regno, &r, g->out, sizeof(g->out) - 1);
			if (n < 0)
				return send_packet(g, "E16");
			g->out[n] = '\0';
			return send_packet(g, g->out);
		}
		if (*p++ != '=')
			return send_packet(g, "E16");
		int rc = gdb_reg_decode(lm, (size_t)regno, &r, p, strlen(p));
		if (rc < 0)
			return send_packet(g, rc == -2 ? "E0e" : "E16");
	}
	if (debug_set_regs(g->g_cpu, &r, &e) < 0) {
		vmmux_log(g->ctx, VMMUX_LOG_WARN, "register write refused: %s", e.msg);
		return send_packet(g, "E0e");
	}
	return send_packet(g, "OK");
}

/* Detach: breakpoints off, the guest runs on; the stub waits for another
 * debugger. */
static void detach(struct gdbstub *g)
{
	clear_breakpoints(g);
	pthread_mutex_lock(&g->lock);
	memset(g->stops, 0, sizeof(g->stops));
	atomic_store(&g->attached, false);
	debug_release(DEBUG_ALL);
	pthread_mutex_unlock(&g->lock);
	g->running = false;
}

/* One packet; returns -1 when the connection is to be closed. */
static int handle_packet(struct gdbstub *g, const char *p, size_t len)
{
	uint64_t v;
	const char *q;
	switch (p[0]) {
	case '?':
		return send_packet(g, g->last_stop);
	case 'q':
		return handle_query(g, p);
	case 'Q':
		return send_packet(g, "");
	case 'H': {
		q = p + 2;
		int cpu = parse_thread(g, &q);
		if (cpu == -2 || (p[1] != 'g' && p[1] != 'c'))
			return send_packet(g, "E16");
		if (cpu >= 0) {
			if (p[1] == 'g')
				g->g_cpu = (unsigned)cpu;
			else
				g->c_cpu = (unsigned)cpu;
		}
		return send_packet(g, "OK");
	}
	case 'T':
		q = p + 1;
		return send_packet(g, parse_thread(g, &q) >= 0 ? "OK" : "E16");
	case 'g':
	case 'G':
	case 'p':
	case 'P':
		return handle_regs(g, p[0], p + 1, len);
	case 'm':
	case 'M':
	case 'X':
		return handle_memory(g, p[0], p + 1, len);
	case 'c':
	case 's':
		return handle_c_s(g, p + 1, p[0] == 's');
	case 'C':
	case 'S':
		q = p + 1;
		if (rsp_parse_hex(&q, &v) < 0)
			return send_packet(g, "E16");
		return handle_c_s(g, *q == ';' ? q + 1 : q, p[0] == 'S');
	case 'v':
		if (strcmp(p, "vCont?") == 0)
			return send_packet(g, "vCont;c;C;s;S");
		if (strncmp(p, "vCont;", 6) == 0)
			return handle_vcont(g, p + 5);
		if (strncmp(p, "vKill", 5) == 0) {
			send_packet(g, "OK");
			goto kill;
		}
		return send_packet(g, "");
	case 'Z':
	case 'z': {
		uint64_t type, addr, kind;
		q = p + 1;
		if (rsp_parse_hex(&q, &type) < 0 || *q++ != ',' || rsp_parse_hex(&q, &addr) < 0 ||
		    *q++ != ',' || rsp_parse_hex(&q, &kind) < 0)
			return send_packet(g, "E16");
		if (type == 0)
			return send_packet(g, sw_breakpoint(g, p[0] == 'Z', addr));
		if (type == 1 || type == 2 || type == 4)
			return send_packet(g, hw_breakpoint(g, p[0] == 'Z', (int)type, addr, kind));
		return send_packet(g, ""); /* read watchpoints: x86 has none */
	}
	case 'D':
		send_packet(g, "OK");
		vmmux_log(g->ctx, VMMUX_LOG_INFO, "debugger detached; the guest runs on");
		detach(g);
		g->detached = true; /* the debugger closes the connection */
		return 0;
	case 'k':
		goto kill;
	default:
		return send_packet(g, "");
	}
kill:
	vmmux_log(g->ctx, VMMUX_LOG_INFO, "killed by the debugger");
	machine_stop(KILL_STATUS, "killed by the debugger (gdb 'kill')");
	detach(g);
	g->detached = true;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* The stub's thread                                                        */
/* ---------------------------------------------------------------------- */

static void close_client(struct gdbstub *g)
{
	if (g->client_fd >= 0)
		close(g->client_fd);
	g->client_fd = -1;
}

static void drain_wake(struct gdbstub *g)
{
	uint64_t v;
	ssize_t r = read(g->wake_fd, &v, sizeof(v));
	(void)r;
}

/* A debugger connected: stop the guest. */
static int attach(struct gdbstub *g, int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* fails on Unix: fine */
	g->client_fd = fd;
	g->detached = false;
	rsp_rx_init(&g->rx);
	g->xml_len = 0;
	g->frame_len = 0;
	atomic_store(&g->attached, true);
	vmmux_log(g->ctx, VMMUX_LOG_INFO, "debugger connected; the guest is stopped");
	if (hold_all(g) < 0)
		return -1;
	struct stop s;
	int cpu = take_stop(g, &s, NULL);
	if (cpu < 0) {
		cpu = 0;
		s = (struct stop){.pending = true, .kind = STOP_SIGNAL, .sig = GDB_SIGTRAP};
	}
	g->c_cpu = g->g_cpu = (unsigned)cpu;
	g->running = false;
	format_stop(g, (unsigned)cpu, &s);
	return 0;
}

/* Bytes from the debugger; -1 when the connection is to be closed. */
static int client_input(struct gdbstub *g)
{
	uint8_t buf[4096];
	ssize_t n = recv(g->client_fd, buf, sizeof(buf), 0);
	if (n <= 0) {
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			return 0;
		if (!g->detached) {
			vmmux_log(g->ctx, VMMUX_LOG_INFO,
				  "debugger disconnected without detaching; the guest runs on");
			detach(g);
		}
		return -1;
	}
	for (ssize_t i = 0; i < n && !g->detached; i++) {
		switch (rsp_rx_feed(&g->rx, buf[i])) {
		case RSP_RX_PACKET:
			if (send_all(g->client_fd, "+", 1) < 0)
				return -1;
			if (g->running) {
				/* all-stop: only an interrupt while the guest runs */
				vmmux_log(g->ctx, VMMUX_LOG_DEBUG,
					  "packet '%.16s' while running: ignored", g->rx.buf);
				break;
			}
			if (handle_packet(g, g->rx.buf, g->rx.len) < 0)
				return -1;
			break;
		case RSP_RX_BAD:
		case RSP_RX_OVERFLOW:
			if (send_all(g->client_fd, "-", 1) < 0)
				return -1;
			break;
		case RSP_RX_NACK:
			if (g->frame_len > 0 &&
			    send_all(g->client_fd, g->frame, (size_t)g->frame_len) < 0)
				return -1;
			break;
		case RSP_RX_INTERRUPT:
			if (g->running && report_stop(g, true) < 0)
				return -1;
			break;
		default:
			break;
		}
	}
	return 0;
}

static void *stub_thread(void *arg)
{
	struct gdbstub *g = arg;
	machine_thread_enter(SELF_GDBSTUB);
	for (;;) {
		struct pollfd p[2] = {
		    {.fd = g->wake_fd, .events = POLLIN},
		    {.fd = g->client_fd >= 0 ? g->client_fd : g->listen_fd, .events = POLLIN}};
		/* Once the run ends nothing is accepted: only the wake-up. */
		int r = atomic_load(&g->quit)
			    ? 0
			    : poll(p, machine_stopping() && g->client_fd < 0 ? 1 : 2, 50);
		if ((machine_stopping() || atomic_load(&g->quit)) && g->client_fd >= 0 &&
		    !g->detached) {
			/* The run ended: to the debugger, its process exited with
			 * the run's status. It closes the connection then. */
			char w[8];
			snprintf(w, sizeof(w), "W%02x", machine_exit_status() & 0xff);
			send_packet(g, w);
			atomic_store(&g->attached, false);
			g->detached = true;
		}
		if (atomic_load(&g->quit))
			break;
		if (machine_stopping()) {
			if (r > 0 && (p[0].revents & POLLIN))
				drain_wake(g);
			if (r > 0 && g->client_fd >= 0 &&
			    (p[1].revents & (POLLIN | POLLHUP | POLLERR)) && client_input(g) < 0)
				close_client(g);
			continue;
		}
		if (r <= 0)
			continue;
		if (p[0].revents & POLLIN) {
			drain_wake(g);
			if (g->client_fd >= 0 && g->running && has_stop(g, g->last_act) &&
			    report_stop(g, false) < 0)
				continue;
		}
		if (!(p[1].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		if (g->client_fd < 0) {
			int fd = accept4(g->listen_fd, NULL, NULL, SOCK_CLOEXEC);
			if (fd < 0)
				continue;
			if (attach(g, fd) < 0)
				close_client(g);
			continue;
		}
		if (client_input(g) < 0)
			close_client(g);
	}
	/* The run is over: let the debugger acknowledge the last packet and
	 * close its end (up to 1 s), so that it sees an orderly end. */
	for (int i = 0; i < 20 && g->client_fd >= 0; i++) {
		struct pollfd p = {.fd = g->client_fd, .events = POLLIN};
		char buf[256];
		if (poll(&p, 1, 50) > 0 && recv(g->client_fd, buf, sizeof(buf), 0) <= 0)
			break;
	}
	close_client(g);
	return NULL;
}

/* ---------------------------------------------------------------------- */
/* Set-up                                                                   */
/* ---------------------------------------------------------------------- */

static int listen_on(struct gdbstub *g, const char *spec)
{
	int fd;
	if (strncmp(spec, "unix:", 5) == 0) {
		const char *path = spec + 5;
		struct sockaddr_un a = {.sun_family = AF_UNIX};
		struct stat st;
		if (*path == '\0' || strlen(path) >= sizeof(a.sun_path)) {
			vmmux_log(g->ctx, VMMUX_LOG_ERROR,
				  "listen '%s': a Unix socket path of 1 to %zu bytes", spec,
				  sizeof(a.sun_path) - 1);
			return -1;
		}
		if (lstat(path, &st) == 0) {
			if (!S_ISSOCK(st.st_mode)) {
				vmmux_log(g->ctx, VMMUX_LOG_ERROR,
					  "listen '%s': %s exists and is not a socket", spec, path);
				return -1;
			}
			unlink(path); /* a stale socket of an earlier run */
		}
		memcpy(a.sun_path, path, strlen(path) + 1);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 1) < 0) {
			vmmux_log(g->ctx, VMMUX_LOG_ERROR, "listen '%s': %s", spec,
				  strerror(errno));
			if (fd >= 0)
				close(fd);
			return -1;
		}
		memcpy(g->unix_path, path, strlen(path) + 1);
		snprintf(g->listen_desc, sizeof(g->listen_desc), "unix:%s", path);
		return fd;
	}
	if (strncmp(spec, "tcp:", 4) == 0) {
		/* tcp:[HOST]:PORT; no host: 127.0.0.1 */
		const char *hp = spec + 4, *colon = strrchr(hp, ':');
		char host[64] = "127.0.0.1";
		uint64_t port;
		if (colon == NULL || role_parse_u64(colon + 1, 65535, &port) < 0 ||
		    (size_t)(colon - hp) >= sizeof(host)) {
			vmmux_log(g->ctx, VMMUX_LOG_ERROR,
				  "listen '%s': not tcp::PORT, tcp:HOST:PORT or unix:PATH", spec);
			return -1;
		}
		if (colon > hp) {
			memcpy(host, hp, (size_t)(colon - hp));
			host[colon - hp] = '\0';
		}
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
		if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
			vmmux_log(g->ctx, VMMUX_LOG_ERROR,
				  "listen '%s': '%s' is not an IPv4 address", spec, host);
			return -1;
		}
		int one = 1;
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0)
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 1) < 0) {
			vmmux_log(g->ctx, VMMUX_LOG_ERROR, "listen '%s': %s", spec,
				  strerror(errno));
			if (fd >= 0)
				close(fd);
			return -1;
		}
		socklen_t al = sizeof(a);
		getsockname(fd, (struct sockaddr *)&a, &al);
		snprintf(g->listen_desc, sizeof(g->listen_desc), "tcp:%s:%u", host,
			 ntohs(a.sin_port));
		return fd;
	}
	vmmux_log(g->ctx, VMMUX_LOG_ERROR, "listen '%s': not tcp::PORT, tcp:HOST:PORT or unix:PATH",
		  spec);
	return -1;
}

static void gdb_fini(struct vmmux_ctx *ctx);

static int gdb_init(struct vmmux_ctx *ctx)
{
	struct gdbstub *g = vmmux_priv(ctx);
	static const char *const yesno[] = {"no", "yes"};
	size_t wait = 0;

	g->ctx = ctx;
	g->listen_fd = g->client_fd = g->wake_fd = -1;
	if (!debug_available()) {
		vmmux_log(ctx, VMMUX_LOG_ERROR,
			  "role gdbstub needs the machine (vCPU registers, KVM guest debug), "
			  "which only the main VMM's process has: give it placement main, never "
			  "parallel");
		return -EPERM;
	}
	const char *spec = vmmux_arg(ctx, "listen");
	if (spec == NULL) {
		vmmux_log(ctx, VMMUX_LOG_ERROR,
			  "arg \"listen\" is missing: tcp::PORT, tcp:HOST:PORT or unix:PATH");
		return -EINVAL;
	}
	if (role_arg_choice(ctx, "wait", yesno, 2, 0, &wait) < 0)
		return -EINVAL;
	g->wait_first = wait == 1;
	g->ncpus = debug_ncpus();
	pthread_mutex_init(&g->lock, NULL);
	g->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (g->wake_fd < 0)
		return -errno;
	g->listen_fd = listen_on(g, spec);
	if (g->listen_fd < 0) {
		gdb_fini(ctx);
		return -EINVAL;
	}
	snprintf(g->last_stop, sizeof(g->last_stop), "S05");
	if (g->wait_first) {
		/* Every vCPU holds before its first instruction. */
		debug_hold(DEBUG_ALL);
		vmmux_log(ctx, VMMUX_LOG_WARN,
			  "waiting for gdb on %s before the first instruction (target remote %s)",
			  g->listen_desc,
			  strncmp(g->listen_desc, "tcp:", 4) == 0 ? g->listen_desc + 4
								  : g->listen_desc + 5);
	} else {
		vmmux_log(ctx, VMMUX_LOG_INFO, "gdb can attach on %s", g->listen_desc);
	}
	if (pthread_create(&g->thread, NULL, stub_thread, g) != 0) {
		gdb_fini(ctx);
		return -EAGAIN;
	}
	g->thread_started = true;
	return 0;
}

static void gdb_fini(struct vmmux_ctx *ctx)
{
	struct gdbstub *g = vmmux_priv(ctx);
	if (g->thread_started) {
		atomic_store(&g->quit, true);
		wake(g);
		pthread_join(g->thread, NULL);
		g->thread_started = false;
	}
	if (g->listen_fd >= 0)
		close(g->listen_fd);
	if (g->unix_path[0])
		unlink(g->unix_path);
	if (g->wake_fd >= 0)
		close(g->wake_fd);
	g->listen_fd = g->wake_fd = -1;
	g->unix_path[0] = '\0';
	if (g->ncpus)
		pthread_mutex_destroy(&g->lock);
}

static const char *const gdb_args[] = {"listen", "wait", NULL};

const struct vmmux_role vmmux_role_gdbstub = {
    .abi_version = VMMUX_ROLE_ABI_VERSION,
    .name = "gdbstub",
    .summary = "GDB remote stub: debug exceptions stop the guest for gdb (main VMM only)",
    .priv_size = sizeof(struct gdbstub),
    .init = gdb_init,
    .fini = gdb_fini,
    .handle = gdb_handle,
    .args = gdb_args,
    .raises = NULL,
};
