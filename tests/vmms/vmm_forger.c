/*
 * vmm_forger: a parallel VMM that raises what it likes, speaking the
 * protocol itself (rawvmm.c), for the hostile-VMM suite
 * (tests/integration/test_hostile.py). It tries to make vmmux deliver
 * events that no grant should admit: made-up device events (to the exit
 * port, to another device VMM), copies of requests it is not serving, and
 * floods. Reads are answered with the "read" argument (default 0x5a),
 * writes DONE; string I/O is answered and never handed on.
 *
 * Arguments (all optional):
 *   forge=SPEC[/SPEC...]  events raised with the reply of each request it
 *                         serves (at most TP_RAISE_MAX). SPEC is
 *                         TYPE:KEY[:VALUE[:SIZE[:FLAGS]]], TYPE an event
 *                         type name (io, mmio, msr, hlt, hypercall,
 *                         exception, shutdown, platform, irq, request,
 *                         fault) or a number; numbers decimal or 0x hex;
 *                         count 1, vCPU the request's
 *   copy=HOW              hand on the request it serves (non-string only),
 *                         with its reply:
 *                           exact   the request as received
 *                           key, value, size, flags, type, vcpu, count, aux
 *                                   the request with that field changed
 *                                   (key+1, value^1, size*2, flags^WRITE,
 *                                   type io<->mmio, vcpu+1, count+1, aux+1)
 *                           late    the previous request, with the reply
 *                                   of the next one (after its own reply)
 *                           async   the request, on the async ring right
 *                                   after its reply
 *   via=async             FORGE's events go on the async ring instead
 *   flood=N               raise N events per request: with the reply (N >
 *                         TP_RAISE_MAX is a malformed reply) or, with
 *                         via=async, pushed on the async ring until it is
 *                         full, N times
 *   on=write|read|all     which requests trigger FORGE, copy= and flood=
 *                         (default all)
 *   once=1                only the first instance misbehaves (it marks the
 *                         region: raw_mark); a restarted one answers plainly
 *                         and hands on exact copies when copy= is given
 *
 * It prints "vmm-forger: raised N" (N events raised or about to be pushed)
 * on its stderr once per instance, before its first misbehaviour can reach
 * vmmux (a VMM killed for it has printed it), so that a test can count
 * instances that tried.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rawvmm.h"

#define PROG	  "vmm-forger"
#define SPECS_MAX TP_RAISE_MAX

enum copy_mode {
	C_NONE,
	C_EXACT,
	C_KEY,
	C_VALUE,
	C_SIZE,
	C_FLAGS,
	C_TYPE,
	C_VCPU,
	C_COUNT,
	C_AUX,
	C_LATE,
	C_ASYNC
};
static const char *const copy_names[] = {"",	 "exact", "key",   "value", "size", "flags",
					 "type", "vcpu",  "count", "aux",   "late", "async"};

enum { ON_ALL, ON_WRITE, ON_READ };

struct forger {
	struct vmmux_event spec[SPECS_MAX];
	unsigned nspec;
	enum copy_mode copy;
	bool async;
	uint64_t flood;
	int on;
	bool armed;  /* this instance misbehaves */
	bool marked; /* the region carries the mark */
	bool told;   /* "raised" printed */
	bool have_prev;
	struct vmmux_event prev; /* the previous request (copy=late) */
	uint64_t read;
	uint64_t raised;
};

static void fail(const char *fmt, const char *what)
{
	fprintf(stderr, PROG ": ");
	fprintf(stderr, fmt, what);
	fprintf(stderr, "\n");
	exit(1);
}

static uint64_t num(const char *s, const char *whole)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno != 0 || end == s || (*end != '\0' && *end != ':'))
		fail("bad number in raise spec '%s'", whole);
	return v;
}

