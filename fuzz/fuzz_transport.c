/*
 * fuzz_transport.c: what the main VMM reads from a hostile parallel VMM
 * (src/transport): the shared region that the VMM may write at any time
 * (slot states, replies and their raised events, the async ring, the
 * posted ring's indices and entry sequences, the saved state and its
 * exactly-once record, the heartbeat) as the main side's calls read it
 * (tp_main_call, tp_main_wait, tp_main_async_pop, tp_main_recover,
 * tp_main_cancel, tp_state_load, tp_main_post, tp_main_posted_empty,
 * tp_main_progress_stalled, the async sleep flags), and the VMM's ready
 * message of the set-up handshake, as bytes checked (hs_ready_check) and
 * as a message received on a set-up socket (hs_recv: any size, with or
 * without a descriptor the main side did not ask for, then checked).
 *
 * Input: a sequence of operations, each an opcode byte and its operands:
 * the "VMM" writes raw bytes anywhere in the region, or a reply, an async
 * ring or a saved state shaped enough to get past the first checks, and
 * the main side makes its calls with deadlines already passed (a call
 * never waits here). transport.h's promise is what is checked: whatever
 * the VMM writes, the main side never reads or writes outside the region
 * or its own buffers, never loops, and a raised-event count it returns is
 * at most TP_RAISE_MAX. A new region for each input.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "transport/handshake.h"
#include "transport/transport.h"

#define NSLOTS 3

static int setup_sock[2] = {-1, -1}; /* main's end, the VMM's end */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_quiet();
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, setup_sock) < 0)
		abort();
	return 0;
}

static void fuzz_event(struct fz *f, struct vmmux_event *ev)
{
	memset(ev, 0, sizeof(*ev));
	ev->type = (uint16_t)(fz_u8(f) % (VMMUX_EV__COUNT + 2));
	ev->flags = fz_u16(f);
	ev->size = fz_u8(f);
	ev->src_kind = fz_u8(f) % 4;
	ev->src_id = fz_u16(f);
	ev->count = fz_u8(f);
	ev->key = fz_u64(f);
	ev->value = fz_u64(f);
}

static uint8_t strbuf[TP_SLOT_DATA * 2];

static void main_call(struct tp_region *r, struct fz *f, bool wait)
{
	unsigned slot = fz_u8(f) % (NSLOTS + 1); /* NSLOTS: out of range */
	struct vmmux_event ev;
	fuzz_event(f, &ev);
	ev.flags &= VMMUX_EVF_WRITE | VMMUX_EVF_STRING;
	if (ev.flags & VMMUX_EVF_STRING)
		ev.data = strbuf;
	struct vmmux_reply rep;
	int32_t result;
	struct vmmux_event raised[TP_RAISE_MAX];
	uint32_t nraised = 0;
	_Atomic bool abort_flag = false;
	uint64_t deadline = tp_now_ns();
	enum tp_result res = wait ? tp_main_wait(r, slot, &ev, &rep, &result, raised, &nraised,
						 deadline, &abort_flag)
				  : tp_main_call(r, slot, &ev, &rep, &result, raised, &nraised,
						 deadline, &abort_flag);
	if (res == TP_OK && nraised > TP_RAISE_MAX)
		abort();
}

/* The "VMM" answers SLOT: a reply that echoes the request's number unless
 * the fuzzer says otherwise. */
static void vmm_reply(struct tp_region *r, struct fz *f)
{
	struct tp_slot *s = &r->slots[fz_u8(f) % NSLOTS];
	uint8_t b = fz_u8(f);
	s->reply_seq = (b & 1) ? fz_u32(f) : s->seq;
	s->result = (int32_t)fz_u32(f);
	s->nraised = (b & 2) ? fz_u32(f) : fz_u8(f) % (TP_RAISE_MAX + 2);
	s->rep.action = fz_u8(f) % (VMMUX_ACT__COUNT + 1);
	s->rep.value = fz_u64(f);
	for (unsigned i = 0; i < TP_RAISE_MAX && (b & 4); i++)
		fuzz_event(f, &s->raised[i]);
	if (b & 8)
		memset(s->data, fz_u8(f), sizeof(s->data));
	atomic_store(&s->state, (b & 16) ? fz_u32(f) : (uint32_t)TP_DONE);
}

static void vmm_async(struct tp_region *r, struct fz *f)
{
	uint64_t tail = atomic_load(&r->async->tail);
	uint8_t b = fz_u8(f);
	uint64_t head = (b & 1) ? fz_u64(f) : r->async_tail + fz_u8(f) % (TP_ASYNC_ENTRIES + 8);
	(void)tail;
	for (unsigned i = 0; i < 4; i++)
		fuzz_event(f, &r->async->e[(head - 1 - i) % TP_ASYNC_ENTRIES]);
	atomic_store(&r->async->head, head);
	if (b & 2)
		atomic_store(&r->async->tail, fz_u64(f));
}

static void vmm_saved(struct tp_region *r, struct fz *f)
{
	uint8_t b = fz_u8(f);
	struct tp_saved *s = &r->hdr->saved[b & 1];
	s->len = (b & 2) ? fz_u32(f) : fz_u16(f) % (TP_STATE_MAX + 16);
	s->rec.xseq = fz_u64(f);
	s->rec.nraised = fz_u32(f);
	s->rec.result = (int32_t)fz_u32(f);
	atomic_store(&r->hdr->state_seq, (b & 4) ? fz_u64(f) : atomic_load(&r->hdr->state_seq) + 1);
}

