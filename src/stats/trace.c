/*
 * trace.c: per-thread rings of delivered events, written out as a
 * Chrome/Perfetto JSON trace at the end of the run (trace.h).
 *
 * A ring belongs to one thread (its track), so recording needs no lock and
 * no atomic read-modify-write: the thread stores one 64-byte record at its
 * position and advances it, wrapping at the capacity. The rings are
 * allocated before any vCPU thread starts (thread creation orders the
 * allocation before the first record) and read after every thread has been
 * joined (the join orders the last record before the read).
 *
 * Records are kept in completion order; an event raised while another is
 * handled completes first but starts later, so each track is sorted by start
 * time (ties: the longer event first, so that it encloses the shorter) before
 * it is written. Nested events then appear as slices within their parent's
 * slice, which is how trace viewers draw calls.
 */
#include "stats/trace.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "route/spec.h"

/* One delivered event: 64 bytes. */
struct trace_rec {
	uint64_t t0_ns;
	uint64_t dur_ns;
	uint64_t key;
	uint64_t value;
	uint64_t generation;
	const struct route_stats *rs;
	uint32_t count;
	uint16_t type;
	uint16_t flags;
	uint16_t vmm;
	uint16_t src_id;
	uint8_t size;
	uint8_t src_kind;
	uint8_t action;
	uint8_t depth_failed; /* bit 7: the VMM failed; bits 0-6: raise depth */
};

_Static_assert(sizeof(struct trace_rec) == 64, "a trace record is one cache line");

struct trace_ring {
	struct trace_rec *rec;
	uint64_t recorded; /* records written so far; the ring holds the last cap */
	uint32_t pos;	   /* where the next record goes */
} __attribute__((aligned(64)));

static struct {
	struct trace_ring *rings; /* NULL: no trace open */
	unsigned nrings;	  /* nvcpus + 1 */
	uint32_t cap;
	uint64_t start_ns;
	FILE *f;
	char path[4096];
} T;

static struct trace_ring *rings_get(void)
{
	return __atomic_load_n(&T.rings, __ATOMIC_ACQUIRE);
}

static void rings_free(void)
{
	struct trace_ring *r = rings_get();
	__atomic_store_n(&T.rings, NULL, __ATOMIC_RELEASE);
	if (r != NULL)
		for (unsigned i = 0; i < T.nrings; i++)
			free(r[i].rec);
	free(r);
	T.nrings = 0;
}

int trace_open(const char *path, unsigned nvcpus, uint32_t per_track, struct errbuf *e)
{
	if (rings_get() != NULL || T.f != NULL)
		return err_set(e, "--trace %s: a trace is open already", path);
	if (per_track == 0)
		per_track = TRACE_EVENTS_DEFAULT;
	if (per_track > TRACE_EVENTS_MAX)
		return err_set(e, "--trace-events: %u is more than %u events per track",
			       (unsigned)per_track, TRACE_EVENTS_MAX);
	if (nvcpus == 0 || nvcpus >= TRACE_TID_MAIN)
		return err_set(e, "--trace %s: %u vCPUs cannot be traced", path, nvcpus);
	if (strlen(path) >= sizeof(T.path))
		return err_set(e, "--trace: the path is longer than %zu bytes", sizeof(T.path) - 1);
	FILE *f = fopen(path, "we");
	if (f == NULL)
		return err_set(e, "--trace %s: %s", path, strerror(errno));
	struct trace_ring *r = calloc(nvcpus + 1, sizeof(*r));
	bool ok = r != NULL;
	for (unsigned i = 0; ok && i <= nvcpus; i++) {
		/* calloc of a large block maps fresh zero pages: a ring costs
		 * memory only as far as it is filled. */
		r[i].rec = calloc(per_track, sizeof(struct trace_rec));
		ok = r[i].rec != NULL;
	}
	if (!ok) {
		for (unsigned i = 0; r != NULL && i <= nvcpus; i++)
			free(r[i].rec);
		free(r);
		fclose(f);
		return err_set(e, "--trace %s: cannot allocate %u tracks of %u events", path,
			       nvcpus + 1, (unsigned)per_track);
	}
	snprintf(T.path, sizeof(T.path), "%s", path);
	T.f = f;
	T.nrings = nvcpus + 1;
	T.cap = per_track;
	T.start_ns = stats_now_ns();
	__atomic_store_n(&T.rings, r, __ATOMIC_RELEASE);
	return 0;
}

