/*
 * vmm_garbage: a parallel VMM that answers one request with a reply out of
 * the protocol's domain, written directly into its request slot (no VMM
 * library: it speaks the protocol itself).
 *
 * Arguments: garbage=MODE (required), read=N (the value reads get, default
 * 0x5a). The first instance (the transport region carries no mark yet)
 * marks the region and answers its first read event (an IN or MMIO read,
 * not a string one) with the garbage MODE names:
 *
 *   action   reply action 99, otherwise well formed (the main VMM collects
 *            it and refuses its meaning: reply_valid)
 *   nraised  1000 raised events (more than TP_RAISE_MAX)
 *   seq      a reply_seq that does not echo the request's number
 *   state    the slot's state word set to 7 (outside enum tp_slot_state)
 *
 * and answers every other event, before and after, correctly; so does a
 * restarted instance, which finds the mark. It prints "vmm-garbage: wrote
 * garbage MODE" when it does.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "rawvmm.h"

#define PROG "vmm-garbage"

enum mode { M_ACTION, M_NRAISED, M_SEQ, M_STATE };

struct serve {
	bool armed; /* the next read gets the garbage */
	enum mode mode;
	const char *mode_name;
	uint64_t read;
};

static void handle(struct raw_vmm *R, struct tp_slot *s, const struct vmmux_event *ev, uint32_t seq,
		   void *arg)
{
	struct serve *S = arg;
	bool read = (ev->type == VMMUX_EV_IO || ev->type == VMMUX_EV_MMIO) &&
		    !(ev->flags & (VMMUX_EVF_WRITE | VMMUX_EVF_STRING));
	if (!S->armed || !read) {
		raw_answer(s, ev, seq, S->read);
		return;
	}
	S->armed = false;
	raw_mark(R);
	fprintf(stderr, "%s: wrote garbage %s\n", PROG, S->mode_name);
	s->rep.action = VMMUX_ACT_DONE;
	s->rep.reserved = 0;
	s->rep.value = S->read;
	s->result = 0;
	s->nraised = 0;
	s->reply_seq = seq;
	switch (S->mode) {
	case M_ACTION:
		s->rep.action = 99;
		raw_publish(s, TP_DONE);
		break;
	case M_NRAISED:
		s->nraised = 1000;
		raw_publish(s, TP_DONE);
		break;
	case M_SEQ:
		s->reply_seq = seq + 1000;
		raw_publish(s, TP_DONE);
		break;
	case M_STATE:
		raw_publish(s, 7);
		break;
	}
}

int main(void)
{
	static const char *const names[] = {"action", "nraised", "seq", "state"};
	struct raw_vmm R;
	raw_hello(&R, PROG);
	struct serve S = {.read = raw_arg_u64(&R, "read", 0x5a)};
	const char *m = raw_arg(&R, "garbage");
	bool found = false;
	for (unsigned i = 0; m != NULL && i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(m, names[i]) == 0) {
			S.mode = (enum mode)i;
			S.mode_name = names[i];
			found = true;
		}
	}
	if (!found) {
		fprintf(stderr, "%s: garbage=%s: expected action, nraised, seq or state\n", PROG,
			m ? m : "(missing)");
		raw_ready(&R, HS_VERSION_MAX, -EINVAL, "garbage", "bad garbage= argument");
		return 1;
	}
	raw_ready(&R, HS_VERSION_MAX, 0, "garbage", "");
	if (!raw_go(&R))
		return 0;
	raw_attach(&R);
	S.armed = !raw_marked(&R);
	raw_serve(&R, handle, &S);
	return 0;
}
