/*
 * api.h: the control socket (vmmux run --api-sock PATH).
 *
 * A Unix stream socket, created with mode 0600, that speaks newline-delimited
 * JSON: one request object per line, each with an "id" and a "cmd", one reply
 * line per request carrying the same id (docs/control-api.md lists every
 * command, argument, reply and error). It runs on the main thread, inside the
 * main loop: the server never blocks (non-blocking descriptors, bounded
 * buffers), so a bad or slow client cannot disturb the guest. Commands act
 * through src/vmm/live.h.
 */
#ifndef VMMUX_API_API_H
#define VMMUX_API_API_H

#include "util/err.h"

#define API_LINE_MAX	65536 /* a longer request line is refused and the client dropped */
#define API_CLIENTS_MAX 16

/*
 * Open the socket at PATH. A path that exists is refused unless it is a
 * stale vmmux socket (a socket nobody listens on), which is replaced. Only
 * the user vmmux runs as may connect (the mode, and SO_PEERCRED checked on
 * accept). -1 with a message naming PATH.
 */
int api_open(const char *path, struct errbuf *e);

/*
 * Serve on FD, a listening socket at PATH inherited from the program that
 * ran before this one (a live update, src/snapshot/update.h): nothing is
 * bound, and connections queued meanwhile are accepted. -1 with a message.
 */
int api_adopt(int fd, const char *path, struct errbuf *e);

/* The listening socket's descriptor, or -1 (for a live update). */
int api_listen_fd(void);

/* On the worker, inside api_job_run: the connection of the client whose
 * change runs, or -1 (for a live update, which the new program answers). */
int api_job_client_fd(void);

/* Close every client and the socket, and remove its path. */
void api_close(void);

/* The descriptors the main loop polls for reading (at most MAX). */
unsigned api_poll_fds(int *fds, unsigned max);

/* FD is readable (or hung up): accept, read, answer. Never blocks. */
void api_ready(int fd);

/*
 * The live-change worker (docs/architecture.md, "Threads and who waits for
 * whom"). api_ready answers read-only requests at once and hands every
 * live change (commands.h api_request_begin) to one worker thread, in the
 * order it reads them; a client with a change at the worker is not read
 * until its reply is queued, so each connection's replies keep the order
 * of its requests. The worker loops on api_job_next (blocks until a change
 * is queued; NULL once api_worker_stop was called) and api_job_run (runs
 * the change, however long it waits, and hands the reply back: the control
 * thread sends it, never blocking). api_worker_stop (the control thread
 * leaving its loop): the worker takes nothing more; api_close, once the
 * worker has ended its last change, sends the replies it left and drops
 * the changes it did not take.
 */
struct api_job;
struct api_job *api_job_next(void);
void api_job_run(struct api_job *j);
void api_worker_stop(void);

#endif
