/*
 * vmm_deaf: a parallel VMM that stops reading its set-up socket once it is
 * set up. It speaks the set-up itself (no VMM library): hello, ready (with
 * this protocol's version), go; then it only sleeps, so that every message
 * vmmux sends it afterwards (a doorbell given or taken back) stays in its
 * socket until the socket is full. vmmux must never block on it: a full
 * socket is this VMM's protocol fault.
 */
#include <poll.h>
#include <stdio.h>

#include "rawvmm.h"

#define PROG "vmm-deaf"

int main(void)
{
	struct raw_vmm R;
	raw_hello(&R, PROG);
	raw_ready(&R, HS_VERSION_MAX, 0, "deaf-test", "");
	if (!raw_go(&R))
		return 0;
	fprintf(stderr, "%s: set up; not reading the socket from now on\n", PROG);
	for (;;)
		poll(NULL, 0, -1); /* what the sandbox allows a VMM that waits */
}
