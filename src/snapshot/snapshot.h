/*
 * snapshot.h: storing the whole machine in a file and resuming it from one
 * (docs/snapshot.md).
 *
 * Snapshot (the control command `snapshot`, on the live-change worker):
 * machine_pause brings every vCPU to an event boundary (out of KVM_RUN,
 * its pending I/O completed, no delivery in flight) and holds the
 * dispatcher; the routes compiled into KVM are drained (coalesced ring,
 * doorbell counts) and every parallel VMM's posted ring consumed; then
 * snapshot_write_fd writes the machine; then the guest continues, or the run
 * ends (--stop). The file is written beside PATH and renamed over it, so a
 * run restored from PATH (which maps it) is never disturbed.
 *
 * Restore (`vmmux run --restore PATH`): snapshot_restore_open maps and
 * checks the file (format.h: every section's CRC, bounds and layout) and the
 * host's fit, and gives back the command line the run was started with;
 * cli.c parses it as `vmmux run` would (in the snapshot's working
 * directory), then machine_setup builds the machine as usual and calls the
 * snapshot_restore_* steps in order: the route set (and its generation),
 * the machine (guest memory mapped from the file MAP_PRIVATE, the KVM clock,
 * irqchip, PIT, each vCPU), then, once the VMMs are up, their roles' state.
 * Any refusal happens before a vCPU runs.
 *
 * Live update (update.h) reuses snapshot_write_fd and the snapshot_restore_
 * functions over a memfd: its HANDOVER section names guest RAM's memfds
 * (inherited across execve) instead of the data region holding the pages.
 */
#ifndef VMMUX_SNAPSHOT_SNAPSHOT_H
#define VMMUX_SNAPSHOT_SNAPSHOT_H

#include <stdbool.h>
#include <stdint.h>

#include <vmmux/vmmux.h>

#include "config/config.h"
#include "route/spec.h"
#include "util/err.h"
#include "snapshot/format.h"
#include "vmm/parallel.h"

struct vm;

/* Record the command line of `vmmux run` (ARGV[0] is "run"), stored in the
 * MACHINE section; without it a snapshot is refused. The strings are
 * copied. */
void snapshot_set_command_line(int argc, char **argv);

/* What a snapshot took. */
struct snapshot_result {
	uint64_t file_bytes; /* the file's length (guest memory included) */
	uint64_t data_bytes; /* guest memory written (the pages not zero) */
	uint64_t pause_ns;   /* from the pause request to the vCPUs' release */
	uint64_t write_ns;   /* writing the file */
	uint32_t sections;
};

/*
 * Write the paused machine (every vCPU at its event boundary: machine_pause)
 * to FD, a regular file opened for writing at offset 0, which it grows
 * sparse to its full length. 0, or -1 with a message naming the KVM step or
 * the write that failed.
 */
int snapshot_write_fd(int fd, struct snapshot_result *r, struct errbuf *e);

/* A live update's state (update.h): what the new program inherits. */
struct snapshot_handover {
	uint64_t pause_ns;    /* CLOCK_MONOTONIC of the pause */
	int api_fd;	      /* the control socket's listening descriptor, or -1 */
	int client_fd;	      /* the client that asked, answered by the new program */
	const char *reply_id; /* its request's id, JSON text */
	unsigned npieces;
	struct {
		uint64_t gpa, size;
		int fd;
	} pieces[64];
	/* the parallel VMMs, their processes running on (parallel.h) */
	unsigned npvmm;
	struct pvmm_handover pvmm[SNAP_HO_PVMMS_MAX];
	/* the in-process VMMs' input and output (vmm.h) */
	unsigned nio;
	struct vmm_io_handover io[SNAP_HO_PVMMS_MAX];
	/* the watchdog and the events the dispatcher had not taken, at one
	 * instant (machine_host_queue_copy) */
	bool watchdog;	      /* the run has one */
	uint64_t watchdog_at; /* ... when it expires, 0: not to come */
	unsigned nhost;
	struct vmmux_event host[SNAP_HO_HOSTQ_MAX];
	uint16_t host_src[SNAP_HO_HOSTQ_MAX];
};
/* A live update of a run restored from a snapshot, the machine paused:
 * every piece of guest RAM mapped copy-on-write from the snapshot file
 * becomes a memfd of its own (its pages that can hold data copied in:
 * those the guest touched and those the file holds), mapped shared at the
 * same address, so that it can be handed over. 0, or -1 with a message
 * (the pieces done so far stay memfds, with the same contents). */
