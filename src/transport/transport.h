/*
 * transport.h: the per-exit path between the main VMM and one parallel VMM,
 * through shared memory. No socket message per event.
 *
 * One region (a memfd shared by the two processes) per parallel VMM holds:
 *   - a header: magic, version, sizes, the doorbell word, the sleep flags,
 *     the spin budget, and the role's saved state (double-buffered);
 *   - one request slot per vCPU (plus one for the host's own events) for
 *     synchronous events: the vCPU thread writes the event, rings, and waits
 *     for the reply in the same slot;
 *   - a posted ring (multi-producer, single-consumer, bounded) for writes
 *     whose route is marked posted: the vCPU thread enqueues and goes on;
 *   - an async ring (single producer: the VMM; single consumer: the main
 *     loop) for events the VMM raises outside a request (input arrived).
 *
 * Doorbells. Each side spins on shared memory for at most spin_ns, then
 * sleeps: the VMM in poll(2) on its doorbell eventfd (so that it can also
 * poll its input descriptor), a vCPU thread in a futex wait on its slot's
 * state word. A waker makes a system call only when the other side has
 * announced that it sleeps (its flag, set before it re-checks and sleeps;
 * both sides order flag and data with sequentially consistent operations).
 * Neither side spins when the other last ran on the same CPU (a hint each
 * side publishes in the header): there a spin would only delay the side it
 * waits for, by the whole budget.
 *
 * Trust. The region is writable by the parallel VMM, which is untrusted.
 * Every read the main side makes of it is bounds-checked and validated
 * (states, counts, sizes, actions); a value out of its domain is a protocol
 * error, which the caller treats as a VMM fault. Nothing the VMM writes can
 * make the main side loop forever, index out of bounds, or block beyond its
 * deadline. The main side never follows a pointer stored in the region.
 *
 * Exactly once. A slot goes IDLE -> REQ (main) -> BUSY (VMM: its handler
 * started) -> DONE (VMM: reply written) -> IDLE (main). A VMM that dies
 * leaves REQ or BUSY slots behind; the region outlives the process, so a
 * restarted instance finds them and handles them: nothing is lost. Every
 * request carries a 64-bit sequence number (slots: from one counter per
 * region, assigned by the main side; posted entries: TP_SEQ_POSTED | ring
 * position), unique for the life of the region. The VMM side commits, with
 * the role's saved state and in the same single store (the state_seq bump
 * of the double-buffered saved state), a record of the last request it
 * applied: its number, reply, result and raised events. A request found
 * again after a crash whose number equals the committed record's is
 * answered from the record and not handed to the handler: applied once.
 * tp_main_recover hands a successor the requests whose handler may have
 * started with VMMUX_EVF_REDELIVERED in their flags, for roles that make
 * their external effects idempotent by number (vmmux_event_seq).
 * The order of the VMM's writes for one request (slot or posted entry):
 *   1. BUSY (slot; CAS from REQ): the handler may start;
 *   2. the handler runs, changing only the process's private memory (and
 *      the role's external effects: guest memory, descriptors, irqfds);
 *   3. role state + record into the buffer that is not the current one;
 *   4. state_seq bumped: the commit point of both state and record;
 *   5. slot: reply, reply_seq, then DONE. Posted: raised events pushed on
 *      the async ring, then tail moved past the entry, then the entry
 *      released to producers (its Vyukov sequence, pos + TP_RING_ENTRIES).
 * A death before 4 loses the private effects of 2 with the process: the
 * successor restores the state of the previous commit and applies the
 * request once. A death after 4 leaves the record: the successor answers
 * from it (posted: pushes the raised events the async ring's head shows
 * missing, TP_SEQ_POSTED entries record the head before their pushes), in
 * tp_region_attach, before it applies anything else: a VMM finishes each
 * request before it takes the next, so only the request of the committed
 * record can be applied and unfinished, and a new commit would replace the
 * record.
 * A death between the tail store and the release leaves an entry consumed
 * but not free: tp_main_recover (and the successor's tp_region_attach)
 * release it. Effects outside the saved state and the reply (guest-memory
 * writes, output descriptors, irqfd pulses made in 2) are repeated when the
 * death falls between 2 and 4: at least once for those.
 *
 * Heartbeat. The VMM side bumps the header's progress counter at every
 * serve and after every request, posted entry or doorbell batch it handles
 * (tp_vmm_progress); tp_main_progress_stalled tells a VMM that has work
 * waiting (posted entries, doorbell rings) and has not moved for its timeout.
 *
 * What the main side keeps to itself. struct tp_region holds, outside the
 * shared region, what the main side must not take from the VMM: the slot
 * count, the spin budget, for each slot whether a request is pending and its
 * numbers (reply and exactly-once), the exactly-once counter, the async
 * ring's tail and the heartbeat's last look. The copies in the region are for the
 * VMM to read.
 *
 * System calls of the VMM side: futex (wake), poll, read and write on the
 * two eventfds and on its extra descriptors, clock_gettime (vDSO).
 */
