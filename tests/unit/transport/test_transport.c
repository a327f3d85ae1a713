/*
 * Unit tests of transport/transport.c: the shared region between the main
 * VMM and a parallel VMM. The VMM side always works on its own mapping,
 * attached from duplicates of the descriptors (in a thread) or inherited
 * across fork (in a child process), as a real parallel VMM does.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "transport/transport.h"

/* ThreadSanitizer's build runs every memory access through its runtime:
 * the time bounds below are scaled by SLOWDOWN there. */
#ifdef __SANITIZE_THREAD__
#define SLOWDOWN 10u
#else
#define SLOWDOWN 1u
#endif
#define MS	       1000000ull
#define KEY_QUIT       0xdead		     /* a REQUEST with this key ends a server */
#define KEY_RAISE      0x7777		     /* raise ev.value IRQ events */
#define KEY_EXIT_CHILD 0xe417		     /* the child process _exits in the handler */
#define DEADLINE_SLACK (100 * MS * SLOWDOWN) /* scheduling slack beyond a deadline */

/* ---- helpers ----------------------------------------------------------- */

/* fork, the child dying with the test process (a crashed test must not
 * leave a scribbling or serving child behind). */
static pid_t fork_child(void)
{
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(9);
	}
	return pid;
}

static struct vmmux_event io_ev(uint64_t port, uint64_t value, bool write)
{
	struct vmmux_event ev = {
	    .type = VMMUX_EV_IO, .size = 1, .count = 1, .key = port, .value = value, .vcpu = 0};
	if (write)
		ev.flags = VMMUX_EVF_WRITE;
	return ev;
}

/* The VMM side's view of R: its own mapping from duplicated descriptors. */
static void attach_view(const struct tp_region *r, struct tp_region *v)
{
	int m = dup(r->memfd), a = dup(r->vmm_efd), b = dup(r->async_efd);
	assert_true(m >= 0 && a >= 0 && b >= 0);
	if (tp_region_attach(v, m, a, b) != 0)
		fail_msg("attach: %s", strerror(errno));
}

struct srv {
	_Atomic bool stop;
	bool quit;
	unsigned handled;
	unsigned saves;
	bool in_child;
	/* posted events seen, in order */
	uint64_t posted[4096];
	unsigned nposted;
};

/* The test role: answers reads with key*3+value, sums OUTS bytes, fills
 * INS buffers with a pattern, raises IRQs on request. */
static int echo_handler(void *arg, struct vmmux_event *ev, struct vmmux_reply *rep,
			struct vmmux_event *raised, uint32_t *nraised)
{
	struct srv *s = arg;
	s->handled++;
	if (ev->type == VMMUX_EV_REQUEST && ev->key == KEY_QUIT) {
		s->quit = true;
		return 0;
	}
	if (ev->key == KEY_EXIT_CHILD && s->in_child)
		_exit(7); /* dies inside its handler */
	if (ev->flags & VMMUX_EVF_STRING) {
		uint8_t *d = ev->data;
		size_t n = (size_t)ev->count * ev->size;
		if (ev->flags & VMMUX_EVF_WRITE) {
			uint64_t sum = 0;
			for (size_t i = 0; i < n; i++)
				sum += d[i] * (i + 1);
			rep->value = sum;
		} else {
			for (size_t i = 0; i < n; i++)
				d[i] = (uint8_t)(i * 7 + ev->key);
			rep->value = n;
		}
		return 0;
	}
	if (ev->data != NULL)
		return -99; /* a non-string event must come without data */
	if (ev->key == KEY_RAISE) {
		*nraised = (uint32_t)ev->value;
		for (uint32_t i = 0; i < TP_RAISE_MAX && i < ev->value; i++)
			raised[i] = (struct vmmux_event){.type = VMMUX_EV_IRQ,
							 .key = i,
							 .value = 1,
							 .count = 1,
							 .data = (void *)0x1234};
		return 0;
	}
	if (!(ev->flags & VMMUX_EVF_WRITE) || ev->type != VMMUX_EV_IO || ev->key < 0x1000)
		rep->value = ev->key * 3 + ev->value;
	if (s->nposted < 4096 && (ev->flags & VMMUX_EVF_WRITE) && ev->key >= 0x1000)
		s->posted[s->nposted++] = ev->value;
	return (int)(ev->value & 0xff);
}

static void count_save(void *arg)
{
	((struct srv *)arg)->saves++;
}

static void serve_loop(struct tp_region *v, struct srv *s)
{
	while (!s->quit && !atomic_load(&s->stop)) {
		tp_vmm_wait(v, NULL, 0, 20);
		tp_vmm_serve(v, echo_handler, s, count_save);
	}
}

struct thread_srv {
	struct tp_region v;
	struct srv s;
	pthread_t t;
};

static void *srv_thread(void *p)
{
	struct thread_srv *ts = p;
	serve_loop(&ts->v, &ts->s);
	return NULL;
}

static struct thread_srv *start_thread_server(const struct tp_region *r)
{
	struct thread_srv *ts = calloc(1, sizeof(*ts));
	assert_non_null(ts);
	attach_view(r, &ts->v);
	assert_int_equal(pthread_create(&ts->t, NULL, srv_thread, ts), 0);
	return ts;
}

/* Stop the server; the number of events it handled. */
static unsigned stop_thread_server(struct thread_srv *ts)
{
	atomic_store(&ts->s.stop, true);
	pthread_join(ts->t, NULL);
	unsigned n = ts->s.handled;
	tp_region_detach(&ts->v);
	free(ts);
	return n;
}

/* A child process that attaches the region from the inherited memfd and
 * serves until told to quit. */
static pid_t start_child_server(const struct tp_region *r)
{
	pid_t pid = fork_child();
	assert_true(pid >= 0);
	if (pid == 0) {
		static struct srv s;
		struct tp_region v;
		s.in_child = true;
		if (tp_region_attach(&v, r->memfd, r->vmm_efd, r->async_efd) != 0)
			_exit(2);
		serve_loop(&v, &s);
		_exit(s.quit ? 0 : 3);
	}
	return pid;
}

static int wait_child(pid_t pid)
{
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void quit_server(struct tp_region *r, unsigned slot)
{
	struct vmmux_event ev = {.type = VMMUX_EV_REQUEST, .key = KEY_QUIT, .count = 1};
	struct vmmux_reply rep;
	int32_t res;
	assert_int_equal(
	    tp_main_call(r, slot, &ev, &rep, &res, NULL, NULL, tp_now_ns() + 5000 * MS, NULL),
	    TP_OK);
}

/* N synchronous calls on SLOT, each checked. */
static void calls(struct tp_region *r, unsigned slot, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		struct vmmux_event ev = io_ev(0x60 + (i % 16), i, false);
		struct vmmux_reply rep = {.action = 99, .value = 1};
		int32_t res = -1;
		struct vmmux_event raised[TP_RAISE_MAX];
		uint32_t nr = 99;
		enum tp_result t = tp_main_call(r, slot, &ev, &rep, &res, raised, &nr,
						tp_now_ns() + 5000 * MS, NULL);
		if (t != TP_OK)
			fail_msg("call %u: result %d", i, t);
		assert_int_equal(rep.action, VMMUX_ACT_DONE);
		assert_int_equal(rep.value, (0x60 + (i % 16)) * 3 + i);
		assert_int_equal(res, (int)(i & 0xff));
		assert_int_equal(nr, 0);
		assert_int_equal(atomic_load(&r->slots[slot].state), TP_IDLE);
		assert_false(tp_main_pending(r, slot));
	}
}

/* ---- layout and set-up ------------------------------------------------------- */

static void test_layout(void **state)
{
	(void)state;
	assert_int_equal(tp_region_size(0), 0);
	assert_int_equal(tp_region_size(TP_SLOTS_MAX + 1), 0);
	for (unsigned n = 1; n <= TP_SLOTS_MAX; n++) {
		size_t sz = tp_region_size(n);
		assert_int_equal(sz % 4096, 0);
		assert_int_equal(tp_slots_offset() % 64, 0);
		assert_int_equal(tp_posted_offset(n) % 64, 0);
		assert_int_equal(tp_async_offset(n) % 64, 0);
		assert_true(tp_slots_offset() >= sizeof(struct tp_header));
		assert_true(tp_posted_offset(n) >= tp_slots_offset() + n * sizeof(struct tp_slot));
		assert_true(tp_async_offset(n) >= tp_posted_offset(n) + sizeof(struct tp_ring));
		assert_true(sz >= tp_async_offset(n) + sizeof(struct tp_async_ring));
	}
}

