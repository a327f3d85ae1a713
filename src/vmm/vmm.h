/*
 * vmm.h: VMM instances and the delivery of an event to one of them.
 *
 * The registry holds every VMM of the run: id 0 is the main VMM (the vmmux
 * process's own handler for lifecycle, platform and default events), the
 * others are instances of roles (include/vmmux/vmmux.h) named in the config.
 * An in-process VMM's callbacks run under its mutex, on the thread that
 * delivers (a vCPU thread or the main loop). Events a role raises are queued
 * during the callback and routed after it returns, outside the mutex.
 */
#ifndef VMMUX_VMM_VMM_H
#define VMMUX_VMM_VMM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "route/table.h"
#include "stats/stats.h"
#include "util/err.h"
#include "vmm/ctx.h"
#include "vmm/grants.h"
#include <vmmux/vmmux.h>

#define VMM_ARGS_MAX	       16
#define VMM_RAISE_MAX	       16
#define VMM_WINDOWS_MAX	       16
#define VMM_PROGRAM_ARGS_MAX   16
#define VMM_GRANTS_MAX	       16
#define VMM_FDS_MAX	       128	     /* further descriptors (vmmux_fd) */
#define VMM_TIMEOUT_DEFAULT_NS 1000000000ull /* a parallel VMM's reply deadline */

enum vmm_placement {
	VMM_IN_PROCESS = 0, /* runs inside the main VMM */
	VMM_PARALLEL,	    /* runs as a separate, sandboxed process */
};

/* A window of guest RAM granted to a VMM (page-aligned). A read-only one
 * (set by vmmux's own set-up code, e.g. the hvt boot information) is mapped
 * read-only in a parallel VMM and refused to vmmux_gm_write in both
 * placements. */
struct vmm_window {
	uint64_t gpa, size;
	bool ro;
};

/* What the config says of one VMM instance. */
struct vmm_config {
	char name[VMMUX_NAME_MAX];
	char role[VMMUX_NAME_MAX]; /* a built-in role, or "external" with program */
	enum vmm_placement placement;
	bool placement_set; /* given explicitly (run --parallel changes the others) */
	char *input;	    /* "stdin", a path, or NULL for none */
	char *output;	    /* "stdout", "stderr", a path, or NULL for none */
	/* further descriptors vmmux holds for it (internal only, like "fd:N":
	 * only vmmux's own set-up code gives them, e.g. an hvt VMM serving
	 * several devices); the VMM gets its own duplicates, as vmmux_fd(i) */
	size_t nfds;
	int fds[VMM_FDS_MAX];
	size_t nargs;
	struct vmm_arg args[VMM_ARGS_MAX];
	/* an external program (always parallel); NULL for a built-in role */
	char *program;
	size_t nprogram_args;
	char *program_args[VMM_PROGRAM_ARGS_MAX];
	/* guest memory granted: all of RAM, or windows */
	bool memory_all;
	size_t nwindows;
	struct vmm_window windows[VMM_WINDOWS_MAX];
	/* what it may raise (grants.h); none given: the role's defaults */
	bool raise_set;
	size_t ngrants;
	char *grants[VMM_GRANTS_MAX];
	uint64_t timeout_ns; /* reply deadline of a parallel VMM; 0: the default */
	bool spin_set;
	uint64_t spin_ns; /* how long each side of its transport spins before it sleeps */
	bool cpu_set;	  /* parallel: pinned to CPU cpu (default: not pinned) */
	unsigned cpu;
};

struct pvmm; /* a parallel VMM's process and transport (parallel.h) */