static void vmm_posted(struct tp_region *r, struct fz *f)
{
	uint8_t b = fz_u8(f);
	if (b & 1)
		atomic_store(&r->posted->tail, fz_u64(f));
	if (b & 2)
		atomic_store(&r->posted->head, fz_u64(f));
	unsigned i = fz_u8(f) % TP_RING_ENTRIES;
	atomic_store(&r->posted->e[i].seq, fz_u64(f));
}

static void ready_check(struct fz *f)
{
	struct hs_hello h = {.magic = HS_MAGIC,
			     .version_min = HS_VERSION_MIN,
			     .version_max = HS_VERSION_MAX,
			     .features = HS_F_POSTED | HS_F_STATE,
			     .nslots = NSLOTS};
	uint8_t b = fz_u8(f);
	if (b & 1)
		strcpy(h.role, "uart16550");
	struct hs_ready rd;
	memset(&rd, 0, sizeof(rd));
	if (b & 2) {
		rd.magic = HS_MAGIC;
		rd.version = HS_VERSION_MIN;
		rd.features = fz_u32(f) & h.features;
		strcpy(rd.role, "uart16550");
	}
	size_t off = fz_u16(f) % sizeof(rd);
	size_t n = f->n < sizeof(rd) ? f->n : sizeof(rd);
	if (n > sizeof(rd) - off)
		n = sizeof(rd) - off;
	memcpy((uint8_t *)&rd + off, f->p, n);
	f->p += n;
	f->n -= n;
	struct errbuf e;
	hs_ready_check(&rd, &h, &e);
}

/* The "VMM" sends a message of fuzzed size (and a descriptor) on its set-up
 * socket; the main side receives a ready from it and checks it. */
static void ready_recv(struct fz *f)
{
	uint8_t b = fz_u8(f);
	size_t n = fz_u16(f) % (sizeof(struct hs_ready) + 64);
	if (n > f->n)
		n = f->n;
	int fd = (b & 1) ? dup(2) : -1;
	if (n > 0 && hs_send(setup_sock[1], f->p, n, fd >= 0 ? &fd : NULL, fd >= 0) < 0)
		abort();
	if (fd >= 0)
		close(fd);
	f->p += n;
	f->n -= n;
	if (b & 2)
		shutdown(setup_sock[1], SHUT_WR); /* the VMM went away */
	struct hs_ready rd;
	unsigned nfds = 9;
	struct errbuf e;
	if (hs_recv(setup_sock[0], &rd, sizeof(rd), NULL, 0, &nfds, 0, &e) == 0) {
		if (nfds != 0)
			abort();
		struct hs_hello h = {.magic = HS_MAGIC,
				     .version_min = HS_VERSION_MIN,
				     .version_max = HS_VERSION_MAX,
				     .features = HS_F_POSTED,
				     .nslots = NSLOTS};
		hs_ready_check(&rd, &h, &e);
	}
	if (b & 2) { /* a new socket pair for the next one */
		close(setup_sock[0]);
		close(setup_sock[1]);
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, setup_sock) < 0)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = {data, size};
	struct tp_region r;
	if (tp_region_create(&r, NSLOTS, 0) < 0)
		abort();
	uint8_t state[TP_STATE_MAX + 64];
	for (unsigned k = 0; k < 128 && f.n > 0; k++) {
		switch (fz_u8(&f) % 17) {
		case 0: { /* raw bytes anywhere in the region */
			size_t off = fz_u32(&f) % r.size, len = 1 + fz_u8(&f);
			if (len > r.size - off)
				len = r.size - off;
			for (size_t i = 0; i < len; i++)
				((volatile uint8_t *)r.hdr)[off + i] = fz_u8(&f);
			break;
		}
		case 1:
			vmm_reply(&r, &f);
			break;
		case 2:
		case 3:
			main_call(&r, &f, false);
			break;
		case 4:
			main_call(&r, &f, true);
			break;
		case 5: {
			struct vmmux_event ev;
			for (unsigned i = 0; i < TP_ASYNC_ENTRIES + 8 && tp_main_async_pop(&r, &ev);
			     i++)
				if (ev.data != NULL)
					abort();
			break;
		}
		case 6:
			vmm_async(&r, &f);
			break;
		case 7: {
			unsigned pending = 0;
			tp_main_recover(&r, &pending);
			if (pending > NSLOTS)
				abort();
			break;
		}
		case 8:
			tp_main_cancel(&r, fz_u8(&f) % (NSLOTS + 1));
			break;
		case 9: {
			size_t cap = fz_u16(&f) % sizeof(state);
			long n = tp_state_load(&r, state, cap);
			if (n > (long)cap)
				abort();
			break;
		}
		case 10:
			vmm_saved(&r, &f);
			break;
		case 11: {
			struct vmmux_event ev;
			fuzz_event(&f, &ev);
			ev.flags &= (uint16_t)~VMMUX_EVF_STRING;
			tp_main_post(&r, &ev);
			tp_main_posted_empty(&r);
			break;
		}
		case 12:
			vmm_posted(&r, &f);
			break;
		case 13: {
			uint8_t b = fz_u8(&f);
			tp_main_progress_stalled(&r, b & 1, tp_now_ns() + fz_u32(&f), fz_u32(&f));
			break;
		}
		case 14:
			ready_check(&f);
			break;
		case 15:
			if (tp_main_async_sleep(&r))
				tp_main_async_awake(&r);
			else
				tp_main_async_awake(&r);
			break;
		case 16:
			ready_recv(&f);
			break;
		}
	}
	tp_region_destroy(&r);
	return 0;
}