static void test_create(void **state)
{
	(void)state;
	struct tp_region r;
	errno = 0;
	assert_int_equal(tp_region_create(&r, 0, 0), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(tp_region_create(&r, TP_SLOTS_MAX + 1, 0), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(tp_region_create(&r, 1, TP_SPIN_NS_MAX + 1), -1);
	assert_int_equal(errno, EINVAL);
	tp_region_destroy(&r); /* harmless after a failed create */

	assert_int_equal(tp_region_create(&r, 3, 1000), 0);
	assert_int_equal(r.nslots, 3);
	assert_int_equal(r.size, tp_region_size(3));
	assert_int_equal(r.hdr->magic, TP_MAGIC);
	assert_int_equal(r.hdr->version, TP_VERSION);
	assert_int_equal(r.hdr->nslots, 3);
	assert_int_equal(r.hdr->size, r.size);
	assert_int_equal(atomic_load(&r.hdr->spin_ns), 1000);
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(atomic_load(&r.slots[i].state), TP_IDLE);
	for (unsigned i = 0; i < TP_RING_ENTRIES; i++)
		assert_int_equal(atomic_load(&r.posted->e[i].seq), i);
	/* sealed: the VMM can neither shrink nor grow the region, nor unseal */
	int seals = fcntl(r.memfd, F_GET_SEALS);
	assert_true((seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)) ==
		    (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL));
	assert_int_equal(ftruncate(r.memfd, 4096), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(ftruncate(r.memfd, (off_t)r.size * 2), -1);
	assert_true(fcntl(r.memfd, F_GETFD) & FD_CLOEXEC);
	assert_true(fcntl(r.vmm_efd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(r.async_efd, F_GETFD) & FD_CLOEXEC);

	tp_set_spin_ns(&r, 5 * TP_SPIN_NS_MAX);
	assert_int_equal(atomic_load(&r.hdr->spin_ns), TP_SPIN_NS_MAX);
	assert_int_equal(atomic_load(&r.spin_ns), TP_SPIN_NS_MAX);
	tp_region_destroy(&r);
	assert_null(r.hdr);
	assert_int_equal(r.memfd, -1);
	tp_region_destroy(&r); /* twice is harmless */
}

/* Attach must refuse a region that is not one, before trusting anything. */
static void expect_attach_refused(int memfd, const char *what)
{
	struct tp_region v;
	errno = 0;
	if (tp_region_attach(&v, memfd, -1, -1) != -1)
		fail_msg("attach accepted a region with %s", what);
	assert_int_equal(errno, EPROTO);
}

static void test_attach_refuses(void **state)
{
	(void)state;
	struct tp_region r, v;
	assert_int_equal(tp_region_create(&r, 2, 0), 0);
	attach_view(&r, &v);
	assert_int_equal(v.nslots, 2);
	assert_int_equal(v.size, r.size);
	tp_region_detach(&v);

	r.hdr->magic ^= 1;
	expect_attach_refused(r.memfd, "a wrong magic");
	r.hdr->magic ^= 1;
	r.hdr->version = TP_VERSION + 1;
	expect_attach_refused(r.memfd, "a wrong version");
	r.hdr->version = TP_VERSION;
	r.hdr->nslots = 3; /* the file's size is that of 2 slots */
	expect_attach_refused(r.memfd, "nslots that do not match the size");
	r.hdr->nslots = 0;
	expect_attach_refused(r.memfd, "no slots");
	r.hdr->nslots = TP_SLOTS_MAX + 1;
	expect_attach_refused(r.memfd, "too many slots");
	r.hdr->nslots = 2;
	r.hdr->size += 4096;
	expect_attach_refused(r.memfd, "a header size that is not the file's");
	r.hdr->size -= 4096;
	attach_view(&r, &v); /* all restored: accepted again */
	tp_region_detach(&v);

	/* a file of the wrong size, with a good header copied in */
	int fd = memfd_create("t", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)r.size + 4096), 0);
	assert_int_equal(pwrite(fd, r.hdr, sizeof(struct tp_header), 0),
			 (ssize_t)sizeof(struct tp_header));
	expect_attach_refused(fd, "a file larger than its slots need");
	assert_int_equal(ftruncate(fd, 16), 0);
	expect_attach_refused(fd, "a file smaller than a header");
	assert_int_equal(ftruncate(fd, (off_t)tp_region_size(TP_SLOTS_MAX) + 4096), 0);
	expect_attach_refused(fd, "a file larger than any region");
	close(fd);
	tp_region_destroy(&r);
}

/* ---- synchronous slots --------------------------------------------------------- */

static void test_slot_thread(void **state)
{
	(void)state;
	struct tp_region r;
	assert_int_equal(tp_region_create(&r, 2, 50000), 0);
	struct thread_srv *ts = start_thread_server(&r);
	calls(&r, 0, 2000);
	calls(&r, 1, 500);
	/* the invalid cases change nothing */
	struct vmmux_event ev = io_ev(0x60, 0, false);
	assert_int_equal(tp_main_call(&r, 2, &ev, NULL, NULL, NULL, NULL, tp_now_ns() + MS, NULL),
			 TP_INVAL);
	assert_int_equal(tp_main_wait(&r, 0, &ev, NULL, NULL, NULL, NULL, tp_now_ns() + MS, NULL),
			 TP_INVAL);
	assert_int_equal(tp_main_call(&r, 0, NULL, NULL, NULL, NULL, NULL, tp_now_ns() + MS, NULL),
			 TP_INVAL);
	/* outputs may be NULL */
	ev = io_ev(0x61, 2, false);
	assert_int_equal(
	    tp_main_call(&r, 0, &ev, NULL, NULL, NULL, NULL, tp_now_ns() + 5000 * MS, NULL), TP_OK);
	assert_int_equal(stop_thread_server(ts), 2500 + 1);
	tp_region_destroy(&r);
}

static void slot_process(uint64_t spin_ns)
{
	struct tp_region r;
	assert_int_equal(tp_region_create(&r, 2, spin_ns), 0);
	pid_t pid = start_child_server(&r);
	calls(&r, 0, 2000);
	calls(&r, 1, 200);
	quit_server(&r, 1);
	assert_int_equal(wait_child(pid), 0);
	tp_region_destroy(&r);
}

static void test_slot_process_spin(void **state)
{
	(void)state;
	slot_process(50000);
}

static void test_slot_process_blocking(void **state)
{
	(void)state;
	slot_process(0);
}

static void test_string_io(void **state)
{
	(void)state;
	struct tp_region r;
	assert_int_equal(tp_region_create(&r, 1, 20000), 0);
	pid_t pid = start_child_server(&r);

	/* OUTS: the bytes reach the VMM (it answers with a weighted sum) */
	static uint8_t buf[TP_SLOT_DATA];
	uint64_t want = 0;
	for (size_t i = 0; i < sizeof(buf); i++) {
		buf[i] = (uint8_t)(i * 13 + 5);
		want += buf[i] * (i + 1);
	}
	struct vmmux_event ev = {.type = VMMUX_EV_IO,
				 .flags = VMMUX_EVF_STRING | VMMUX_EVF_WRITE,
				 .size = 4,
				 .count = TP_SLOT_DATA / 4,
				 .key = 0x3f8,
				 .data = buf};
	struct vmmux_reply rep;
	int32_t res;
	assert_int_equal(
	    tp_main_call(&r, 0, &ev, &rep, &res, NULL, NULL, tp_now_ns() + 5000 * MS, NULL), TP_OK);
	assert_int_equal(res, 0);
	assert_int_equal(rep.value, want);

	/* INS: the VMM's bytes come back, and only count*size of them */
	uint8_t in[1000 + 16];
	memset(in, 0xee, sizeof(in));
	ev = (struct vmmux_event){.type = VMMUX_EV_IO,
				  .flags = VMMUX_EVF_STRING,
				  .size = 2,
				  .count = 500,
				  .key = 0x21,
				  .data = in};
	assert_int_equal(
	    tp_main_call(&r, 0, &ev, &rep, &res, NULL, NULL, tp_now_ns() + 5000 * MS, NULL), TP_OK);
	assert_int_equal(rep.value, 1000);
	for (size_t i = 0; i < 1000; i++)
		assert_int_equal(in[i], (uint8_t)(i * 7 + 0x21));
	for (size_t i = 1000; i < sizeof(in); i++)
		assert_int_equal(in[i], 0xee);

	/* what the main side refuses before sending */
	ev.count = TP_SLOT_DATA / 2 + 1; /* one element too many */
	assert_int_equal(tp_main_call(&r, 0, &ev, &rep, &res, NULL, NULL, tp_now_ns() + MS, NULL),
			 TP_INVAL);
	ev.count = 4;
	ev.data = NULL;
	assert_int_equal(tp_main_call(&r, 0, &ev, &rep, &res, NULL, NULL, tp_now_ns() + MS, NULL),
			 TP_INVAL);
	ev.data = in;
	ev.size = 3;
	assert_int_equal(tp_main_call(&r, 0, &ev, &rep, &res, NULL, NULL, tp_now_ns() + MS, NULL),
			 TP_INVAL);
	ev.size = 1;
	ev.count = 0;
	assert_int_equal(tp_main_call(&r, 0, &ev, &rep, &res, NULL, NULL, tp_now_ns() + MS, NULL),
			 TP_INVAL);
	ev.count = 0xffffffffu; /* count*size overflows 32 bits */
	ev.size = 8;
	assert_int_equal(tp_main_call(&r, 0, &ev, &rep, &res, NULL, NULL, tp_now_ns() + MS, NULL),
			 TP_INVAL);
	ev = (struct vmmux_event){
	    .type = VMMUX_EV_MMIO, .flags = VMMUX_EVF_STRING, .size = 1, .count = 1, .data = in};
	assert_int_equal(tp_main_call(&r, 0, &ev, &rep, &res, NULL, NULL, tp_now_ns() + MS, NULL),
			 TP_INVAL);
	assert_false(tp_main_pending(&r, 0));

	quit_server(&r, 0);
	assert_int_equal(wait_child(pid), 0);
	tp_region_destroy(&r);
}

/* The VMM side re-checks: an inconsistent event written straight into the
 * slot is answered -EINVAL without reaching the handler. */
static void test_vmm_rechecks(void **state)
{
	(void)state;
	struct tp_region r, v;
	assert_int_equal(tp_region_create(&r, 1, 0), 0);
	attach_view(&r, &v);
	struct srv s = {0};
	struct tp_slot *sl = &r.slots[0];
	const struct vmmux_event bad[] = {
	    {.type = VMMUX_EV_IO, .flags = VMMUX_EVF_STRING, .size = 1, .count = 5000},
	    {.type = VMMUX_EV_IO, .flags = VMMUX_EVF_STRING, .size = 3, .count = 1},
	    {.type = VMMUX_EV_IO, .flags = VMMUX_EVF_STRING, .size = 1, .count = 0},
	    {.type = VMMUX_EV__COUNT, .size = 1, .count = 1},
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		sl->ev = bad[i];
		sl->seq = 40 + i;
		atomic_store(&sl->state, TP_REQ);
		assert_int_equal(tp_vmm_serve(&v, echo_handler, &s, NULL), 1);
		assert_int_equal(atomic_load(&sl->state), TP_DONE);
		assert_int_equal(sl->result, -EINVAL);
		assert_int_equal(sl->reply_seq, 40 + i);
		assert_int_equal(sl->nraised, 0);
	}
	assert_int_equal(s.handled, 0);
	tp_region_detach(&v);
	tp_region_destroy(&r);
}

static void test_raised(void **state)
{
	(void)state;
	struct tp_region r;
	assert_int_equal(tp_region_create(&r, 1, 20000), 0);
	struct thread_srv *ts = start_thread_server(&r);
	struct vmmux_event ev = io_ev(KEY_RAISE, 3, false);
	struct vmmux_event raised[TP_RAISE_MAX];
	uint32_t nr = 0;
	struct vmmux_reply rep;
	int32_t res;
	assert_int_equal(
	    tp_main_call(&r, 0, &ev, &rep, &res, raised, &nr, tp_now_ns() + 5000 * MS, NULL),
	    TP_OK);
	assert_int_equal(nr, 3);
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(raised[i].type, VMMUX_EV_IRQ);
		assert_int_equal(raised[i].key, i);
		assert_null(raised[i].data); /* no pointer crosses */
	}
	/* a handler that claims more than TP_RAISE_MAX is clamped by its side */
	ev = io_ev(KEY_RAISE, 1000, false);
	assert_int_equal(
	    tp_main_call(&r, 0, &ev, &rep, &res, raised, &nr, tp_now_ns() + 5000 * MS, NULL),
	    TP_OK);
	assert_int_equal(nr, TP_RAISE_MAX);
	/* NULL outputs: raised events are dropped, the call succeeds */
	assert_int_equal(
	    tp_main_call(&r, 0, &ev, &rep, &res, NULL, &nr, tp_now_ns() + 5000 * MS, NULL), TP_OK);
	assert_int_equal(nr, 0);
	stop_thread_server(ts);
	tp_region_destroy(&r);
}

/* ---- posted ring ------------------------------------------------------------------ */

static void test_posted_wrap(void **state)
{
	(void)state;
	struct tp_region r, v;
	assert_int_equal(tp_region_create(&r, 1, 0), 0);
	attach_view(&r, &v);
	struct srv *s = calloc(1, sizeof(*s));
	uint64_t next = 0;
	for (unsigned round = 0; round < 12; round++) {
		unsigned n = 150 + round * 9; /* 150..249 per round: 2394 in all */
		for (unsigned i = 0; i < n; i++) {
			struct vmmux_event ev = io_ev(0x1000, next + i, true);
			assert_int_equal(tp_main_post(&r, &ev), TP_OK);
		}
		s->nposted = 0;
		assert_int_equal(tp_vmm_serve(&v, echo_handler, s, count_save), n);
		assert_int_equal(s->nposted, n);
		for (unsigned i = 0; i < n; i++)
			assert_int_equal(s->posted[i], next + i);
		next += n;
	}
	assert_true(next > 8 * TP_RING_ENTRIES);
	assert_int_equal(s->saves, next);
	assert_int_equal(atomic_load(&r.posted->tail), next);
	/* string events do not go through the ring */
	struct vmmux_event ev = io_ev(0x1000, 0, true);
	ev.flags |= VMMUX_EVF_STRING;
	assert_int_equal(tp_main_post(&r, &ev), TP_INVAL);
	free(s);
	tp_region_detach(&v);
	tp_region_destroy(&r);
}

static void test_posted_full(void **state)
{
	(void)state;
	struct tp_region r, v;
	assert_int_equal(tp_region_create(&r, 1, 0), 0);
	attach_view(&r, &v);
	struct srv *s = calloc(1, sizeof(*s));
	for (unsigned i = 0; i < TP_RING_ENTRIES; i++) {
		struct vmmux_event ev = io_ev(0x1000, i, true);
		assert_int_equal(tp_main_post(&r, &ev), TP_OK);
	}
	struct vmmux_event ev = io_ev(0x1000, 9999, true);
	uint64_t t0 = tp_now_ns();
	for (unsigned i = 0; i < 100; i++)
		assert_int_equal(tp_main_post(&r, &ev), TP_FULL);
	assert_true(tp_now_ns() - t0 < 20 * MS * SLOWDOWN); /* never blocks */
	assert_int_equal(tp_vmm_serve(&v, echo_handler, s, NULL), TP_RING_ENTRIES);
	for (unsigned i = 0; i < TP_RING_ENTRIES; i++)
		assert_int_equal(s->posted[i], i);
	assert_int_equal(tp_main_post(&r, &ev), TP_OK);
	assert_int_equal(tp_vmm_serve(&v, echo_handler, s, NULL), 1);
	assert_int_equal(s->posted[TP_RING_ENTRIES], 9999);
	free(s);
	tp_region_detach(&v);
	tp_region_destroy(&r);
}

/*
 * A vCPU's posted writes and its later synchronous event are applied in
 * order. The VMM's serve takes at most a ring's worth of posted entries and
 * then the slots; while it handles the last entry of such a batch, the vCPU
 * posts more and then (as when the ring is full) makes a synchronous write.
 * The VMM must apply the entries published before that request first.
 */
struct order_srv {
	struct tp_region *r; /* the main side's view (the vCPU posts there) */
	uint64_t seen[2 * TP_RING_ENTRIES];
	unsigned nseen;
	bool fired;
	pthread_t caller;
};

#define ORDER_SYNC 0x5ec

static void *order_call(void *p)
{
	struct tp_region *r = p;
	struct vmmux_event ev = io_ev(0x1000, ORDER_SYNC, true);
	struct vmmux_reply rep;
	assert_int_equal(
	    tp_main_call(r, 0, &ev, &rep, NULL, NULL, NULL, tp_now_ns() + 5000 * MS, NULL), TP_OK);
	return NULL;
}

static int order_handler(void *arg, struct vmmux_event *ev, struct vmmux_reply *rep,
			 struct vmmux_event *raised, uint32_t *nraised)
{
	struct order_srv *o = arg;
	(void)rep;
	(void)raised;
	(void)nraised;
	if (o->nseen < 2 * TP_RING_ENTRIES)
		o->seen[o->nseen++] = ev->value;
	if (!o->fired && ev->value == TP_RING_ENTRIES - 1) {
		o->fired = true;
		for (uint64_t k = 0; k < 40; k++) {
			struct vmmux_event p = io_ev(0x1000, TP_RING_ENTRIES + k, true);
			assert_int_equal(tp_main_post(o->r, &p), TP_OK);
		}
		assert_int_equal(pthread_create(&o->caller, NULL, order_call, o->r), 0);
		while (atomic_load(&o->r->slots[0].state) != TP_REQ)
			sched_yield();
	}
	return 0;
}

static void test_posted_then_sync_in_order(void **state)
{
	(void)state;
	struct tp_region r, v;
	assert_int_equal(tp_region_create(&r, 1, 0), 0);
	attach_view(&r, &v);
	struct order_srv *o = calloc(1, sizeof(*o));
	assert_non_null(o);
	o->r = &r;
	for (uint64_t i = 0; i < TP_RING_ENTRIES; i++) {
		struct vmmux_event ev = io_ev(0x1000, i, true);
		assert_int_equal(tp_main_post(&r, &ev), TP_OK);
	}
	for (uint64_t end = tp_now_ns() + 5000 * MS; o->nseen < TP_RING_ENTRIES + 41;) {
		if (tp_now_ns() > end)
			fail_msg("only %u events applied", o->nseen);
		tp_vmm_serve(&v, order_handler, o, NULL);
	}
	pthread_join(o->caller, NULL);
	for (unsigned i = 0; i < TP_RING_ENTRIES + 40; i++)
		if (o->seen[i] != i)
			fail_msg("event %u applied was %llu (the synchronous write is %#x)", i,
				 (unsigned long long)o->seen[i], ORDER_SYNC);
	assert_int_equal(o->seen[TP_RING_ENTRIES + 40], ORDER_SYNC);
	free(o);
	tp_region_detach(&v);
	tp_region_destroy(&r);
}

#define PRODUCERS    4
#define PER_PRODUCER 10000u

struct mpsc {
	struct tp_region *r;
	unsigned id;
	unsigned fulls;
};

