/*
 * transport.c: the shared-memory path between the main VMM and one parallel
 * VMM (contract in transport.h).
 *
 * Memory ordering. Every hand-off between the sides is a store of a state
 * word (slot state, ring entry sequence, ring head, doorbell) made after the
 * data it publishes, and a load of that word made before the data is read.
 * The sleep/wake decisions are Dekker pairs with sequentially consistent
 * operations: the sleeper stores its flag and then re-reads the condition;
 * the waker changes the condition and then reads the flag. At least one of
 * the two sees the other's store, so a wake-up is never lost.
 *
 * Distrust. The main side reads each scalar the VMM may write exactly once
 * (__atomic loads, never a plain field that the compiler could read twice),
 * copies structures into private memory before looking at them, indexes
 * rings only with masked positions, and bounds every loop by a count or by
 * the caller's deadline.
 */
#include "transport/transport.h"
#include "transport/control.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define TP_PAGE		     4096u
#define TP_SLICE_NS	     10000000ull  /* longest futex sleep of a waiter */
#define TP_EXTRA_POLL_NS     1000000ull	  /* extras polled at least this often */
#define TP_POST_TRIES	     4096u	  /* producer retries before "full" */
#define TP_STATE_TRIES	     64u	  /* state_load retries */
#define TP_ASYNC_WAIT_MS     100	  /* room wait for raises of posted events */
#define TP_CLOCK_EVERY	     64u	  /* spin iterations between clock reads */
#define TP_PUBLISH_WAIT_NS   100000000ull /* wait for a reserved posted entry */
#define TP_BEHIND_POSTED_MAX 8u		  /* deadline windows behind posted writes */

_Static_assert((TP_RING_ENTRIES & (TP_RING_ENTRIES - 1)) == 0, "ring size a power of two");
_Static_assert((TP_ASYNC_ENTRIES & (TP_ASYNC_ENTRIES - 1)) == 0, "ring size a power of two");
_Static_assert(sizeof(struct tp_header) % 64 == 0, "header 64-byte aligned");
_Static_assert(sizeof(struct tp_slot) % 64 == 0, "slot 64-byte aligned");
_Static_assert(sizeof(struct tp_ring) % 64 == 0, "ring 64-byte aligned");
_Static_assert(sizeof(struct tp_async_ring) % 64 == 0, "async ring 64-byte aligned");

/* Relaxed single reads and writes of plain fields of the shared region. */
#define LOAD1(p)     __atomic_load_n((p), __ATOMIC_RELAXED)
#define STORE1(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

#ifdef TP_TEST_HOOKS
void (*tp_test_hook)(enum tp_test_point pt, struct tp_region *r, unsigned slot);
#define TEST_POINT(pt, r, i)                                                                       \
	do {                                                                                       \
		if (tp_test_hook != NULL)                                                          \
			tp_test_hook((pt), (r), (i));                                              \
	} while (0)
#else
#define TEST_POINT(pt, r, i) ((void)0)
#endif

uint64_t tp_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void cpu_relax(void)
{
	__builtin_ia32_pause();
}

/* The calling thread's CPU (glibc reads it from rseq: no system call), or
 * TP_CPU_UNKNOWN. */
static uint32_t this_cpu(void)
{
	int cpu = sched_getcpu();
	return cpu < 0 ? TP_CPU_UNKNOWN : (uint32_t)cpu;
}

/* Publish CPU in the hint word W, writing the shared line only on change. */
static void publish_cpu(_Atomic uint32_t *w, uint32_t cpu)
{
	if (atomic_load_explicit(w, memory_order_relaxed) != cpu)
		atomic_store_explicit(w, cpu, memory_order_relaxed);
}

/* Shared (not PRIVATE) futex operations: the word lives in a memfd mapped by
 * two processes; the kernel keys it by the backing page. */
static long futex_wait(_Atomic uint32_t *word, uint32_t val, uint64_t ns)
{
	struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull),
			      .tv_nsec = (long)(ns % 1000000000ull)};
	return syscall(SYS_futex, (void *)word, FUTEX_WAIT, val, &ts, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *word, int n)
{
	syscall(SYS_futex, (void *)word, FUTEX_WAKE, n, NULL, NULL, 0);
}

static void efd_signal(int fd)
{
	uint64_t one = 1;
	ssize_t n = write(fd, &one, sizeof(one)); /* EAGAIN: already signalled */
	(void)n;
}

static void efd_drain(int fd)
{
	uint64_t v;
	ssize_t n = read(fd, &v, sizeof(v)); /* EAGAIN: nothing to reset */
	(void)n;
}

/* ---- layout ------------------------------------------------------------- */

size_t tp_slots_offset(void)
{
	return sizeof(struct tp_header);
}

size_t tp_posted_offset(unsigned nslots)
{
	return tp_slots_offset() + (size_t)nslots * sizeof(struct tp_slot);
}

size_t tp_async_offset(unsigned nslots)
{
	return tp_posted_offset(nslots) + sizeof(struct tp_ring);
}

size_t tp_region_size(unsigned nslots)
{
	if (nslots == 0 || nslots > TP_SLOTS_MAX)
		return 0;
	size_t end = tp_async_offset(nslots) + sizeof(struct tp_async_ring);
	return (end + TP_PAGE - 1) & ~(size_t)(TP_PAGE - 1);
}

static void region_pointers(struct tp_region *r, void *base, unsigned nslots)
{
	char *b = base;
	r->hdr = base;
	r->slots = (struct tp_slot *)(b + tp_slots_offset());
	r->posted = (struct tp_ring *)(b + tp_posted_offset(nslots));
	r->async = (struct tp_async_ring *)(b + tp_async_offset(nslots));
	r->nslots = nslots;
}

static void region_clear(struct tp_region *r)
{
	memset(r, 0, sizeof(*r));
	r->memfd = r->vmm_efd = r->async_efd = -1;
}

static void region_close(struct tp_region *r)
{
	if (r->hdr != NULL && r->size != 0)
		munmap(r->hdr, r->size);
	if (r->memfd >= 0)
		close(r->memfd);
	if (r->vmm_efd >= 0)
		close(r->vmm_efd);
	if (r->async_efd >= 0)
		close(r->async_efd);
	region_clear(r);
}

/* ---- main side: set-up --------------------------------------------------- */

