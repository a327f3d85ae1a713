/*
 * handshake.c: the set-up messages between the main VMM and a parallel VMM
 * (contract in handshake.h). Messages travel on a SOCK_SEQPACKET socket, so
 * each arrives whole or not at all; descriptors ride along as SCM_RIGHTS.
 */
#include "transport/handshake.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "transport/transport.h"

#define HS_ERRNO_MAX 4095 /* the largest errno a status may carry */

/* Control buffer for up to HS_FDS_MAX descriptors: more sets MSG_CTRUNC. */
union hs_cmsg {
	char buf[CMSG_SPACE(sizeof(int) * HS_FDS_MAX)];
	struct cmsghdr align;
};

int hs_send(int sock, const void *msg, size_t len, const int *fds, unsigned nfds)
{
	if (msg == NULL || len == 0 || nfds > HS_FDS_MAX || (nfds != 0 && fds == NULL)) {
		errno = EINVAL;
		return -1;
	}
	struct iovec iov = {.iov_base = (void *)msg, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	union hs_cmsg cm;
	if (nfds != 0) {
		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	ssize_t n;
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	if ((size_t)n != len) {
		errno = EMSGSIZE;
		return -1;
	}
	return 0;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void close_all(const int *fds, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		close(fds[i]);
}

/* Wait until SOCK is readable (or hung up); 0, or -1 with e. */
static int wait_readable(int sock, int timeout_ms, struct errbuf *e)
{
	uint64_t end = timeout_ms < 0 ? 0 : now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		int left = -1;
		if (timeout_ms >= 0) {
			uint64_t now = now_ms();
			left = now >= end ? 0 : (int)(end - now);
		}
		struct pollfd p = {.fd = sock, .events = POLLIN};
		int rc = poll(&p, 1, left);
		if (rc > 0) {
			if (p.revents & POLLNVAL) {
				errno = EBADF;
				return err_set(e, "setup socket: descriptor %d is not open", sock);
			}
			return 0; /* readable, or hung up: recvmsg tells which */
		}
		if (rc == 0) {
			errno = ETIMEDOUT;
			return err_set(e, "setup socket: no message within %d ms", timeout_ms);
		}
		if (errno != EINTR)
			return err_set(e, "setup socket: poll: %s", strerror(errno));
	}
}

int hs_recv(int sock, void *msg, size_t len, int *fds, unsigned maxfds, unsigned *nfds,
	    int timeout_ms, struct errbuf *e)
{
	if (nfds != NULL)
		*nfds = 0;
	if (msg == NULL || len == 0 || (maxfds != 0 && (fds == NULL || nfds == NULL))) {
		errno = EINVAL;
		return err_set(e, "setup socket: no buffer for the message or its descriptors");
	}
	if (wait_readable(sock, timeout_ms, e) != 0)
		return -1;

	/* One spare byte tells a longer message from an exact one. */
	char spare;
	struct iovec iov[2] = {{.iov_base = msg, .iov_len = len},
			       {.iov_base = &spare, .iov_len = 1}};
	union hs_cmsg cm;
	memset(&cm, 0, sizeof(cm));
	struct msghdr mh = {.msg_iov = iov,
			    .msg_iovlen = 2,
			    .msg_control = cm.buf,
			    .msg_controllen = sizeof(cm.buf)};
	ssize_t n;
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		int err = errno;
		err_set(e, "setup socket: receive: %s", strerror(err));
		errno = err;
		return -1;
	}

	/* Every descriptor that arrived, whatever happens next. */
	int got[HS_FDS_MAX + 4]; /* CMSG_SPACE's padding may fit a few more */
	unsigned ngot = 0, total = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
		    c->cmsg_len < CMSG_LEN(0))
			continue;
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t j = 0; j < k; j++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + j * sizeof(int), sizeof(int));
			total++;
			if (ngot < sizeof(got) / sizeof(got[0]))
				got[ngot++] = fd;
			else
				close(fd);
		}
	}

	int err = 0;
	if (n == 0) {
		err = ECONNRESET;
		err_set(e, "setup socket: the peer closed the connection");
	} else if (mh.msg_flags & MSG_CTRUNC) {
		err = EPROTO;
		err_set(e, "setup socket: more descriptors than the %u a message may carry",
			HS_FDS_MAX);
	} else if ((mh.msg_flags & MSG_TRUNC) || (size_t)n != len) {
		err = EMSGSIZE;
		if ((size_t)n > len)
			err_set(e, "setup socket: message longer than the %zu bytes expected", len);
		else
			err_set(e, "setup socket: message of %zd bytes, expected %zu", n, len);
	} else if (total > maxfds || total > ngot) {
		err = EPROTO;
		err_set(e, "setup socket: %u descriptors received, at most %u expected", total,
			maxfds);
	}
	if (err != 0) {
		close_all(got, ngot);
		errno = err;
		return -1;
	}
	if (ngot != 0)
		memcpy(fds, got, sizeof(int) * ngot);
	if (nfds != NULL)
		*nfds = ngot;
	return 0;
}

