/*
 * vmm_corrupt: a parallel VMM that corrupts, one after the other, every
 * field of its shared region that it can write (src/transport/transport.h:
 * the header, the saved state and its exactly-once record, the request
 * slots' request and reply fields, the posted and async rings), for the
 * hostile-VMM suite (tests/integration/test_hostile.py). It speaks the
 * protocol itself (rawvmm.c).
 *
 * At its K-th synchronous request it applies corruption K of the list
 * (the "fields" argument: names separated by '/', default every one, in
 * the order of the table below: the saved state's last, since the index
 * lives there), prints "vmm-corrupt: K NAME" on its
 * stderr, then answers: correctly, or, for the reply fields, with the
 * corrupted reply. K is kept in the region's saved state (tp_state_store,
 * stored before the corruption), so that a restarted instance goes on with
 * the next one. After the last it prints "vmm-corrupt: done" and answers
 * correctly (reads: the "read" argument, default 0). Posted writes are
 * consumed with the library's own code (tp_vmm_serve), so that a posted
 * route to it works while its ring fields are corrupted.
 *
 * Raised events need the grant platform:smi (and a route for them).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "rawvmm.h"
#include "transport/control.h"

#define PROG "vmm-corrupt"

/* The saved state: a marker and the next corruption's index. */
struct corrupt_state {
	uint64_t magic;
	uint64_t next;
};
#define STATE_MAGIC 0x74707572726f6376ull /* "vcorrupt" */

typedef bool (*corrupt_fn)(struct raw_vmm *R, struct tp_slot *s, const struct vmmux_event *ev,
			   uint32_t seq);

/* Answer well, after the corruption (the usual case). */
static bool answered(struct raw_vmm *R, struct tp_slot *s, const struct vmmux_event *ev,
		     uint32_t seq);

static uint64_t read_value;

/* a reply with everything right but what F changes, then published */
static void reply_with(struct tp_slot *s, const struct vmmux_event *ev, uint32_t seq,
		       void (*f)(struct tp_slot *s, const struct vmmux_event *ev, uint32_t seq))
{
	s->rep.action = VMMUX_ACT_DONE;
	s->rep.reserved = 0;
	s->rep.value = (ev->flags & VMMUX_EVF_WRITE) ? 0 : read_value;
	s->result = 0;
	s->nraised = 0;
	s->reply_seq = seq;
	f(s, ev, seq);
	raw_publish(s, TP_DONE);
}

static struct vmmux_event smi(void)
{
	return (struct vmmux_event){.type = VMMUX_EV_PLATFORM, .key = VMMUX_PLAT_SMI, .count = 1};
}

/* ---- the header --------------------------------------------------------- */
#define HDR(name, ...)                                                                             \
	static bool name(struct raw_vmm *R, struct tp_slot *s, const struct vmmux_event *ev,       \
			 uint32_t seq)                                                             \
	{                                                                                          \
		struct tp_header *h = R->region.hdr;                                               \
		(void)h;                                                                           \
		__VA_ARGS__;                                                                       \
		return answered(R, s, ev, seq);                                                    \
	}
HDR(hdr_magic, h->magic = 0xdeadbeef)
HDR(hdr_version, h->version = 0xffffffff)
HDR(hdr_nslots, h->nslots = 0xffffffff)
HDR(hdr_reserved, h->reserved = 0xffffffff)
HDR(hdr_size, h->size = ~0ull)
HDR(hdr_spin_ns, atomic_store(&h->spin_ns, ~0ull))
HDR(hdr_doorbell, atomic_store(&h->doorbell, 0xfffffff0u))
HDR(hdr_vmm_sleeping, atomic_store(&h->vmm_sleeping, 0xffffffffu))
HDR(hdr_main_sleeping, atomic_store(&h->main_sleeping, 0))
HDR(hdr_main_cpu, atomic_store(&h->main_cpu, 0x7fffffffu))
HDR(hdr_vmm_cpu, atomic_store(&h->vmm_cpu, 0x7fffffffu))
HDR(hdr_pad, h->pad = 0xffffffff)
HDR(hdr_doorbell_rings,
    for (unsigned i = 0; i < TP_DOORBELLS_MAX; i++) atomic_store(&h->doorbell_rings[i], ~0ull - i))
