/*
 * server.c: the control socket (api.h): the listening socket, its clients,
 * and the framing of their newline-delimited requests and replies.
 *
 * Everything runs on the control thread (src/vmm/machine.c control_main;
 * docs/architecture.md, "Threads and who waits for whom") but the live
 * changes, which may wait and run on the live-change worker (api.h
 * api_job_next): the control thread only reads, parses, answers read-only
 * requests and sends the replies, and never waits for the worker (it
 * hands changes over and takes replies back through two queues under a
 * short mutex, woken by the work eventfd). The socket
 * calls never block: the control thread polls one epoll descriptor
 * (api_poll_fds), in which the
 * listening socket and every client are registered, a client for output as
 * well while its replies wait to be sent; api_ready handles what is ready
 * with non-blocking calls. Per client: an input buffer of one line
 * (API_LINE_MAX bytes and its newline; a longer line is refused and the
 * client dropped) and an output buffer of at most API_OUT_MAX bytes of
 * unread replies (a client that lets more pile up is dropped). Replies go
 * out with MSG_NOSIGNAL: a client that has gone costs a close, no SIGPIPE.
 * Each api_ready handles at most API_REQUESTS_PER_READY requests of each
 * client, so that a client that sends thousands of requests at once does
 * not starve the others: the rest wait in its buffer (it is not read
 * meanwhile), and an eventfd in the epoll set keeps the control thread
 * coming back until they are answered. Supervision (restarts, signals, the
 * watchdog) runs on another thread and never waits for this one.
 *
 * Creating the socket without a window in which another user could reach
 * it, whatever the umask: the socket is bound inside a fresh private
 * directory (mkdtemp, mode 0700) next to PATH, given mode 0600 there, and
 * only then renamed to PATH with RENAME_NOREPLACE, so that PATH never names
 * a socket with another mode, and a file that appears at PATH meanwhile is
 * never replaced. A stale socket at PATH (a socket nobody listens on:
 * connect() is refused) is removed just before, after checking that it is
 * still the same file. Access: the mode (only the owner may connect), and
 * SO_PEERCRED on accept: a peer whose uid is not vmmux's effective uid
 * (root included, which ignores modes) is told "forbidden" and closed.
 */
#include "api/api.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "api/commands.h"
#include "util/log.h"

#define API_OUT_MAX	       (1u << 20) /* unread replies a client may leave */
#define API_READS_PER_READY    4	  /* reads of one client per api_ready */
#define API_REQUESTS_PER_READY 16	  /* requests of one client per api_ready */
#define API_ACCEPTS_PER_READY  16
#define API_EVENTS	       32
#define API_BACKLOG	       64
#define API_DRAIN_MAX	       (256u << 10) /* input discarded before closing */
#define TAG_LISTEN	       UINT64_MAX
#define TAG_WORK	       (UINT64_MAX - 1)
#define SOCK_NAME	       "sock"

struct client {
	int fd;
	uint32_t serial; /* tells this client from a later one in the same slot */
	pid_t pid;
	char *in; /* API_LINE_MAX + 1 bytes: one line and its newline */
	size_t in_len;
	char *out; /* replies not sent yet: out[off..len) */
	size_t out_off, out_len, out_cap;
	uint32_t events;  /* what it is registered for in the epoll set */
	bool backlog;	  /* complete requests wait in `in`: not read meanwhile */
	bool read_closed; /* no more requests: closed once the replies are out */
	bool waiting;	  /* a live change of its at the worker: its next
			   * requests wait (replies keep the requests' order) */
};

/* A live change handed to the worker, then its reply handed back. */
struct api_job {
	struct api_deferred *req;
	json_t *reply; /* set by the worker */
	unsigned slot;
	int fd;		 /* a copy of the client's connection (-1: none), the job's own: the
			  * control thread may close the client's while the job runs */
	uint32_t serial; /* the client's: it may have gone meanwhile */
	struct api_job *next;
};

static void job_free(struct api_job *j)
{
	if (j->fd >= 0)
		close(j->fd);
	free(j);
}