#ifndef VMMUX_TRANSPORT_TRANSPORT_H
#define VMMUX_TRANSPORT_TRANSPORT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vmmux/vmmux.h>

#define TP_MAGIC	 0x786d6d76u /* "vmmx" */
#define TP_VERSION	 2u
#define TP_SLOT_DATA	 4096u	  /* string I/O bytes per slot (one kvm_run page) */
#define TP_RAISE_MAX	 16u	  /* events raised in one reply */
#define TP_RING_ENTRIES	 256u	  /* posted ring, a power of two */
#define TP_ASYNC_ENTRIES 64u	  /* async ring, a power of two */
#define TP_STATE_MAX	 8192u	  /* saved role state, bytes */
#define TP_SLOTS_MAX	 66u	  /* CPUS_MAX vCPUs + the host's + the compiled routes' */
#define TP_DOORBELLS_MAX 16u	  /* = HS_DOORBELLS_MAX */
#define TP_SPIN_NS_MAX	 1000000u /* the longest spin budget (1 ms) */
#define TP_CPU_UNKNOWN	 0xffffffffu
#define TP_DB_DESC_MAX	 64u /* bytes of a doorbell's description (tp_vmm_db_begin) */
/* Sequence numbers of posted entries: this bit | the entry's ring position. */
#define TP_SEQ_POSTED (1ull << 63)

/* Slot states (the futex word). */
enum tp_slot_state {
	TP_IDLE = 0,
	TP_REQ = 1,  /* main wrote a request */
	TP_BUSY = 2, /* the VMM's handler is running */
	TP_DONE = 3, /* the VMM wrote the reply */
};

struct tp_slot {
	_Atomic uint32_t state;	  /* enum tp_slot_state; futex word */
	_Atomic uint32_t waiting; /* main's waiter sleeps on state: wake it */
	uint32_t seq;		  /* request number, echoed in reply_seq */
	uint32_t reply_seq;
	int32_t result;	       /* the handler's return (< 0: failed) */
	uint32_t nraised;      /* <= TP_RAISE_MAX */
	uint64_t xseq;	       /* the request's exactly-once sequence number */
	struct vmmux_event ev; /* ev.data is meaningless here: see data[] */
	struct vmmux_reply rep;
	struct vmmux_event raised[TP_RAISE_MAX];
	uint8_t data[TP_SLOT_DATA]; /* string I/O: OUTS bytes in, INS bytes out */
} __attribute__((aligned(64)));

/* An entry at position pos: seq == pos free for producers, pos + 1
 * published, pos + TP_RING_ENTRIES consumed and free for the next lap. */
struct tp_ring_entry {
	_Atomic uint64_t seq; /* Vyukov's bounded-queue sequence */
	struct vmmux_event ev;
};

struct tp_ring {
	_Atomic uint64_t head; /* next position producers reserve */
	char pad0[56];
	/* next position the consumer reads: moved past an entry before the
	 * entry is released, so that tail is the consumption's commit point */
	_Atomic uint64_t tail;
	char pad1[56];
	struct tp_ring_entry e[TP_RING_ENTRIES];
} __attribute__((aligned(64)));

struct tp_async_ring {
	_Atomic uint64_t head; /* written by the VMM */
	char pad0[56];
	_Atomic uint64_t tail; /* written by the main loop (for the VMM to read) */
	char pad1[56];
	struct vmmux_event e[TP_ASYNC_ENTRIES];
} __attribute__((aligned(64)));

/* The last request a VMM applied, committed with the role's state. */
struct tp_record {
	uint64_t xseq;	     /* its sequence number; 0: none */
	uint64_t async_head; /* posted: the async ring's head before its raises */
	uint64_t db_token;   /* the last doorbell batch applied (tp_vmm_db_begin) */
	int32_t result;
	uint32_t nraised; /* <= TP_RAISE_MAX */
	struct vmmux_reply rep;
	struct vmmux_event raised[TP_RAISE_MAX];
};