void trace_record(unsigned track, const struct vmmux_event *ev, const struct vmmux_reply *rep,
		  uint16_t vmm, const struct route_stats *rs, uint64_t t0_ns, uint64_t dur_ns,
		  int result, unsigned depth)
{
	struct trace_ring *rings = rings_get();
	if (rings == NULL || track >= T.nrings)
		return;
	struct trace_ring *ring = &rings[track];
	struct trace_rec *x = &ring->rec[ring->pos];
	x->t0_ns = t0_ns;
	x->dur_ns = dur_ns;
	x->key = ev->key;
	/* The value a write carried, or the one a read returned. */
	bool read =
	    !(ev->flags & VMMUX_EVF_WRITE) &&
	    (ev->type == VMMUX_EV_IO || ev->type == VMMUX_EV_MMIO || ev->type == VMMUX_EV_MSR);
	x->value = read ? rep->value : ev->value;
	x->generation = ev->generation;
	x->rs = rs;
	x->count = ev->count;
	x->type = ev->type;
	x->flags = ev->flags;
	x->vmm = vmm;
	x->src_id = ev->src_id;
	x->size = ev->size;
	x->src_kind = ev->src_kind;
	x->action = (uint8_t)(rep->action < 255 ? rep->action : 255);
	x->depth_failed = (uint8_t)((depth < 127 ? depth : 127) | (result < 0 ? 0x80u : 0));
	ring->pos = ring->pos + 1 < T.cap ? ring->pos + 1 : 0;
	ring->recorded++;
}

/* ---------------------------------------------------------------------- */
/* Writing                                                                  */
/* ---------------------------------------------------------------------- */

static int cmp_rec(const void *a, const void *b)
{
	const struct trace_rec *x = a, *y = b;
	if (x->t0_ns != y->t0_ns)
		return x->t0_ns < y->t0_ns ? -1 : 1;
	if (x->dur_ns != y->dur_ns)
		return x->dur_ns > y->dur_ns ? -1 : 1; /* the enclosing one first */
	return 0;
}

/* Microseconds with nanosecond digits: "12.345". */
static void json_us(FILE *f, uint64_t ns)
{
	fprintf(f, "%llu.%03llu", (unsigned long long)(ns / 1000), (unsigned long long)(ns % 1000));
}

static const char *const action_names[VMMUX_ACT__COUNT] = VMMUX_ACT_NAMES;

/* The event's name: its type and key as routes write them. */
static void rec_name(const struct trace_rec *x, char *buf, size_t len)
{
	const char *type = event_type_name(x->type);
	const char *name;
	switch (x->type) {
	case VMMUX_EV_IO:
	case VMMUX_EV_MMIO:
	case VMMUX_EV_MSR:
		snprintf(buf, len, "%s 0x%llx", type, (unsigned long long)x->key);
		return;
	case VMMUX_EV_HLT:
	case VMMUX_EV_SHUTDOWN:
		snprintf(buf, len, "%s", type);
		return;
	case VMMUX_EV_PLATFORM:
		name = platform_code_name((unsigned)x->key);
		break;
	case VMMUX_EV_REQUEST:
		name = request_kind_name((unsigned)x->key);
		break;
	default:
		name = NULL;
		break;
	}
	if (type == NULL)
		snprintf(buf, len, "type%u %llu", x->type, (unsigned long long)x->key);
	else if (name != NULL)
		snprintf(buf, len, "%s %s", type, name);
	else
		snprintf(buf, len, "%s %llu", type, (unsigned long long)x->key);
}

static const char *vmm_name(stats_vmm_name_fn fn, uint16_t id, char *buf, size_t len)
{
	char where[64] = "";
	const char *n = fn ? fn(id, where, sizeof(where)) : NULL;
	if (n == NULL) {
		snprintf(buf, len, "vmm%u", (unsigned)id);
		return buf;
	}
	return n;
}