struct mpsc_consumer {
	struct tp_region v;
	uint32_t next[PRODUCERS];
	unsigned total, errors;
	char err[200];
};

static int mpsc_handler(void *arg, struct vmmux_event *ev, struct vmmux_reply *rep,
			struct vmmux_event *raised, uint32_t *nraised)
{
	(void)rep, (void)raised, (void)nraised;
	struct mpsc_consumer *c = arg;
	unsigned id = (unsigned)(ev->value >> 32);
	uint32_t n = (uint32_t)ev->value;
	if (id >= PRODUCERS || n != c->next[id]) {
		if (c->errors++ == 0)
			snprintf(c->err, sizeof(c->err), "producer %u: got %u, expected %u", id, n,
				 id < PRODUCERS ? c->next[id] : 0);
	} else {
		c->next[id]++;
	}
	c->total++;
	return 0;
}

static void *mpsc_producer(void *p)
{
	struct mpsc *m = p;
	for (uint32_t i = 0; i < PER_PRODUCER; i++) {
		struct vmmux_event ev = io_ev(0x2000, ((uint64_t)m->id << 32) | i, true);
		while (tp_main_post(m->r, &ev) == TP_FULL) {
			m->fulls++;
			sched_yield();
		}
	}
	return NULL;
}

static void *mpsc_consume(void *p)
{
	struct mpsc_consumer *c = p;
	uint64_t end = tp_now_ns() + 60000 * MS;
	while (c->total < PRODUCERS * PER_PRODUCER && tp_now_ns() < end) {
		tp_vmm_wait(&c->v, NULL, 0, 50);
		tp_vmm_serve(&c->v, mpsc_handler, c, NULL);
	}
	return NULL;
}

static void test_posted_mpsc(void **state)
{
	(void)state;
	struct tp_region r;
	assert_int_equal(tp_region_create(&r, 1, 20000), 0);
	struct mpsc_consumer *c = calloc(1, sizeof(*c));
	attach_view(&r, &c->v);
	pthread_t ct, pt[PRODUCERS];
	struct mpsc m[PRODUCERS];
	assert_int_equal(pthread_create(&ct, NULL, mpsc_consume, c), 0);
	for (unsigned i = 0; i < PRODUCERS; i++) {
		m[i] = (struct mpsc){.r = &r, .id = i};
		assert_int_equal(pthread_create(&pt[i], NULL, mpsc_producer, &m[i]), 0);
	}
	for (unsigned i = 0; i < PRODUCERS; i++)
		pthread_join(pt[i], NULL);
	pthread_join(ct, NULL);
	if (c->errors != 0)
		fail_msg("%u ordering errors, first: %s", c->errors, c->err);
	assert_int_equal(c->total, PRODUCERS * PER_PRODUCER); /* none lost, none twice */
	for (unsigned i = 0; i < PRODUCERS; i++)
		assert_int_equal(c->next[i], PER_PRODUCER);
	tp_region_detach(&c->v);
	free(c);
	tp_region_destroy(&r);
}

/* A VMM that dies inside the handler of a posted entry leaves it queued:
 * its successor handles it (the dead handler's work was never committed),
 * then the rest in order. */
static void test_posted_crash(void **state)
{
	(void)state;
	struct tp_region r, v;
	assert_int_equal(tp_region_create(&r, 1, 0), 0);
	for (unsigned i = 0; i < 8; i++) {
		struct vmmux_event ev = io_ev(i == 5 ? KEY_EXIT_CHILD : 0x1000, i, true);
		assert_int_equal(tp_main_post(&r, &ev), TP_OK);
	}
	pid_t pid = start_child_server(&r);
	assert_int_equal(wait_child(pid), 7);
	attach_view(&r, &v);
	struct srv *s = calloc(1, sizeof(*s));
	/* 5, whose handler was running when the VMM died, then 6 and 7 */
	assert_int_equal(tp_vmm_serve(&v, echo_handler, s, NULL), 3);
	assert_int_equal(s->nposted, 3);
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(s->posted[i], 5 + i);

	free(s);
	tp_region_detach(&v);
	tp_region_destroy(&r);
}

/* ---- async ring ------------------------------------------------------------------- */

static uint64_t efd_count(int fd)
{
	uint64_t v = 0;
	if (read(fd, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

static int raising_posted(void *arg, struct vmmux_event *ev, struct vmmux_reply *rep,
			  struct vmmux_event *raised, uint32_t *nraised)
{
	(void)arg, (void)rep;
	raised[0] = (struct vmmux_event){.type = VMMUX_EV_IRQ, .key = ev->value, .count = 1};
	*nraised = 1;
	return 0;
}

static void test_async(void **state)
{
	(void)state;
	struct tp_region r, v;
	assert_int_equal(tp_region_create(&r, 1, 0), 0);
	attach_view(&r, &v);
	struct vmmux_event ev;
	assert_false(tp_main_async_pop(&r, &ev));

	/* main_sleeping starts at 1: every push signals */
	for (unsigned i = 0; i < 10; i++) {
		struct vmmux_event a = {
		    .type = VMMUX_EV_IRQ, .key = 4, .value = i, .count = 1, .data = (void *)0x55};
		assert_int_equal(tp_vmm_async_push(&v, &a), 0);
	}
	assert_int_equal(efd_count(r.async_efd), 10);
	for (unsigned i = 0; i < 10; i++) {
		assert_true(tp_main_async_pop(&r, &ev));
		assert_int_equal(ev.value, i);
		assert_null(ev.data);
	}
	assert_false(tp_main_async_pop(&r, &ev));

	/* awake: no eventfd write; sleep announces and reports queued work */
	tp_main_async_awake(&r);
	struct vmmux_event a = {.type = VMMUX_EV_IRQ, .key = 4, .count = 1};
	assert_int_equal(tp_vmm_async_push(&v, &a), 0);
	assert_int_equal(efd_count(r.async_efd), 0);
	assert_true(tp_main_async_sleep(&r));
	assert_true(tp_main_async_pop(&r, &ev));
	assert_false(tp_main_async_sleep(&r));
	assert_int_equal(tp_vmm_async_push(&v, &a), 0);
	assert_int_equal(efd_count(r.async_efd), 1);
	tp_main_async_awake(&r);
	assert_true(tp_main_async_pop(&r, &ev));

	/* full */
	for (unsigned i = 0; i < TP_ASYNC_ENTRIES; i++)
		assert_int_equal(tp_vmm_async_push(&v, &a), 0);
	assert_int_equal(tp_vmm_async_push(&v, &a), -1);
	for (unsigned i = 0; i < TP_ASYNC_ENTRIES; i++)
		assert_true(tp_main_async_pop(&r, &ev));
	assert_false(tp_main_async_pop(&r, &ev));

	/* a corrupt head empties the ring, and the ring works on */
	atomic_store(&r.async->head, atomic_load(&r.async->head) + 1000);
	assert_false(tp_main_async_pop(&r, &ev));
	assert_false(tp_main_async_pop(&r, &ev));
	assert_int_equal(tp_vmm_async_push(&v, &a), 0);
	assert_true(tp_main_async_pop(&r, &ev));
	/* a head behind the tail is corrupt too */
	atomic_store(&r.async->head, atomic_load(&r.async->head) - 5);
	assert_false(tp_main_async_pop(&r, &ev));
	assert_false(tp_main_async_pop(&r, &ev));

	/* events raised by a posted event's handler arrive here */
	for (unsigned i = 0; i < 3; i++) {
		struct vmmux_event p = io_ev(0x1000, 20 + i, true);
		assert_int_equal(tp_main_post(&r, &p), TP_OK);
	}
	assert_int_equal(tp_vmm_serve(&v, raising_posted, NULL, NULL), 3);
	for (unsigned i = 0; i < 3; i++) {
		assert_true(tp_main_async_pop(&r, &ev));
		assert_int_equal(ev.type, VMMUX_EV_IRQ);
		assert_int_equal(ev.key, 20 + i);
	}
	tp_region_detach(&v);
	tp_region_destroy(&r);
}

/* ---- VMM wait ---------------------------------------------------------------------- */

struct delayed_post {
	struct tp_region *r;
	unsigned ms;
	enum tp_result result;
};

static void *post_later(void *p)
{
	struct delayed_post *d = p;
	usleep(d->ms * 1000);
	struct vmmux_event ev = io_ev(0x1000, 1, true);
	d->result = tp_main_post(d->r, &ev);
	return NULL;
}

static void test_vmm_wait(void **state)
{
	(void)state;
	struct tp_region r, v;
	assert_int_equal(tp_region_create(&r, 1, 0), 0);
	attach_view(&r, &v);
	struct srv *s = calloc(1, sizeof(*s));
	/* the first wait after attaching returns at once */
	assert_int_equal(tp_vmm_wait(&v, NULL, 0, 1000) & 1, 1);
	assert_int_equal(tp_vmm_serve(&v, echo_handler, s, NULL), 0);
	/* nothing: the timeout */
	uint64_t t0 = tp_now_ns();
	assert_int_equal(tp_vmm_wait(&v, NULL, 0, 30), 0);
	assert_true(tp_now_ns() - t0 >= 25 * MS);
	/* an extra descriptor */
	int p[2];
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], "x", 1), 1);
	int extra[1] = {p[0]};
	assert_int_equal(tp_vmm_wait(&v, extra, 1, 1000), 2);
	/* a post while the VMM sleeps wakes it through the eventfd */
	char c;
	assert_int_equal(read(p[0], &c, 1), 1);
	struct delayed_post d = {.r = &r, .ms = 20};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, post_later, &d), 0);
	t0 = tp_now_ns();
	unsigned m = tp_vmm_wait(&v, extra, 1, 5000);
	assert_int_equal(m, 1);
	assert_true(tp_now_ns() - t0 < 2000 * MS);
	pthread_join(t, NULL);
	assert_int_equal(d.result, TP_OK);
	assert_int_equal(atomic_load(&r.hdr->vmm_sleeping), 0);
	assert_int_equal(tp_vmm_serve(&v, echo_handler, s, NULL), 1);
	/* a post while awake (spinning): no eventfd write needed */
	tp_set_spin_ns(&r, 200000);
	struct vmmux_event ev = io_ev(0x1000, 2, true);
	assert_int_equal(tp_main_post(&r, &ev), TP_OK);
	assert_int_equal(efd_count(r.vmm_efd), 0);
	assert_int_equal(tp_vmm_wait(&v, NULL, 0, 1000), 1);
	close(p[0]);
	close(p[1]);
	free(s);
	tp_region_detach(&v);
	tp_region_destroy(&r);
}

/* ---- deadlines, abort, recovery ------------------------------------------------------ */

static void timeout_case(uint64_t spin_ns, uint64_t wait_ns)
{
	struct tp_region r;
	assert_int_equal(tp_region_create(&r, 1, spin_ns), 0);
	struct vmmux_event ev = io_ev(0x70, 5, false);
	struct vmmux_reply rep;
	int32_t res;
	uint64_t t0 = tp_now_ns(), deadline = t0 + wait_ns;
	assert_int_equal(tp_main_call(&r, 0, &ev, &rep, &res, NULL, NULL, deadline, NULL),
			 TP_TIMEOUT);
	uint64_t t1 = tp_now_ns();
	assert_true(t1 >= deadline);
	if (t1 > deadline + DEADLINE_SLACK)
		fail_msg("TP_TIMEOUT %llu ms after the deadline",
			 (unsigned long long)((t1 - deadline) / MS));
	assert_int_equal(atomic_load(&r.slots[0].state), TP_REQ);
	assert_true(tp_main_pending(&r, 0));
	/* a second request on a pending slot is the caller's mistake */
	assert_int_equal(tp_main_call(&r, 0, &ev, &rep, &res, NULL, NULL, deadline, NULL),
			 TP_INVAL);
	/* a late server answers; tp_main_wait collects */
	struct thread_srv *ts = start_thread_server(&r);
	assert_int_equal(
	    tp_main_wait(&r, 0, &ev, &rep, &res, NULL, NULL, tp_now_ns() + 5000 * MS, NULL), TP_OK);
	assert_int_equal(rep.value, 0x70 * 3 + 5);
	assert_int_equal(res, 5);
	assert_false(tp_main_pending(&r, 0));
	calls(&r, 0, 10);
	stop_thread_server(ts);
	tp_region_destroy(&r);
}

static void test_timeout_blocking(void **state)
{
	(void)state;
	timeout_case(0, 30 * MS);
}

static void test_timeout_spin(void **state)
{
	(void)state;
	timeout_case(TP_SPIN_NS_MAX, 300000); /* the deadline cuts the spin short */
}

struct aborter {
	struct tp_region *r;
	_Atomic bool *flag;
};

static void *abort_later(void *p)
{
	struct aborter *a = p;
	usleep(30000);
	atomic_store(a->flag, true);
	tp_main_wake_all(a->r);
	return NULL;
}

static void test_abort(void **state)
{
	(void)state;
	struct tp_region r;
	assert_int_equal(tp_region_create(&r, 1, 0), 0);
	_Atomic bool flag = false;
	struct aborter a = {.r = &r, .flag = &flag};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, abort_later, &a), 0);
	struct vmmux_event ev = io_ev(0x70, 5, false);
	uint64_t t0 = tp_now_ns();
	assert_int_equal(tp_main_call(&r, 0, &ev, NULL, NULL, NULL, NULL, t0 + 10000 * MS, &flag),
			 TP_ABORTED);
	uint64_t took = tp_now_ns() - t0;
	pthread_join(t, NULL);
	assert_true(took >= 25 * MS);
	if (took > 30 * MS + DEADLINE_SLACK)
		fail_msg("abort seen after %llu ms", (unsigned long long)(took / MS));
	assert_true(tp_main_pending(&r, 0)); /* still pending */
	/* already aborted, spinning: returns at once */
	tp_set_spin_ns(&r, 100000);
	t0 = tp_now_ns();
	assert_int_equal(tp_main_wait(&r, 0, &ev, NULL, NULL, NULL, NULL, t0 + 10000 * MS, &flag),
			 TP_ABORTED);
	assert_true(tp_now_ns() - t0 < 5 * MS * SLOWDOWN);
	/* cancel: the request is dropped, the slot usable again */
	tp_main_cancel(&r, 0);
	assert_false(tp_main_pending(&r, 0));
	assert_int_equal(atomic_load(&r.slots[0].state), TP_IDLE);
	tp_main_cancel(&r, 0); /* nothing pending: no-op */
	tp_main_cancel(&r, 7); /* out of range: no-op */
	tp_region_destroy(&r);
}

