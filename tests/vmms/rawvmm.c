/*
 * rawvmm.c: the protocol of a parallel VMM spoken without the VMM library
 * (rawvmm.h).
 */
#include "rawvmm.h"

#include <errno.h>
#include <linux/futex.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "transport/control.h"
#include "util/err.h"

#define RAW_SETUP_MS 5000
#define RAW_MARK     0x6b72616d77617276ull /* "vrawmark" */

static void die(const struct raw_vmm *R, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));
static void die(const struct raw_vmm *R, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: %s\n", R->prog, msg);
	exit(1);
}

void raw_hello(struct raw_vmm *R, const char *prog)
{
	memset(R, 0, sizeof(*R));
	R->prog = prog;
	struct pollfd p = {.fd = HS_SOCKET_FD, .events = POLLIN};
	if (poll(&p, 1, RAW_SETUP_MS) != 1)
		die(R, "no hello on descriptor %d within %d ms", HS_SOCKET_FD, RAW_SETUP_MS);

	union {
		char buf[CMSG_SPACE(sizeof(int) * HS_FDS_MAX)];
		struct cmsghdr align;
	} c;
	memset(&c, 0, sizeof(c));
	struct iovec iov = {.iov_base = &R->hello, .iov_len = sizeof(R->hello)};
	struct msghdr m = {
	    .msg_iov = &iov,
	    .msg_iovlen = 1,
	    .msg_control = c.buf,
	    .msg_controllen = sizeof(c.buf),
	};
	ssize_t n = recvmsg(HS_SOCKET_FD, &m, MSG_CMSG_CLOEXEC);
	if (n < 0)
		die(R, "recvmsg: %s", strerror(errno));
	if ((size_t)n != sizeof(R->hello) || (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
		die(R, "the hello is %zd bytes (flags 0x%x), expected %zu", n, m.msg_flags,
		    sizeof(R->hello));
	for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h != NULL; h = CMSG_NXTHDR(&m, h)) {
		if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		if (R->nfds + k > HS_FDS_MAX)
			die(R, "more than %d descriptors with the hello", HS_FDS_MAX);
		memcpy(R->fds + R->nfds, CMSG_DATA(h), k * sizeof(int));
		R->nfds += (unsigned)k;
	}
	struct errbuf e;
	if (hs_hello_check(&R->hello, R->nfds, &e) < 0)
		die(R, "%s", e.msg);
}

const char *raw_arg(const struct raw_vmm *R, const char *key)
{
	for (uint32_t i = 0; i < R->hello.nargs; i++)
		if (strcmp(R->hello.arg_key[i], key) == 0)
			return R->hello.arg_value[i];
	return NULL;
}

uint64_t raw_arg_u64(const struct raw_vmm *R, const char *key, uint64_t def)
{
	const char *s = raw_arg(R, key);
	if (s == NULL)
		return def;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno != 0 || end == s || *end != '\0')
		die(R, "argument %s=%s is not a number", key, s);
	return v;
}

void raw_ready(struct raw_vmm *R, uint32_t version, int32_t status, const char *role,
	       const char *msg)
{
	struct hs_ready r;
	memset(&r, 0, sizeof(r));
	r.magic = HS_MAGIC;
	r.version = version;
	r.features = 0;
	r.status = status;
	snprintf(r.role, sizeof(r.role), "%s", role);
	snprintf(r.msg, sizeof(r.msg), "%s", msg);
	struct iovec iov = {.iov_base = &r, .iov_len = sizeof(r)};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
	if (sendmsg(HS_SOCKET_FD, &m, MSG_NOSIGNAL) != (ssize_t)sizeof(r))
		die(R, "sending ready: %s", strerror(errno));
}

bool raw_go(struct raw_vmm *R)
{
	struct hs_go go;
	struct pollfd p = {.fd = HS_SOCKET_FD, .events = POLLIN};
	if (poll(&p, 1, RAW_SETUP_MS) != 1)
		die(R, "no go within %d ms", RAW_SETUP_MS);
	struct iovec iov = {.iov_base = &go, .iov_len = sizeof(go)};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n = recvmsg(HS_SOCKET_FD, &m, 0);
	if (n == 0)
		return false;
	if (n != (ssize_t)sizeof(go) || go.magic != HS_MAGIC || go.go != 1)
		die(R, "a malformed go message (%zd bytes)", n);
	return true;
}

void raw_attach(struct raw_vmm *R)
{
	if (tp_region_attach(&R->region, R->fds[0], R->fds[1], R->fds[2]) < 0)
		die(R, "the transport region: %s", strerror(errno));
}

bool raw_marked(const struct raw_vmm *R)
{
	uint64_t mark = 0;
	long n = tp_state_load(&R->region, &mark, sizeof(mark));
	return n == (long)sizeof(mark) && mark == RAW_MARK;
}

void raw_mark(struct raw_vmm *R)
{
	uint64_t mark = RAW_MARK;
	if (tp_state_store(&R->region, &mark, sizeof(mark)) < 0)
		die(R, "storing the mark: %s", strerror(errno));
}

void raw_publish(struct tp_slot *s, uint32_t state)
{
	atomic_store(&s->state, state);
	if (atomic_load(&s->waiting))
		syscall(SYS_futex, (void *)&s->state, FUTEX_WAKE, 1, NULL, NULL, 0);
}

void raw_answer(struct tp_slot *s, const struct vmmux_event *ev, uint32_t seq, uint64_t value)
{
	s->rep.action = VMMUX_ACT_DONE;
	s->rep.reserved = 0;
	s->rep.value = 0;
	if (!(ev->flags & VMMUX_EVF_WRITE)) {
		if (ev->flags & VMMUX_EVF_STRING) {
			size_t n = (size_t)ev->count * ev->size;
			for (size_t i = 0; i < n && i < TP_SLOT_DATA; i++)
				s->data[i] = (uint8_t)(value >> (8 * (i % ev->size)));
		} else {
			s->rep.value = value;
		}
	}
	s->result = 0;
	s->nraised = 0;
	s->reply_seq = seq;
	raw_publish(s, TP_DONE);
}

void raw_serve_pending(struct raw_vmm *R, raw_handler_fn handler, void *arg)
{
	struct tp_region *r = &R->region;
	r->vmm_seen = atomic_load(&r->hdr->doorbell);
	for (unsigned i = 0; i < r->nslots; i++) {
		struct tp_slot *s = &r->slots[i];
		uint32_t st = TP_REQ;
		if (!atomic_compare_exchange_strong(&s->state, &st, TP_BUSY))
			continue;
		struct vmmux_event ev;
		memcpy(&ev, &s->ev, sizeof(ev));
		ev.data = NULL;
		uint32_t seq = s->seq;
		if (ev.type == TP_CTL_RESET || ev.type == TP_CTL_SYNC)
			raw_answer(s, &ev, seq, 0);
		else
			handler(R, s, &ev, seq, arg);
	}
}

void raw_serve(struct raw_vmm *R, raw_handler_fn handler, void *arg)
{
	struct tp_region *r = &R->region;
	int sock = HS_SOCKET_FD;
	for (;;) {
		raw_serve_pending(R, handler, arg);
		unsigned ready = tp_vmm_wait(r, &sock, 1, -1);
		if (ready & 2u) {
			char b;
			ssize_t n = recv(sock, &b, 1, MSG_DONTWAIT);
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
				return; /* the main VMM is done with this VMM */
		}
	}
}