/* ---- checks ---------------------------------------------------------------- */

/* A string field: NUL-terminated within its CAP bytes. */
static bool terminated(const char *s, size_t cap)
{
	return memchr(s, '\0', cap) != NULL;
}

/* A name: 1 or more of [a-z0-9_-] (the caller checked termination). */
static bool name_ok(const char *s)
{
	if (s[0] == '\0')
		return false;
	for (const char *p = s; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' ||
		      *p == '-'))
			return false;
	return true;
}

/* Copy S (terminated) into OUT with every byte outside printable ASCII
 * replaced, so that a VMM's message cannot steer a terminal. */
static void printable(char *out, size_t cap, const char *s)
{
	size_t i = 0;
	for (; s[i] != '\0' && i + 1 < cap; i++)
		out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	out[i] = '\0';
}

/* Check string field FIELD of message WHAT: terminated; when NAME, a valid
 * name (or empty, when EMPTY_OK); a refused name is quoted printable. */
static int check_str(const char *what, const char *field, const char *s, size_t cap, bool name,
		     bool empty_ok, struct errbuf *e)
{
	if (!terminated(s, cap))
		return err_set(e, "%s: %s is not NUL-terminated within its %zu bytes", what, field,
			       cap);
	if (!name || (empty_ok && s[0] == '\0'))
		return 0;
	if (s[0] == '\0')
		return err_set(e, "%s: %s is empty", what, field);
	if (!name_ok(s)) {
		char shown[HS_MSG_MAX];
		printable(shown, sizeof(shown), s); /* a VMM's bytes never steer a terminal */
		return err_set(e, "%s: %s '%s' has a character outside [a-z0-9_-]", what, field,
			       shown);
	}
	return 0;
}

static int check_bool(const char *field, uint32_t v, struct errbuf *e)
{
	if (v > 1)
		return err_set(e, "hello: %s %u is not 0 or 1", field, v);
	return 0;
}

unsigned hs_hello_nfds(const struct hs_hello *h)
{
	unsigned n = 3;
	n += h->npieces < HS_PIECES_MAX ? h->npieces : HS_PIECES_MAX;
	n += (h->has_input != 0) + (h->has_output != 0);
	unsigned nirqs = h->nirqs < HS_IRQS_MAX ? h->nirqs : HS_IRQS_MAX;
	for (unsigned i = 0; i < nirqs; i++)
		if (h->irqs[i].wired)
			n += h->irqs[i].level ? 2 : 1;
	n += h->nextra < HS_EXTRA_FDS_MAX ? h->nextra : HS_EXTRA_FDS_MAX;
	return n;
}