/* A child takes the request (BUSY) and dies: recovery re-arms it, counts
 * it as possibly handled, and a new server answers it. */
static void test_crash_recovery(void **state)
{
	(void)state;
	struct tp_region r;
	assert_int_equal(tp_region_create(&r, 2, 0), 0);
	struct vmmux_event ev = io_ev(0x71, 9, false);
	struct vmmux_reply rep;
	int32_t res;
	assert_int_equal(tp_main_call(&r, 0, &ev, &rep, &res, NULL, NULL, tp_now_ns(), NULL),
			 TP_TIMEOUT);
	pid_t pid = fork_child();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct tp_region v;
		if (tp_region_attach(&v, r.memfd, r.vmm_efd, r.async_efd) != 0)
			_exit(2);
		uint32_t st = TP_REQ;
		if (!atomic_compare_exchange_strong(&v.slots[0].state, &st, TP_BUSY))
			_exit(3);
		_exit(0); /* dies with its handler "running" */
	}
	assert_int_equal(wait_child(pid), 0);
	assert_int_equal(atomic_load(&r.slots[0].state), TP_BUSY);
	unsigned pending = 99;
	assert_int_equal(tp_main_recover(&r, &pending), 1);
	assert_int_equal(pending, 1);
	assert_int_equal(atomic_load(&r.slots[0].state), TP_REQ);
	assert_int_equal(atomic_load(&r.slots[1].state), TP_IDLE);
	/* recovering again: REQ stays REQ and is not counted */
	assert_int_equal(tp_main_recover(&r, NULL), 0);

	pid = start_child_server(&r);
	assert_int_equal(
	    tp_main_wait(&r, 0, &ev, &rep, &res, NULL, NULL, tp_now_ns() + 5000 * MS, NULL), TP_OK);
	assert_int_equal(rep.value, 0x71 * 3 + 9);
	calls(&r, 0, 10);
	quit_server(&r, 1);
	assert_int_equal(wait_child(pid), 0);
	tp_region_destroy(&r);
}

/* Recovery judges slots by the main side's own record. */
static void test_recover_states(void **state)
{
	(void)state;
	struct tp_region r;
	assert_int_equal(tp_region_create(&r, 7, 0), 0);
	struct vmmux_event ev = io_ev(0x72, 1, false);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(tp_main_call(&r, i, &ev, NULL, NULL, NULL, NULL, 0, NULL),
				 TP_TIMEOUT);
	struct tp_slot *s = r.slots;
	/* 0: REQ stays. 1: left IDLE by the VMM. 2: out of range. 3: a valid DONE. */
	atomic_store(&s[1].state, TP_IDLE);
	atomic_store(&s[2].state, 77);
	s[3].reply_seq = s[3].seq;
	s[3].nraised = 0;
	s[3].rep.value = 1234;
	atomic_store(&s[3].state, TP_DONE);
	/* not pending: 4 left BUSY, 5 out of range, 6 a REQ nobody sent */
	atomic_store(&s[4].state, TP_BUSY);
	atomic_store(&s[5].state, 1000);
	atomic_store(&s[6].state, TP_REQ);
	unsigned pending;
	assert_int_equal(tp_main_recover(&r, &pending), 2);
	assert_int_equal(pending, 4);
	assert_int_equal(atomic_load(&s[0].state), TP_REQ);
	assert_int_equal(atomic_load(&s[1].state), TP_REQ);
	assert_int_equal(atomic_load(&s[2].state), TP_REQ);
	assert_int_equal(atomic_load(&s[3].state), TP_DONE);
	assert_int_equal(atomic_load(&s[4].state), TP_IDLE);
	assert_int_equal(atomic_load(&s[5].state), TP_IDLE);
	assert_int_equal(atomic_load(&s[6].state), TP_IDLE);
	struct vmmux_reply rep;
	assert_int_equal(tp_main_wait(&r, 3, &ev, &rep, NULL, NULL, NULL, tp_now_ns() + MS, NULL),
			 TP_OK);
	assert_int_equal(rep.value, 1234);
	/* a DONE whose reply fails the checks is delivered again */
	s[0].reply_seq = s[0].seq + 1;
	atomic_store(&s[0].state, TP_DONE);
	assert_int_equal(tp_main_recover(&r, &pending), 1);
	assert_int_equal(pending, 3);
	assert_int_equal(atomic_load(&s[0].state), TP_REQ);
	tp_region_destroy(&r);
}

/* Replies out of their domain are protocol errors, the request stays. */
static void test_protocol_errors(void **state)
{
	(void)state;
	struct tp_region r;
	assert_int_equal(tp_region_create(&r, 1, 10000), 0);
	struct tp_slot *s = &r.slots[0];
	struct vmmux_event ev = io_ev(0x73, 1, false);
	struct vmmux_reply rep;
	int32_t res;
	struct vmmux_event raised[TP_RAISE_MAX];
	uint32_t nr;
	assert_int_equal(tp_main_call(&r, 0, &ev, &rep, &res, raised, &nr, 0, NULL), TP_TIMEOUT);
	uint32_t seq = s->seq;

	s->reply_seq = seq - 1; /* a stale reply */
	atomic_store(&s->state, TP_DONE);
	assert_int_equal(tp_main_wait(&r, 0, &ev, &rep, &res, raised, &nr, tp_now_ns() + MS, NULL),
			 TP_PROTOCOL);
	s->reply_seq = seq;
	s->nraised = TP_RAISE_MAX + 1;
	assert_int_equal(tp_main_wait(&r, 0, &ev, &rep, &res, raised, &nr, tp_now_ns() + MS, NULL),
			 TP_PROTOCOL);
	s->nraised = 0xffffffffu;
	assert_int_equal(tp_main_wait(&r, 0, &ev, &rep, &res, raised, &nr, tp_now_ns() + MS, NULL),
			 TP_PROTOCOL);
	s->nraised = 0;
	atomic_store(&s->state, 4);
	assert_int_equal(tp_main_wait(&r, 0, &ev, &rep, &res, raised, &nr, tp_now_ns() + MS, NULL),
			 TP_PROTOCOL);
	atomic_store(&s->state, TP_IDLE); /* IDLE while a request is pending */
	tp_set_spin_ns(&r, 0);
	assert_int_equal(tp_main_wait(&r, 0, &ev, &rep, &res, raised, &nr, tp_now_ns() + MS, NULL),
			 TP_PROTOCOL);
	assert_true(tp_main_pending(&r, 0));
	/* a valid reply now: accepted; the main side's seq, not the slot's */
	s->seq = 12345;
	s->reply_seq = seq;
	s->nraised = 2;
	s->raised[0] = (struct vmmux_event){.type = VMMUX_EV_IRQ, .data = (void *)0x999};
	s->rep = (struct vmmux_reply){.action = 3, .value = 77};
	s->result = -5;
	atomic_store(&s->state, TP_DONE);
	assert_int_equal(tp_main_wait(&r, 0, &ev, &rep, &res, raised, &nr, tp_now_ns() + MS, NULL),
			 TP_OK);
	assert_int_equal(rep.action, 3);
	assert_int_equal(rep.value, 77);
	assert_int_equal(res, -5);
	assert_int_equal(nr, 2);
	assert_null(raised[0].data);
	assert_int_equal(atomic_load(&s->state), TP_IDLE);
	/* the next request carries the next number, and no pointer of ours */
	uint8_t out[4] = {1, 2, 3, 4};
	ev = (struct vmmux_event){.type = VMMUX_EV_IO,
				  .flags = VMMUX_EVF_STRING | VMMUX_EVF_WRITE,
				  .size = 1,
				  .count = 4,
				  .key = 0x3f8,
				  .data = out};
	assert_int_equal(tp_main_call(&r, 0, &ev, &rep, &res, raised, &nr, 0, NULL), TP_TIMEOUT);
	assert_int_equal(s->seq, seq + 1);
	assert_null(s->ev.data);
	assert_memory_equal(s->data, out, 4);
	/* nor through the posted ring */
	ev = io_ev(0x1000, 1, true);
	ev.data = out;
	assert_int_equal(tp_main_post(&r, &ev), TP_OK);
	assert_null(r.posted->e[0].ev.data);
	assert_int_equal(r.posted->e[0].ev.value, 1);
	tp_region_destroy(&r);
}

/* ---- a hostile VMM --------------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Writes garbage all over the region, and sometimes plausible replies, until
 * killed. */
static void scribble(const struct tp_region *r)
{
	struct tp_region v;
	if (tp_region_attach(&v, r->memfd, r->vmm_efd, r->async_efd) != 0)
		_exit(2);
	uint8_t *base = (uint8_t *)v.hdr;
	rng_state ^= (uint64_t)getpid() << 20;
	for (;;) {
		uint64_t x = rnd();
		unsigned i = (unsigned)(x >> 8) % v.nslots;
		struct tp_slot *s = &v.slots[i];
		switch (x % 8) {
		case 0: { /* random bytes anywhere */
			size_t off = (size_t)(rnd() % v.size), len = (size_t)(rnd() % 512);
			if (off + len > v.size)
				len = v.size - off;
			for (size_t k = 0; k < len; k++)
				base[off + k] = (uint8_t)rnd();
			break;
		}
		case 1:
			atomic_store(&s->state, (uint32_t)(rnd() % 6));
			break;
		case 2: /* a plausible reply, sometimes with a bad count */
			s->reply_seq = s->seq + (rnd() % 4 == 0);
			s->nraised = (uint32_t)(rnd() % 20);
			s->rep.value = rnd();
			atomic_store(&s->state, TP_DONE);
			if (atomic_load(&s->waiting))
				syscall(SYS_futex, (void *)&s->state, FUTEX_WAKE, 1, NULL, NULL, 0);
			break;
		case 3:
			atomic_store(&v.posted->head,
				     rnd() % 4 ? rnd() : atomic_load(&v.posted->head));
			atomic_store(&v.posted->e[rnd() % TP_RING_ENTRIES].seq, rnd() % 512);
			break;
		case 4:
			atomic_store(&v.async->head,
				     rnd() % 2 ? rnd() : atomic_load(&v.async->head) + 1);
			break;
		case 5:
			atomic_store(&v.hdr->state_seq, rnd());
			v.hdr->saved[rnd() % 2].len = (uint32_t)rnd() % (2 * TP_STATE_MAX);
			break;
		case 6: /* flip a slot between states as fast as possible */
			for (unsigned k = 0; k < 1000; k++)
				atomic_store(&s->state, k % 2 ? TP_REQ : TP_BUSY);
			break;
		default:
			atomic_store(&v.hdr->spin_ns, rnd());
			atomic_store(&v.hdr->vmm_sleeping, (uint32_t)rnd());
			break;
		}
	}
}

static void test_hostile_vmm(void **state)
{
	(void)state;
	struct tp_region r;
	assert_int_equal(tp_region_create(&r, 4, 20000), 0);
	pid_t pid = fork_child();
	assert_true(pid >= 0);
	if (pid == 0)
		scribble(&r);
	unsigned counts[TP_INVAL + 1] = {0};
	uint64_t worst = 0;
	uint64_t end = tp_now_ns() + 1500 * MS;
	static uint8_t in[TP_SLOT_DATA + 64];
	static uint8_t state_buf[TP_STATE_MAX];
	unsigned ops = 0;
	while (tp_now_ns() < end) {
		ops++;
		unsigned slot = (unsigned)(rnd() % 4);
		struct vmmux_event ev = io_ev(0x80, 1, false);
		if (rnd() % 3 == 0) { /* INS into a guarded buffer */
			ev.flags = VMMUX_EVF_STRING;
			ev.size = 4;
			ev.count = (uint32_t)(rnd() % (TP_SLOT_DATA / 4)) + 1;
			ev.data = in + 32;
			memset(in, 0xaa, 32);
			memset(in + 32 + ev.count * 4, 0xbb, sizeof(in) - 32 - ev.count * 4);
		}
		struct vmmux_reply rep;
		int32_t res;
		struct vmmux_event raised[TP_RAISE_MAX];
		uint32_t nr = 0;
		uint64_t t0 = tp_now_ns(), deadline = t0 + (rnd() % 5) * MS;
		enum tp_result t =
		    tp_main_pending(&r, slot)
			? tp_main_wait(&r, slot, &ev, &rep, &res, raised, &nr, deadline, NULL)
			: tp_main_call(&r, slot, &ev, &rep, &res, raised, &nr, deadline, NULL);
		uint64_t t1 = tp_now_ns();
		if (t1 > deadline && t1 - deadline > worst)
			worst = t1 - deadline;
		if (t != TP_OK && t != TP_TIMEOUT && t != TP_PROTOCOL)
			fail_msg("call returned %d", t);
		counts[t]++;
		if (t == TP_OK) {
			assert_true(nr <= TP_RAISE_MAX);
			for (unsigned k = 0; k < nr; k++)
				assert_null(raised[k].data);
		}
		for (size_t k = 0; k < 32; k++)
			assert_int_equal(in[k], 0xaa);
		if (ev.flags & VMMUX_EVF_STRING)
			for (size_t k = 32 + ev.count * 4; k < sizeof(in); k++)
				assert_int_equal(in[k], 0xbb);
		if (t != TP_OK) {
			if (rnd() % 2)
				tp_main_cancel(&r, slot);
			else
				tp_main_recover(&r, NULL);
		}
		/* the other entry points, against the same garbage */
		struct vmmux_event p = io_ev(0x1000, ops, true);
		uint64_t t2 = tp_now_ns();
		enum tp_result pt = tp_main_post(&r, &p);
		assert_true(pt == TP_OK || pt == TP_FULL);
		assert_true(tp_now_ns() - t2 < 20 * MS * SLOWDOWN);
		struct vmmux_event a;
		for (unsigned k = 0; k < 2 * TP_ASYNC_ENTRIES && tp_main_async_pop(&r, &a); k++)
			assert_null(a.data);
		long n = tp_state_load(&r, state_buf, sizeof(state_buf));
		assert_true(n >= -1 && n <= (long)TP_STATE_MAX);
	}
	kill(pid, SIGKILL);
	assert_int_equal(wait_child(pid), 128 + SIGKILL);
	print_message("hostile VMM: %u calls: %u ok, %u timeout, %u protocol; worst %.1f ms "
		      "past a deadline\n",
		      ops, counts[TP_OK], counts[TP_TIMEOUT], counts[TP_PROTOCOL],
		      (double)worst / MS);
	if (worst > DEADLINE_SLACK)
		fail_msg("a call returned %llu ms after its deadline",
			 (unsigned long long)(worst / MS));
	assert_true(counts[TP_OK] > 0 && counts[TP_PROTOCOL] > 0);
	tp_region_destroy(&r);
}