struct guest_mem;
int snapshot_memory_to_memfds(struct guest_mem *m, struct errbuf *e);
/* snapshot_write_fd with a HANDOVER section from H and no memory written. */
int snapshot_write_handover(int fd, const struct snapshot_handover *h, struct snapshot_result *r,
			    struct errbuf *e);

/*
 * The control command: pause, write PATH (a file beside it renamed over
 * it), then resume, or end the run with status 0 when STOP. Runs on the
 * live-change worker. 0, or -1 with a message (nothing is left at PATH).
 */
int snapshot_take(const char *path, bool stop, struct snapshot_result *r, struct errbuf *e);

/* ---- restore ---- */

/*
 * Map and check the snapshot PATH (format, CRCs, host fit: vCPUs, memory,
 * the VMM programs it names). On success *ARGC and *ARGV are the stored `vmmux
 * run` command line (owned by this module) and *CWD its working directory.
 * -1 with a message naming the section and the reason.
 */
int snapshot_restore_open(const char *path, int *argc, char ***argv, const char **cwd,
			  struct errbuf *e);
/* The same from FD (a regular file or a memfd that can be mapped, offset
 * 0; it is kept, and closed by nobody: guest memory maps it). PATH names it
 * in messages. The entry point for a state handed over on a descriptor. */
int snapshot_restore_open_fd(int fd, const char *path, int *argc, char ***argv, const char **cwd,
			     struct errbuf *e);
bool snapshot_restoring(void);
/* Check the config rebuilt from the command line against the snapshot:
 * the same memory, vCPUs, irqchip, and every VMM it holds. */
int snapshot_restore_check(const struct vmmux_config *c, struct errbuf *e);
/* The route set to build the first table from (parsed specs, malloc'd, the
 * caller frees) and the generation that table takes. */
int snapshot_restore_routes(struct route_spec **specs, size_t *n, uint64_t *generation,
			    struct errbuf *e);
/* Guest memory, the KVM clock, irqchip and PIT, every vCPU, and which vCPUs
 * are halted (HALTED: one bool per vCPU). Before any vCPU runs. */
int snapshot_restore_machine(struct vm *vm, bool *halted, struct errbuf *e);
/* A live update's state: the parallel VMMs handed over, given to
 * pvmm_adopt_set (before the registry starts its VMMs), checked against the
 * VMM sections. 0 also when there are none. */
int snapshot_restore_pvmms(struct errbuf *e);
/* The roles' state, into the VMMs of the registry (started); a parallel
 * VMM taken over by a live update kept its own. */
int snapshot_restore_vmms(struct errbuf *e);
/* Restoring a live update's state: true, *V its decoded view. */
struct snap_view;
bool snapshot_restore_handover(const struct snap_view **v);
/* A live update's new program, first thing after the state is read, before
 * it opens anything itself: every descriptor the HANDOVER section names
 * (guest RAM's memfds, the control socket, the asking client's connection)
 * must be open, inherited (a number left free would be taken by the new
 * program's own descriptors, and then be one of those); each is made
 * close-on-exec. 0 (nothing to do for a snapshot file), or -1 with
 * "section HANDOVER: piece K: descriptor N: REASON". */
int snapshot_restore_claim_fds(struct errbuf *e);
/* A live update's state: the events the old program's dispatcher had not
 * taken, posted to this program's dispatcher queue in their order (once
 * the queue exists, before any thread that posts starts). The number. */
unsigned snapshot_restore_host_queue(void);
/* A live update's state of HANDOVER version 3 or later: true, *AT the
 * old program's watchdog expiry (0: none to come). False otherwise: a
 * snapshot's restore, or an older state, starts the watchdog anew. */
bool snapshot_restore_watchdog(uint64_t *at);
/* The vCPUs are about to start: the restore's time is logged (info). */
void snapshot_restore_done(void);
/* Release what the restore held (the file's mapping stays with guest
 * memory). */
void snapshot_restore_close(void);

#endif