int hs_hello_check(const struct hs_hello *h, unsigned nfds, struct errbuf *e)
{
	if (h->magic != HS_MAGIC)
		return err_set(e, "hello: magic 0x%08x is not 0x%08x", h->magic, HS_MAGIC);
	if (h->version_min == 0 || h->version_min > h->version_max)
		return err_set(e, "hello: version range %u-%u is not a range of versions",
			       h->version_min, h->version_max);
	if (h->version_max < HS_VERSION_MIN || h->version_min > HS_VERSION_MAX)
		return err_set(e, "hello: versions %u-%u and this VMM's %u-%u have none in common",
			       h->version_min, h->version_max, HS_VERSION_MIN, HS_VERSION_MAX);
	if (check_str("hello", "name", h->name, sizeof(h->name), true, false, e) != 0 ||
	    check_str("hello", "role", h->role, sizeof(h->role), true, true, e) != 0)
		return -1;
	if (h->reserved != 0)
		return err_set(e, "hello: reserved 0x%x is not zero", h->reserved);
	if (h->nslots == 0 || h->nslots > TP_SLOTS_MAX)
		return err_set(e, "hello: nslots %u is outside 1..%u", h->nslots, TP_SLOTS_MAX);
	if (h->npieces > HS_PIECES_MAX)
		return err_set(e, "hello: npieces %u exceeds %u", h->npieces, HS_PIECES_MAX);
	if (h->nextra > HS_EXTRA_FDS_MAX)
		return err_set(e, "hello: nextra %u exceeds %u", h->nextra, HS_EXTRA_FDS_MAX);
	for (unsigned i = 0; i < h->npieces; i++) {
		const struct hs_piece *p = &h->pieces[i];
		if (p->size == 0)
			return err_set(e, "hello: pieces[%u].size is 0", i);
		if ((p->flags & ~HS_PIECE_RO) != 0 || p->reserved != 0)
			return err_set(e, "hello: pieces[%u]: unknown flags 0x%x or reserved 0x%x",
				       i, p->flags, p->reserved);
		if (p->gpa + p->size < p->gpa)
			return err_set(e,
				       "hello: pieces[%u] (gpa 0x%llx, size 0x%llx) wraps around "
				       "the address space",
				       i, (unsigned long long)p->gpa, (unsigned long long)p->size);
		if (i > 0 && p->gpa < h->pieces[i - 1].gpa + h->pieces[i - 1].size)
			return err_set(e,
				       "hello: pieces[%u] (gpa 0x%llx) is not above the end of "
				       "pieces[%u]",
				       i, (unsigned long long)p->gpa, i - 1);
	}
	if (check_bool("has_input", h->has_input, e) != 0 ||
	    check_bool("has_output", h->has_output, e) != 0)
		return -1;
	if (h->nirqs > HS_IRQS_MAX)
		return err_set(e, "hello: nirqs %u exceeds %u", h->nirqs, HS_IRQS_MAX);
	for (unsigned i = 0; i < h->nirqs; i++) {
		const struct hs_irq *q = &h->irqs[i];
		char field[32];
		snprintf(field, sizeof(field), "irqs[%u].level", i);
		if (check_bool(field, q->level, e) != 0)
			return -1;
		snprintf(field, sizeof(field), "irqs[%u].wired", i);
		if (check_bool(field, q->wired, e) != 0)
			return -1;
		if (q->reserved != 0)
			return err_set(e, "hello: irqs[%u].reserved 0x%x is not zero", i,
				       q->reserved);
		for (unsigned j = 0; j < i; j++)
			if (h->irqs[j].line == q->line)
				return err_set(e, "hello: irqs[%u].line %u repeats irqs[%u]", i,
					       q->line, j);
	}
	if (h->nargs > HS_ARGS_MAX)
		return err_set(e, "hello: nargs %u exceeds %u", h->nargs, HS_ARGS_MAX);
	for (unsigned i = 0; i < h->nargs; i++) {
		char field[32];
		snprintf(field, sizeof(field), "arg_key[%u]", i);
		if (check_str("hello", field, h->arg_key[i], HS_ARG_KEY_MAX, true, false, e) != 0)
			return -1;
		snprintf(field, sizeof(field), "arg_value[%u]", i);
		if (check_str("hello", field, h->arg_value[i], HS_ARG_VALUE_MAX, false, false, e) !=
		    0)
			return -1;
		for (unsigned j = 0; j < i; j++)
			if (strcmp(h->arg_key[j], h->arg_key[i]) == 0)
				return err_set(e, "hello: arg_key[%u] '%s' repeats arg_key[%u]", i,
					       h->arg_key[i], j);
	}
	if (h->spin_ns > TP_SPIN_NS_MAX)
		return err_set(e, "hello: spin_ns %llu exceeds %u", (unsigned long long)h->spin_ns,
			       TP_SPIN_NS_MAX);
	if (h->log_level > VMMUX_LOG_DEBUG)
		return err_set(e, "hello: log_level %u is outside 0..%d", h->log_level,
			       VMMUX_LOG_DEBUG);
	unsigned want = hs_hello_nfds(h);
	if (nfds != want)
		return err_set(e, "hello: %u descriptors came with it, its fields announce %u",
			       nfds, want);
	return 0;
}

int hs_ready_check(const struct hs_ready *r, const struct hs_hello *h, struct errbuf *e)
{
	if (r->magic != HS_MAGIC)
		return err_set(e, "ready: magic 0x%08x is not 0x%08x", r->magic, HS_MAGIC);
	if (r->version < h->version_min || r->version > h->version_max ||
	    r->version < HS_VERSION_MIN || r->version > HS_VERSION_MAX)
		return err_set(e, "ready: version %u is outside the offered %u-%u", r->version,
			       h->version_min > HS_VERSION_MIN ? h->version_min : HS_VERSION_MIN,
			       h->version_max < HS_VERSION_MAX ? h->version_max : HS_VERSION_MAX);
	if (r->features & ~h->features)
		return err_set(e, "ready: features 0x%x include 0x%x, which were not offered",
			       r->features, r->features & ~h->features);
	if (check_str("ready", "msg", r->msg, sizeof(r->msg), false, false, e) != 0)
		return -1;
	if (r->status > 0 || r->status < -HS_ERRNO_MAX)
		return err_set(e, "ready: status %d is not 0 or a negative errno", r->status);
	if (r->status < 0) {
		char m[HS_MSG_MAX];
		printable(m, sizeof(m), r->msg);
		return err_set(e, "VMM set-up failed: %s (%s)", m[0] ? m : "no reason given",
			       strerror(-r->status));
	}
	if (check_str("ready", "role", r->role, sizeof(r->role), true, false, e) != 0)
		return -1;
	if (terminated(h->role, sizeof(h->role)) && h->role[0] != '\0' &&
	    strcmp(r->role, h->role) != 0)
		return err_set(e, "ready: role '%s' is not the role '%s' the hello asked for",
			       r->role, h->role);
	return 0;
}
