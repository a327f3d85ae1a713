/*
 * trace.h: a trace of the routed events, written in the Chrome/Perfetto JSON
 * trace format (vmmux run --trace FILE; docs/observability.md).
 *
 * Each thread that delivers events owns one track: vCPU i's thread track i,
 * the main loop (events raised by parallel VMMs outside a request, VMM
 * faults, the watchdog, the control API) track nvcpus. A track is a bounded
 * ring of fixed-size records: recording an event writes one record into the
 * calling thread's own ring, overwriting the oldest when it is full, with no
 * lock, no allocation and no system call; so the trace holds the last N
 * events of each track. At the end of the run the rings are sorted by start
 * time and written out as one JSON document:
 *
 *   {"displayTimeUnit": "ns",
 *    "otherData": {"version", "clock", "start_ns", "events_per_track",
 *                  "tracks": [{"tid", "name", "recorded", "written",
 *                              "overwritten"}...]},
 *    "traceEvents": [metadata "M" events naming the process (pid 1,
 *                    "vmmux") and each track (tid = vCPU index, "vCPU 0";
 *                    TRACE_TID_MAIN, "main loop"), then one "X" event per
 *                    routed event]}
 *
 * An "X" event: {"name": "io 0x3f8", "cat": "io", "ph": "X", "ts", "dur",
 * "pid": 1, "tid", "args": {"vmm", "route", "generation", "write", "value",
 * "result", "src", "size", "count", "depth", ["unrouted"], ["failed"]}}
 * (docs/observability.md gives each field); ts is when the event left the
 * guest (its classification), in microseconds since the trace was opened,
 * dur the time its delivery took (both with nanosecond digits).
 */
#ifndef VMMUX_STATS_TRACE_H
#define VMMUX_STATS_TRACE_H

#include <stdbool.h>
#include <stdint.h>

#include "stats/stats.h"
#include "util/err.h"
#include <vmmux/vmmux.h>

#define TRACE_EVENTS_DEFAULT 65536u   /* records per track */
#define TRACE_EVENTS_MAX     1048576u /* 64 MiB per track */
#define TRACE_TID_MAIN	     1000u    /* the main loop's track (vCPUs: 0..63) */

/*
 * Open the trace file PATH for writing (truncated now, so that a path that
 * cannot be written is an error before the guest runs) and allocate
 * NVCPUS + 1 rings of PER_TRACK records each (0: TRACE_EVENTS_DEFAULT;
 * at most TRACE_EVENTS_MAX). Track t < NVCPUS is vCPU t's, track NVCPUS the
 * main loop's. Call before any event is routed, from the main thread.
 * -1 with a message naming PATH.
 */
int trace_open(const char *path, unsigned nvcpus, uint32_t per_track, struct errbuf *e);

/*
 * Record one delivered event on TRACK (the calling thread's own track: the
 * index of its request slot, vmm/parallel.h pvmm_thread_slot; no other
 * thread may record on it at the same time): EV as routed (after the
 * router retyped it), the reply REP, the VMM that handled it, the statistics
 * record of its route (its spec text names the route; may be NULL), the
 * start T0_NS (stats_now_ns) and the duration, the delivery's RESULT (< 0:
 * the VMM failed and the built-in default applied) and the raise DEPTH.
 * Does nothing when no trace is open or TRACK is out of range. No lock, no
 * system call.
 */
void trace_record(unsigned track, const struct vmmux_event *ev, const struct vmmux_reply *rep,
		  uint16_t vmm, const struct route_stats *rs, uint64_t t0_ns, uint64_t dur_ns,
		  int result, unsigned depth);

/*
 * Write the trace and close it; free the rings. NAME gives the VMMs' names
 * for the "vmm" argument (NULL, or a NULL name: "vmmN"). Every thread that
 * records must have stopped (joined). Does nothing when no trace is open.
 * -1 with a message naming the file when it cannot be written completely
 * (the rings are freed all the same).
 */
int trace_write(stats_vmm_name_fn name, struct errbuf *e);

#endif