/* One buffer of the saved state. */
struct tp_saved {
	uint32_t len; /* bytes of state, <= TP_STATE_MAX */
	uint32_t pad;
	struct tp_record rec;
	uint8_t state[TP_STATE_MAX];
};

struct tp_header {
	uint32_t magic;
	uint32_t version;
	uint32_t nslots;
	uint32_t reserved;
	uint64_t size;		       /* bytes of the whole region */
	_Atomic uint64_t spin_ns;      /* how long a side spins before it sleeps */
	_Atomic uint32_t doorbell;     /* bumped by main for every request */
	_Atomic uint32_t vmm_sleeping; /* the VMM sleeps (or is about to) */
	/* the main loop sleeps on the async eventfd; 1 from creation, so that a
	 * main loop that never calls tp_main_async_sleep is always woken */
	_Atomic uint32_t main_sleeping;
	/* CPU hints (sched_getcpu; TP_CPU_UNKNOWN until set): a side does not
	 * spin while the other side last ran on its own CPU, where spinning
	 * would only keep the other side from running */
	_Atomic uint32_t main_cpu; /* CPU of the latest main-side caller */
	_Atomic uint32_t vmm_cpu;  /* CPU the VMM last waited on */
	uint32_t pad;
	/* doorbell rings the VMM read from each of its doorbells' eventfds
	 * (handshake.h, struct hs_doorbell); written by the VMM, for statistics */
	_Atomic uint64_t doorbell_rings[TP_DOORBELLS_MAX];
	/* heartbeat: bumped by the VMM (tp_vmm_progress); its own line */
	_Atomic uint64_t progress __attribute__((aligned(64)));
	/* the doorbell batch the VMM is handling (tp_vmm_db_begin); VMM side */
	uint64_t db_token;     /* its number (0: none yet) */
	_Atomic uint64_t db_n; /* rings read and not yet committed (0: none) */
	uint8_t db_desc[TP_DB_DESC_MAX];
	/* saved role state and exactly-once record: buffer state_seq & 1 is
	 * the newest complete one (0: none yet); written by the VMM */
	_Atomic uint64_t state_seq;
	struct tp_saved saved[2];
} __attribute__((aligned(64)));

/* The main side's own record of one slot (never in the shared region). */
struct tp_main_slot {
	_Atomic uint32_t pending; /* a request was sent and not yet collected */
	_Atomic uint32_t seq;	  /* its number (what reply_seq must echo) */
	uint64_t xseq;		  /* its exactly-once sequence number */
	/* seq of the last request whose slot tp_main_call finished writing (its
	 * numbers, then REQ): while armed != seq the call is still storing
	 * them, and tp_main_recover leaves the slot to it */
	_Atomic uint32_t armed;
};

/* The region, as each process maps it. Everything after async_efd is
 * private to the process that holds this struct. */
struct tp_region {
	struct tp_header *hdr;
	struct tp_slot *slots; /* nslots */
	struct tp_ring *posted;
	struct tp_async_ring *async;
	size_t size;
	int memfd;
	int vmm_efd;   /* eventfd: main -> VMM doorbell (the VMM polls it) */
	int async_efd; /* eventfd: VMM -> main loop (async raises) */

	unsigned nslots;	   /* as created, or as checked by tp_region_attach */
	_Atomic uint64_t spin_ns;  /* main side: its spin budget (not the header's) */
	uint64_t async_tail;	   /* main side: next async entry to take */
	uint32_t vmm_seen;	   /* VMM side: doorbell when the last serve began */
	uint64_t vmm_extra_ns;	   /* VMM side: when tp_vmm_wait last polled extras */
	uint64_t vmm_xseq;	   /* VMM side: number of the request being handled */
	uint64_t vmm_progress;	   /* VMM side: last value stored in hdr->progress */
	struct tp_record *vmm_rec; /* VMM side: the record tp_state_store commits */
	uint64_t vmm_db_token;	   /* VMM side: the batch the next commit applies */
	/* main side: last sequence number given; written by every delivering
	 * thread, so on a line of its own (not the read-mostly fields') */
	char xseq_pad0[64];
	_Atomic uint64_t xseq_next;
	char xseq_pad1[56];
	uint64_t watch_progress; /* main side: progress when last looked at */
	uint64_t watch_since;	 /* main side: since when it has not moved (0: idle) */
	struct tp_main_slot main[TP_SLOTS_MAX];
};