static void parse_spec(const char *s, struct vmmux_event *ev)
{
	static const char *const types[VMMUX_EV__COUNT] = VMMUX_EV_NAMES;
	memset(ev, 0, sizeof(*ev));
	ev->count = 1;
	const char *p = strchr(s, ':');
	if (p == NULL)
		fail("raise spec '%s': expected TYPE:KEY[:VALUE[:SIZE[:FLAGS]]]", s);
	size_t tl = (size_t)(p - s);
	bool found = false;
	for (unsigned t = 0; t < VMMUX_EV__COUNT; t++)
		if (strlen(types[t]) == tl && strncasecmp(s, types[t], tl) == 0) {
			ev->type = (uint16_t)t;
			found = true;
		}
	if (!found)
		ev->type = (uint16_t)num(s, s);
	uint64_t f[4] = {0, 0, 0, 0};
	for (unsigned i = 0; i < 4 && p != NULL; i++) {
		f[i] = num(p + 1, s);
		p = strchr(p + 1, ':');
	}
	ev->key = f[0];
	ev->value = f[1];
	ev->size = (uint8_t)f[2];
	ev->flags = (uint16_t)f[3];
}

static bool triggers(const struct forger *F, const struct vmmux_event *ev)
{
	bool write = (ev->flags & VMMUX_EVF_WRITE) != 0;
	return F->on == ON_ALL || (F->on == ON_WRITE) == write;
}

/* Marks the region before the first misbehaviour can reach vmmux: a
 * VMM killed for it must already have left the mark, or its successor
 * misbehaves too (once=1). */
static void mark_first(struct forger *F, struct raw_vmm *R)
{
	if (!F->marked) {
		F->marked = true;
		raw_mark(R);
	}
}

static void tell(struct forger *F, struct raw_vmm *R, uint64_t n)
{
	mark_first(F, R);
	F->raised += n;
	if (!F->told) {
		F->told = true;
		fprintf(stderr, PROG ": raised %llu\n", (unsigned long long)n);
	}
}

static struct vmmux_event changed(const struct vmmux_event *ev, enum copy_mode how)
{
	struct vmmux_event c = *ev;
	switch (how) {
	case C_KEY:
		c.key++;
		break;
	case C_VALUE:
		c.value ^= 1;
		break;
	case C_SIZE:
		c.size = (uint8_t)(c.size * 2);
		break;
	case C_FLAGS:
		c.flags ^= VMMUX_EVF_WRITE;
		break;
	case C_TYPE:
		c.type = c.type == VMMUX_EV_IO ? VMMUX_EV_MMIO : VMMUX_EV_IO;
		break;
	case C_VCPU:
		c.vcpu++;
		break;
	case C_COUNT:
		c.count++;
		break;
	case C_AUX:
		c.aux++;
		break;
	default:
		break;
	}
	return c;
}

