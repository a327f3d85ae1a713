/*
 * vmm_hostile: a parallel VMM that is hostile to vmmux's control plane on
 * purpose, for the chaos harness (tests/chaos/chaos.py) and the
 * control-plane regression tests (tests/integration/test_control_plane.py).
 * It speaks the protocol itself (rawvmm.c), so it can do what a library VMM
 * never does. Each misbehaviour is an argument (all off by default, so that
 * without arguments it is a well-behaved VMM whose reads return 0):
 *
 *   hello_delay=MS  wait MS milliseconds after the hello before answering
 *                   ready (a slow set-up; vmmux allows 5 s)
 *   deaf=1          after the go message, never read the set-up socket
 *                   again: what vmmux sends there later (doorbell
 *                   descriptors at route changes, teardown) piles up
 *   delay=US        sleep US microseconds before answering each request
 *   smi=async       on each port write, raise a platform SMI (value: the
 *                   written value's low byte) on the async ring, outside
 *                   any request, as a library VMM does from its input; with
 *                   platform:smi routed to this VMM it comes back to it,
 *                   delivered by vmmux's main loop
 *   smi=reply       the same SMI raised with the reply, routed on the
 *                   delivering thread
 *   spew=N          after the go message, write N lines to its standard
 *                   error as fast as it can ("vmm_hostile: spew K of N"),
 *                   then serve
 *
 * Raising needs the grant (raise=platform:smi in its --vmm). SMIs it
 * receives are answered DONE and never raise again. Port reads return the
 * "read" argument (default 0).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "rawvmm.h"
#include "transport/control.h"

enum { RAISE_NONE = 0, RAISE_ASYNC, RAISE_REPLY };

struct hostile {
	uint64_t delay_us;
	uint64_t read;
	int raise;
};

static void sleep_us(uint64_t us)
{
	struct timespec ts = {.tv_sec = (time_t)(us / 1000000),
			      .tv_nsec = (long)(us % 1000000) * 1000};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void handle(struct raw_vmm *R, struct tp_slot *s, const struct vmmux_event *ev, uint32_t seq,
		   void *arg)
{
	struct hostile *h = arg;
	if (h->delay_us > 0)
		sleep_us(h->delay_us);
	bool port_write = ev->type == VMMUX_EV_IO && (ev->flags & VMMUX_EVF_WRITE);
	if (!port_write || h->raise == RAISE_NONE) {
		raw_answer(s, ev, seq, h->read);
		return;
	}
	struct vmmux_event smi = {
	    .type = VMMUX_EV_PLATFORM,
	    .key = VMMUX_PLAT_SMI,
	    .value = ev->value & 0xff,
	    .count = 1,
	    .vcpu = h->raise == RAISE_REPLY ? ev->vcpu : VMMUX_NO_VCPU,
	};
	if (h->raise == RAISE_ASYNC) {
		/* a full ring (the main loop does not drain it): the SMI is lost,
		 * which is this VMM's business */
		(void)tp_vmm_async_push(&R->region, &smi);
		raw_answer(s, ev, seq, h->read);
		return;
	}
	s->rep.action = VMMUX_ACT_DONE;
	s->rep.reserved = 0;
	s->rep.value = 0;
	s->result = 0;
	s->raised[0] = smi;
	s->raised[0].data = NULL;
	s->nraised = 1;
	s->reply_seq = seq;
	raw_publish(s, TP_DONE);
}

/* Serve the slots. A deaf VMM never looks at its socket (and so never sees
 * vmmux end: vmmux kills it); otherwise the socket's end ends the loop. */
static void serve(struct raw_vmm *R, bool deaf, struct hostile *h)
{
	if (!deaf) {
		raw_serve(R, handle, h);
		return;
	}
	for (;;) { /* the socket never read */
		raw_serve_pending(R, handle, h);
		(void)tp_vmm_wait(&R->region, NULL, 0, -1);
	}
}

int main(void)
{
	struct raw_vmm R;
	raw_hello(&R, "vmm_hostile");
	struct hostile h = {
	    .delay_us = raw_arg_u64(&R, "delay", 0),
	    .read = raw_arg_u64(&R, "read", 0),
	};
	const char *raise = raw_arg(&R, "smi");
	if (raise != NULL && strcmp(raise, "async") == 0) {
		h.raise = RAISE_ASYNC;
	} else if (raise != NULL && strcmp(raise, "reply") == 0) {
		h.raise = RAISE_REPLY;
	} else if (raise != NULL) {
		fprintf(stderr, "vmm_hostile: argument smi=%s: expected async or reply\n", raise);
		raw_ready(&R, HS_VERSION_MAX, -EINVAL, "hostile", "bad argument smi");
		return 1;
	}
	bool deaf = raw_arg_u64(&R, "deaf", 0) != 0;
	uint64_t hello_delay = raw_arg_u64(&R, "hello_delay", 0);
	if (hello_delay > 0)
		sleep_us(hello_delay * 1000);
	raw_ready(&R, HS_VERSION_MAX, 0, "hostile", "");
	if (!raw_go(&R))
		return 0;
	raw_attach(&R);
	uint64_t spew = raw_arg_u64(&R, "spew", 0);
	for (uint64_t k = 1; k <= spew; k++)
		fprintf(stderr, "vmm_hostile: spew %llu of %llu\n", (unsigned long long)k,
			(unsigned long long)spew);
	serve(&R, deaf, &h);
	return 0;
}