int tp_region_create(struct tp_region *r, unsigned nslots, uint64_t spin_ns)
{
	region_clear(r);
	if (nslots == 0 || nslots > TP_SLOTS_MAX || spin_ns > TP_SPIN_NS_MAX) {
		errno = EINVAL;
		return -1;
	}
	size_t size = tp_region_size(nslots);
	int err;
	r->memfd = memfd_create("vmmux-transport", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (r->memfd < 0)
		return -1;
	if (ftruncate(r->memfd, (off_t)size) != 0 ||
	    fcntl(r->memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
		goto fail;
	void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, r->memfd, 0);
	if (base == MAP_FAILED)
		goto fail;
	r->size = size;
	region_pointers(r, base, nslots);

	/* The memfd starts zeroed: every slot IDLE, rings at position 0. */
	struct tp_header *h = r->hdr;
	h->magic = TP_MAGIC;
	h->version = TP_VERSION;
	h->nslots = nslots;
	h->size = size;
	atomic_store(&h->spin_ns, spin_ns);
	atomic_store(&h->main_sleeping, 1);
	atomic_store(&h->main_cpu, TP_CPU_UNKNOWN);
	atomic_store(&h->vmm_cpu, TP_CPU_UNKNOWN);
	for (unsigned i = 0; i < TP_RING_ENTRIES; i++)
		atomic_store_explicit(&r->posted->e[i].seq, i, memory_order_relaxed);
	atomic_store(&r->spin_ns, spin_ns);

	r->vmm_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r->vmm_efd < 0)
		goto fail;
	r->async_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r->async_efd < 0)
		goto fail;
	atomic_thread_fence(memory_order_seq_cst);
	return 0;
fail:
	err = errno;
	region_close(r);
	errno = err;
	return -1;
}

void tp_region_destroy(struct tp_region *r)
{
	region_close(r);
}

void tp_set_spin_ns(struct tp_region *r, uint64_t spin_ns)
{
	if (spin_ns > TP_SPIN_NS_MAX)
		spin_ns = TP_SPIN_NS_MAX;
	atomic_store(&r->spin_ns, spin_ns);
	atomic_store(&r->hdr->spin_ns, spin_ns);
}

/* ---- main side: synchronous requests -------------------------------------- */

/* Bytes of string data EV carries (0 when none); false when inconsistent. */
static bool event_bytes(const struct vmmux_event *ev, size_t *bytes)
{
	*bytes = 0;
	if (!(ev->flags & VMMUX_EVF_STRING))
		return true;
	if (ev->type != VMMUX_EV_IO || ev->count == 0 ||
	    (ev->size != 1 && ev->size != 2 && ev->size != 4 && ev->size != 8))
		return false;
	uint64_t n = (uint64_t)ev->count * ev->size;
	if (n > TP_SLOT_DATA)
		return false;
	*bytes = (size_t)n;
	return true;
}

static void ring_doorbell(struct tp_region *r)
{
	atomic_fetch_add(&r->hdr->doorbell, 1);
	if (atomic_load(&r->hdr->vmm_sleeping))
		efd_signal(r->vmm_efd);
}

/* Take a DONE reply: validate, copy out, release the slot. */
static enum tp_result collect(struct tp_region *r, unsigned i, struct vmmux_event *ev, size_t bytes,
			      struct vmmux_reply *rep, int32_t *result, struct vmmux_event *raised,
			      uint32_t *nraised)
{
	struct tp_slot *s = &r->slots[i];
	struct tp_main_slot *m = &r->main[i];
	uint32_t rseq = LOAD1(&s->reply_seq);
	uint32_t nr = LOAD1(&s->nraised);
	int32_t res = LOAD1(&s->result);
	if (rseq != atomic_load_explicit(&m->seq, memory_order_relaxed) || nr > TP_RAISE_MAX)
		return TP_PROTOCOL;
	struct vmmux_reply rp;
	memcpy(&rp, &s->rep, sizeof(rp));
	uint32_t copied = 0;
	if (raised != NULL) {
		memcpy(raised, s->raised, (size_t)nr * sizeof(*raised));
		for (uint32_t k = 0; k < nr; k++)
			raised[k].data = NULL;
		copied = nr;
	}
	if (bytes != 0 && !(ev->flags & VMMUX_EVF_WRITE))
		memcpy(ev->data, s->data, bytes);
	if (rep != NULL)
		*rep = rp;
	if (result != NULL)
		*result = res;
	if (nraised != NULL)
		*nraised = copied;
	/* pending first, then IDLE: tp_main_recover reads them the other way */
	atomic_store(&m->pending, 0);
	atomic_store(&s->state, TP_IDLE);
	return TP_OK;
}

/* What a waiter makes of a state value: keep waiting, collect, or fail. */
enum look { LOOK_WAIT, LOOK_DONE, LOOK_BAD };

static enum look look(uint32_t st)
{
	if (st == TP_REQ || st == TP_BUSY)
		return LOOK_WAIT;
	if (st == TP_DONE)
		return LOOK_DONE;
	return LOOK_BAD; /* IDLE while pending, or out of the enum */
}

static bool aborted(const _Atomic bool *abort)
{
	return abort != NULL && atomic_load(abort);
}