HDR(hdr_progress, atomic_store(&h->progress, ~0ull))
HDR(hdr_db_token, h->db_token = ~0ull)
HDR(hdr_db_n, atomic_store(&h->db_n, ~0ull))
HDR(hdr_db_desc, memset(h->db_desc, 0x1b, sizeof(h->db_desc)))
/* the saved state: both buffers' lengths, records, and the current index */
HDR(saved_len, h->saved[0].len = h->saved[1].len = 0xffffffff)
HDR(
    saved_rec, for (unsigned b = 0; b < 2; b++) {
	    h->saved[b].rec.nraised = 0xffffffff;
	    h->saved[b].rec.xseq = ~0ull;
	    h->saved[b].rec.rep.action = 0xffffffff;
	    h->saved[b].rec.result = INT_MIN;
	    h->saved[b].rec.async_head = ~0ull;
	    h->saved[b].rec.db_token = ~0ull;
	    memset(h->saved[b].rec.raised, 0xff, sizeof(h->saved[b].rec.raised));
    })
HDR(saved_state_seq, atomic_store(&h->state_seq, ~0ull))

/* ---- the rings ---------------------------------------------------------- */
HDR(posted_head, atomic_store(&R->region.posted->head, ~0ull - 5))
HDR(posted_tail, atomic_store(&R->region.posted->tail, atomic_load(&R->region.posted->head) + 1000))
HDR(
    posted_entries, for (unsigned i = 0; i < TP_RING_ENTRIES; i++) {
	    atomic_store(&R->region.posted->e[i].seq, ~0ull - i);
	    memset(&R->region.posted->e[i].ev, 0xff, sizeof(struct vmmux_event));
    })
HDR(async_tail, atomic_store(&R->region.async->tail, ~0ull))
HDR(async_head, atomic_store(&R->region.async->head, atomic_load(&R->region.async->head) + 1000))
/* entries that are garbage events, published: type, flags, sizes out of
 * range, a fault, a device event (never from the async ring), a pointer */
