/*
 * vmm_version: a parallel VMM of another protocol version. It speaks the
 * set-up itself (no VMM library): it takes the hello and answers ready with
 * version 99 (argument version=N chooses another), status 0, as a VMM built
 * for a future protocol would. The main VMM must refuse it at start. It
 * then waits for the socket to close and exits 0.
 */
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>

#include "rawvmm.h"

#define PROG "vmm-version"

int main(void)
{
	struct raw_vmm R;
	raw_hello(&R, PROG);
	uint32_t version = (uint32_t)raw_arg_u64(&R, "version", 99);
	fprintf(stderr, "%s: offered versions %u-%u, answering %u\n", PROG, R.hello.version_min,
		R.hello.version_max, version);
	raw_ready(&R, version, 0, "version-test", "");
	/* the main VMM closes the socket (or, should it accept, sends go) */
	struct pollfd p = {.fd = HS_SOCKET_FD, .events = POLLIN};
	if (poll(&p, 1, 5000) == 1) {
		char b[64];
		if (recv(HS_SOCKET_FD, b, sizeof(b), 0) > 0)
			fprintf(stderr, "%s: ACCEPTED: the main VMM went on\n", PROG);
	}
	return 0;
}