static enum tp_result wait_reply(struct tp_region *r, unsigned i, struct vmmux_event *ev,
				 size_t bytes, struct vmmux_reply *rep, int32_t *result,
				 struct vmmux_event *raised, uint32_t *nraised,
				 uint64_t deadline_ns, const _Atomic bool *abort)
{
	struct tp_slot *s = &r->slots[i];
	uint64_t now = tp_now_ns();
	/* for a request queued behind posted writes (see the sleep phase) */
	uint64_t window = deadline_ns > now ? deadline_ns - now : 0;
	uint64_t progress = atomic_load_explicit(&r->hdr->progress, memory_order_relaxed);
	unsigned extended = 0;
	uint64_t spin = atomic_load_explicit(&r->spin_ns, memory_order_relaxed);
	uint32_t cpu = this_cpu();
	if (cpu != TP_CPU_UNKNOWN &&
	    atomic_load_explicit(&r->hdr->vmm_cpu, memory_order_relaxed) == cpu)
		spin = 0; /* the VMM needs this CPU to answer */
	uint64_t spin_end = now + spin;
	if (spin_end > deadline_ns)
		spin_end = deadline_ns;

	/* Spin phase: no system call, the clock read once every 64 rounds. */
	for (unsigned n = 0; spin != 0; n++) {
		enum look l = look(atomic_load_explicit(&s->state, memory_order_acquire));
		if (l == LOOK_DONE)
			return collect(r, i, ev, bytes, rep, result, raised, nraised);
		if (l == LOOK_BAD)
			return TP_PROTOCOL;
		if (aborted(abort))
			return TP_ABORTED;
		if (n % TP_CLOCK_EVERY == TP_CLOCK_EVERY - 1 && tp_now_ns() >= spin_end)
			break;
		cpu_relax();
	}

	/* Sleep phase: announce, re-check, futex-wait on the state word. */
	for (;;) {
		atomic_store(&s->waiting, 1);
		uint32_t st = atomic_load(&s->state);
		enum look l = look(st);
		if (l == LOOK_DONE) {
			atomic_store(&s->waiting, 0);
			return collect(r, i, ev, bytes, rep, result, raised, nraised);
		}
		if (l == LOOK_BAD) {
			atomic_store(&s->waiting, 0);
			return TP_PROTOCOL;
		}
		if (aborted(abort)) {
			atomic_store(&s->waiting, 0);
			return TP_ABORTED;
		}
		now = tp_now_ns();
		if (now >= deadline_ns && st == TP_REQ && extended < TP_BEHIND_POSTED_MAX &&
		    !tp_main_posted_empty(r)) {
			/* Not started, and the VMM serves posted writes first
			 * (tp_vmm_serve): while it makes progress on them, the
			 * request gets another window. */
			uint64_t p = atomic_load_explicit(&r->hdr->progress, memory_order_relaxed);
			if (p != progress) {
				progress = p;
				deadline_ns = now + window;
				extended++;
			}
		}
		if (now >= deadline_ns) {
			atomic_store(&s->waiting, 0);
			return TP_TIMEOUT;
		}
		uint64_t left = deadline_ns - now;
		futex_wait(&s->state, st, left < TP_SLICE_NS ? left : TP_SLICE_NS);
		/* woken, timed out, interrupted or the value moved: look again */
	}
}

enum tp_result tp_main_call(struct tp_region *r, unsigned slot, struct vmmux_event *ev,
			    struct vmmux_reply *rep, int32_t *result, struct vmmux_event *raised,
			    uint32_t *nraised, uint64_t deadline_ns, const _Atomic bool *abort)
{
	size_t bytes;
	if (slot >= r->nslots || ev == NULL || !event_bytes(ev, &bytes) ||
	    (bytes != 0 && ev->data == NULL))
		return TP_INVAL;
	struct tp_main_slot *m = &r->main[slot];
	if (atomic_load(&m->pending))
		return TP_INVAL;
	struct tp_slot *s = &r->slots[slot];
	uint32_t seq = atomic_load_explicit(&m->seq, memory_order_relaxed) + 1;
	atomic_store_explicit(&m->seq, seq, memory_order_release);
	atomic_store(&m->pending, 1);
	TEST_POINT(TP_PT_CALL_PENDING, r, slot);

	struct vmmux_event copy = *ev;
	copy.data = NULL; /* no pointer of ours reaches the VMM */
	memcpy(&s->ev, &copy, sizeof(copy));
	if (bytes != 0 && (ev->flags & VMMUX_EVF_WRITE))
		memcpy(s->data, ev->data, bytes);
	uint64_t xseq = atomic_fetch_add_explicit(&r->xseq_next, 1, memory_order_relaxed) + 1;
	m->xseq = xseq;
	STORE1(&s->seq, seq);
	STORE1(&s->xseq, xseq);
	publish_cpu(&r->hdr->main_cpu, this_cpu());
	atomic_store(&s->state, TP_REQ);
	/* armed after REQ: tp_main_recover re-arms only a slot whose call
	 * stored all of the above (see tp_main_recover) */
	atomic_store_explicit(&m->armed, seq, memory_order_release);
	ring_doorbell(r);
	return wait_reply(r, slot, ev, bytes, rep, result, raised, nraised, deadline_ns, abort);
}

enum tp_result tp_main_wait(struct tp_region *r, unsigned slot, struct vmmux_event *ev,
			    struct vmmux_reply *rep, int32_t *result, struct vmmux_event *raised,
			    uint32_t *nraised, uint64_t deadline_ns, const _Atomic bool *abort)
{
	size_t bytes;
	if (slot >= r->nslots || ev == NULL || !event_bytes(ev, &bytes) ||
	    (bytes != 0 && ev->data == NULL) || !atomic_load(&r->main[slot].pending))
		return TP_INVAL;
	return wait_reply(r, slot, ev, bytes, rep, result, raised, nraised, deadline_ns, abort);
}

bool tp_main_pending(const struct tp_region *r, unsigned slot)
{
	return slot < r->nslots && atomic_load(&r->main[slot].pending);
}

uint64_t tp_main_seq(const struct tp_region *r, unsigned slot)
{
	return tp_main_pending(r, slot) ? r->main[slot].xseq : 0;
}

/* ---- main side: posted ring ------------------------------------------------ */

enum tp_result tp_main_post(struct tp_region *r, const struct vmmux_event *ev)
{
	if (ev == NULL || (ev->flags & VMMUX_EVF_STRING))
		return TP_INVAL;
	struct tp_ring *q = r->posted;
	uint64_t pos = atomic_load_explicit(&q->head, memory_order_relaxed);
	for (unsigned tries = 0; tries < TP_POST_TRIES; tries++) {
		struct tp_ring_entry *e = &q->e[pos & (TP_RING_ENTRIES - 1)];
		uint64_t seq = atomic_load_explicit(&e->seq, memory_order_acquire);
		int64_t dif = (int64_t)(seq - pos);
		if (dif == 0) {
			if (atomic_compare_exchange_weak_explicit(&q->head, &pos, pos + 1,
								  memory_order_relaxed,
								  memory_order_relaxed)) {
				struct vmmux_event copy = *ev;
				copy.data = NULL;
				memcpy(&e->ev, &copy, sizeof(copy));
				atomic_store_explicit(&e->seq, pos + 1, memory_order_release);
				ring_doorbell(r);
				return TP_OK;
			}
			/* pos now holds the head another producer moved to */
		} else if (dif < 0) {
			return TP_FULL; /* the entry a lap ago is not consumed yet */
		} else {
			pos = atomic_load_explicit(&q->head, memory_order_relaxed);
		}
	}
	return TP_FULL; /* contention that does not end: a corrupted ring */
}

bool tp_main_posted_empty(const struct tp_region *r)
{
	/* Every reserved position consumed: the entry at head-1 carries the
	 * sequence the consumer writes (pos + TP_RING_ENTRIES) once it is done. */
	uint64_t head = atomic_load_explicit(&r->posted->head, memory_order_acquire);
	if (head == 0)
		return true;
	const struct tp_ring_entry *e = &r->posted->e[(head - 1) & (TP_RING_ENTRIES - 1)];
	return atomic_load_explicit(&e->seq, memory_order_acquire) == head - 1 + TP_RING_ENTRIES;
}