struct vmm {
	uint16_t id;
	char name[VMMUX_NAME_MAX];
	const struct vmmux_role *role; /* NULL for the main VMM and external programs */
	enum vmm_placement placement;
	struct vmm_config cfg;
	struct raise_grants grants;
	size_t nwindows;
	struct gm_window windows[VMM_WINDOWS_MAX]; /* in the main VMM's mapping */
	/* in-process: the role's context, run under lock */
	struct vmmux_ctx ctx;
	void *priv;
	int in_fd, out_fd;
	size_t nfds;
	int fds[VMM_FDS_MAX]; /* its duplicates of cfg.fds */
	bool input_eof;
	pthread_mutex_t lock;
	/* events raised during the current callback, routed after it */
	struct vmmux_event raised[VMM_RAISE_MAX];
	unsigned nraised;
	unsigned raise_overflow;
	uint16_t cur_vcpu; /* vCPU of the event being handled */
	/* parallel */
	struct pvmm *p;
	/* live operations (live.c) */
	_Atomic bool swapping; /* being replaced: its events wait (vmm_swap_*) */
	_Atomic bool stopped;  /* stopped by the control API (in-process) */
	struct vmm *retired_next;
	/* resource usage, measured by the main VMM itself (never asked of the
	 * VMM, which could lie); read by load-aware routing without a lock */
	struct vmm_load {
		_Atomic uint32_t inflight;     /* requests being handled now */
		_Atomic uint64_t served;       /* requests completed */
		_Atomic uint64_t ewma_ns;      /* service time, EWMA with weight 1/8 */
		_Atomic uint64_t cpu_ns;       /* its process's CPU time (sampled by the
						* main loop; 0 in-process) */
		_Atomic uint32_t cpu_permille; /* of one CPU, over the last sample */
		_Atomic uint32_t healthy;      /* 1: it can take requests now */
	} load;
};

/*
 * Create and start a VMM of config C with id ID, not registered (a swap's new
 * instance), or NULL with a message; and destroy one (its role's fini, its
 * process stopped). vmm_registry_add creates one with the next id and
 * registers it (at set-up, or at run time). vmm_replace puts NW in ID's
 * place and retires the old one (freed with the registry: other threads may
 * still hold it).
 */
struct vmm *vmm_create(const struct vmm_config *c, uint16_t id, struct errbuf *e);
void vmm_destroy(struct vmm *v);
int vmm_registry_add(const struct vmm_config *c, uint16_t *id, struct errbuf *e);
struct vmm *vmm_replace(uint16_t id, struct vmm *nw);

/*
 * Swapping V: vmm_swap_begin holds back every new event for V (delivering
 * threads wait, then route again) and waits until the events V is handling
 * are done (at most TIMEOUT_NS; -1 if not drained); vmm_swap_end releases
 * the waiters. Main thread.
 */
int vmm_swap_begin(struct vmm *v, uint64_t timeout_ns);
void vmm_swap_end(struct vmm *v);

/*
 * A reference to the VMM of ID for one delivery (counted in its
 * load.inflight, which a swap and a stop wait for before they finalise or
 * retire anything): NULL when there is none. A VMM being swapped is waited
 * for (offline), then the one in its place is taken. Every delivery holds
 * one: routed events (vmm_route_deliver), a route's fallback, a reset, the
 * events a VMM raised. vmm_unref releases it.
 */
struct vmm *vmm_ref(uint16_t id);
void vmm_unref(struct vmm *v);

/* The built-in roles, registered through a table (vmms/roles.c). */
const struct vmmux_role *role_find(const char *name);
/* Iterate the role table: returns NULL past the end. */
const struct vmmux_role *role_at(size_t i);

/*
 * Check a VMM config as the registry will: its role exists and speaks this
 * role ABI, and every argument is one the role accepts. -1 with a message.
 */
int vmm_config_check(const struct vmm_config *c, struct errbuf *e);

/*
 * Create the registry: the main VMM plus one VMM per config, in order (ids
 * 1..n). Opens each VMM's input and output, maps its memory windows, then
 * calls an in-process role's init or starts a parallel VMM's process (and
 * sets it up). On failure returns -1 with a message naming the VMM, and
 * nothing is left open or running.
 */
int vmm_registry_init(const struct vmm_config *cfgs, size_t n, struct errbuf *e);

/*
 * Live update (src/snapshot/update.h): the input and output descriptors of
 * the in-process VMMs, handed to the new program, which takes them instead
 * of opening the configured files again (an output file would be opened
 * with O_TRUNC, and what the role wrote lost). vmm_io_adopt_set, in the new
 * program before vmm_registry_init: N entries, copied (FD_CLOEXEC set on
 * them again). A parallel VMM's go with the VMM (pvmm_adopted_fds).
 */