#ifdef TP_TEST_HOOKS
/* Unit tests only: called at named points of the main side's calls, to
 * run a chosen interleaving of two threads. */
enum tp_test_point {
	TP_PT_CALL_PENDING, /* tp_main_call: pending set, numbers not yet stored */
	TP_PT_RECOVER_REARM /* tp_main_recover: numbers read, slot not yet written */
};
extern void (*tp_test_hook)(enum tp_test_point pt, struct tp_region *r, unsigned slot);
#endif

/* Byte offsets of the parts of a region of NSLOTS slots (each 64-byte
 * aligned); both sides compute them the same way. */
size_t tp_slots_offset(void);
size_t tp_posted_offset(unsigned nslots);
size_t tp_async_offset(unsigned nslots);

/* Bytes a region of NSLOTS slots needs (page-aligned); 0 when NSLOTS is 0 or
 * more than TP_SLOTS_MAX. */
size_t tp_region_size(unsigned nslots);

/* ---- main side ---------------------------------------------------------- */

/*
 * Create a region with NSLOTS slots (1..TP_SLOTS_MAX; memfd sealed against
 * growing and shrinking, both eventfds close-on-exec and non-blocking),
 * initialised: every slot IDLE, rings empty, spin budget SPIN_NS (at most
 * TP_SPIN_NS_MAX). Returns 0, or -1 with errno (EINVAL for a bad NSLOTS or
 * SPIN_NS).
 */
int tp_region_create(struct tp_region *r, unsigned nslots, uint64_t spin_ns);
/* Unmap and close everything (the VMM's mapping stays valid until it
 * unmaps). */
void tp_region_destroy(struct tp_region *r);

/* Change the spin budget of both sides at run time (at most TP_SPIN_NS_MAX;
 * larger values are clamped). */
void tp_set_spin_ns(struct tp_region *r, uint64_t spin_ns);

/* Results of the main side's calls. */
enum tp_result {
	TP_OK = 0,
	TP_TIMEOUT,  /* deadline passed without a reply */
	TP_ABORTED,  /* *abort became true while waiting (the VMM died) */
	TP_PROTOCOL, /* the VMM wrote something out of its domain */
	TP_FULL,     /* posted ring full: use the synchronous path */
	TP_INVAL,    /* the caller's own mistake, nothing sent: slot out of
			range, a request already pending on it (tp_main_call) or
			none (tp_main_wait), string I/O without data or larger
			than TP_SLOT_DATA */
};

/*
 * Synchronous request on slot SLOT: copy EV (and for an OUTS its count*size
 * bytes from ev->data; at most TP_SLOT_DATA) into the slot, ring the
 * doorbell, wait for the reply: spin for spin_ns, then futex-wait in slices
 * no longer than 10 ms, until DONE, DEADLINE_NS (CLOCK_MONOTONIC) or *ABORT.
 * A request the VMM has not started (REQ) while posted writes are queued,
 * which the VMM applies first (tp_vmm_serve), gets its window again at the
 * deadline when the VMM's progress counter moved during the last one, at
 * most 8 times: a VMM busy with the writes queued before the request is not
 * taken for hung.
 * On TP_OK: *rep, *result, the raised events (copied to RAISED, at most
 * TP_RAISE_MAX, count in *nraised, each with data NULL) and, for an INS, the
 * bytes copied back to ev->data; the slot is IDLE again. On TP_TIMEOUT or
 * TP_ABORTED the slot stays REQ/BUSY (the request is still pending: a
 * restarted VMM will handle it; call tp_main_wait again). The reply is
 * checked: reply_seq, nraised, state values; never trusted further. On
 * TP_PROTOCOL the request also stays pending (the caller treats the VMM as
 * failed; tp_main_recover re-arms the slot for a successor, or
 * tp_main_cancel drops it). RAISED and NRAISED may be NULL (raised events
 * are then dropped). String I/O (VMMUX_EVF_STRING) needs type IO, size 1, 2,
 * 4 or 8, count >= 1, count*size <= TP_SLOT_DATA and data; else TP_INVAL.
 * ev->data never reaches the region. The request gets the next sequence
 * number of the region (slot xseq; tp_main_seq tells it). One thread per
 * slot at a time. An
 * abort can take up to one 10 ms slice to be seen by a sleeping waiter when
 * it races with its going to sleep.
 */