/* ---- main side: VMM failure ------------------------------------------------ */

/*
 * Make the posted ring consistent after its consumer died (no consumer runs;
 * producers may). The consumer moves tail past an entry before releasing it,
 * so at most the entry just behind tail can be consumed and not released
 * (its seq still says published at tail - 1): release it. With FLAG, a
 * published entry at tail (whose handler the dead consumer may have
 * started) gets VMMUX_EVF_REDELIVERED; no producer writes an entry while it
 * is published. Positions come from the region: only masked indexes, and an
 * entry changes only when its seq matches exactly.
 */
static void ring_repair(struct tp_ring *q, bool flag)
{
	uint64_t tail = atomic_load_explicit(&q->tail, memory_order_acquire);
	if (tail != 0) {
		struct tp_ring_entry *e = &q->e[(tail - 1) & (TP_RING_ENTRIES - 1)];
		uint64_t want = tail;
		atomic_compare_exchange_strong(&e->seq, &want, tail - 1 + TP_RING_ENTRIES);
	}
	struct tp_ring_entry *e = &q->e[tail & (TP_RING_ENTRIES - 1)];
	if (flag && atomic_load_explicit(&e->seq, memory_order_acquire) == tail + 1)
		__atomic_fetch_or(&e->ev.flags, (uint16_t)VMMUX_EVF_REDELIVERED, __ATOMIC_RELAXED);
}

void tp_main_wake_all(struct tp_region *r)
{
	for (unsigned i = 0; i < r->nslots; i++)
		futex_wake(&r->slots[i].state, INT_MAX);
}

unsigned tp_main_recover(struct tp_region *r, unsigned *pending)
{
	unsigned busy = 0, npending = 0;
	/* What the main side set at creation, as the dead VMM may have left
	 * it: a successor's tp_region_attach checks these, and would refuse
	 * the region for ever. */
	struct tp_header *h = r->hdr;
	h->magic = TP_MAGIC;
	h->version = TP_VERSION;
	h->nslots = r->nslots;
	h->reserved = 0;
	h->size = r->size;
	atomic_store(&h->spin_ns, atomic_load(&r->spin_ns));
	atomic_store(&h->main_sleeping, 1);
	atomic_store(&h->main_cpu, TP_CPU_UNKNOWN);
	atomic_store(&h->vmm_cpu, TP_CPU_UNKNOWN);
	for (unsigned i = 0; i < r->nslots; i++) {
		struct tp_slot *s = &r->slots[i];
		struct tp_main_slot *m = &r->main[i];
		/* armed, then state, then pending, then seq (all sequentially
		 * consistent). collect() clears pending before IDLE, so a state
		 * IDLE that a collection stored comes with pending 0, or with
		 * the pending of a new call whose seq (stored before its
		 * pending) is then read, differs from armed, and skips. armed
		 * == seq: that call stored its numbers and REQ before armed
		 * was read; they are final (a later call needs this one
		 * collected, from DONE, which no dead VMM can store). */
		uint32_t armed = atomic_load(&m->armed);
		uint32_t st = atomic_load(&s->state);
		if (!atomic_load(&m->pending)) {
			/* Nothing of ours: whatever the VMM left there goes. A call
			 * that starts meanwhile sets pending before REQ, so it is
			 * either seen above or stores REQ after this; in the one
			 * race left (its REQ replacing a stale REQ just before
			 * this exchange), its waiter sees IDLE, returns
			 * TP_PROTOCOL, and the next recovery re-arms it. */
			if (st != TP_IDLE)
				atomic_compare_exchange_strong(&s->state, &st, TP_IDLE);
			continue;
		}
		npending++;
		uint32_t seq = atomic_load(&m->seq);
		if (armed != seq)
			continue; /* a call storing its request: it publishes REQ */
		if (st == TP_REQ)
			continue;
		if (st == TP_DONE && LOAD1(&s->reply_seq) == seq &&
		    LOAD1(&s->nraised) <= TP_RAISE_MAX)
			continue; /* a complete reply: tp_main_wait takes it */
		/* BUSY (the handler may have run), or a state the VMM had no
		 * business leaving: deliver again, flagged, under its own
		 * numbers (the successor compares xseq with its record). */
		uint64_t xseq = m->xseq;
		TEST_POINT(TP_PT_RECOVER_REARM, r, i);
		STORE1(&s->seq, seq);
		STORE1(&s->xseq, xseq);
		__atomic_fetch_or(&s->ev.flags, (uint16_t)VMMUX_EVF_REDELIVERED, __ATOMIC_RELAXED);
		if (atomic_compare_exchange_strong(&s->state, &st, TP_REQ))
			busy++;
	}
	ring_repair(r->posted, true);
	if (pending != NULL)
		*pending = npending;
	return busy;
}

void tp_main_cancel(struct tp_region *r, unsigned slot)
{
	if (slot >= r->nslots || !atomic_load(&r->main[slot].pending))
		return;
	atomic_store(&r->main[slot].pending, 0);
	atomic_store(&r->slots[slot].state, TP_IDLE);
}

/* ---- main side: live update ------------------------------------------------- */

int tp_main_save(const struct tp_region *r, struct tp_main_saved *s)
{
	memset(s, 0, sizeof(*s));
	s->nslots = r->nslots;
	s->xseq_next = atomic_load(&r->xseq_next);
	s->async_tail = r->async_tail;
	for (unsigned i = 0; i < r->nslots; i++) {
		if (atomic_load(&r->main[i].pending)) {
			errno = EBUSY;
			return -1;
		}
		s->seq[i] = atomic_load(&r->main[i].seq);
	}
	return 0;
}