/* ---- role state ------------------------------------------------------------------------ */

static void test_state(void **state)
{
	(void)state;
	struct tp_region r, v;
	assert_int_equal(tp_region_create(&r, 1, 0), 0);
	attach_view(&r, &v);
	char buf[TP_STATE_MAX];
	assert_int_equal(tp_state_load(&r, buf, sizeof(buf)), 0); /* none yet */
	assert_int_equal(tp_state_store(&v, "first", 5), 0);
	assert_int_equal(tp_state_load(&r, buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "first", 5);
	assert_int_equal(tp_state_store(&v, "second!", 7), 0);
	assert_int_equal(tp_state_load(&r, buf, sizeof(buf)), 7);
	assert_memory_equal(buf, "second!", 7);
	assert_int_equal(tp_state_store(&v, NULL, 0), 0);
	assert_int_equal(tp_state_load(&r, buf, sizeof(buf)), 0);
	static char big[TP_STATE_MAX + 1];
	errno = 0;
	assert_int_equal(tp_state_store(&v, big, sizeof(big)), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(tp_state_store(&v, big, TP_STATE_MAX), 0);
	assert_int_equal(tp_state_load(&r, buf, sizeof(buf)), TP_STATE_MAX);
	/* too small a buffer */
	assert_int_equal(tp_state_load(&r, buf, 10), -1);
	assert_int_equal(errno, ENOSPC);
	/* a corrupt length */
	uint64_t seq = atomic_load(&r.hdr->state_seq);
	r.hdr->saved[seq & 1].len = TP_STATE_MAX + 1;
	assert_int_equal(tp_state_load(&r, buf, sizeof(buf)), -1);
	assert_int_equal(errno, EPROTO);
	tp_region_detach(&v);
	tp_region_destroy(&r);
}

struct state_writer {
	struct tp_region v;
	_Atomic bool stop;
	unsigned stores, failures;
};

static void *state_write(void *p)
{
	struct state_writer *w = p;
	static uint8_t buf[TP_STATE_MAX];
	for (unsigned i = 0; !atomic_load(&w->stop); i++) {
		uint8_t b = (uint8_t)(i % 251 + 1);
		size_t len = 1000 + (size_t)b * 20;
		memset(buf, b, len);
		if (tp_state_store(&w->v, buf, len) != 0)
			w->failures++;
		w->stores++;
	}
	return NULL;
}

/* Loads racing with stores never see a torn copy: a copy is uniform and as
 * long as its byte says. */
static void test_state_concurrent(void **state)
{
	(void)state;
	struct tp_region r;
	assert_int_equal(tp_region_create(&r, 1, 0), 0);
	struct state_writer *w = calloc(1, sizeof(*w));
	attach_view(&r, &w->v);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, state_write, w), 0);
	static uint8_t buf[TP_STATE_MAX];
	unsigned good = 0, busy = 0;
	uint64_t end = tp_now_ns() + 500 * MS;
	while (tp_now_ns() < end) {
		long n = tp_state_load(&r, buf, sizeof(buf));
		if (n == 0)
			continue;
		if (n < 0) {
			assert_int_equal(errno, EAGAIN);
			busy++;
			continue;
		}
		uint8_t b = buf[0];
		assert_int_equal((size_t)n, 1000 + (size_t)b * 20);
		for (long k = 0; k < n; k++)
			if (buf[k] != b)
				fail_msg("torn state: byte %ld is %u in a copy of %u", k, buf[k],
					 b);
		good++;
	}
	atomic_store(&w->stop, true);
	pthread_join(t, NULL);
	assert_int_equal(w->failures, 0);
	print_message("state: %u consistent loads, %u gave up, %u stores\n", good, busy, w->stores);
	assert_true(good > 0);
	tp_region_detach(&w->v);
	free(w);
	tp_region_destroy(&r);
}

/* ---- exactly once ----------------------------------------------------------- */

/*
 * A counting role for the exactly-once tests: a write to KEY_ADD adds its
 * value to the total, replies with the new total and raises one IRQ event
 * whose key is the value; a read of KEY_ADD returns the total. Its saved
 * state is the total. A role instance can be told to die (_exit(7)) at one
 * step of the protocol while handling the event of value DIE_VALUE.
 */
#define KEY_ADD 0xadd

enum die_at {
	DIE_NONE = 0,
	DIE_BEFORE_APPLY, /* in the handler, before it changes the total */
	DIE_AFTER_APPLY,  /* in the handler, after it changed the total */
	DIE_AFTER_RECORD, /* in save, after tp_state_store committed */
	DIE_AFTER_REPLY,  /* after the serve that published the reply */
};

struct counter {
	struct tp_region *v;
	uint64_t total;
	enum die_at die_at;
	uint64_t die_value;
	unsigned applied;	/* handler calls that changed the total */
	uint64_t seen_seq;	/* tp_vmm_seq during the last handler call */
	bool seen_redelivered;	/* VMMUX_EVF_REDELIVERED on the last one */
	uint64_t current_value; /* the value being handled (for save) */
};

static int counter_handler(void *arg, struct vmmux_event *ev, struct vmmux_reply *rep,
			   struct vmmux_event *raised, uint32_t *nraised)
{
	struct counter *c = arg;
	c->seen_seq = tp_vmm_seq(c->v);
	c->seen_redelivered = (ev->flags & VMMUX_EVF_REDELIVERED) != 0;
	c->current_value = ev->value;
	if (ev->key != KEY_ADD)
		return -1;
	if (ev->flags & VMMUX_EVF_WRITE) {
		if (c->die_at == DIE_BEFORE_APPLY && ev->value == c->die_value)
			_exit(7);
		c->total += ev->value;
		c->applied++;
		if (c->die_at == DIE_AFTER_APPLY && ev->value == c->die_value)
			_exit(7);
		raised[0] = (struct vmmux_event){
		    .type = VMMUX_EV_IRQ, .key = ev->value, .value = 1, .count = 1};
		*nraised = 1;
	}
	rep->value = c->total;
	return 0;
}

/* When set (before forking a child), save lingers 100 us after its
 * commit: a death then often falls between the commit and the reply. */
static bool counter_slow_save;

static void counter_save(void *arg)
{
	struct counter *c = arg;
	assert_int_equal(tp_state_store(c->v, &c->total, sizeof(c->total)), 0);
	for (uint64_t end = tp_now_ns() + 100000; counter_slow_save && tp_now_ns() < end;)
		sched_yield();
	if (c->die_at == DIE_AFTER_RECORD && c->current_value == c->die_value)
		_exit(7);
}

/* A successor: restore the total from the region, as the library does. */
static void counter_restore(struct counter *c, struct tp_region *v)
{
	memset(c, 0, sizeof(*c));
	c->v = v;
	long n = tp_state_load(v, &c->total, sizeof(c->total));
	assert_true(n == 0 || n == (long)sizeof(c->total));
}

/* A child serving the counter role until it dies where told. */
static pid_t start_counter_child(const struct tp_region *r, enum die_at at, uint64_t value)
{
	pid_t pid = fork_child();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct tp_region v;
		struct counter c;
		if (tp_region_attach(&v, r->memfd, r->vmm_efd, r->async_efd) != 0)
			_exit(2);
		counter_restore(&c, &v);
		c.die_at = at;
		c.die_value = value;
		for (;;) {
			tp_vmm_wait(&v, NULL, 0, 20);
			unsigned n = tp_vmm_serve(&v, counter_handler, &c, counter_save);
			if (n != 0 && at == DIE_AFTER_REPLY && c.current_value == value)
				_exit(7);
		}
	}
	return pid;
}

static struct vmmux_event add_ev(uint64_t value, bool write)
{
	struct vmmux_event ev = io_ev(KEY_ADD, value, write);
	return ev;
}

/* Post ADD 1..N. */
static void post_adds(struct tp_region *r, uint64_t from, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		struct vmmux_event ev = add_ev(from + i, true);
		assert_int_equal(tp_main_post(r, &ev), TP_OK);
	}
}

struct death_watch {
	int pidfd;
	_Atomic bool dead;
};

static void *death_watcher(void *p)
{
	struct death_watch *w = p;
	struct pollfd pf = {.fd = w->pidfd, .events = POLLIN};
	while (poll(&pf, 1, -1) < 0 && errno == EINTR)
		;
	atomic_store(&w->dead, true);
	return NULL;
}

/* tp_main_call that stops waiting when process PID ends (TP_ABORTED), as
 * vmmux's supervisor makes it stop; the process is not reaped. */
static enum tp_result call_until_death(struct tp_region *r, unsigned slot, struct vmmux_event *ev,
				       struct vmmux_reply *rep, int32_t *res,
				       struct vmmux_event *raised, uint32_t *nr, pid_t pid)
{
	struct death_watch w = {.pidfd = (int)syscall(SYS_pidfd_open, pid, 0)};
	assert_true(w.pidfd >= 0);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, death_watcher, &w), 0);
	enum tp_result rc =
	    tp_main_call(r, slot, ev, rep, res, raised, nr, tp_now_ns() + 5000 * MS, &w.dead);
	assert_int_equal(pthread_join(t, NULL), 0);
	close(w.pidfd);
	return rc;
}

/* A synchronous ADD whose VMM dies at step AT: after recovery, a successor
 * gives the guest one reply that reflects exactly one application. */
static void slot_death_at(enum die_at at)
{
	struct tp_region r, v;
	assert_int_equal(tp_region_create(&r, 2, 0), 0);
	/* a first request, applied and answered normally */
	pid_t pid = start_counter_child(&r, at, 5);
	struct vmmux_event ev = add_ev(2, true);
	struct vmmux_reply rep;
	int32_t res;
	struct vmmux_event raised[TP_RAISE_MAX];
	uint32_t nr;
	assert_int_equal(
	    tp_main_call(&r, 0, &ev, &rep, &res, raised, &nr, tp_now_ns() + 5000 * MS, NULL),
	    TP_OK);
	assert_int_equal(rep.value, 2);

	/* the request the VMM dies on */
	ev = add_ev(5, true);
	enum tp_result t = call_until_death(&r, 0, &ev, &rep, &res, raised, &nr, pid);
	assert_int_equal(wait_child(pid), 7);
	uint64_t xseq = tp_main_seq(&r, 0);
	if (at == DIE_AFTER_REPLY) {
		assert_int_equal(t, TP_OK); /* it replied, then died */
		assert_int_equal(rep.value, 7);
		assert_int_equal(nr, 1);
	} else {
		assert_int_equal(t, TP_ABORTED); /* it died before replying */
		assert_true(xseq > 1);
		unsigned pending;
		/* REQ never happens here: the handler had started (BUSY) */
		assert_int_equal(tp_main_recover(&r, &pending), 1);
		assert_int_equal(pending, 1);
		assert_int_equal(tp_main_seq(&r, 0), xseq); /* the same number */
	}

	/* the successor: a committed request is answered as it attaches */
	attach_view(&r, &v);
	if (at == DIE_AFTER_RECORD)
		assert_int_equal(atomic_load(&r.slots[0].state), TP_DONE);
	struct counter c;
	counter_restore(&c, &v);
	assert_int_equal(tp_vmm_serve(&v, counter_handler, &c, counter_save),
			 at == DIE_BEFORE_APPLY || at == DIE_AFTER_APPLY ? 1 : 0);
	if (at == DIE_BEFORE_APPLY || at == DIE_AFTER_APPLY) {
		/* nothing was committed: applied by the successor, once */
		assert_int_equal(c.applied, 1);
		assert_true(c.seen_redelivered);
		assert_int_equal(c.seen_seq, xseq);
	} else {
		/* committed (or replied): answered from the record */
		assert_int_equal(c.applied, 0);
	}
	assert_int_equal(c.total, 7);
	if (at != DIE_AFTER_REPLY) {
		assert_int_equal(tp_main_wait(&r, 0, &ev, &rep, &res, raised, &nr,
					      tp_now_ns() + 5000 * MS, NULL),
				 TP_OK);
		assert_int_equal(rep.value, 7);
		assert_int_equal(res, 0);
		assert_int_equal(nr, 1); /* its raised event, once */
		assert_int_equal(raised[0].key, 5);
	}
	assert_false(tp_main_pending(&r, 0));

	/* and the state goes on from there; the new request is not flagged */
	ev = add_ev(1, true);
	assert_int_equal(tp_main_call(&r, 1, &ev, &rep, &res, NULL, NULL, 0, NULL), TP_TIMEOUT);
	assert_int_equal(tp_vmm_serve(&v, counter_handler, &c, counter_save), 1);
	assert_false(c.seen_redelivered);
	assert_int_equal(c.seen_seq, tp_main_seq(&r, 1));
	assert_int_equal(
	    tp_main_wait(&r, 1, &ev, &rep, &res, NULL, NULL, tp_now_ns() + 5000 * MS, NULL), TP_OK);
	assert_int_equal(rep.value, 8);
	tp_region_detach(&v);
	tp_region_destroy(&r);
}