/* The two queues between the control thread and the worker (FIFO). */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* the worker waits for `todo` */
	struct api_job *todo, **todo_tail;
	struct api_job *done, **done_tail;
	bool stopping; /* api_worker_stop: the worker takes nothing more */
} W = {.lock = PTHREAD_MUTEX_INITIALIZER,
       .cond = PTHREAD_COND_INITIALIZER,
       .todo_tail = &W.todo,
       .done_tail = &W.done};

static struct {
	int lfd, efd, spare_fd;
	int work_fd; /* readable while some client has a backlog */
	char *path;
	dev_t dev;
	ino_t ino;
	uint32_t serial;
	bool accept_error_logged;
	struct client *c[API_CLIENTS_MAX];
} S = {.lfd = -1, .efd = -1, .spare_fd = -1, .work_fd = -1};

/* ---------------------------------------------------------------------- */
/* Clients                                                                  */
/* ---------------------------------------------------------------------- */

static uint64_t tag_of(unsigned slot, const struct client *cl)
{
	return ((uint64_t)cl->serial << 32) | slot;
}

static void client_close(unsigned slot)
{
	struct client *cl = S.c[slot];
	if (cl == NULL)
		return;
	epoll_ctl(S.efd, EPOLL_CTL_DEL, cl->fd, NULL);
	/* What the client sent and nobody read would turn its end-of-file into
	 * a reset: read it away first (bounded). */
	char sink[4096];
	for (size_t drained = 0; drained < API_DRAIN_MAX;) {
		ssize_t n = recv(cl->fd, sink, sizeof(sink), MSG_DONTWAIT);
		if (n <= 0)
			break;
		drained += (size_t)n;
	}
	close(cl->fd);
	log_debug("control socket: client %u (pid %d) closed", cl->serial, (int)cl->pid);
	free(cl->in);
	free(cl->out);
	free(cl);
	S.c[slot] = NULL;
}

/* Register what the client is polled for: input until its end (not while
 * a backlog waits), output while replies wait. -1 when it was closed. */
static int client_poll_set(unsigned slot)
{
	struct client *cl = S.c[slot];
	uint32_t want = (cl->read_closed || cl->backlog || cl->waiting ? 0u : (uint32_t)EPOLLIN) |
			(cl->out_off < cl->out_len ? (uint32_t)EPOLLOUT : 0u);
	if (want == cl->events)
		return 0;
	struct epoll_event ev = {.events = want, .data.u64 = tag_of(slot, cl)};
	if (epoll_ctl(S.efd, EPOLL_CTL_MOD, cl->fd, &ev) < 0) {
		log_warn("control socket: client %u: epoll: %s; closed", cl->serial,
			 strerror(errno));
		client_close(slot);
		return -1;
	}
	cl->events = want;
	return 0;
}

/* Have api_ready called again: a client has requests waiting. */
static void work_signal(void)
{
	uint64_t one = 1;
	ssize_t w = write(S.work_fd, &one, sizeof(one));
	(void)w; /* EAGAIN: the counter is set already */
}