static void handle(struct raw_vmm *R, struct tp_slot *s, const struct vmmux_event *ev, uint32_t seq,
		   void *arg)
{
	struct forger *F = arg;
	bool string = (ev->flags & VMMUX_EVF_STRING) != 0;
	if (string || !triggers(F, ev) || (!F->armed && F->copy == C_NONE)) {
		raw_answer(s, ev, seq, F->read);
		return;
	}
	struct vmmux_event out[TP_RAISE_MAX];
	uint32_t n = 0;
	enum copy_mode copy = F->armed ? F->copy : (F->copy != C_NONE ? C_EXACT : C_NONE);
	bool copy_async = copy == C_ASYNC;
	if (copy == C_LATE) {
		if (F->have_prev)
			out[n++] = F->prev;
		F->prev = *ev;
		F->have_prev = true;
	} else if (copy != C_NONE && !copy_async) {
		out[n++] = changed(ev, copy);
	}
	uint64_t flood = F->armed ? F->flood : 0;
	if (F->armed && !F->async) {
		for (unsigned i = 0; i < F->nspec && n < TP_RAISE_MAX; i++) {
			out[n] = F->spec[i];
			out[n++].vcpu = ev->vcpu;
		}
	}
	if (F->armed && (n > 0 || (flood && !F->async)))
		tell(F, R, flood && !F->async ? flood : n);
	/* the reply */
	s->rep.action = VMMUX_ACT_DONE;
	s->rep.reserved = 0;
	s->rep.value = (ev->flags & VMMUX_EVF_WRITE) ? 0 : F->read;
	s->result = 0;
	for (uint32_t i = 0; i < n; i++) {
		s->raised[i] = out[i];
		s->raised[i].data = NULL;
	}
	s->nraised = n;
	if (flood && !F->async) {
		/* as many copies of the first raised event (or of an SMI) as asked,
		 * the count field saying so even past the array */
		struct vmmux_event smi = {
		    .type = VMMUX_EV_PLATFORM, .key = VMMUX_PLAT_SMI, .count = 1};
		for (uint32_t i = n; i < TP_RAISE_MAX; i++)
			s->raised[i] = n ? out[0] : smi;
		s->nraised = (uint32_t)flood;
	}
	s->reply_seq = seq;
	raw_publish(s, TP_DONE);
	/* after the reply: what goes on the async ring */
	if (copy_async) {
		tell(F, R, 1);
		(void)tp_vmm_async_push(&R->region, ev);
	}
	if (F->armed && F->async) {
		tell(F, R, (flood ? flood : 1) * (F->nspec ? F->nspec : 1));
		for (uint64_t k = 0; k < (flood ? flood : 1); k++)
			for (unsigned i = 0; i < (F->nspec ? F->nspec : 1); i++) {
				struct vmmux_event e =
				    F->nspec ? F->spec[i]
					     : (struct vmmux_event){.type = VMMUX_EV_PLATFORM,
								    .key = VMMUX_PLAT_SMI,
								    .count = 1};
				e.vcpu = VMMUX_NO_VCPU;
				(void)tp_vmm_async_push(&R->region, &e);
			}
	}
}

int main(void)
{
	struct raw_vmm R;
	raw_hello(&R, PROG);
	static struct forger F;
	F.read = raw_arg_u64(&R, "read", 0x5a);
	F.flood = raw_arg_u64(&R, "flood", 0);
	const char *r = raw_arg(&R, "forge");
	if (r != NULL) {
		char buf[512];
		snprintf(buf, sizeof(buf), "%s", r);
		for (char *save = NULL, *t = strtok_r(buf, "/", &save); t != NULL;
		     t = strtok_r(NULL, "/", &save)) {
			if (F.nspec == SPECS_MAX)
				fail("more than 16 raise specs in '%s'", r);
			parse_spec(t, &F.spec[F.nspec++]);
		}
	}
	const char *c = raw_arg(&R, "copy");
	if (c != NULL) {
		for (unsigned i = 1; i < sizeof(copy_names) / sizeof(copy_names[0]); i++)
			if (strcmp(c, copy_names[i]) == 0)
				F.copy = (enum copy_mode)i;
		if (F.copy == C_NONE)
			fail("copy=%s: unknown", c);
	}
	const char *via = raw_arg(&R, "via");
	F.async = via != NULL && strcmp(via, "async") == 0;
	const char *on = raw_arg(&R, "on");
	F.on = on == NULL || strcmp(on, "all") == 0 ? ON_ALL
	       : strcmp(on, "write") == 0	    ? ON_WRITE
	       : strcmp(on, "read") == 0	    ? ON_READ
						    : -1;
	if (F.on < 0)
		fail("on=%s: expected write, read or all", on);
	bool once = raw_arg_u64(&R, "once", 0) != 0;
	raw_ready(&R, HS_VERSION_MAX, 0, "forger", "");
	if (!raw_go(&R))
		return 0;
	raw_attach(&R);
	F.armed = !once || !raw_marked(&R);
	raw_serve(&R, handle, &F);
	return 0;
}