enum tp_result tp_main_call(struct tp_region *r, unsigned slot, struct vmmux_event *ev,
			    struct vmmux_reply *rep, int32_t *result, struct vmmux_event *raised,
			    uint32_t *nraised, uint64_t deadline_ns, const _Atomic bool *abort);

/* Wait again for a request that tp_main_call left pending (same outputs; EV
 * must be the same event, its data where INS bytes go). */
enum tp_result tp_main_wait(struct tp_region *r, unsigned slot, struct vmmux_event *ev,
			    struct vmmux_reply *rep, int32_t *result, struct vmmux_event *raised,
			    uint32_t *nraised, uint64_t deadline_ns, const _Atomic bool *abort);

/* Enqueue a posted event (no string data: a VMMUX_EVF_STRING event is
 * TP_INVAL). TP_OK or TP_FULL, never blocks (a ring the VMM corrupted reads
 * as full). Rings the doorbell. Safe from several threads at once. Events
 * that the VMM's handler raises while handling a posted event reach the
 * main loop through the async ring. */
enum tp_result tp_main_post(struct tp_region *r, const struct vmmux_event *ev);

/* True when every posted event has been consumed by the VMM (its handler
 * returned). Reads what the VMM writes: a hint for draining, not a proof. */
bool tp_main_posted_empty(const struct tp_region *r);

/* Wake every waiter of every slot (after the VMM died: they see *abort). */
void tp_main_wake_all(struct tp_region *r);

/* The sequence number of SLOT's pending request (0 when none). */
uint64_t tp_main_seq(const struct tp_region *r, unsigned slot);

/*
 * After the VMM died and before its successor starts: set the header's
 * fields that the main side owns (magic, version, sizes, spin budget, sleep
 * flag and CPU hints) back to its own values, whatever the dead VMM wrote
 * there; count the slots left
 * BUSY (their handler may have run: the successor answers them from the
 * record when the handler's commit happened, else applies them) and set
 * them back to REQ with VMMUX_EVF_REDELIVERED in their event's flags and
 * their sequence number restored; REQ slots stay as they are. The posted
 * ring is made consistent: an entry behind tail that a consumer died before
 * releasing is released, and a published entry at tail gets
 * VMMUX_EVF_REDELIVERED (its handler may have started). Returns the
 * number of BUSY slots; *pending (may be NULL) gets the number of pending
 * requests. Slots are judged by the main side's own record: a pending
 * slot that the VMM left in any state it should not have (IDLE, out of
 * range, DONE with a reply that fails the checks) is set back to REQ and
 * counted like a BUSY one; a slot with no request pending becomes IDLE
 * whatever its state. A complete DONE reply stays for tp_main_wait. Safe
 * while vCPU threads wait on their slots, and while one is inside
 * tp_main_call (it checked that the VMM was up just before it died): a slot
 * whose call has not finished storing its request (main slot armed != seq)
 * is counted pending and left alone, since the call publishes REQ itself
 * with its own numbers; re-arming it would store the previous request's
 * number over the new one, and the successor would answer the new request
 * from the record of the old one.
 */
unsigned tp_main_recover(struct tp_region *r, unsigned *pending);

/*
 * Drop the pending request of SLOT (it was handled elsewhere: the route's
 * fallback): the slot becomes IDLE. Only while no VMM serves the region (the
 * VMM died); a later reply to the dropped request would be refused anyway,
 * since reply_seq would not match. No-op when nothing is pending.
 */
void tp_main_cancel(struct tp_region *r, unsigned slot);

/* Whether SLOT has a request pending (sent, not collected). */
bool tp_main_pending(const struct tp_region *r, unsigned slot);

/*
 * Take the next async event the VMM raised; true when there was one. The
 * caller validates it (data is NULL). A corrupt head (more than
 * TP_ASYNC_ENTRIES ahead of the tail) empties the ring and returns false.
 * One consumer thread (the main loop).
 */
bool tp_main_async_pop(struct tp_region *r, struct vmmux_event *ev);

/*
 * Optional, for a main loop that wants the VMM to skip the eventfd write
 * while the loop is awake. Before polling async_efd: tp_main_async_sleep
 * announces the sleep and returns true when events are already queued (pop
 * them instead of sleeping). After the poll: tp_main_async_awake withdraws
 * the announcement and resets the eventfd's counter; from then until the
 * next tp_main_async_sleep the loop must pop without being told.
 */