/* Send what can be sent now. -1 when the client was closed. */
static int client_flush(unsigned slot)
{
	struct client *cl = S.c[slot];
	while (cl->out_off < cl->out_len) {
		ssize_t n = send(cl->fd, cl->out + cl->out_off, cl->out_len - cl->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			cl->out_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		/* gone (EPIPE, ECONNRESET): its replies have nobody to read them */
		log_debug("control socket: client %u: %s", cl->serial,
			  n < 0 ? strerror(errno) : "send returned 0");
		client_close(slot);
		return -1;
	}
	if (cl->out_off == cl->out_len) {
		cl->out_off = cl->out_len = 0;
		if (cl->read_closed && !cl->backlog && !cl->waiting) {
			client_close(slot);
			return -1;
		}
	}
	return client_poll_set(slot);
}

/* Queue REPLY (consumed) for the client and send what can be sent. -1 when
 * the client was closed (gone, or too many unread replies). */
static int client_reply(unsigned slot, json_t *reply)
{
	struct client *cl = S.c[slot];
	if (reply == NULL) {
		log_warn("control socket: client %u: out of memory for a reply; closed",
			 cl->serial);
		client_close(slot);
		return -1;
	}
	char *s = json_dumps(reply, JSON_COMPACT);
	json_decref(reply);
	if (s == NULL) {
		log_warn("control socket: client %u: out of memory for a reply; closed",
			 cl->serial);
		client_close(slot);
		return -1;
	}
	size_t n = strlen(s);
	size_t pending = cl->out_len - cl->out_off;
	if (pending + n + 1 > API_OUT_MAX) {
		free(s);
		log_warn("control socket: client %u (pid %d) dropped: it left more than %u KiB "
			 "of replies unread",
			 cl->serial, (int)cl->pid, API_OUT_MAX >> 10);
		client_close(slot);
		return -1;
	}
	if (cl->out_off > 0) {
		memmove(cl->out, cl->out + cl->out_off, pending);
		cl->out_off = 0;
		cl->out_len = pending;
	}
	if (cl->out_len + n + 1 > cl->out_cap) {
		size_t cap = cl->out_cap ? cl->out_cap : 4096;
		while (cap < cl->out_len + n + 1)
			cap *= 2;
		char *nb = realloc(cl->out, cap);
		if (nb == NULL) {
			free(s);
			log_warn("control socket: client %u: out of memory; closed", cl->serial);
			client_close(slot);
			return -1;
		}
		cl->out = nb;
		cl->out_cap = cap;
	}
	memcpy(cl->out + cl->out_len, s, n);
	cl->out[cl->out_len + n] = '\n';
	cl->out_len += n + 1;
	free(s);
	return client_flush(slot);
}

/* Hand the client's live change D to the worker; the client waits for its
 * reply. -1 (the client closed) when the run is ending. */
static int client_defer(unsigned slot, struct api_deferred *d)
{
	struct client *cl = S.c[slot];
	struct api_job *j = calloc(1, sizeof(*j));
	if (j == NULL) {
		api_deferred_free(d);
		return client_reply(slot, NULL); /* out of memory: closed */
	}
	j->req = d;
	j->slot = slot;
	j->fd = fcntl(cl->fd, F_DUPFD_CLOEXEC, 3);
	j->serial = cl->serial;
	pthread_mutex_lock(&W.lock);
	bool stopping = W.stopping;
	if (!stopping) {
		*W.todo_tail = j;
		W.todo_tail = &j->next;
		pthread_cond_signal(&W.cond);
	}
	pthread_mutex_unlock(&W.lock);
	if (stopping) {
		api_deferred_free(d);
		job_free(j);
		client_close(slot);
		return -1;
	}
	cl->waiting = true;
	return 0;
}

/* Answer the complete lines in the input buffer, at most
 * API_REQUESTS_PER_READY of them, up to the first live change (handed to
 * the worker: the lines after it wait for its reply); sets the backlog
 * flag when more wait. -1 when the client was closed. */
static int client_lines(unsigned slot)
{
	struct client *cl = S.c[slot];
	size_t start = 0;
	unsigned answered = 0;
	char *nl = NULL;
	while (!cl->waiting && (nl = memchr(cl->in + start, '\n', cl->in_len - start)) != NULL) {
		if (answered == API_REQUESTS_PER_READY)
			break;
		size_t len = (size_t)(nl - (cl->in + start));
		const char *line = cl->in + start;
		start += len + 1;
		if (api_line_blank(line, len))
			continue; /* no request, no reply */
		answered++;
		struct api_deferred *d;
		json_t *r = api_request_begin(line, len, &d);
		if (d != NULL) {
			if (client_defer(slot, d) < 0)
				return -1;
			continue; /* the loop ends: the client waits */
		}
		/* NULL: out of memory, and client_reply closes the client */
		if (client_reply(slot, r) < 0)
			return -1;
	}
	memmove(cl->in, cl->in + start, cl->in_len - start);
	cl->in_len -= start;
	/* a waiting client's lines are taken up again when its reply comes */
	cl->backlog = !cl->waiting && nl != NULL;
	if (cl->backlog)
		work_signal();
	return client_poll_set(slot);
}

/* The client's line is longer than API_LINE_MAX: say so and drop it. */
static void client_too_long(unsigned slot)
{
	struct client *cl = S.c[slot];
	log_warn("control socket: client %u (pid %d) dropped: a request line longer than %d "
		 "bytes",
		 cl->serial, (int)cl->pid, API_LINE_MAX);
	cl->read_closed = true;
	cl->in_len = 0;
	json_t *r = api_error_reply(NULL, "too_long",
				    "the request line is longer than %d bytes; the connection is "
				    "closed",
				    API_LINE_MAX);
	if (client_reply(slot, r) == 0)
		client_close(slot); /* not waiting for a client that does not read */
}

static void client_read(unsigned slot)
{
	for (unsigned k = 0; k < API_READS_PER_READY; k++) {
		struct client *cl = S.c[slot];
		size_t room = (size_t)API_LINE_MAX + 1 - cl->in_len;
		ssize_t n = recv(cl->fd, cl->in + cl->in_len, room, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				log_debug("control socket: client %u: %s", cl->serial,
					  strerror(errno));
				client_close(slot);
			}
			return;
		}
		if (n == 0) {
			/* End of its requests; a line without its newline is not a
			 * request. The replies still go out (a half-closed client
			 * reads them). */
			if (cl->in_len > 0)
				log_debug("control socket: client %u left an unfinished "
					  "request (%zu bytes)",
					  cl->serial, cl->in_len);
			cl->in_len = 0;
			cl->read_closed = true;
			if (cl->out_off == cl->out_len && !cl->waiting)
				client_close(slot);
			else
				client_poll_set(slot);
			return;
		}
		cl->in_len += (size_t)n;
		if (client_lines(slot) < 0 || cl->backlog || cl->waiting)
			return; /* closed, or not read until its backlog is answered */
		if (cl->in_len > (size_t)API_LINE_MAX) {
			client_too_long(slot);
			return;
		}
	}
}