static bool async_entries(struct raw_vmm *R, struct tp_slot *s, const struct vmmux_event *ev,
			  uint32_t seq)
{
	struct vmmux_event bad[] = {
	    {.type = 0xffff, .flags = 0xffff, .size = 0xff, .count = 0xffffffff},
	    {.type = VMMUX_EV_FAULT, .key = 1, .value = VMMUX_FAULT_CRASH},
	    {.type = VMMUX_EV_IO, .key = 0xf4, .value = 21, .size = 1, .flags = VMMUX_EVF_WRITE},
	    {.type = VMMUX_EV_PLATFORM, .key = VMMUX_PLAT_SMI, .data = (void *)0x10, .count = 0},
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		(void)tp_vmm_async_push(&R->region, &bad[i]);
	return answered(R, s, ev, seq);
}

/* ---- the request slot: the request's own fields ------------------------- */
HDR(slot_seq, s->seq = ~seq)
HDR(slot_xseq, s->xseq = ~0ull)
HDR(slot_waiting, atomic_store(&s->waiting, 0xffffffffu))
HDR(slot_ev, memset(&s->ev, 0xff, sizeof(s->ev)))
HDR(slot_data, memset(s->data, 0x1b, sizeof(s->data)))
/* another slot than its own: a request made up in an idle slot */
static bool slot_other(struct raw_vmm *R, struct tp_slot *s, const struct vmmux_event *ev,
		       uint32_t seq)
{
	for (unsigned i = 0; i < R->region.nslots; i++) {
		struct tp_slot *o = &R->region.slots[i];
		if (o == s)
			continue;
		o->reply_seq = o->seq;
		o->nraised = 1;
		o->raised[0] = smi();
		atomic_store(&o->state, TP_DONE);
	}
	return answered(R, s, ev, seq);
}

/* ---- the request slot: the reply ---------------------------------------- */
#define REPLY(name, ...)                                                                           \
	static void name##_f(struct tp_slot *s, const struct vmmux_event *ev, uint32_t seq)        \
	{                                                                                          \
		(void)ev;                                                                          \
		(void)seq;                                                                         \
		__VA_ARGS__;                                                                       \
	}                                                                                          \
	static bool name(struct raw_vmm *R, struct tp_slot *s, const struct vmmux_event *ev,       \
			 uint32_t seq)                                                             \
	{                                                                                          \
		(void)R;                                                                           \
		reply_with(s, ev, seq, name##_f);                                                  \
		return true;                                                                       \
	}
REPLY(reply_result_failed, s->result = -1)
REPLY(reply_result_min, s->result = INT_MIN)
REPLY(reply_result_positive, s->result = INT_MAX)
REPLY(reply_action_end, s->rep.action = VMMUX_ACT_END)
REPLY(reply_action_huge, s->rep.action = 0xffffffff)
REPLY(reply_reserved, s->rep.reserved = 0xffffffff)
REPLY(reply_value, s->rep.value = ~0ull)
REPLY(reply_seq_next, s->reply_seq = seq + 1)
REPLY(reply_nraised_huge, s->nraised = 0xffffffff)
REPLY(reply_nraised_17, s->nraised = TP_RAISE_MAX + 1)
REPLY(raised_garbage, {
	memset(s->raised, 0xff, sizeof(s->raised));
	s->nraised = TP_RAISE_MAX;
})
REPLY(raised_fault, {
	s->raised[0] = (struct vmmux_event){
	    .type = VMMUX_EV_FAULT, .key = 0, .value = VMMUX_FAULT_CRASH, .count = 1};
	s->nraised = 1;
})
/* the source and the routing fields vmmux sets are not the VMM's to give:
 * an SMI claiming to come from vCPU 0 (or the host), with a pointer and a
 * generation, is routed as this VMM's */
REPLY(raised_spoofed_source, {
	s->raised[0] = smi();
	s->raised[0].src_kind = VMMUX_SRC_HOST;
	s->raised[0].src_id = 0;
	s->raised[0].data = (void *)0x1000;
	s->raised[0].generation = ~0ull;
	s->raised[0].reserved = 0xffff;
	s->raised[0].vcpu = 0xfff0;
	s->raised[0].count = 0;
	s->raised[0].size = 0xff;
	s->nraised = 1;
})
/* the state word: out of the enumeration, back to IDLE (the reply never
 * comes), or left BUSY (the handler never ends) */
static bool reply_state_7(struct raw_vmm *R, struct tp_slot *s, const struct vmmux_event *ev,
			  uint32_t seq)
{
	(void)R;
	(void)ev;
	s->reply_seq = seq;
	raw_publish(s, 7);
	return true;
}
static bool reply_state_idle(struct raw_vmm *R, struct tp_slot *s, const struct vmmux_event *ev,
			     uint32_t seq)
{
	(void)R;
	(void)ev;
	s->reply_seq = seq;
	raw_publish(s, TP_IDLE);
	return true;
}
static bool reply_state_busy(struct raw_vmm *R, struct tp_slot *s, const struct vmmux_event *ev,
			     uint32_t seq)
{
	(void)R;
	(void)s;
	(void)ev;
	(void)seq;
	return true; /* left BUSY: never answered by this instance */
}

static const struct {
	const char *name;
	corrupt_fn fn;
} table[] = {
#define E(n)                                                                                       \
	{                                                                                          \
#n, n                                                                              \
	}
    E(async_entries), /* first: hdr_main_sleeping would silence the ring */
    E(hdr_magic),
    E(hdr_version),
    E(hdr_nslots),
    E(hdr_reserved),
    E(hdr_size),
    E(hdr_spin_ns),
    E(hdr_doorbell),
    E(hdr_vmm_sleeping),
    E(hdr_main_sleeping),
    E(hdr_main_cpu),
    E(hdr_vmm_cpu),
    E(hdr_pad),
    E(hdr_doorbell_rings),
    E(hdr_progress),
    E(hdr_db_token),
    E(hdr_db_n),
    E(hdr_db_desc),
    E(posted_head),
    E(posted_tail),
    E(posted_entries),
    E(async_tail),
    E(async_head),
    E(slot_seq),
    E(slot_xseq),
    E(slot_waiting),
    E(slot_ev),
    E(slot_data),
    E(slot_other),
    E(reply_result_failed),
    E(reply_result_min),
    E(reply_result_positive),
    E(reply_action_end),
    E(reply_action_huge),
    E(reply_reserved),
    E(reply_value),
    E(reply_seq_next),
    E(reply_nraised_huge),
    E(reply_nraised_17),
    E(raised_garbage),
    E(raised_fault),
    E(raised_spoofed_source),
    E(reply_state_7),
    E(reply_state_idle),
    E(reply_state_busy),
    E(saved_len),
    E(saved_rec),
    E(saved_state_seq),
#undef E
};
#define NTABLE (sizeof(table) / sizeof(table[0]))

struct corrupt {
	unsigned list[NTABLE];
	unsigned n;
	struct corrupt_state st;
	bool done_told;
};

static bool answered(struct raw_vmm *R, struct tp_slot *s, const struct vmmux_event *ev,
		     uint32_t seq)
{
	(void)R;
	raw_answer(s, ev, seq, read_value);
	return true;
}

static void handle(struct raw_vmm *R, struct tp_slot *s, const struct vmmux_event *ev, uint32_t seq,
		   void *arg)
{
	struct corrupt *C = arg;
	if (ev->type >= VMMUX_EV__COUNT || C->st.next >= C->n) {
		if (!C->done_told && C->st.next >= C->n) {
			C->done_told = true;
			fprintf(stderr, PROG ": done\n");
		}
		raw_answer(s, ev, seq, read_value);
		return;
	}
	unsigned k = C->list[C->st.next++];
	/* the next one first: a restarted instance goes on after this one */
	if (tp_state_store(&R->region, &C->st, sizeof(C->st)) < 0)
		fprintf(stderr, PROG ": storing the state failed\n");
	fprintf(stderr, PROG ": %llu %s\n", (unsigned long long)C->st.next, table[k].name);
	table[k].fn(R, s, ev, seq);
}

/* tp_vmm_serve's handler, for the posted ring: consume and do nothing */
static int posted(void *arg, struct vmmux_event *ev, struct vmmux_reply *rep,
		  struct vmmux_event *raised, uint32_t *nraised)
{
	(void)arg;
	(void)raised;
	rep->action = VMMUX_ACT_DONE;
	rep->value = (ev->flags & VMMUX_EVF_WRITE) ? 0 : read_value;
	*nraised = 0;
	return 0;
}

int main(void)
{
	struct raw_vmm R;
	raw_hello(&R, PROG);
	static struct corrupt C;
	read_value = raw_arg_u64(&R, "read", 0);
	const char *f = raw_arg(&R, "fields");
	if (f == NULL) {
		for (unsigned i = 0; i < NTABLE; i++)
			C.list[C.n++] = i;
	} else {
		char buf[1024];
		snprintf(buf, sizeof(buf), "%s", f);
		for (char *save = NULL, *t = strtok_r(buf, "/", &save); t != NULL;
		     t = strtok_r(NULL, "/", &save)) {
			unsigned i = 0;
			while (i < NTABLE && strcmp(table[i].name, t) != 0)
				i++;
			if (i == NTABLE || C.n == NTABLE) {
				fprintf(stderr, PROG ": fields: unknown '%s'\n", t);
				raw_ready(&R, HS_VERSION_MAX, -22, "corrupt",
					  "bad fields argument");
				return 1;
			}
			C.list[C.n++] = i;
		}
	}
	raw_ready(&R, HS_VERSION_MAX, 0, "corrupt", "");
	if (!raw_go(&R))
		return 0;
	raw_attach(&R);
	struct corrupt_state st;
	if (tp_state_load(&R.region, &st, sizeof(st)) == (long)sizeof(st) &&
	    st.magic == STATE_MAGIC)
		C.st = st;
	C.st.magic = STATE_MAGIC;
	int sock = HS_SOCKET_FD;
	for (;;) {
		raw_serve_pending(&R, handle, &C);
		(void)tp_vmm_serve(&R.region, posted, NULL, NULL); /* posted entries */
		unsigned ready = tp_vmm_wait(&R.region, &sock, 1, 100);
		if (ready & 2u) {
			char b;
			ssize_t n = recv(sock, &b, 1, MSG_DONTWAIT);
			if (n == 0)
				return 0;
		}
	}
}