struct vmm_io_handover {
	char name[VMMUX_NAME_MAX];
	int in_fd, out_fd; /* -1: none */
};
int vmm_io_adopt_set(const struct vmm_io_handover *h, unsigned n);
void vmm_registry_fini(void);

/* A live update (src/snapshot/update.h) around its execve: !BACK puts the
 * terminal on standard input back as it was before vmmux made it raw (the
 * new program saves it and makes it raw again); BACK (the execve failed)
 * makes it raw again. */
void vmm_tty_handover(bool back);

size_t vmm_count(void);
struct vmm *vmm_get(uint16_t id);
uint16_t vmm_lookup(const char *name); /* VMM_ID_NONE when unknown */
/* vmm_resolve_fn for route_table_build. */
uint16_t vmm_resolve(void *arg, const char *name);
/* stats_vmm_name_fn: the name, and where it runs: "in-process", or for a
 * parallel VMM "pid N", "down", "failed" or "stopped". */
const char *vmm_stats_name(uint16_t id, char *where, size_t wlen);

/*
 * Deliver EV to VMM id, fill *rep, and route what the VMM raised. The main
 * VMM's events go to main_vmm_handle. depth counts nested raises (a raised
 * event delivered to a VMM that raises again); deeper than 8 is refused and
 * logged. Returns 0, or -1 when the VMM failed to handle the event (rep then
 * holds the type's built-in default reply).
 */
int vmm_deliver(uint16_t id, struct vmmux_event *ev, struct vmmux_reply *rep, unsigned depth);
/* The same, for an event that route R (NULL: none) sends to VMM ID: a
 * parallel VMM then honours R's timeout and fallback; *HANDLED_BY (may be
 * NULL) gets the VMM that handled it (the fallback, when it took over). */
int vmm_deliver_route(uint16_t id, const struct route *r, struct vmmux_event *ev,
		      struct vmmux_reply *rep, unsigned depth, uint16_t *handled_by);

/*
 * Route and deliver an event raised by SRC (a VMM id, or VMM_ID_NONE for the
 * host itself: a timer, the control API). Used for raised events and by the
 * main loop. Returns the delivery's result.
 */
int vmm_dispatch_raised(uint16_t src, struct vmmux_event *ev, unsigned depth);

/* Route N events that V raised outside any request, each checked against
 * V's grants (an ungranted one is V's fault). */
void vmm_dispatch_raised_from(struct vmm *v, struct vmmux_event *raised, unsigned n);

/*
 * Route EV through the current table and deliver it (vmm_deliver), recording
 * the statistics of its type, route and VMM. The calling thread must be a
 * registered, online router reader. This is the one entry point of the event
 * path: vCPU threads call it with depth 0 for each exit.
 */
int vmm_route_deliver(struct vmmux_event *ev, struct vmmux_reply *rep, unsigned depth);

/*
 * For the supervisor, which never waits: route EV as the host's and deliver
 * it only when the table gives it to the main VMM, whose handling never
 * waits (the default of a fault: schedule the restart; of the watchdog:
 * end the run); returns 1 without delivering otherwise (the caller hands
 * it to the dispatcher). The calling thread must be online.
 */
int vmm_host_deliver_main(struct vmmux_event *ev);

/* Guest RAM, in which each VMM's memory windows (its "memory" grants) lie;
 * a VMM, in-process or parallel, accesses only its windows. */
struct guest_mem;
void vmm_registry_set_memory(const struct guest_mem *m);

/*
 * Input: the descriptor a VMM wants polled for input (-1 for none, or once
 * its input has ended), and the call when it is readable. vmm_input returns
 * the role's input result (bytes taken, 0 when full, -1 at end of input) and
 * routes what the role raised.
 */
int vmm_input_fd(uint16_t id);
int vmm_input(uint16_t id);

/* Reset every role to its power-on state (the VM is being reset). */
void vmm_reset_all(void);

/* The built-in default reply of EV's type (used when a VMM fails). */
void main_vmm_default(const struct vmmux_event *ev, struct vmmux_reply *rep);
/* The main VMM's own handler (VMM id 0). */
int main_vmm_handle(struct vmmux_event *ev, struct vmmux_reply *rep);

#endif