/* After a client's line was answered (its backlog, or its live change):
 * answer its next lines, read it again, or close it if it has left. */
static void client_resume(unsigned slot)
{
	struct client *cl = S.c[slot];
	if (client_lines(slot) < 0 || cl->backlog || cl->waiting)
		return;
	if (cl->in_len > (size_t)API_LINE_MAX)
		client_too_long(slot);
	else if (cl->read_closed && cl->out_off == cl->out_len)
		client_close(slot);
}

/* The worker's replies, to their clients in the order of their requests
 * (one live change of a client at a time). Replies of clients that have
 * gone are dropped. */
static void clients_replies(void)
{
	pthread_mutex_lock(&W.lock);
	struct api_job *j = W.done;
	W.done = NULL;
	W.done_tail = &W.done;
	pthread_mutex_unlock(&W.lock);
	while (j != NULL) {
		struct api_job *next = j->next;
		struct client *cl = j->slot < API_CLIENTS_MAX ? S.c[j->slot] : NULL;
		if (cl != NULL && cl->serial == j->serial && cl->waiting) {
			cl->waiting = false;
			if (client_reply(j->slot, j->reply) == 0)
				client_resume(j->slot);
		} else {
			json_decref(j->reply);
		}
		job_free(j);
		j = next;
	}
}

/* Go on answering the clients' backlogs and give them the worker's replies
 * (a TAG_WORK event). */
static void clients_work(void)
{
	uint64_t v;
	ssize_t r = read(S.work_fd, &v, sizeof(v));
	(void)r;
	clients_replies();
	for (unsigned slot = 0; slot < API_CLIENTS_MAX; slot++) {
		struct client *cl = S.c[slot];
		if (cl == NULL || !cl->backlog)
			continue;
		client_resume(slot);
	}
}

struct api_job *api_job_next(void)
{
	pthread_mutex_lock(&W.lock);
	while (W.todo == NULL && !W.stopping)
		pthread_cond_wait(&W.cond, &W.lock);
	struct api_job *j = NULL;
	if (!W.stopping) {
		j = W.todo;
		W.todo = j->next;
		if (W.todo == NULL)
			W.todo_tail = &W.todo;
		j->next = NULL;
	}
	pthread_mutex_unlock(&W.lock);
	return j;
}

static _Thread_local int job_fd = -1;

int api_job_client_fd(void)
{
	return job_fd;
}

int api_listen_fd(void)
{
	return S.lfd;
}