bool tp_main_async_sleep(struct tp_region *r);
void tp_main_async_awake(struct tp_region *r);

/* The newest saved role state: copies it into BUF (cap bytes), returns its
 * length, 0 when none, -1 when corrupt (errno EPROTO: length out of range;
 * EAGAIN: the VMM kept rewriting it) or when it does not fit (ENOSPC). The
 * exactly-once record is not part of what it copies. */
long tp_state_load(const struct tp_region *r, void *buf, size_t cap);

/*
 * Heartbeat check (main side, one thread: the supervisor's periodic tick).
 * True when the VMM has work waiting that only it can take, namely posted
 * entries not consumed or DOORBELL_PENDING (the caller saw one of the VMM's
 * doorbell eventfds readable), and the header's progress counter has had
 * the same value at every call for TIMEOUT_NS or more, counted from the
 * first call that saw work waiting with that value. While a synchronous
 * request is pending, its waiter's deadline governs: false. Any change of
 * the counter, or no work waiting, starts the count again; so does a
 * successor, whose tp_region_attach bumps the counter. Call it only while
 * a process serves the region. No system call; reads what the VMM writes
 * (a hostile VMM can only keep itself alive by moving the counter, which
 * is what serving costs it anyway).
 */
bool tp_main_progress_stalled(struct tp_region *r, bool doorbell_pending, uint64_t now_ns,
			      uint64_t timeout_ns);

/*
 * Live update (docs/snapshot.md "Live update"): what the main side keeps to
 * itself about a region, for a new vmmux program that takes the region over
 * with its process still serving it. Taken with nothing pending (no
 * delivery in flight: the machine paused): the exactly-once counter (a new
 * program that started it again would hand out numbers the VMM's committed
 * record may hold, and be answered from the record), the async ring's tail,
 * and each slot's request number.
 */
struct tp_main_saved {
	uint32_t nslots;
	uint64_t xseq_next;
	uint64_t async_tail;
	uint32_t seq[TP_SLOTS_MAX];
};

/* Fill S from R. 0, or -1 (EBUSY) when a request is pending on a slot. */
int tp_main_save(const struct tp_region *r, struct tp_main_saved *s);

/*
 * The new program's side: map the region MEMFD that a previous program
 * created (its size must be tp_region_size(S->nslots)), take MEMFD, VMM_EFD
 * and ASYNC_EFD as R's own (the VMM holds the same eventfds), and continue
 * from S: no request pending, the numbers and the async tail where the
 * previous program left them. The header's fields the main side owns
 * (magic, version, sizes, spin budget) are set to its values, as
 * tp_main_recover does; the rings and slots are left as they are (the VMM
 * keeps serving them). 0, or -1 with errno (EINVAL: S out of range; EPROTO:
 * the memfd is not such a region); on failure the descriptors stay the
 * caller's.
 */
int tp_region_adopt(struct tp_region *r, int memfd, int vmm_efd, int async_efd,
		    const struct tp_main_saved *s, uint64_t spin_ns);

/* ---- VMM side ----------------------------------------------------------- */

/*
 * Map a region from a received memfd and check it: the size from fstat must
 * equal tp_region_size(nslots) and the header's size, nslots within
 * 1..TP_SLOTS_MAX, magic and version ours. On success R owns the three
 * descriptors (tp_region_detach closes them); on failure (-1, errno EPROTO
 * for a region that fails the checks) they stay the caller's. A successor's
 * attach finishes what its predecessor left: it releases a consumed posted
 * entry that was not released; it finishes the request of the committed
 * record when that is still pending: a slot in REQ or BUSY with that
 * number gets the recorded reply (DONE), the posted entry at tail with that
 * number gets its raised events that did not reach the async ring pushed
 * and is consumed; and it bumps the progress counter.
 */
int tp_region_attach(struct tp_region *r, int memfd, int vmm_efd, int async_efd);
void tp_region_detach(struct tp_region *r);

/*
 * The VMM's handler for one event: fill *rep and the raised events (at most
 * TP_RAISE_MAX, count in *nraised); return the role's result. ev->data
 * points into the slot for string I/O.
 */
typedef int (*tp_handler_fn)(void *arg, struct vmmux_event *ev, struct vmmux_reply *rep,
			     struct vmmux_event *raised, uint32_t *nraised);