static void test_once_before_apply(void **state)
{
	(void)state;
	slot_death_at(DIE_BEFORE_APPLY);
}

static void test_once_after_apply(void **state)
{
	(void)state;
	slot_death_at(DIE_AFTER_APPLY);
}

static void test_once_after_record(void **state)
{
	(void)state;
	slot_death_at(DIE_AFTER_RECORD);
}

static void test_once_after_reply(void **state)
{
	(void)state;
	slot_death_at(DIE_AFTER_REPLY);
}

/* A request committed and not answered when its VMM died, with posted
 * writes waiting: the successor answers it from the record before it
 * applies anything else (which would replace the record). */
static void test_once_record_first(void **state)
{
	(void)state;
	struct tp_region r, v;
	assert_int_equal(tp_region_create(&r, 2, 0), 0);
	attach_view(&r, &v);
	struct counter c;
	counter_restore(&c, &v);
	struct vmmux_event ev = add_ev(5, true);
	assert_int_equal(tp_main_call(&r, 1, &ev, NULL, NULL, NULL, NULL, 0, NULL), TP_TIMEOUT);
	assert_int_equal(tp_vmm_serve(&v, counter_handler, &c, counter_save), 1);
	atomic_store(&r.slots[1].state, TP_BUSY); /* died after its record */
	tp_region_detach(&v);
	post_adds(&r, 1, 3); /* posted writes wait, served before slots */
	assert_int_equal(tp_main_recover(&r, NULL), 1);
	attach_view(&r, &v);
	counter_restore(&c, &v);
	assert_int_equal(c.total, 5);
	assert_int_equal(tp_vmm_serve(&v, counter_handler, &c, counter_save), 3);
	assert_int_equal(c.applied, 3);
	assert_int_equal(c.total, 11);
	struct vmmux_reply rep;
	assert_int_equal(tp_main_wait(&r, 1, &ev, &rep, NULL, NULL, NULL, tp_now_ns() + MS, NULL),
			 TP_OK);
	assert_int_equal(rep.value, 5); /* its own reply, computed before the death */
	tp_region_detach(&v);
	tp_region_destroy(&r);
}

/* Sequence numbers: one counter per region, never reused; the record
 * travels with the state, and a state the main side stores keeps it. */
static void test_seq_numbers(void **state)
{
	(void)state;
	struct tp_region r, v;
	assert_int_equal(tp_region_create(&r, 3, 0), 0);
	attach_view(&r, &v);
	struct counter c;
	counter_restore(&c, &v);
	uint64_t last = 0;
	for (unsigned i = 0; i < 9; i++) {
		unsigned slot = i % 3;
		struct vmmux_event ev = add_ev(1, true);
		assert_int_equal(tp_main_call(&r, slot, &ev, NULL, NULL, NULL, NULL, 0, NULL),
				 TP_TIMEOUT);
		uint64_t x = tp_main_seq(&r, slot);
		assert_true(x > last && !(x & TP_SEQ_POSTED));
		last = x;
		assert_int_equal(tp_vmm_serve(&v, counter_handler, &c, counter_save), 1);
		assert_int_equal(c.seen_seq, x);
		assert_int_equal(
		    tp_main_wait(&r, slot, &ev, NULL, NULL, NULL, NULL, tp_now_ns() + MS, NULL),
		    TP_OK);
		assert_int_equal(tp_main_seq(&r, slot), 0); /* none pending */
		assert_int_equal(tp_vmm_seq(&v), 0);	    /* outside a handler */
		uint64_t s = atomic_load(&r.hdr->state_seq);
		assert_int_equal(r.hdr->saved[s & 1].rec.xseq, x);
	}
	/* a role without save: the record is committed with the old state */
	assert_int_equal(tp_vmm_serve(&v, counter_handler, &c, NULL), 0);
	struct vmmux_event ev = add_ev(3, true);
	assert_int_equal(tp_main_call(&r, 0, &ev, NULL, NULL, NULL, NULL, 0, NULL), TP_TIMEOUT);
	assert_int_equal(tp_vmm_serve(&v, counter_handler, &c, NULL), 1);
	uint64_t s = atomic_load(&r.hdr->state_seq);
	assert_int_equal(r.hdr->saved[s & 1].rec.xseq, tp_main_seq(&r, 0));
	uint64_t total = 0;
	assert_int_equal(tp_state_load(&r, &total, sizeof(total)), sizeof(total));
	assert_int_equal(total, 9); /* the last state save stored */
	assert_int_equal(tp_main_wait(&r, 0, &ev, NULL, NULL, NULL, NULL, tp_now_ns() + MS, NULL),
			 TP_OK);
	/* the main side storing a state (a swap's restore) keeps the record */
	uint64_t rec = r.hdr->saved[s & 1].rec.xseq;
	uint64_t forty = 40;
	assert_int_equal(tp_state_store(&r, &forty, sizeof(forty)), 0);
	s = atomic_load(&r.hdr->state_seq);
	assert_int_equal(r.hdr->saved[s & 1].rec.xseq, rec);
	assert_int_equal(tp_state_load(&r, &total, sizeof(total)), sizeof(total));
	assert_int_equal(total, 40);
	tp_region_detach(&v);
	tp_region_destroy(&r);
}

/* An INS answered from the record: its bytes are those its handler wrote
 * in the slot before the VMM died. */
static void test_once_string_in(void **state)
{
	(void)state;
	struct tp_region r, v;
	assert_int_equal(tp_region_create(&r, 1, 0), 0);
	uint8_t buf[64];
	struct vmmux_event ev = {.type = VMMUX_EV_IO,
				 .flags = VMMUX_EVF_STRING,
				 .size = 1,
				 .count = sizeof(buf),
				 .key = 0x33,
				 .data = buf};
	assert_int_equal(tp_main_call(&r, 0, &ev, NULL, NULL, NULL, NULL, 0, NULL), TP_TIMEOUT);
	attach_view(&r, &v);
	struct srv *s = calloc(1, sizeof(*s));
	assert_int_equal(tp_vmm_serve(&v, echo_handler, s, NULL), 1);
	/* as if it died after its record, before its reply */
	atomic_store(&r.slots[0].state, TP_BUSY);
	assert_int_equal(tp_main_recover(&r, NULL), 1);
	assert_int_equal(tp_vmm_serve(&v, echo_handler, s, NULL), 1);
	assert_int_equal(s->handled, 1); /* from the record */
	struct vmmux_reply rep;
	memset(buf, 0, sizeof(buf));
	assert_int_equal(tp_main_wait(&r, 0, &ev, &rep, NULL, NULL, NULL, tp_now_ns() + MS, NULL),
			 TP_OK);
	assert_int_equal(rep.value, sizeof(buf));
	for (size_t i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], (uint8_t)(i * 7 + 0x33));
	free(s);
	tp_region_detach(&v);
	tp_region_destroy(&r);
}

/* ---- the posted ring across a consumer's death -------------------------------- */

/* Pop every async event; their keys in KEYS (at most MAX); their count. */
static unsigned pop_keys(struct tp_region *r, uint64_t *keys, unsigned max)
{
	struct vmmux_event ev;
	unsigned n = 0;
	while (tp_main_async_pop(r, &ev))
		if (n < max)
			keys[n++] = ev.key;
	return n;
}

/* The consumer dies in the handler of a posted entry, before or after it
 * changed its state: nothing was committed, the successor applies the
 * entry once, then the rest, each raised event once. */
static void posted_handler_death(enum die_at at)
{
	struct tp_region r, v;
	assert_int_equal(tp_region_create(&r, 1, 0), 0);
	post_adds(&r, 1, 4); /* 1 2 3 4; dies on 3 */
	pid_t pid = start_counter_child(&r, at, 3);
	assert_int_equal(wait_child(pid), 7);
	assert_int_equal(atomic_load(&r.posted->tail), 2);
	tp_main_recover(&r, NULL);
	/* the entry whose handler had started is flagged */
	assert_true(r.posted->e[2].ev.flags & VMMUX_EVF_REDELIVERED);
	assert_false(r.posted->e[3].ev.flags & VMMUX_EVF_REDELIVERED);
	attach_view(&r, &v);
	struct counter c;
	counter_restore(&c, &v);
	assert_int_equal(c.total, 3);
	assert_int_equal(tp_vmm_serve(&v, counter_handler, &c, counter_save), 2);
	assert_int_equal(c.applied, 2);
	assert_int_equal(c.total, 10);
	uint64_t keys[16];
	assert_int_equal(pop_keys(&r, keys, 16), 4);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(keys[i], i + 1);
	assert_true(tp_main_posted_empty(&r));
	tp_region_detach(&v);
	tp_region_destroy(&r);
}

static void test_posted_die_before_apply(void **state)
{
	(void)state;
	posted_handler_death(DIE_BEFORE_APPLY);
}

static void test_posted_die_after_apply(void **state)
{
	(void)state;
	posted_handler_death(DIE_AFTER_APPLY);
}

/*
 * The consumer's writes for one entry, after its handler, are: the commit
 * of state and record, the async pushes, tail, the release. Each
 * interleaving of a death is made by serving the entry and then undoing
 * the writes that came after the death point (the region then holds
 * exactly what a consumer dying there leaves). WHERE: 0 after the commit,
 * before any push; 1 after the first of two pushes; 2 after the pushes,
 * before tail; 3 after tail, before the release.
 */
static void posted_death_after_commit(unsigned where)
{
	struct tp_region r, v;
	assert_int_equal(tp_region_create(&r, 1, 0), 0);
	attach_view(&r, &v);
	struct counter c;
	counter_restore(&c, &v);
	post_adds(&r, 1, 2);
	assert_int_equal(tp_vmm_serve(&v, counter_handler, &c, counter_save), 2);
	/* entry 1 (value 2) is the one the consumer dies on; it raised one
	 * event; make it raise two by hand in the record for where == 1 */
	uint64_t s = atomic_load(&r.hdr->state_seq);
	struct tp_record *rec = &r.hdr->saved[s & 1].rec;
	assert_int_equal(rec->xseq, TP_SEQ_POSTED | 1);
	uint64_t head = atomic_load(&r.async->head);
	assert_int_equal(head, rec->async_head + 1);
	if (where <= 1) {
		rec->raised[1] = rec->raised[0];
		rec->raised[1].key = 22;
		rec->nraised = 2;
		atomic_store(&r.async->head, rec->async_head + where);
	}
	if (where <= 2)
		atomic_store(&r.posted->tail, 1);
	atomic_store(&r.posted->e[1].seq, 2); /* published, not released */
	tp_region_detach(&v);

	/* vmmux's recovery, then a successor */
	tp_main_recover(&r, NULL);
	if (where == 3)
		assert_int_equal(atomic_load(&r.posted->e[1].seq), 1 + TP_RING_ENTRIES);
	attach_view(&r, &v);
	counter_restore(&c, &v);
	assert_int_equal(c.total, 3); /* both applied, once */
	assert_int_equal(atomic_load(&r.posted->tail), 2);
	assert_int_equal(atomic_load(&r.posted->e[1].seq), 1 + TP_RING_ENTRIES);
	assert_int_equal(tp_vmm_serve(&v, counter_handler, &c, counter_save), 0);
	assert_int_equal(c.applied, 0);
	uint64_t keys[16];
	unsigned n = pop_keys(&r, keys, 16);
	if (where <= 1) {
		assert_int_equal(n, 3); /* 1, 2 and 22, each once */
		assert_int_equal(keys[0], 1);
		assert_int_equal(keys[1], 2);
		assert_int_equal(keys[2], 22);
	} else {
		assert_int_equal(n, 2);
		assert_int_equal(keys[0], 1);
		assert_int_equal(keys[1], 2);
	}
	/* the ring is not wedged: more than a lap goes through, in order (in
	 * batches the async ring has room for) */
	assert_true(tp_main_posted_empty(&r));
	for (unsigned k = 0; k < TP_RING_ENTRIES / 16 + 1; k++) {
		post_adds(&r, 100 + k * 16, 16);
		assert_int_equal(tp_vmm_serve(&v, counter_handler, &c, counter_save), 16);
		assert_int_equal(pop_keys(&r, keys, 16), 16);
		for (unsigned i = 0; i < 16; i++)
			assert_int_equal(keys[i], 100 + k * 16 + i);
	}
	assert_int_equal(c.applied, TP_RING_ENTRIES + 16);
	assert_true(tp_main_posted_empty(&r));
	tp_region_detach(&v);
	tp_region_destroy(&r);
}

static void test_posted_die_after_commit(void **state)
{
	(void)state;
	posted_death_after_commit(0);
}

static void test_posted_die_mid_push(void **state)
{
	(void)state;
	posted_death_after_commit(1);
}

static void test_posted_die_before_tail(void **state)
{
	(void)state;
	posted_death_after_commit(2);
}

static void test_posted_die_before_release(void **state)
{
	(void)state;
	posted_death_after_commit(3);
}