void api_job_run(struct api_job *j)
{
	job_fd = j->fd;
	j->reply = api_deferred_run(j->req);
	job_fd = -1;
	j->req = NULL;
	pthread_mutex_lock(&W.lock);
	*W.done_tail = j;
	W.done_tail = &j->next;
	pthread_mutex_unlock(&W.lock);
	work_signal(); /* the control thread sends it */
}

void api_worker_stop(void)
{
	pthread_mutex_lock(&W.lock);
	W.stopping = true;
	pthread_cond_broadcast(&W.cond);
	pthread_mutex_unlock(&W.lock);
}

/* Tell a connection we do not serve why (the error reply R, consumed; one
 * best-effort line), and close it. */
static void refuse(int fd, json_t *r)
{
	char *s = r != NULL ? json_dumps(r, JSON_COMPACT) : NULL;
	json_decref(r);
	char *line = NULL;
	if (s != NULL && asprintf(&line, "%s\n", s) >= 0) {
		ssize_t w = send(fd, line, strlen(line), MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)w;
		free(line);
	}
	free(s);
	close(fd);
}

static void accept_clients(void)
{
	for (unsigned k = 0; k < API_ACCEPTS_PER_READY; k++) {
		int fd = accept4(S.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if ((errno == EMFILE || errno == ENFILE) && S.spare_fd >= 0) {
				/* No descriptor left: accept with the spare one and
				 * close, or the pending connection would keep the
				 * socket readable forever. */
				close(S.spare_fd);
				S.spare_fd = -1;
				int tmp = accept4(S.lfd, NULL, NULL, SOCK_CLOEXEC);
				if (tmp >= 0)
					close(tmp);
				S.spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
				log_warn("control socket: out of file descriptors: a connection "
					 "was closed");
				continue;
			}
			if (!S.accept_error_logged)
				log_warn("control socket: accept: %s", strerror(errno));
			S.accept_error_logged = true;
			return;
		}
		struct ucred cred;
		socklen_t cl = sizeof(cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0) {
			log_warn("control socket: SO_PEERCRED: %s; connection closed",
				 strerror(errno));
			close(fd);
			continue;
		}
		uid_t me = geteuid();
		if (cred.uid != me) {
			log_warn("control socket: refused a connection from uid %u (pid %d): only "
				 "uid %u may use it",
				 (unsigned)cred.uid, (int)cred.pid, (unsigned)me);
			refuse(fd, api_error_reply(NULL, "forbidden",
						   "only uid %u may use this control socket (you "
						   "are uid %u)",
						   (unsigned)me, (unsigned)cred.uid));
			continue;
		}
		unsigned slot = API_CLIENTS_MAX;
		for (unsigned i = 0; i < API_CLIENTS_MAX && slot == API_CLIENTS_MAX; i++)
			if (S.c[i] == NULL)
				slot = i;
		if (slot == API_CLIENTS_MAX) {
			log_warn("control socket: refused a connection (pid %d): %d clients are "
				 "connected already",
				 (int)cred.pid, API_CLIENTS_MAX);
			refuse(fd, api_error_reply(NULL, "busy",
						   "%d clients are connected already (at most %d); "
						   "try again later",
						   API_CLIENTS_MAX, API_CLIENTS_MAX));
			continue;
		}
		struct client *c = calloc(1, sizeof(*c));
		char *in = malloc((size_t)API_LINE_MAX + 1);
		if (c == NULL || in == NULL) {
			free(c);
			free(in);
			refuse(fd, api_error_reply(NULL, "internal", "out of memory"));
			continue;
		}
		c->fd = fd;
		c->in = in;
		c->pid = cred.pid;
		c->serial = ++S.serial;
		c->events = EPOLLIN;
		struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag_of(slot, c)};
		if (epoll_ctl(S.efd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			log_warn("control socket: epoll: %s; connection closed", strerror(errno));
			free(c->in);
			free(c);
			close(fd);
			continue;
		}
		S.c[slot] = c;
		log_debug("control socket: client %u (pid %d) connected", c->serial, (int)cred.pid);
	}
}

