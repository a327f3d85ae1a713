/*
 * vmm_slow: a parallel VMM that takes its time to answer its set-up. It
 * speaks the set-up itself (no VMM library): hello, then it waits
 * delay_ms (argument; default 4800) before its ready, then go; after that
 * it only waits. vmmux must set it up without holding its supervisor.
 */
#include <poll.h>
#include <stdio.h>

#include "rawvmm.h"

#define PROG "vmm-slow"

int main(void)
{
	struct raw_vmm R;
	raw_hello(&R, PROG);
	int delay = (int)raw_arg_u64(&R, "delay_ms", 4800);
	poll(NULL, 0, delay);
	raw_ready(&R, HS_VERSION_MAX, 0, "slow-test", "");
	if (!raw_go(&R))
		return 0;
	for (;;)
		poll(NULL, 0, -1); /* what the sandbox allows a VMM that waits */
}
