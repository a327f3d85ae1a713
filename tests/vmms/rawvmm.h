/*
 * rawvmm.h: a parallel VMM that speaks vmmux's protocol itself, without the
 * VMM library (src/vmmlib), as a third party's program may: the set-up
 * messages of src/transport/handshake.h on descriptor HS_SOCKET_FD, received
 * and sent with its own recvmsg/sendmsg, and the request slots of the
 * transport region (src/transport/transport.h) read and answered directly.
 * The test VMMs built on it misbehave on purpose (tests/integration/
 * test_isolation.py): they answer what a library VMM never would, and they
 * keep the stage-1 sandbox only (no stage-2 filter is installed).
 *
 * Every function that fails prints "PROG: what failed" on stderr and exits
 * with status 1: a test VMM has nothing to recover.
 */
#ifndef VMMUX_TESTS_RAWVMM_H
#define VMMUX_TESTS_RAWVMM_H

#include <stdbool.h>
#include <stdint.h>

#include "transport/handshake.h"
#include "transport/transport.h"

struct raw_vmm {
	const char *prog; /* for messages */
	struct hs_hello hello;
	int fds[HS_FDS_MAX]; /* as received: region, doorbell, async, pieces... */
	unsigned nfds;
	struct tp_region region; /* after raw_attach */
};

/* Receive the hello and its descriptors (waiting at most 5 s) and check it
 * with hs_hello_check. */
void raw_hello(struct raw_vmm *R, const char *prog);

/* The value of argument KEY in the hello, or NULL. */
const char *raw_arg(const struct raw_vmm *R, const char *key);

/* An unsigned argument (decimal or 0x hex), or DEF when absent. */
uint64_t raw_arg_u64(const struct raw_vmm *R, const char *key, uint64_t def);

/* Send the ready message: VERSION, STATUS (0 or -errno), role name ROLE. */
void raw_ready(struct raw_vmm *R, uint32_t version, int32_t status, const char *role,
	       const char *msg);

/* Wait for the go message; false when the socket closed instead. */
bool raw_go(struct raw_vmm *R);

/* Map the transport region from the first three descriptors. */
void raw_attach(struct raw_vmm *R);

/*
 * Whether an earlier instance of this VMM marked the region (raw_mark): the
 * region outlives the processes, so a restarted instance sees the mark.
 * Uses the saved-state area (an 8-byte marker).
 */
bool raw_marked(const struct raw_vmm *R);
void raw_mark(struct raw_vmm *R);

/*
 * The handler of one request, called with the slot in state BUSY. It writes
 * the reply fields of S (directly: it may write anything) and publishes
 * them with raw_publish, or answers with raw_answer.
 */
typedef void (*raw_handler_fn)(struct raw_vmm *R, struct tp_slot *s, const struct vmmux_event *ev,
			       uint32_t seq, void *arg);

/* A well-formed answer: action DONE, VALUE for a read (an INS is filled with
 * it, element by element), nothing raised. */
void raw_answer(struct tp_slot *s, const struct vmmux_event *ev, uint32_t seq, uint64_t value);

/* Make S's state STATE (TP_DONE for a reply) and wake the main side's waiter
 * when it sleeps. */
void raw_publish(struct tp_slot *s, uint32_t state);

/* One pass over the slots: every request waiting (REQ) goes to HANDLER, a
 * control request (TP_CTL_RESET, TP_CTL_SYNC) is answered DONE without it. */
void raw_serve_pending(struct raw_vmm *R, raw_handler_fn handler, void *arg);

/* Serve the slots until the main VMM closes the set-up socket; control
 * requests (TP_CTL_RESET, TP_CTL_SYNC) are answered DONE without calling HANDLER. */
void raw_serve(struct raw_vmm *R, raw_handler_fn handler, void *arg);

#endif