unsigned api_poll_fds(int *fds, unsigned max)
{
	if (S.efd < 0 || max == 0)
		return 0;
	fds[0] = S.efd;
	return 1;
}

void api_ready(int fd)
{
	if (S.efd < 0 || fd != S.efd)
		return;
	struct epoll_event evs[API_EVENTS];
	int n = epoll_wait(S.efd, evs, API_EVENTS, 0);
	bool listen_ready = false;
	/* The clients first: one that has left frees its slot for a
	 * connection accepted below. */
	for (int i = 0; i < n; i++) {
		uint64_t tag = evs[i].data.u64;
		if (tag == TAG_LISTEN) {
			listen_ready = true;
			continue;
		}
		if (tag == TAG_WORK) {
			clients_work();
			continue;
		}
		unsigned slot = (unsigned)(tag & 0xffffffffu);
		if (slot >= API_CLIENTS_MAX)
			continue;
		struct client *cl = S.c[slot];
		/* closed earlier in this round (its slot possibly taken again) */
		if (cl == NULL || cl->serial != (uint32_t)(tag >> 32))
			continue;
		uint32_t e = evs[i].events;
		if ((e & EPOLLOUT) && client_flush(slot) < 0)
			continue;
		if (cl->waiting && (e & (EPOLLHUP | EPOLLERR))) {
			client_close(slot); /* gone: its reply has nobody to read it */
			continue;
		}
		if (cl->backlog || cl->waiting)
			continue; /* read once its backlog is answered */
		if (!cl->read_closed && (e & (EPOLLIN | EPOLLHUP | EPOLLERR)))
			client_read(slot);
		else if (cl->read_closed && (e & (EPOLLHUP | EPOLLERR)))
			client_close(slot);
	}
	if (listen_ready)
		accept_clients();
}

/* ---------------------------------------------------------------------- */
/* The socket                                                               */
/* ---------------------------------------------------------------------- */

/*
 * What is at PATH: 0 nothing; 1 a stale socket (*ST its identity); -1 with a
 * message when it must not be touched.
 */