/*
 * Serve everything pending: first every posted ring entry in order, then
 * every slot in REQ state (BUSY while the handler runs, then DONE, waking a
 * sleeping waiter). Before it takes a slot's request, every posted entry at
 * a position before the ring's head as read after the slot was seen in REQ
 * is applied (an entry reserved and not yet published is waited for, up to
 * 100 ms): a vCPU's posted writes and its later synchronous events (a write
 * that found the ring full and went synchronously included) are applied in
 * the order the vCPU made them. A request whose sequence number equals the committed
 * record's is answered from the record without calling HANDLER (see
 * "Exactly once" above). After each handled event, SAVE (when not NULL) is
 * called so the role's state can be stored with tp_state_store, which
 * commits the request's record with it; when SAVE stores nothing (or is
 * NULL), the record is committed with the previous state. Then the reply is
 * published. During HANDLER, tp_vmm_seq gives the request's number. Each
 * handled request bumps the progress counter. Returns the number of events
 * handled (answered from the record included). At most TP_RING_ENTRIES
 * posted entries per call, so slots are not starved. An inconsistent event
 * (type out of range; string I/O with a size not 1, 2, 4, 8, a zero count or
 * more than TP_SLOT_DATA bytes) is answered with result -EINVAL without
 * calling the handler. Events raised while handling a posted entry go to the
 * async ring (waiting up to 100 ms for room; dropped after that).
 */
unsigned tp_vmm_serve(struct tp_region *r, tp_handler_fn handler, void *arg,
		      void (*save)(void *arg));

/*
 * Wait for work: spin on the doorbell for spin_ns, then announce sleep and
 * poll the doorbell eventfd together with the EXTRA descriptors (input,
 * IRQ resample...), each with POLLIN. Returns a bitmask: bit 0 = requests
 * may be pending, bit i+1 = extra[i] is readable (NEXTRA at most 31).
 * TIMEOUT_MS bounds the sleep (-1: none). While requests keep the VMM
 * awake, the extras are still polled (without waiting) once a millisecond.
 * The first call after attaching returns bit 0 at once.
 */
unsigned tp_vmm_wait(struct tp_region *r, const int *extra, unsigned nextra, int timeout_ms);

/* Publish an event raised outside a request (VMM side); -1 when full. Writes
 * async_efd when the main loop announced it sleeps. */
int tp_vmm_async_push(struct tp_region *r, const struct vmmux_event *ev);

/* Store the role's state: the newest complete copy wins. From SAVE during
 * tp_vmm_serve it commits the record of the request just handled with the
 * state; otherwise (the main side storing a state to restore, or the VMM
 * outside a request) the committed record is kept. 0, or -1 (EINVAL) when
 * LEN exceeds TP_STATE_MAX. */
int tp_state_store(struct tp_region *r, const void *buf, size_t len);

/* VMM side: the sequence number of the request whose handler runs (0
 * outside one, and for doorbell rings, which carry none). */
uint64_t tp_vmm_seq(const struct tp_region *r);

/* VMM side: bump the heartbeat counter (one store to a line of its own). */
void tp_vmm_progress(struct tp_region *r);

/*
 * Doorbell rings, exactly once across a death (VMM side; doorbells are read
 * from eventfds by the VMM itself, which consumes their counts). Right after
 * reading N rings of a doorbell: tp_vmm_db_begin(DESC, LEN <= TP_DB_DESC_MAX,
 * N) notes the batch in the region (the doorbell's description, opaque to
 * the transport, and N); then the rings are handled; the next state commit
 * (tp_state_store, or tp_vmm_db_end's own when nothing was stored) records
 * the batch as applied, with the state; tp_vmm_db_end then clears the note.
 * A successor calls tp_vmm_db_pending before it handles anything else: true
 * (DESC, *N filled) when a predecessor died with a batch read and not
 * committed, which it applies and ends the same way. A death between the
 * eventfd read and tp_vmm_db_begin still loses that count. -1 (EINVAL) from
 * begin for LEN too large or N zero.
 */
int tp_vmm_db_begin(struct tp_region *r, const void *desc, size_t len, uint64_t n);
void tp_vmm_db_end(struct tp_region *r);
bool tp_vmm_db_pending(struct tp_region *r, void *desc, size_t cap, uint64_t *n);

/* ---- shared ------------------------------------------------------------- */

/* CLOCK_MONOTONIC in ns. */
uint64_t tp_now_ns(void);

#endif