/* A successor can repair the ring itself when vmmux did not (attach). */
static void test_posted_attach_repairs(void **state)
{
	(void)state;
	struct tp_region r, v;
	assert_int_equal(tp_region_create(&r, 1, 0), 0);
	attach_view(&r, &v);
	struct srv *s = calloc(1, sizeof(*s));
	for (unsigned lap = 0; lap < 3; lap++) {
		for (unsigned i = 0; i < TP_RING_ENTRIES; i++) {
			struct vmmux_event ev = io_ev(0x1000, lap * 1000 + i, true);
			assert_int_equal(tp_main_post(&r, &ev), TP_OK);
		}
		uint64_t tail = atomic_load(&r.posted->tail);
		s->nposted = 0;
		assert_int_equal(tp_vmm_serve(&v, echo_handler, s, NULL), TP_RING_ENTRIES);
		assert_int_equal(s->nposted, TP_RING_ENTRIES);
		assert_int_equal(s->posted[0], lap * 1000);
		/* its last entry left consumed and unreleased */
		uint64_t last = tail + TP_RING_ENTRIES - 1;
		atomic_store(&r.posted->e[last & (TP_RING_ENTRIES - 1)].seq, last + 1);
		assert_false(tp_main_posted_empty(&r));
		tp_region_detach(&v);
		attach_view(&r, &v);
		assert_true(tp_main_posted_empty(&r));
	}
	free(s);
	tp_region_detach(&v);
	tp_region_destroy(&r);
}

/*
 * The posted ring under real deaths at arbitrary points: a child consumer
 * (a counting role with a saved state) is SIGKILLed at random moments while
 * two threads post, vmmux's recovery runs with producers active, and a new
 * child takes over, many times. Every posted value is applied exactly once
 * to the saved state (count and sum), every raised event reaches the async
 * ring exactly once, and the ring ends empty and usable.
 */
#define CHAOS_VALUES  20000u
#define CHAOS_THREADS 2u

struct chaos_state {
	uint64_t count, sum;
};

struct chaos_role {
	struct tp_region *v;
	struct chaos_state st;
};

static int chaos_handler(void *arg, struct vmmux_event *ev, struct vmmux_reply *rep,
			 struct vmmux_event *raised, uint32_t *nraised)
{
	struct chaos_role *c = arg;
	(void)rep;
	c->st.count++;
	c->st.sum += ev->value;
	raised[0] = (struct vmmux_event){.type = VMMUX_EV_IRQ, .key = ev->value, .count = 1};
	*nraised = 1;
	return 0;
}

static void chaos_save(void *arg)
{
	struct chaos_role *c = arg;
	tp_state_store(c->v, &c->st, sizeof(c->st));
}

static pid_t start_chaos_child(const struct tp_region *r)
{
	pid_t pid = fork_child();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct tp_region v;
		struct chaos_role c = {.v = &v};
		if (tp_region_attach(&v, r->memfd, r->vmm_efd, r->async_efd) != 0)
			_exit(2);
		long n = tp_state_load(&v, &c.st, sizeof(c.st));
		if (n != 0 && n != (long)sizeof(c.st))
			_exit(3);
		for (;;) {
			tp_vmm_wait(&v, NULL, 0, 5);
			tp_vmm_serve(&v, chaos_handler, &c, chaos_save);
		}
	}
	return pid;
}

struct chaos_producer {
	struct tp_region *r;
	unsigned id;
	_Atomic unsigned *posted;
};

static void *chaos_post(void *p)
{
	struct chaos_producer *cp = p;
	for (uint64_t v = 1 + cp->id; v <= CHAOS_VALUES; v += CHAOS_THREADS) {
		struct vmmux_event ev = io_ev(0x1000, v, true);
		while (tp_main_post(cp->r, &ev) == TP_FULL)
			sched_yield();
		atomic_fetch_add(cp->posted, 1);
	}
	return NULL;
}

static void chaos_pop(struct tp_region *r, uint8_t *seen, unsigned *dups, unsigned *bad)
{
	struct vmmux_event ev;
	while (tp_main_async_pop(r, &ev)) {
		if (ev.key == 0 || ev.key > CHAOS_VALUES)
			(*bad)++;
		else if (seen[ev.key]++ != 0)
			(*dups)++;
	}
}

static void test_posted_chaos(void **state)
{
	(void)state;
	struct tp_region r;
	assert_int_equal(tp_region_create(&r, 1, 0), 0);
	uint8_t *seen = calloc(CHAOS_VALUES + 1, 1);
	assert_non_null(seen);
	_Atomic unsigned posted = 0;
	struct chaos_producer cp[CHAOS_THREADS];
	pthread_t pt[CHAOS_THREADS];
	for (unsigned i = 0; i < CHAOS_THREADS; i++) {
		cp[i] = (struct chaos_producer){.r = &r, .id = i, .posted = &posted};
		assert_int_equal(pthread_create(&pt[i], NULL, chaos_post, &cp[i]), 0);
	}
	unsigned kills = 0, dups = 0, bad = 0;
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	for (;;) {
		pid_t pid = start_chaos_child(&r);
		bool last = atomic_load(&posted) == CHAOS_VALUES;
		/* let it run 0-3 ms (the last one until the ring is empty) */
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		uint64_t until = tp_now_ns() + (seed >> 33) % (3 * MS);
		while (last ? !tp_main_posted_empty(&r) : tp_now_ns() < until) {
			chaos_pop(&r, seen, &dups, &bad);
			sched_yield();
		}
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		if (last)
			break;
		kills++;
		tp_main_recover(&r, NULL); /* producers keep posting meanwhile */
	}
	for (unsigned i = 0; i < CHAOS_THREADS; i++)
		pthread_join(pt[i], NULL);
	/* the last child was killed after the ring emptied: a successor
	 * finishes what it may have left (a record not yet pushed) */
	tp_main_recover(&r, NULL);
	struct tp_region v;
	attach_view(&r, &v);
	chaos_pop(&r, seen, &dups, &bad);
	struct chaos_state st;
	assert_int_equal(tp_state_load(&r, &st, sizeof(st)), sizeof(st));
	unsigned missing = 0;
	for (uint64_t k = 1; k <= CHAOS_VALUES; k++)
		missing += seen[k] == 0;
	print_message("posted chaos: %u kills, %llu applied, %u raised events duplicated, %u "
		      "missing\n",
		      kills, (unsigned long long)st.count, dups, missing);
	assert_int_equal(bad, 0);
	assert_int_equal(st.count, CHAOS_VALUES);
	assert_int_equal(st.sum, (uint64_t)CHAOS_VALUES * (CHAOS_VALUES + 1) / 2);
	assert_int_equal(dups, 0);
	assert_int_equal(missing, 0);
	assert_true(tp_main_posted_empty(&r));
	assert_true(kills > 10);
	tp_region_detach(&v);
	free(seen);
	tp_region_destroy(&r);
}

/*
 * Synchronous requests under real deaths at arbitrary points: a supervisor
 * thread SIGKILLs the serving child at random moments, recovers the region
 * (while the requester waits) and starts a successor; the requester sends
 * ADD 1 requests one after the other and waits through the deaths. The
 * role lingers after each commit, so that many deaths fall between a
 * commit and its reply. Each reply is the total after exactly one more
 * application, with its raised event once, and the saved total ends equal
 * to the number of requests.
 */
#define SLOT_CHAOS_CALLS 5000u

struct slot_chaos {
	struct tp_region *r;
	_Atomic bool dead;
	_Atomic bool done;
	unsigned kills;
};

static void *slot_chaos_supervisor(void *p)
{
	struct slot_chaos *sc = p;
	uint64_t seed = 0x2545f4914f6cdd1dull;
	while (!atomic_load(&sc->done)) {
		pid_t pid = start_counter_child(sc->r, DIE_NONE, 0);
		atomic_store(&sc->dead, false);
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		uint64_t until = tp_now_ns() + (seed >> 33) % (3 * MS);
		while (tp_now_ns() < until && !atomic_load(&sc->done))
			sched_yield();
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		atomic_store(&sc->dead, true);
		tp_main_wake_all(sc->r);
		tp_main_recover(sc->r, NULL);
		sc->kills++;
	}
	return NULL;
}

static void test_slot_chaos(void **state)
{
	(void)state;
	struct tp_region r;
	assert_int_equal(tp_region_create(&r, 1, 0), 0);
	struct slot_chaos sc = {.r = &r, .dead = true};
	counter_slow_save = true;
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, slot_chaos_supervisor, &sc), 0);
	for (unsigned i = 1; i <= SLOT_CHAOS_CALLS; i++) {
		struct vmmux_event ev = add_ev(1, true);
		struct vmmux_reply rep;
		int32_t res;
		struct vmmux_event raised[TP_RAISE_MAX];
		uint32_t nr = 0;
		while (atomic_load(&sc.dead))
			sched_yield();
		enum tp_result tr = tp_main_call(&r, 0, &ev, &rep, &res, raised, &nr,
						 tp_now_ns() + 10000 * MS, &sc.dead);
		while (tr == TP_ABORTED) {
			while (atomic_load(&sc.dead))
				sched_yield();
			tr = tp_main_wait(&r, 0, &ev, &rep, &res, raised, &nr,
					  tp_now_ns() + 10000 * MS, &sc.dead);
		}
		if (tr != TP_OK)
			fail_msg("request %u: result %d", i, tr);
		if (rep.value != i || nr != 1 || raised[0].key != 1)
			fail_msg("request %u: reply %llu (the total after it), %u raised", i,
				 (unsigned long long)rep.value, nr);
	}
	atomic_store(&sc.done, true);
	pthread_join(t, NULL);
	counter_slow_save = false;
	uint64_t total = 0;
	assert_int_equal(tp_state_load(&r, &total, sizeof(total)), sizeof(total));
	print_message("slot chaos: %u kills, %u requests, total %llu\n", sc.kills, SLOT_CHAOS_CALLS,
		      (unsigned long long)total);
	assert_int_equal(total, SLOT_CHAOS_CALLS);
	assert_true(sc.kills > 10);
	tp_region_destroy(&r);
}

/* Doorbell batches: read, noted, applied, committed, ended; a successor
 * finds a batch that was noted and not committed, and only that. */
static void test_doorbell_batches(void **state)
{
	(void)state;
	struct tp_region r, v;
	assert_int_equal(tp_region_create(&r, 1, 0), 0);
	attach_view(&r, &v);
	char desc[TP_DB_DESC_MAX];
	uint64_t n = 0, total = 0;
	assert_false(tp_vmm_db_pending(&v, desc, sizeof(desc), &n));
	assert_int_equal(tp_vmm_db_begin(&v, "x", TP_DB_DESC_MAX + 1, 1), -1);
	assert_int_equal(tp_vmm_db_begin(&v, "x", 1, 0), -1);

	/* a whole batch: nothing pending after */
	assert_int_equal(tp_vmm_db_begin(&v, "bell-1", 7, 3), 0);
	total = 3;
	assert_int_equal(tp_state_store(&v, &total, sizeof(total)), 0);
	tp_vmm_db_end(&v);
	tp_region_detach(&v);
	attach_view(&r, &v);
	assert_false(tp_vmm_db_pending(&v, desc, sizeof(desc), &n));

	/* death before the commit: the successor gets it, even after commits
	 * of other requests (which carry the last batch applied) */
	assert_int_equal(tp_vmm_db_begin(&v, "bell-2", 7, 5), 0);
	tp_region_detach(&v);
	attach_view(&r, &v);
	struct srv *s = calloc(1, sizeof(*s));
	struct vmmux_event ev = io_ev(0x1000, 1, true);
	assert_int_equal(tp_main_post(&r, &ev), TP_OK);
	assert_int_equal(tp_vmm_serve(&v, echo_handler, s, NULL), 1); /* a commit */
	assert_true(tp_vmm_db_pending(&v, desc, sizeof(desc), &n));
	assert_int_equal(n, 5);
	assert_string_equal(desc, "bell-2");
	total = 8;
	assert_int_equal(tp_state_store(&v, &total, sizeof(total)), 0);
	tp_vmm_db_end(&v);
	tp_region_detach(&v);
	attach_view(&r, &v);
	assert_false(tp_vmm_db_pending(&v, desc, sizeof(desc), &n));
	assert_int_equal(tp_state_load(&r, &total, sizeof(total)), sizeof(total));
	assert_int_equal(total, 8);

	/* death after the commit, before the end: applied, not pending */
	assert_int_equal(tp_vmm_db_begin(&v, "bell-3", 7, 2), 0);
	total = 10;
	assert_int_equal(tp_state_store(&v, &total, sizeof(total)), 0);
	tp_region_detach(&v);
	attach_view(&r, &v);
	assert_false(tp_vmm_db_pending(&v, desc, sizeof(desc), &n));

	/* a role without a state: the end commits the batch itself */
	assert_int_equal(tp_vmm_db_begin(&v, "bell-4", 7, 1), 0);
	tp_vmm_db_end(&v);
	tp_region_detach(&v);
	attach_view(&r, &v);
	assert_false(tp_vmm_db_pending(&v, desc, sizeof(desc), &n));
	assert_int_equal(tp_state_load(&r, &total, sizeof(total)), sizeof(total));
	assert_int_equal(total, 10); /* the state stays */
	free(s);
	tp_region_detach(&v);
	tp_region_destroy(&r);
}

/* ---- heartbeat ------------------------------------------------------------------- */