static int probe_path(const char *path, struct stat *st, struct errbuf *e)
{
	if (lstat(path, st) < 0) {
		if (errno == ENOENT)
			return 0;
		return err_set(e, "control socket %s: %s", path, strerror(errno));
	}
	if (!S_ISSOCK(st->st_mode))
		return err_set(e,
			       "control socket %s: the path exists and is not a socket; "
			       "refusing to replace it",
			       path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return err_set(e, "control socket %s: socket: %s", path, strerror(errno));
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	memcpy(a.sun_path, path, strlen(path) + 1);
	int rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
	int err = errno;
	close(fd);
	if (rc == 0 || err == EAGAIN || err == EINPROGRESS)
		return err_set(e,
			       "control socket %s: a process is listening on it (another vmmux?); "
			       "refusing to take it over",
			       path);
	if (err == ECONNREFUSED)
		return 1; /* nobody listens: a socket left behind */
	if (err == ENOENT)
		return 0;
	return err_set(e, "control socket %s: an existing socket that cannot be probed: %s", path,
		       strerror(err));
}

/* The directory part of PATH ("." when none), malloc'd. */
static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (slash == NULL)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

int api_open(const char *path, struct errbuf *e)
{
	if (S.lfd >= 0)
		return err_set(e, "control socket %s: a control socket is open already", path);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	size_t plen = strlen(path);
	if (plen == 0)
		return err_set(e, "control socket: the path is empty");
	if (plen >= sizeof(a.sun_path))
		return err_set(e,
			       "control socket %s: the path is %zu bytes long, at most %zu for a "
			       "Unix socket",
			       path, plen, sizeof(a.sun_path) - 1);
	struct stat old;
	int stale = probe_path(path, &old, e);
	if (stale < 0)
		return -1;

	char *dir = dir_of(path), *tmp = NULL;
	int lfd = -1, dfd = -1, efd = -1, wfd = -1, rc = -1;
	bool bound = false;
	if (dir == NULL || asprintf(&tmp, "%s/.vmmux-api-XXXXXX", dir) < 0) {
		tmp = NULL;
		err_set(e, "control socket %s: out of memory", path);
		goto out;
	}
	if (mkdtemp(tmp) == NULL) {
		err_set(e, "control socket %s: cannot create a directory in %s: %s", path, dir,
			strerror(errno));
		free(tmp);
		tmp = NULL;
		goto out;
	}
	dfd = open(tmp, O_PATH | O_DIRECTORY | O_CLOEXEC);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (dfd < 0 || lfd < 0) {
		err_set(e, "control socket %s: %s", path, strerror(errno));
		goto out;
	}
	/* The mode the socket file is created with (less what the umask
	 * removes): never more than 0600, even for an instant. */
	if (fchmod(lfd, 0600) < 0) {
		err_set(e, "control socket %s: fchmod: %s", path, strerror(errno));
		goto out;
	}
	/* Bind inside the private directory; through /proc when that path is
	 * too long for sun_path. */
	int w = snprintf(a.sun_path, sizeof(a.sun_path), "%s/" SOCK_NAME, tmp);
	if (w < 0 || (size_t)w >= sizeof(a.sun_path))
		snprintf(a.sun_path, sizeof(a.sun_path), "/proc/self/fd/%d/" SOCK_NAME, dfd);
	if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		err_set(e, "control socket %s: bind: %s", path, strerror(errno));
		goto out;
	}
	bound = true;
	/* Exactly 0600, whatever the umask took away; nobody else can reach
	 * the file in this directory. */
	struct stat st;
	if (fchmodat(dfd, SOCK_NAME, 0600, 0) < 0 || fstatat(dfd, SOCK_NAME, &st, 0) < 0) {
		err_set(e, "control socket %s: %s", path, strerror(errno));
		goto out;
	}
	if (listen(lfd, API_BACKLOG) < 0) {
		err_set(e, "control socket %s: listen: %s", path, strerror(errno));
		goto out;
	}
	if (stale == 1) {
		struct stat now;
		if (lstat(path, &now) == 0) {
			if (now.st_dev != old.st_dev || now.st_ino != old.st_ino ||
			    !S_ISSOCK(now.st_mode)) {
				err_set(e,
					"control socket %s: the path changed while vmmux was "
					"replacing a stale socket there",
					path);
				goto out;
			}
			if (unlink(path) < 0 && errno != ENOENT) {
				err_set(e, "control socket %s: cannot remove the stale socket: %s",
					path, strerror(errno));
				goto out;
			}
			log_info("control socket %s: replaced a stale socket", path);
		}
	}
	if (renameat2(dfd, SOCK_NAME, AT_FDCWD, path, RENAME_NOREPLACE) < 0) {
		int err = errno;
		if (err == EINVAL || err == ENOSYS) {
			/* a file system without RENAME_NOREPLACE: link() never
			 * replaces either */
			err = 0;
			if (linkat(dfd, SOCK_NAME, AT_FDCWD, path, 0) < 0)
				err = errno;
			else
				unlinkat(dfd, SOCK_NAME, 0);
		}
		if (err == EEXIST) {
			err_set(e,
				"control socket %s: the path was created by another process "
				"meanwhile; refusing to replace it",
				path);
			goto out;
		}
		if (err != 0) {
			err_set(e, "control socket %s: %s", path, strerror(err));
			goto out;
		}
	}
	bound = false; /* the file is at PATH now */
	efd = epoll_create1(EPOLL_CLOEXEC);
	wfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_LISTEN};
	struct epoll_event wev = {.events = EPOLLIN, .data.u64 = TAG_WORK};
	if (efd < 0 || wfd < 0 || epoll_ctl(efd, EPOLL_CTL_ADD, lfd, &ev) < 0 ||
	    epoll_ctl(efd, EPOLL_CTL_ADD, wfd, &wev) < 0 || (S.path = strdup(path)) == NULL) {
		err_set(e, "control socket %s: %s", path, strerror(errno ? errno : ENOMEM));
		unlink(path);
		goto out;
	}
	S.lfd = lfd;
	S.efd = efd;
	S.work_fd = wfd;
	S.dev = st.st_dev;
	S.ino = st.st_ino;
	S.spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	S.accept_error_logged = false;
	pthread_mutex_lock(&W.lock);
	W.stopping = false;
	pthread_mutex_unlock(&W.lock);
	lfd = efd = wfd = -1;
	rc = 0;
	log_info("control socket listening on %s", path);