int tp_region_adopt(struct tp_region *r, int memfd, int vmm_efd, int async_efd,
		    const struct tp_main_saved *s, uint64_t spin_ns)
{
	region_clear(r);
	if (s->nslots == 0 || s->nslots > TP_SLOTS_MAX || spin_ns > TP_SPIN_NS_MAX || memfd < 0 ||
	    vmm_efd < 0 || async_efd < 0) {
		errno = EINVAL;
		return -1;
	}
	size_t size = tp_region_size(s->nslots);
	struct stat st;
	if (fstat(memfd, &st) != 0)
		return -1;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != size) {
		errno = EPROTO;
		return -1;
	}
	void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (base == MAP_FAILED)
		return -1;
	r->size = size;
	region_pointers(r, base, s->nslots);
	r->memfd = memfd;
	r->vmm_efd = vmm_efd;
	r->async_efd = async_efd;
	struct tp_header *h = r->hdr;
	h->magic = TP_MAGIC;
	h->version = TP_VERSION;
	h->nslots = s->nslots;
	h->reserved = 0;
	h->size = size;
	atomic_store(&h->spin_ns, spin_ns);
	atomic_store(&r->spin_ns, spin_ns);
	atomic_store(&r->xseq_next, s->xseq_next);
	r->async_tail = s->async_tail;
	for (unsigned i = 0; i < s->nslots; i++) {
		atomic_store(&r->main[i].seq, s->seq[i]);
		atomic_store(&r->main[i].armed, s->seq[i]);
		atomic_store(&r->main[i].pending, 0);
	}
	atomic_thread_fence(memory_order_seq_cst);
	return 0;
}

/* ---- main side: async ring -------------------------------------------------- */

bool tp_main_async_pop(struct tp_region *r, struct vmmux_event *ev)
{
	struct tp_async_ring *q = r->async;
	uint64_t tail = r->async_tail;
	uint64_t head = atomic_load_explicit(&q->head, memory_order_acquire);
	if (head == tail)
		return false;
	if (head - tail > TP_ASYNC_ENTRIES) {
		/* a head the VMM could not have reached: drop everything */
		r->async_tail = head;
		atomic_store_explicit(&q->tail, head, memory_order_release);
		return false;
	}
	memcpy(ev, &q->e[tail & (TP_ASYNC_ENTRIES - 1)], sizeof(*ev));
	ev->data = NULL;
	r->async_tail = tail + 1;
	atomic_store_explicit(&q->tail, tail + 1, memory_order_release);
	return true;
}

bool tp_main_async_sleep(struct tp_region *r)
{
	atomic_store(&r->hdr->main_sleeping, 1);
	return atomic_load(&r->async->head) != r->async_tail;
}

void tp_main_async_awake(struct tp_region *r)
{
	atomic_store(&r->hdr->main_sleeping, 0);
	efd_drain(r->async_efd);
}

/* ---- role state --------------------------------------------------------------- */

long tp_state_load(const struct tp_region *r, void *buf, size_t cap)
{
	const struct tp_header *h = r->hdr;
	for (unsigned tries = 0; tries < TP_STATE_TRIES; tries++) {
		uint64_t seq = atomic_load_explicit(&h->state_seq, memory_order_acquire);
		if (seq == 0)
			return 0;
		const struct tp_saved *sv = &h->saved[seq & 1];
		uint32_t len = LOAD1(&sv->len);
		if (len > TP_STATE_MAX) {
			errno = EPROTO;
			return -1;
		}
		if (len > cap) {
			errno = ENOSPC;
			return -1;
		}
		memcpy(buf, sv->state, len);
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&h->state_seq, memory_order_relaxed) == seq)
			return (long)len;
		cpu_relax();
	}
	errno = EAGAIN;
	return -1;
}

/* Copy a record: its fixed part and its NRAISED raised events. */
static void record_copy(struct tp_record *dst, const struct tp_record *src)
{
	uint32_t nr = LOAD1(&src->nraised);
	if (nr > TP_RAISE_MAX)
		nr = TP_RAISE_MAX;
	dst->xseq = LOAD1(&src->xseq);
	dst->async_head = LOAD1(&src->async_head);
	dst->db_token = LOAD1(&src->db_token);
	dst->result = LOAD1(&src->result);
	dst->nraised = nr;
	memcpy(&dst->rep, &src->rep, sizeof(dst->rep));
	memcpy(dst->raised, src->raised, (size_t)nr * sizeof(dst->raised[0]));
}

/*
 * Write the buffer that is not the current one and make it current with one
 * store (the commit point): state BUF/LEN, or with KEEP the current state;
 * record REC, or when NULL the current record (none when nothing was ever
 * committed). A writer that dies before the bump leaves the current buffer
 * whole.
 */
static void saved_commit(struct tp_region *r, const void *buf, size_t len, bool keep,
			 const struct tp_record *rec)
{
	struct tp_header *h = r->hdr;
	uint64_t seq = atomic_load_explicit(&h->state_seq, memory_order_relaxed);
	struct tp_saved *cur = &h->saved[seq & 1], *next = &h->saved[(seq + 1) & 1];
	/* the previous bump is ordered before these writes (seqlock writer) */
	atomic_thread_fence(memory_order_release);
	if (keep) {
		len = seq != 0 ? LOAD1(&cur->len) : 0;
		if (len > TP_STATE_MAX)
			len = 0;
		buf = cur->state;
	}
	if (len != 0)
		memcpy(next->state, buf, len);
	STORE1(&next->len, (uint32_t)len);
	uint64_t db = seq != 0 ? LOAD1(&cur->rec.db_token) : 0;
	if (rec != NULL)
		record_copy(&next->rec, rec);
	else if (seq != 0)
		record_copy(&next->rec, &cur->rec);
	else
		STORE1(&next->rec.xseq, 0);
	/* the doorbell batch being applied, else the last one applied */
	STORE1(&next->rec.db_token, r->vmm_db_token != 0 ? r->vmm_db_token : db);
	atomic_store_explicit(&h->state_seq, seq + 1, memory_order_release);
}

int tp_state_store(struct tp_region *r, const void *buf, size_t len)
{
	if (len > TP_STATE_MAX || (len != 0 && buf == NULL)) {
		errno = EINVAL;
		return -1;
	}
	struct tp_record *rec = r->vmm_rec;
	r->vmm_rec = NULL; /* committed once, with the first store */
	saved_commit(r, buf, len, false, rec);
	return 0;
}

/* The committed record when it is that of request XSEQ (VMM side), else
 * NULL. */
static const struct tp_record *record_of(const struct tp_region *r, uint64_t xseq)
{
	uint64_t seq = atomic_load_explicit(&r->hdr->state_seq, memory_order_acquire);
	if (seq == 0 || xseq == 0)
		return NULL;
	const struct tp_record *rec = &r->hdr->saved[seq & 1].rec;
	return LOAD1(&rec->xseq) == xseq ? rec : NULL;
}

/* Commit REC with the role's state: through SAVE (tp_state_store takes
 * r->vmm_rec), or with the previous state when SAVE stored nothing. */
static void record_commit(struct tp_region *r, struct tp_record *rec, void (*save)(void *arg),
			  void *arg)
{
	r->vmm_rec = rec;
	if (save != NULL)
		save(arg);
	if (r->vmm_rec != NULL) {
		r->vmm_rec = NULL;
		saved_commit(r, NULL, 0, true, rec);
	}
}