static void test_heartbeat(void **state)
{
	(void)state;
	struct tp_region r, v;
	const uint64_t T = 1000 * MS, t0 = 5000 * MS;
	assert_int_equal(tp_region_create(&r, 1, 0), 0);
	attach_view(&r, &v);
	struct srv *s = calloc(1, sizeof(*s));
	/* nothing waiting: never stalled, however long */
	assert_false(tp_main_progress_stalled(&r, false, t0, T));
	assert_false(tp_main_progress_stalled(&r, false, t0 + 10 * T, T));
	/* a posted write waiting, the counter still */
	struct vmmux_event ev = io_ev(0x1000, 1, true);
	assert_int_equal(tp_main_post(&r, &ev), TP_OK);
	assert_false(tp_main_progress_stalled(&r, false, t0, T)); /* starts counting */
	assert_false(tp_main_progress_stalled(&r, false, t0 + T - 1, T));
	assert_true(tp_main_progress_stalled(&r, false, t0 + T, T));
	/* the VMM serves: the counter moves, the count starts again */
	assert_int_equal(tp_vmm_serve(&v, echo_handler, s, NULL), 1);
	assert_true(tp_main_posted_empty(&r));
	assert_false(tp_main_progress_stalled(&r, false, t0 + 2 * T, T));
	/* doorbell rings waiting (the caller saw an eventfd readable) */
	assert_false(tp_main_progress_stalled(&r, true, t0 + 3 * T, T));
	assert_false(tp_main_progress_stalled(&r, true, t0 + 4 * T - 1, T));
	assert_true(tp_main_progress_stalled(&r, true, t0 + 4 * T, T));
	tp_vmm_progress(&v); /* the library bumps it for doorbell rings */
	assert_false(tp_main_progress_stalled(&r, true, t0 + 5 * T, T));
	/* a moving counter with work always waiting is not a hang */
	for (unsigned i = 1; i <= 10; i++) {
		tp_vmm_progress(&v);
		assert_false(tp_main_progress_stalled(&r, true, t0 + 5 * T + i * T, T));
	}
	/* the work went: the count stops */
	assert_false(tp_main_progress_stalled(&r, false, t0 + 20 * T, T));
	assert_false(tp_main_progress_stalled(&r, true, t0 + 21 * T, T));
	assert_false(tp_main_progress_stalled(&r, true, t0 + 22 * T - 1, T));
	/* a synchronous request pending: its deadline governs */
	assert_int_equal(tp_main_call(&r, 0, &ev, NULL, NULL, NULL, NULL, 0, NULL), TP_TIMEOUT);
	assert_false(tp_main_progress_stalled(&r, true, t0 + 30 * T, T));
	assert_int_equal(tp_vmm_serve(&v, echo_handler, s, NULL), 1);
	assert_int_equal(tp_main_wait(&r, 0, &ev, NULL, NULL, NULL, NULL, tp_now_ns() + MS, NULL),
			 TP_OK);
	/* a successor's attach moves the counter */
	assert_false(tp_main_progress_stalled(&r, true, t0 + 40 * T, T));
	tp_region_detach(&v);
	attach_view(&r, &v);
	assert_false(tp_main_progress_stalled(&r, true, t0 + 41 * T, T));
	assert_true(tp_main_progress_stalled(&r, true, t0 + 42 * T, T));
	free(s);
	tp_region_detach(&v);
	tp_region_destroy(&r);
}

/* A real VMM process stopped while posted writes wait: seen stalled after
 * its timeout (counted on the caller's clock), never while it serves. */
static void test_heartbeat_stopped_process(void **state)
{
	(void)state;
	struct tp_region r;
	const uint64_t T = 1000 * MS;
	assert_int_equal(tp_region_create(&r, 2, 0), 0);
	pid_t pid = start_child_server(&r);
	calls(&r, 0, 3); /* it serves */
	post_adds(&r, 0x1000, 10);
	for (unsigned i = 0; i < 5000 && !tp_main_posted_empty(&r); i++)
		poll(NULL, 0, 1);
	assert_true(tp_main_posted_empty(&r));
	uint64_t now = tp_now_ns();
	assert_false(tp_main_progress_stalled(&r, false, now, T));
	assert_false(tp_main_progress_stalled(&r, false, now + 2 * T, T));
	assert_int_equal(kill(pid, SIGSTOP), 0);
	int st;
	assert_int_equal(waitpid(pid, &st, WUNTRACED), pid);
	assert_true(WIFSTOPPED(st));
	post_adds(&r, 0x1000, 1);
	assert_false(tp_main_progress_stalled(&r, false, now + 3 * T, T));
	assert_true(tp_main_progress_stalled(&r, false, now + 4 * T, T));
	assert_int_equal(kill(pid, SIGCONT), 0);
	for (unsigned i = 0; i < 5000 && !tp_main_posted_empty(&r); i++)
		poll(NULL, 0, 1);
	assert_false(tp_main_progress_stalled(&r, false, now + 5 * T, T));
	quit_server(&r, 1);
	assert_int_equal(wait_child(pid), 0);
	tp_region_destroy(&r);
}

/*
 * tp_main_recover running while a vCPU is inside tp_main_call (it checked
 * the VMM was up just before it died): the call has set pending and not yet
 * stored its request's numbers when recover looks at the slot. Recover must
 * leave the slot to the call; re-arming it would store the previous
 * request's exactly-once number over the new one, and the successor would
 * answer the new request from the record of the old one without applying
 * it. The hooks run this interleaving: the call stops after pending; recover
 * runs; if it reaches its re-arm, it waits there until the call published
 * REQ, then writes the slot.
 */
struct race_call {
	struct tp_region *r;
	struct vmmux_event ev;
	struct vmmux_reply rep;
	enum tp_result res;
};

static _Atomic int race_stage; /* 0 off, 1 armed, 2 call at pending, 3 recover seen */

static void race_wait(int stage)
{
	for (uint64_t end = tp_now_ns() + 5000 * MS; atomic_load(&race_stage) < stage;) {
		if (tp_now_ns() > end)
			fail_msg("interleaving: stage %d never came", stage);
		sched_yield();
	}
}

static void race_hook(enum tp_test_point pt, struct tp_region *r, unsigned slot)
{
	if (pt == TP_PT_CALL_PENDING && atomic_load(&race_stage) == 1) {
		atomic_store(&race_stage, 2);
		race_wait(3); /* until recover looked at the slot */
	} else if (pt == TP_PT_RECOVER_REARM && atomic_load(&race_stage) == 2) {
		atomic_store(&race_stage, 3);
		/* the call goes on and publishes its request */
		for (uint64_t end = tp_now_ns() + 5000 * MS;
		     atomic_load(&r->slots[slot].state) != TP_REQ;) {
			if (tp_now_ns() > end)
				fail_msg("the call never published its request");
			sched_yield();
		}
	}
}

static void *race_call_thread(void *p)
{
	struct race_call *rc = p;
	rc->res = tp_main_call(rc->r, 0, &rc->ev, &rc->rep, NULL, NULL, NULL,
			       tp_now_ns() + 5000 * MS, NULL);
	return NULL;
}

/* Serve V with the counter C until the call thread T is done. */
static void race_serve(struct tp_region *v, struct counter *c, struct race_call *rc, pthread_t t)
{
	for (uint64_t end = tp_now_ns() + 5000 * MS;
	     tp_main_pending(rc->r, 0) || atomic_load(&rc->r->slots[0].state) != TP_IDLE;) {
		if (tp_now_ns() > end)
			fail_msg("the request was never answered");
		tp_vmm_wait(v, NULL, 0, 20);
		tp_vmm_serve(v, counter_handler, c, counter_save);
	}
	pthread_join(t, NULL);
}

static void test_recover_races_call(void **state)
{
	(void)state;
	struct tp_region r, v1, v2;
	struct counter c1, c2;
	struct race_call rc = {.r = &r};
	pthread_t t;
	unsigned pending;

	assert_int_equal(tp_region_create(&r, 2, 0), 0);
	/* request 1 (ADD 5), applied and committed by the first instance */
	attach_view(&r, &v1);
	counter_restore(&c1, &v1);
	rc.ev = add_ev(5, true);
	rc.res = (enum tp_result) - 1; /* set by the call thread when it returns */
	assert_int_equal(pthread_create(&t, NULL, race_call_thread, &rc), 0);
	while (!tp_main_pending(&r, 0) && atomic_load(&r.slots[0].state) == TP_IDLE)
		sched_yield();
	race_serve(&v1, &c1, &rc, t);
	assert_int_equal(rc.res, TP_OK);
	assert_int_equal(rc.rep.value, 5);
	tp_region_detach(&v1); /* the VMM dies */

	/* request 2 (ADD 7) starts as recovery runs */
	tp_test_hook = race_hook;
	atomic_store(&race_stage, 1);
	rc.ev = add_ev(7, true);
	rc.res = (enum tp_result) - 1; /* set by the call thread when it returns */
	assert_int_equal(pthread_create(&t, NULL, race_call_thread, &rc), 0);
	race_wait(2);
	tp_main_recover(&r, &pending);
	assert_int_equal(pending, 1);
	if (atomic_load(&race_stage) < 3)
		atomic_store(&race_stage, 3); /* recover left the slot alone */
	tp_test_hook = NULL;

	/* the successor applies request 2: once, with its own number */
	attach_view(&r, &v2);
	counter_restore(&c2, &v2);
	assert_int_equal(c2.total, 5);
	race_serve(&v2, &c2, &rc, t);
	assert_int_equal(rc.res, TP_OK);
	assert_int_equal(c2.applied, 1);
	assert_int_equal(c2.seen_seq, 2);
	assert_int_equal(rc.rep.value, 12);
	tp_region_detach(&v2);
	tp_region_destroy(&r);
}

/* A live update: the main side's own numbers saved, and a new main side
 * taking the region over from its memfd and eventfds (as a new program
 * does after execve) continues them; a pending request refuses the save; a
 * memfd of another size is not taken. */
static void test_region_adopt(void **state)
{
	(void)state;
	struct tp_region r;
	assert_int_equal(tp_region_create(&r, 3, 1000), 0);
	atomic_store(&r.xseq_next, 77);
	r.async_tail = 5;
	atomic_store(&r.main[1].seq, 9);
	struct tp_main_saved sv;
	assert_int_equal(tp_main_save(&r, &sv), 0);
	assert_int_equal(sv.nslots, 3);
	assert_int_equal(sv.xseq_next, 77);
	assert_int_equal(sv.async_tail, 5);
	assert_int_equal(sv.seq[1], 9);
	atomic_store(&r.main[2].pending, 1);
	struct tp_main_saved busy;
	assert_int_equal(tp_main_save(&r, &busy), -1);
	assert_int_equal(errno, EBUSY);
	atomic_store(&r.main[2].pending, 0);

	/* the VMM scribbled on what the main side owns in the header */
	r.hdr->magic = 0;
	r.hdr->nslots = 60;
	struct tp_region n;
	int memfd = dup(r.memfd), efd = dup(r.vmm_efd), afd = dup(r.async_efd);
	assert_int_equal(tp_region_adopt(&n, memfd, efd, afd, &sv, 2000), 0);
	assert_int_equal(n.nslots, 3);
	assert_int_equal(n.hdr->magic, TP_MAGIC);
	assert_int_equal(n.hdr->nslots, 3);
	assert_int_equal(atomic_load(&n.hdr->spin_ns), 2000);
	assert_int_equal(atomic_load(&n.xseq_next), 77);
	assert_int_equal(n.async_tail, 5);
	assert_int_equal(atomic_load(&n.main[1].seq), 9);
	assert_int_equal(atomic_load(&n.main[1].armed), 9);
	assert_false(tp_main_pending(&n, 1));
	/* the same shared memory: what one side writes, the other reads */
	atomic_store(&r.async->head, 6);
	assert_true(tp_main_async_sleep(&n));
	tp_region_destroy(&n);

	/* a region of another slot count: refused, descriptors left alone */
	sv.nslots = 4;
	memfd = dup(r.memfd);
	assert_int_equal(tp_region_adopt(&n, memfd, r.vmm_efd, r.async_efd, &sv, 0), -1);
	assert_int_equal(errno, EPROTO);
	assert_true(fcntl(memfd, F_GETFD) >= 0); /* still open: the caller's */
	close(memfd);
	tp_region_destroy(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_layout),
	    cmocka_unit_test(test_create),
	    cmocka_unit_test(test_attach_refuses),
	    cmocka_unit_test(test_slot_thread),
	    cmocka_unit_test(test_slot_process_spin),
	    cmocka_unit_test(test_slot_process_blocking),
	    cmocka_unit_test(test_string_io),
	    cmocka_unit_test(test_vmm_rechecks),
	    cmocka_unit_test(test_raised),
	    cmocka_unit_test(test_posted_wrap),
	    cmocka_unit_test(test_posted_full),
	    cmocka_unit_test(test_posted_then_sync_in_order),
	    cmocka_unit_test(test_posted_mpsc),
	    cmocka_unit_test(test_posted_crash),
	    cmocka_unit_test(test_async),
	    cmocka_unit_test(test_vmm_wait),
	    cmocka_unit_test(test_timeout_blocking),
	    cmocka_unit_test(test_timeout_spin),
	    cmocka_unit_test(test_abort),
	    cmocka_unit_test(test_crash_recovery),
	    cmocka_unit_test(test_recover_states),
	    cmocka_unit_test(test_recover_races_call),
	    cmocka_unit_test(test_protocol_errors),
	    cmocka_unit_test(test_hostile_vmm),
	    cmocka_unit_test(test_state),
	    cmocka_unit_test(test_state_concurrent),
	    cmocka_unit_test(test_once_before_apply),
	    cmocka_unit_test(test_once_after_apply),
	    cmocka_unit_test(test_once_after_record),
	    cmocka_unit_test(test_once_after_reply),
	    cmocka_unit_test(test_once_record_first),
	    cmocka_unit_test(test_seq_numbers),
	    cmocka_unit_test(test_once_string_in),
	    cmocka_unit_test(test_posted_die_before_apply),
	    cmocka_unit_test(test_posted_die_after_apply),
	    cmocka_unit_test(test_posted_die_after_commit),
	    cmocka_unit_test(test_posted_die_mid_push),
	    cmocka_unit_test(test_posted_die_before_tail),
	    cmocka_unit_test(test_posted_die_before_release),
	    cmocka_unit_test(test_posted_attach_repairs),
	    cmocka_unit_test(test_posted_chaos),
	    cmocka_unit_test(test_slot_chaos),
	    cmocka_unit_test(test_doorbell_batches),
	    cmocka_unit_test(test_heartbeat),
	    cmocka_unit_test(test_heartbeat_stopped_process),
	    cmocka_unit_test(test_region_adopt),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