out:
	if (bound)
		unlinkat(dfd, SOCK_NAME, 0);
	if (tmp != NULL)
		rmdir(tmp);
	if (dfd >= 0)
		close(dfd);
	if (lfd >= 0)
		close(lfd);
	if (efd >= 0)
		close(efd);
	if (wfd >= 0)
		close(wfd);
	free(tmp);
	free(dir);
	return rc;
}

int api_adopt(int fd, const char *path, struct errbuf *e)
{
	if (S.lfd >= 0)
		return err_set(e, "control socket %s: a control socket is open already", path);
	int listening = 0;
	socklen_t ol = sizeof(listening);
	struct stat st;
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ol) < 0 || !listening)
		return err_set(e, "control socket %s: descriptor %d is not a listening socket",
			       path, fd);
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 ||
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
		return err_set(e, "control socket %s: fcntl: %s", path, strerror(errno));
	int efd = epoll_create1(EPOLL_CLOEXEC);
	int wfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_LISTEN};
	struct epoll_event wev = {.events = EPOLLIN, .data.u64 = TAG_WORK};
	if (efd < 0 || wfd < 0 || epoll_ctl(efd, EPOLL_CTL_ADD, fd, &ev) < 0 ||
	    epoll_ctl(efd, EPOLL_CTL_ADD, wfd, &wev) < 0 || (S.path = strdup(path)) == NULL) {
		err_set(e, "control socket %s: %s", path, strerror(errno ? errno : ENOMEM));
		if (efd >= 0)
			close(efd);
		if (wfd >= 0)
			close(wfd);
		return -1;
	}
	/* the path is removed at the end only if it is still this socket */
	if (lstat(path, &st) == 0) {
		S.dev = st.st_dev;
		S.ino = st.st_ino;
	}
	S.lfd = fd;
	S.efd = efd;
	S.work_fd = wfd;
	S.spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	S.accept_error_logged = false;
	pthread_mutex_lock(&W.lock);
	W.stopping = false;
	pthread_mutex_unlock(&W.lock);
	log_info("control socket %s taken over (descriptor %d)", path, fd);
	return 0;
}

void api_close(void)
{
	/* The worker has stopped (api_worker_stop, and its last change ended):
	 * the replies it left go out with the rest, the changes it did not
	 * take are dropped. */
	if (S.efd >= 0)
		clients_replies();
	pthread_mutex_lock(&W.lock);
	for (struct api_job *j = W.todo, *next; j != NULL; j = next) {
		next = j->next;
		api_deferred_free(j->req);
		job_free(j);
	}
	for (struct api_job *j = W.done, *next; j != NULL; j = next) {
		next = j->next;
		json_decref(j->reply);
		job_free(j);
	}
	W.todo = W.done = NULL;
	W.todo_tail = &W.todo;
	W.done_tail = &W.done;
	pthread_mutex_unlock(&W.lock);
	for (unsigned i = 0; i < API_CLIENTS_MAX; i++)
		if (S.c[i] != NULL) {
			/* what was answered goes out if the socket takes it */
			if (S.c[i]->out_off < S.c[i]->out_len) {
				ssize_t w = send(S.c[i]->fd, S.c[i]->out + S.c[i]->out_off,
						 S.c[i]->out_len - S.c[i]->out_off,
						 MSG_NOSIGNAL | MSG_DONTWAIT);
				(void)w;
			}
			client_close(i);
		}
	if (S.lfd >= 0) {
		close(S.lfd);
		/* Remove the path only while it is still this socket. */
		struct stat st;
		if (S.path != NULL && lstat(S.path, &st) == 0 && st.st_dev == S.dev &&
		    st.st_ino == S.ino)
			unlink(S.path);
	}
	if (S.efd >= 0)
		close(S.efd);
	if (S.spare_fd >= 0)
		close(S.spare_fd);
	if (S.work_fd >= 0)
		close(S.work_fd);
	free(S.path);
	S.path = NULL;
	S.lfd = S.efd = S.spare_fd = S.work_fd = -1;
}