static void write_rec(FILE *f, const struct trace_rec *x, unsigned tid, stats_vmm_name_fn fn)
{
	char name[64], nbuf[32], src[48];
	rec_name(x, name, sizeof(name));
	const char *type = event_type_name(x->type);
	uint64_t ts = x->t0_ns > T.start_ns ? x->t0_ns - T.start_ns : 0;
	fputs(",\n{\"name\":", f);
	stats_json_str(f, name);
	fputs(",\"cat\":", f);
	stats_json_str(f, type ? type : "unknown");
	fputs(",\"ph\":\"X\",\"ts\":", f);
	json_us(f, ts);
	fputs(",\"dur\":", f);
	json_us(f, x->dur_ns);
	fprintf(f, ",\"pid\":1,\"tid\":%u,\"args\":{\"vmm\":", tid);
	stats_json_str(f, vmm_name(fn, x->vmm, nbuf, sizeof(nbuf)));
	fputs(",\"route\":", f);
	stats_json_str(f, x->rs ? x->rs->spec : "");
	fprintf(f,
		",\"generation\":%llu,\"write\":%s,\"value\":", (unsigned long long)x->generation,
		x->flags & VMMUX_EVF_WRITE ? "true" : "false");
	if (x->flags & VMMUX_EVF_STRING)
		fputs("null", f); /* string I/O: the data is not kept */
	else
		fprintf(f, "\"0x%llx\"", (unsigned long long)x->value);
	fputs(",\"result\":", f);
	stats_json_str(f, x->action < VMMUX_ACT__COUNT ? action_names[x->action] : "invalid");
	switch (x->src_kind) {
	case VMMUX_SRC_VCPU:
		snprintf(src, sizeof(src), "vcpu %u", (unsigned)x->src_id);
		break;
	case VMMUX_SRC_VMM:
		snprintf(src, sizeof(src), "vmm %s", vmm_name(fn, x->src_id, nbuf, sizeof(nbuf)));
		break;
	default:
		snprintf(src, sizeof(src), "host");
		break;
	}
	fputs(",\"src\":", f);
	stats_json_str(f, src);
	fprintf(f, ",\"size\":%u,\"count\":%u,\"depth\":%u", (unsigned)x->size, (unsigned)x->count,
		(unsigned)(x->depth_failed & 0x7f));
	if (x->flags & VMMUX_EVF_UNROUTED)
		fputs(",\"unrouted\":true", f);
	if (x->depth_failed & 0x80)
		fputs(",\"failed\":true", f);
	fputs("}}", f);
}

static unsigned track_tid(unsigned t)
{
	return t + 1 == T.nrings ? TRACE_TID_MAIN : t;
}

static void track_name(unsigned t, char *buf, size_t len)
{
	if (t + 1 == T.nrings)
		snprintf(buf, len, "main loop");
	else
		snprintf(buf, len, "vCPU %u", t);
}

int trace_write(stats_vmm_name_fn name, struct errbuf *e)
{
	struct trace_ring *rings = rings_get();
	FILE *f = T.f;
	if (rings == NULL || f == NULL)
		return 0;
	T.f = NULL;
	char tname[32];

	fprintf(f,
		"{\"displayTimeUnit\":\"ns\",\"otherData\":{\"version\":\"vmmux %s\","
		"\"clock\":\"CLOCK_MONOTONIC\",\"start_ns\":%llu,\"events_per_track\":%u,"
		"\"tracks\":[",
		VMMUX_VERSION, (unsigned long long)T.start_ns, (unsigned)T.cap);
	for (unsigned t = 0; t < T.nrings; t++) {
		uint64_t n = rings[t].recorded;
		uint64_t kept = n < T.cap ? n : T.cap;
		track_name(t, tname, sizeof(tname));
		fprintf(f, "%s{\"tid\":%u,\"name\":", t ? "," : "", track_tid(t));
		stats_json_str(f, tname);
		fprintf(f, ",\"recorded\":%llu,\"written\":%llu,\"overwritten\":%llu}",
			(unsigned long long)n, (unsigned long long)kept,
			(unsigned long long)(n - kept));
	}
	fputs("]},\n\"traceEvents\":[\n", f);
	fputs("{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":1,\"tid\":0,"
	      "\"args\":{\"name\":\"vmmux\"}}",
	      f);
	for (unsigned t = 0; t < T.nrings; t++) {
		track_name(t, tname, sizeof(tname));
		fprintf(f,
			",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":%u,\"args\":{"
			"\"name\":",
			track_tid(t));
		stats_json_str(f, tname);
		fprintf(f,
			"}},\n{\"name\":\"thread_sort_index\",\"ph\":\"M\",\"pid\":1,\"tid\":%u,"
			"\"args\":{\"sort_index\":%u}}",
			track_tid(t), t);
	}
	for (unsigned t = 0; t < T.nrings; t++) {
		struct trace_ring *ring = &rings[t];
		size_t kept = ring->recorded < T.cap ? (size_t)ring->recorded : T.cap;
		qsort(ring->rec, kept, sizeof(ring->rec[0]), cmp_rec);
		for (size_t i = 0; i < kept; i++)
			write_rec(f, &ring->rec[i], track_tid(t), name);
	}
	fputs("\n]}\n", f);
	int rc = 0;
	bool bad = ferror(f) != 0;
	if (fclose(f) != 0 || bad)
		rc = err_set(e, "--trace %s: cannot write the trace: %s", T.path,
			     bad ? "write error" : strerror(errno));
	rings_free();
	return rc;
}