int tp_vmm_db_begin(struct tp_region *r, const void *desc, size_t len, uint64_t n)
{
	if (len > TP_DB_DESC_MAX || n == 0 || (len != 0 && desc == NULL)) {
		errno = EINVAL;
		return -1;
	}
	struct tp_header *h = r->hdr;
	/* note first, count last: a note with db_n != 0 is whole */
	atomic_store_explicit(&h->db_n, 0, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	uint64_t token = LOAD1(&h->db_token) + 1;
	memset(h->db_desc, 0, sizeof(h->db_desc));
	if (len != 0)
		memcpy(h->db_desc, desc, len);
	STORE1(&h->db_token, token);
	atomic_store_explicit(&h->db_n, n, memory_order_release);
	r->vmm_db_token = token;
	return 0;
}

void tp_vmm_db_end(struct tp_region *r)
{
	uint64_t token = r->vmm_db_token;
	if (token == 0)
		return;
	uint64_t seq = atomic_load_explicit(&r->hdr->state_seq, memory_order_relaxed);
	if (seq == 0 || LOAD1(&r->hdr->saved[seq & 1].rec.db_token) != token)
		saved_commit(r, NULL, 0, true, NULL); /* nothing stored: commit it */
	r->vmm_db_token = 0;
	atomic_store_explicit(&r->hdr->db_n, 0, memory_order_release);
}

bool tp_vmm_db_pending(struct tp_region *r, void *desc, size_t cap, uint64_t *n)
{
	const struct tp_header *h = r->hdr;
	uint64_t count = atomic_load_explicit(&h->db_n, memory_order_acquire);
	if (count == 0)
		return false;
	uint64_t seq = atomic_load_explicit(&h->state_seq, memory_order_acquire);
	uint64_t token = LOAD1(&h->db_token);
	if (seq != 0 && LOAD1(&h->saved[seq & 1].rec.db_token) == token)
		return false; /* committed: its death fell after the commit */
	memcpy(desc, h->db_desc, cap < TP_DB_DESC_MAX ? cap : TP_DB_DESC_MAX);
	*n = count;
	r->vmm_db_token = token; /* the successor's commit applies it */
	return true;
}

void tp_vmm_progress(struct tp_region *r)
{
	atomic_store_explicit(&r->hdr->progress, ++r->vmm_progress, memory_order_release);
}

uint64_t tp_vmm_seq(const struct tp_region *r)
{
	return r->vmm_xseq;
}

bool tp_main_progress_stalled(struct tp_region *r, bool doorbell_pending, uint64_t now_ns,
			      uint64_t timeout_ns)
{
	for (unsigned i = 0; i < r->nslots; i++)
		if (atomic_load_explicit(&r->main[i].pending, memory_order_relaxed)) {
			r->watch_since = 0; /* its waiter's deadline governs */
			return false;
		}
	if (!doorbell_pending && tp_main_posted_empty(r)) {
		r->watch_since = 0;
		return false;
	}
	uint64_t prog = atomic_load_explicit(&r->hdr->progress, memory_order_acquire);
	if (r->watch_since == 0 || prog != r->watch_progress) {
		r->watch_progress = prog;
		r->watch_since = now_ns ? now_ns : 1;
		return false;
	}
	return now_ns - r->watch_since >= timeout_ns;
}

/* ---- VMM side ------------------------------------------------------------------ */

static void region_resume(struct tp_region *r);

int tp_region_attach(struct tp_region *r, int memfd, int vmm_efd, int async_efd)
{
	region_clear(r);
	struct stat st;
	if (fstat(memfd, &st) != 0)
		return -1;
	size_t max = tp_region_size(TP_SLOTS_MAX);
	if (st.st_size < (off_t)sizeof(struct tp_header) || st.st_size > (off_t)max) {
		errno = EPROTO;
		return -1;
	}
	size_t size = (size_t)st.st_size;
	void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (base == MAP_FAILED)
		return -1;
	struct tp_header *h = base;
	uint32_t nslots = LOAD1(&h->nslots);
	if (LOAD1(&h->magic) != TP_MAGIC || LOAD1(&h->version) != TP_VERSION || nslots == 0 ||
	    nslots > TP_SLOTS_MAX || tp_region_size(nslots) != size || LOAD1(&h->size) != size) {
		munmap(base, size);
		errno = EPROTO;
		return -1;
	}
	r->size = size;
	region_pointers(r, base, nslots);
	r->memfd = memfd;
	r->vmm_efd = vmm_efd;
	r->async_efd = async_efd;
	/* differs from the doorbell: the first tp_vmm_wait returns at once */
	r->vmm_seen = atomic_load(&h->doorbell) - 1;
	r->vmm_progress = atomic_load(&h->progress);
	tp_vmm_progress(r); /* a successor: the heartbeat's count starts again */
	region_resume(r);
	return 0;
}

void tp_region_detach(struct tp_region *r)
{
	region_close(r);
}

/* An event as the VMM side accepts it (the main side checked it too). */
static bool event_consistent(const struct vmmux_event *ev, size_t *bytes)
{
	/* control requests (control.h) are answered by the VMM library */
	return (ev->type < VMMUX_EV__COUNT || ev->type == TP_CTL_RESET ||
		ev->type == TP_CTL_RESTORE || ev->type == TP_CTL_SYNC) &&
	       event_bytes(ev, bytes);
}

/* Raises of a posted event's handler go to the async ring, waiting a
 * bounded time for room. */
static void push_raised(struct tp_region *r, const struct vmmux_event *raised, uint32_t n)
{
	for (uint32_t k = 0; k < n; k++) {
		for (int waited = 0; tp_vmm_async_push(r, &raised[k]) != 0; waited++) {
			if (waited >= TP_ASYNC_WAIT_MS)
				return; /* the main loop does not drain: give up */
			efd_signal(r->async_efd);
			poll(NULL, 0, 1);
		}
	}
}

/* A posted entry applied and recorded by a predecessor (REC): push the
 * raised events that the async ring's head shows it did not push. */
static void posted_from_record(struct tp_region *r, const struct tp_record *rec)
{
	struct tp_record copy;
	record_copy(&copy, rec);
	uint64_t head = atomic_load_explicit(&r->async->head, memory_order_relaxed);
	uint64_t pushed = head - copy.async_head;
	if (pushed < copy.nraised)
		push_raised(r, copy.raised + pushed, copy.nraised - (uint32_t)pushed);
}

/* Consume the entry at POS: tail first (the commit of its consumption),
 * then the release to producers; ring_repair finishes a death in between. */
static void posted_consume(struct tp_ring *q, struct tp_ring_entry *e, uint64_t pos)
{
	atomic_store_explicit(&q->tail, pos + 1, memory_order_release);
	atomic_store_explicit(&e->seq, pos + TP_RING_ENTRIES, memory_order_release);
}

/* Publish REC as the reply of slot S (BUSY): reply, result, raised events,
 * reply_seq, then DONE, waking a sleeping waiter. */
static void slot_reply(struct tp_slot *s, uint32_t seq, const struct tp_record *rec)
{
	memcpy(&s->rep, &rec->rep, sizeof(rec->rep));
	memcpy(s->raised, rec->raised, (size_t)rec->nraised * sizeof(rec->raised[0]));
	STORE1(&s->result, rec->result);
	STORE1(&s->nraised, rec->nraised);
	STORE1(&s->reply_seq, seq);
	atomic_store(&s->state, TP_DONE);
	if (atomic_load(&s->waiting))
		futex_wake(&s->state, 1);
}

/*
 * A successor's first look at the region (tp_region_attach), before it
 * handles anything: the one request that its predecessor may have applied
 * and committed without finishing (a VMM finishes each request before it
 * takes the next) is finished now, from the record, before a new commit
 * replaces the record. A slot: its reply published. A posted entry: its
 * raised events that did not reach the async ring pushed, then consumed.
 */
static void region_resume(struct tp_region *r)
{
	uint64_t seq = atomic_load_explicit(&r->hdr->state_seq, memory_order_acquire);
	uint64_t recx = seq != 0 ? LOAD1(&r->hdr->saved[seq & 1].rec.xseq) : 0;
	if (recx != 0 && !(recx & TP_SEQ_POSTED)) {
		for (unsigned i = 0; i < r->nslots; i++) {
			struct tp_slot *s = &r->slots[i];
			uint32_t st = atomic_load(&s->state);
			if ((st != TP_REQ && st != TP_BUSY) || LOAD1(&s->xseq) != recx ||
			    !atomic_compare_exchange_strong(&s->state, &st, TP_BUSY))
				continue;
			const struct tp_record *done = record_of(r, recx);
			if (done == NULL) { /* cannot happen: nobody else commits */
				atomic_store(&s->state, TP_REQ);
				break;
			}
			struct tp_record rec;
			record_copy(&rec, done);
			slot_reply(s, LOAD1(&s->seq), &rec);
			break;
		}
	}
	struct tp_ring *q = r->posted;
	ring_repair(q, false);
	uint64_t pos = atomic_load_explicit(&q->tail, memory_order_relaxed);
	struct tp_ring_entry *e = &q->e[pos & (TP_RING_ENTRIES - 1)];
	if (atomic_load_explicit(&e->seq, memory_order_acquire) != pos + 1)
		return;
	const struct tp_record *rec = record_of(r, TP_SEQ_POSTED | pos);
	if (rec == NULL)
		return; /* not applied: served as usual */
	posted_from_record(r, rec);
	posted_consume(q, e, pos);
}

static unsigned serve_posted(struct tp_region *r, tp_handler_fn handler, void *arg,
			     void (*save)(void *arg))
{
	struct tp_ring *q = r->posted;
	uint64_t pos = atomic_load_explicit(&q->tail, memory_order_relaxed);
	unsigned n = 0;
	for (unsigned k = 0; k < TP_RING_ENTRIES; k++) {
		struct tp_ring_entry *e = &q->e[pos & (TP_RING_ENTRIES - 1)];
		uint64_t seq = atomic_load_explicit(&e->seq, memory_order_acquire);
		if (seq != pos + 1)
			break; /* empty, or the producer has not published yet */
		uint64_t xseq = TP_SEQ_POSTED | pos;
		const struct tp_record *done = record_of(r, xseq);
		if (done != NULL) {
			posted_from_record(r, done); /* applied before a crash */
		} else {
			struct vmmux_event ev;
			memcpy(&ev, &e->ev, sizeof(ev));
			ev.data = NULL;
			size_t bytes;
			if (event_consistent(&ev, &bytes) && bytes == 0) {
				struct tp_record rec;
				rec.xseq = xseq;
				rec.rep = (struct vmmux_reply){.action = VMMUX_ACT_DONE};
				rec.nraised = 0;
				r->vmm_xseq = xseq;
				rec.result = handler(arg, &ev, &rec.rep, rec.raised, &rec.nraised);
				r->vmm_xseq = 0;
				if (rec.nraised > TP_RAISE_MAX)
					rec.nraised = TP_RAISE_MAX;
				for (uint32_t i = 0; i < rec.nraised; i++)
					rec.raised[i].data = NULL;
				rec.async_head =
				    atomic_load_explicit(&r->async->head, memory_order_relaxed);
				record_commit(r, &rec, save, arg);
				push_raised(r, rec.raised, rec.nraised);
			}
		}
		posted_consume(q, e, pos);
		pos++;
		n++;
		tp_vmm_progress(r);
	}
	return n;
}

/*
 * Apply every posted entry at a position before HEAD (the ring's head read
 * after a slot was seen in REQ), so that a request is served after the
 * posted writes its vCPU published before it: a write that found the ring
 * full, or the VMM down, and went synchronously does not overtake them.
 * Entries published later are applied too (serve_posted takes what is
 * there). An entry a producer reserved and has not yet published (a vCPU
 * thread between its head CAS and its release store) is waited for, yielding,
 * at most TP_PUBLISH_WAIT_NS; HEAD comes from the main side, and a value
 * more than a ring ahead of tail is not waited for.
 */
static unsigned serve_posted_before(struct tp_region *r, uint64_t head, tp_handler_fn handler,
				    void *arg, void (*save)(void *arg))
{
	struct tp_ring *q = r->posted;
	unsigned n = 0;
	uint64_t end = 0;
	for (;;) {
		uint64_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
		int64_t ahead = (int64_t)(head - tail);
		if (ahead <= 0 || ahead > (int64_t)TP_RING_ENTRIES)
			return n;
		unsigned m = serve_posted(r, handler, arg, save);
		n += m;
		if (m != 0)
			continue;
		uint64_t now = tp_now_ns();
		if (end == 0)
			end = now + TP_PUBLISH_WAIT_NS;
		else if (now >= end)
			return n;
		sched_yield();
	}
}

static void serve_slot(struct tp_region *r, struct tp_slot *s, tp_handler_fn handler, void *arg,
		       void (*save)(void *arg))
{
	struct vmmux_event ev;
	memcpy(&ev, &s->ev, sizeof(ev));
	uint32_t seq = LOAD1(&s->seq);
	uint64_t xseq = LOAD1(&s->xseq);
	struct tp_record rec;
	size_t bytes;
	const struct tp_record *done = record_of(r, xseq);
	if (done != NULL) {
		/* applied and committed by a predecessor that died before
		 * replying; an INS's bytes are still in the slot, where its
		 * handler wrote them */
		record_copy(&rec, done);
	} else {
		rec.xseq = xseq;
		rec.async_head = 0;
		rec.rep = (struct vmmux_reply){.action = VMMUX_ACT_DONE};
		rec.nraised = 0;
		if (!event_consistent(&ev, &bytes)) {
			rec.result = -EINVAL; /* not applied: nothing to record */
		} else {
			ev.data = bytes != 0 ? s->data : NULL;
			r->vmm_xseq = xseq;
			rec.result = handler(arg, &ev, &rec.rep, rec.raised, &rec.nraised);
			r->vmm_xseq = 0;
			if (rec.nraised > TP_RAISE_MAX)
				rec.nraised = TP_RAISE_MAX;
			for (uint32_t k = 0; k < rec.nraised; k++)
				rec.raised[k].data = NULL;
			record_commit(r, &rec, save, arg);
		}
	}
	slot_reply(s, seq, &rec);
	tp_vmm_progress(r);
}

unsigned tp_vmm_serve(struct tp_region *r, tp_handler_fn handler, void *arg,
		      void (*save)(void *arg))
{
	/* Requests rung after this load change the doorbell again, so the
	 * next tp_vmm_wait returns at once; those before it are seen below. */
	r->vmm_seen = atomic_load(&r->hdr->doorbell);
	tp_vmm_progress(r);
	unsigned n = serve_posted(r, handler, arg, save);
	for (unsigned i = 0; i < r->nslots; i++) {
		struct tp_slot *s = &r->slots[i];
		uint32_t st = TP_REQ;
		if (atomic_load(&s->state) != TP_REQ)
			continue;
		/* the posted writes published before this request first (a
		 * vCPU's own are: it finished posting before it stored REQ) */
		n += serve_posted_before(r, atomic_load(&r->posted->head), handler, arg, save);
		if (!atomic_compare_exchange_strong(&s->state, &st, TP_BUSY))
			continue;
		serve_slot(r, s, handler, arg, save);
		n++;
	}
	return n;
}

/* Poll the extras without waiting; their bits. */
static unsigned poll_extras(const int *extra, unsigned nextra)
{
	struct pollfd p[31];
	for (unsigned k = 0; k < nextra; k++)
		p[k] = (struct pollfd){.fd = extra[k], .events = POLLIN};
	unsigned mask = 0;
	if (poll(p, nextra, 0) > 0)
		for (unsigned k = 0; k < nextra; k++)
			if (p[k].revents & (POLLIN | POLLHUP | POLLERR))
				mask |= 1u << (k + 1);
	return mask;
}

unsigned tp_vmm_wait(struct tp_region *r, const int *extra, unsigned nextra, int timeout_ms)
{
	struct tp_header *h = r->hdr;
	if (extra == NULL || nextra > 31)
		nextra = extra == NULL ? 0 : 31;
	uint32_t seen = r->vmm_seen;
	bool rung = atomic_load_explicit(&h->doorbell, memory_order_acquire) != seen;

	uint64_t spin = atomic_load_explicit(&h->spin_ns, memory_order_relaxed);
	if (spin > TP_SPIN_NS_MAX)
		spin = TP_SPIN_NS_MAX;
	uint32_t cpu = this_cpu();
	publish_cpu(&h->vmm_cpu, cpu);
	if (cpu != TP_CPU_UNKNOWN &&
	    atomic_load_explicit(&h->main_cpu, memory_order_relaxed) == cpu)
		spin = 0; /* the caller just woken needs this CPU to go on */
	if (!rung && spin != 0) {
		uint64_t end = tp_now_ns() + spin;
		for (unsigned n = 0;; n++) {
			if (atomic_load_explicit(&h->doorbell, memory_order_acquire) != seen) {
				rung = true;
				break;
			}
			if (n % TP_CLOCK_EVERY == TP_CLOCK_EVERY - 1 && tp_now_ns() >= end)
				break;
			cpu_relax();
		}
	}
	if (!rung) {
		atomic_store(&h->vmm_sleeping, 1);
		rung = atomic_load(&h->doorbell) != seen;
		if (rung)
			atomic_store(&h->vmm_sleeping, 0);
	}
	if (rung) {
		unsigned mask = 1;
		if (nextra != 0) {
			uint64_t now = tp_now_ns();
			if (now - r->vmm_extra_ns >= TP_EXTRA_POLL_NS) {
				r->vmm_extra_ns = now;
				mask |= poll_extras(extra, nextra);
			}
		}
		return mask;
	}

	struct pollfd p[32];
	p[0] = (struct pollfd){.fd = r->vmm_efd, .events = POLLIN};
	for (unsigned k = 0; k < nextra; k++)
		p[k + 1] = (struct pollfd){.fd = extra[k], .events = POLLIN};
	int rc = poll(p, nextra + 1, timeout_ms);
	atomic_store(&h->vmm_sleeping, 0);
	unsigned mask = 0;
	if (rc > 0) {
		if (p[0].revents & POLLIN)
			efd_drain(r->vmm_efd);
		for (unsigned k = 0; k < nextra; k++)
			if (p[k + 1].revents & (POLLIN | POLLHUP | POLLERR))
				mask |= 1u << (k + 1);
	}
	r->vmm_extra_ns = tp_now_ns();
	if (atomic_load(&h->doorbell) != seen)
		mask |= 1;
	return mask;
}

int tp_vmm_async_push(struct tp_region *r, const struct vmmux_event *ev)
{
	struct tp_async_ring *q = r->async;
	uint64_t head = atomic_load_explicit(&q->head, memory_order_relaxed);
	uint64_t tail = atomic_load_explicit(&q->tail, memory_order_acquire);
	if (head - tail >= TP_ASYNC_ENTRIES)
		return -1;
	struct vmmux_event copy = *ev;
	copy.data = NULL;
	memcpy(&q->e[head & (TP_ASYNC_ENTRIES - 1)], &copy, sizeof(copy));
	atomic_store(&q->head, head + 1);
	if (atomic_load(&r->hdr->main_sleeping))
		efd_signal(r->async_efd);
	return 0;
}
