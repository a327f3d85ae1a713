/*
 * Unit tests of transport/handshake.c: set-up messages with descriptors on a
 * SOCK_SEQPACKET pair, and the checks of hello and ready messages.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "transport/handshake.h"
#include "transport/transport.h"

#define MS 1000000ull

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	assert_non_null(d);
	int n = 0;
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

static void pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
}

static void same_object(int a, int b)
{
	struct stat sa, sb;
	assert_int_equal(fstat(a, &sa), 0);
	assert_int_equal(fstat(b, &sb), 0);
	assert_true(sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino);
}

/* A hello that passes the checks: 3 region fds + 2 pieces + input + a
 * level IRQ (irqfd and resample fd) + an edge IRQ (irqfd) = 9. */
static struct hs_hello good_hello(void)
{
	struct hs_hello h;
	memset(&h, 0, sizeof(h));
	h.magic = HS_MAGIC;
	h.version_min = HS_VERSION_MIN;
	h.version_max = HS_VERSION_MAX;
	h.features = HS_F_POSTED | HS_F_STATE;
	strcpy(h.name, "uart-0");
	strcpy(h.role, "uart16550");
	h.id = 3;
	h.nslots = 2;
	h.npieces = 2;
	h.pieces[0] = (struct hs_piece){.gpa = 0x1000, .size = 0x1000};
	h.pieces[1] = (struct hs_piece){.gpa = 0x2000, .size = 0x3000};
	h.has_input = 1;
	h.nirqs = 3;
	h.irqs[0] = (struct hs_irq){.line = 4, .level = 1, .wired = 1};
	h.irqs[1] = (struct hs_irq){.line = 5, .level = 0, .wired = 1};
	h.irqs[2] = (struct hs_irq){.line = 6, .level = 1, .wired = 0};
	h.nargs = 2;
	strcpy(h.arg_key[0], "irq");
	strcpy(h.arg_value[0], "4");
	strcpy(h.arg_key[1], "baud_rate");
	strcpy(h.arg_value[1], "Any Text, even spaces");
	h.spin_ns = 50000;
	h.log_level = VMMUX_LOG_INFO;
	return h;
}

#define GOOD_NFDS 9u

static void hello_bad(const struct hs_hello *h, unsigned nfds, const char *what)
{
	struct errbuf e = {{0}};
	if (hs_hello_check(h, nfds, &e) != -1)
		fail_msg("hello accepted; expected an error about '%s'", what);
	if (strstr(e.msg, what) == NULL)
		fail_msg("message lacks '%s': %s", what, e.msg);
}

/* ---- messages and descriptors --------------------------------------------- */

static void test_fds_passed(void **state)
{
	(void)state;
	int sv[2];
	pair(sv);
	struct tp_region r;
	assert_int_equal(tp_region_create(&r, 2, 0), 0);
	int piece = memfd_create("piece", MFD_CLOEXEC);
	assert_true(piece >= 0);
	int fds[4] = {r.memfd, r.vmm_efd, r.async_efd, piece};
	struct hs_hello h = good_hello();
	assert_int_equal(hs_send(sv[0], &h, sizeof(h), fds, 4), 0);

	struct hs_hello got;
	int rfds[HS_FDS_MAX];
	unsigned n = 99;
	struct errbuf e = {{0}};
	if (hs_recv(sv[1], &got, sizeof(got), rfds, HS_FDS_MAX, &n, 1000, &e) != 0)
		fail_msg("recv: %s", e.msg);
	assert_int_equal(n, 4);
	assert_memory_equal(&got, &h, sizeof(h));
	for (unsigned i = 0; i < 4; i++) {
		assert_true(rfds[i] != fds[i]); /* new descriptors ... */
		same_object(rfds[i], fds[i]);	/* ... for the same objects */
		assert_true(fcntl(rfds[i], F_GETFD) & FD_CLOEXEC);
	}
	/* the received memfd is a region the VMM side can attach */
	struct tp_region v;
	assert_int_equal(tp_region_attach(&v, rfds[0], rfds[1], rfds[2]), 0);
	assert_int_equal(v.nslots, 2);
	tp_region_detach(&v);
	close(rfds[3]);

	/* a message without descriptors; the ready and go messages */
	struct hs_ready rd = {.magic = HS_MAGIC, .version = 1, .features = HS_F_POSTED};
	strcpy(rd.role, "uart16550");
	assert_int_equal(hs_send(sv[1], &rd, sizeof(rd), NULL, 0), 0);
	struct hs_ready rgot;
	assert_int_equal(hs_recv(sv[0], &rgot, sizeof(rgot), NULL, 0, NULL, 1000, &e), 0);
	assert_int_equal(hs_ready_check(&rgot, &h, &e), 0);
	struct hs_go go = {.magic = HS_MAGIC, .go = 1}, ggot;
	assert_int_equal(hs_send(sv[0], &go, sizeof(go), NULL, 0), 0);
	assert_int_equal(hs_recv(sv[1], &ggot, sizeof(ggot), rfds, 4, &n, 1000, &e), 0);
	assert_int_equal(n, 0);
	assert_int_equal(ggot.go, 1);

	close(piece);
	tp_region_destroy(&r);
	close(sv[0]);
	close(sv[1]);
}

static void test_wrong_size(void **state)
{
	(void)state;
	int sv[2];
	pair(sv);
	struct hs_hello h = good_hello(), got;
	struct errbuf e = {{0}};
	int rfds[8];
	unsigned n;
	int before = open_fds();
	int efd = eventfd(0, EFD_CLOEXEC);

	/* shorter: refused, and its descriptor closed */
	assert_int_equal(hs_send(sv[0], &h, 10, &efd, 1), 0);
	errno = 0;
	assert_int_equal(hs_recv(sv[1], &got, sizeof(got), rfds, 8, &n, 1000, &e), -1);
	assert_int_equal(errno, EMSGSIZE);
	assert_non_null(strstr(e.msg, "message of 10 bytes, expected"));
	assert_int_equal(n, 0);

	/* longer */
	char big[sizeof(h) + 100];
	memset(big, 1, sizeof(big));
	assert_int_equal(hs_send(sv[0], big, sizeof(big), &efd, 1), 0);
	assert_int_equal(hs_recv(sv[1], &got, sizeof(got), rfds, 8, &n, 1000, &e), -1);
	assert_int_equal(errno, EMSGSIZE);
	assert_non_null(strstr(e.msg, "longer than"));
	/* one byte longer */
	assert_int_equal(hs_send(sv[0], big, sizeof(h) + 1, NULL, 0), 0);
	assert_int_equal(hs_recv(sv[1], &got, sizeof(got), rfds, 8, &n, 1000, &e), -1);
	assert_non_null(strstr(e.msg, "longer than"));

	close(efd);
	assert_int_equal(open_fds(), before); /* nothing leaked */
	/* what hs_send refuses */
	assert_int_equal(hs_send(sv[0], &h, 0, NULL, 0), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(hs_send(sv[0], &h, sizeof(h), NULL, 1), -1);
	assert_int_equal(errno, EINVAL);
	close(sv[0]);
	close(sv[1]);
}

static void test_too_many_fds(void **state)
{
	(void)state;
	int sv[2];
	pair(sv);
	struct hs_go go = {.magic = HS_MAGIC, .go = 1}, got;
	struct errbuf e = {{0}};
	int before = open_fds();
	/* more than HS_FDS_MAX, fewer than the kernel's limit per message (253) */
	enum { NFDS = HS_FDS_MAX + 7 };
	_Static_assert(NFDS <= 253, "SCM_MAX_FD");
	int fds[NFDS];
	for (unsigned i = 0; i < NFDS; i++) {
		fds[i] = eventfd(0, EFD_CLOEXEC);
		assert_true(fds[i] >= 0);
	}
	/* more than the receiver allows */
	int rfds[HS_FDS_MAX];
	unsigned n;
	assert_int_equal(hs_send(sv[0], &go, sizeof(go), fds, 5), 0);
	assert_int_equal(hs_recv(sv[1], &got, sizeof(got), rfds, 3, &n, 1000, &e), -1);
	assert_int_equal(errno, EPROTO);
	assert_non_null(strstr(e.msg, "5 descriptors received, at most 3 expected"));
	assert_int_equal(n, 0);

	/* hs_send itself refuses more than HS_FDS_MAX */
	assert_int_equal(hs_send(sv[0], &go, sizeof(go), fds, HS_FDS_MAX + 1), -1);
	assert_int_equal(errno, EINVAL);

	/* more than any message may carry, sent by hand: MSG_CTRUNC */
	char cbuf[CMSG_SPACE(sizeof(int) * NFDS)];
	memset(cbuf, 0, sizeof(cbuf));
	struct iovec iov = {.iov_base = &go, .iov_len = sizeof(go)};
	struct msghdr mh = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * NFDS);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * NFDS);
	assert_int_equal(sendmsg(sv[0], &mh, 0), (ssize_t)sizeof(go));
	assert_int_equal(hs_recv(sv[1], &got, sizeof(got), rfds, HS_FDS_MAX, &n, 1000, &e), -1);
	assert_int_equal(errno, EPROTO);
	assert_non_null(strstr(e.msg, "more descriptors than"));

	/* exactly HS_FDS_MAX is fine */
	assert_int_equal(hs_send(sv[0], &go, sizeof(go), fds, HS_FDS_MAX), 0);
	assert_int_equal(hs_recv(sv[1], &got, sizeof(got), rfds, HS_FDS_MAX, &n, 1000, &e), 0);
	assert_int_equal(n, HS_FDS_MAX);
	for (unsigned i = 0; i < n; i++) {
		same_object(rfds[i], fds[i]);
		close(rfds[i]);
	}
	for (unsigned i = 0; i < NFDS; i++)
		close(fds[i]);
	assert_int_equal(open_fds(), before); /* nothing leaked */
	close(sv[0]);
	close(sv[1]);
}

static void test_peer_closed(void **state)
{
	(void)state;
	int sv[2];
	pair(sv);
	close(sv[0]);
	struct hs_go got;
	struct errbuf e = {{0}};
	assert_int_equal(hs_recv(sv[1], &got, sizeof(got), NULL, 0, NULL, 1000, &e), -1);
	assert_int_equal(errno, ECONNRESET);
	assert_non_null(strstr(e.msg, "closed"));
	/* sending to a closed peer fails without SIGPIPE */
	struct hs_go go = {.magic = HS_MAGIC, .go = 1};
	assert_int_equal(hs_send(sv[1], &go, sizeof(go), NULL, 0), -1);
	assert_int_equal(errno, EPIPE);
	close(sv[1]);
	/* a closed descriptor */
	assert_int_equal(hs_recv(sv[1], &got, sizeof(got), NULL, 0, NULL, 10, &e), -1);
	assert_non_null(strstr(e.msg, "setup socket"));
}

static void test_timeout(void **state)
{
	(void)state;
	int sv[2];
	pair(sv);
	struct hs_go got;
	struct errbuf e = {{0}};
	uint64_t t0 = tp_now_ns();
	assert_int_equal(hs_recv(sv[1], &got, sizeof(got), NULL, 0, NULL, 50, &e), -1);
	uint64_t took = tp_now_ns() - t0;
	assert_int_equal(errno, ETIMEDOUT);
	assert_non_null(strstr(e.msg, "no message within 50 ms"));
	assert_true(took >= 45 * MS && took < 1000 * MS);
	/* zero: just a look */
	assert_int_equal(hs_recv(sv[1], &got, sizeof(got), NULL, 0, NULL, 0, &e), -1);
	assert_int_equal(errno, ETIMEDOUT);
	close(sv[0]);
	close(sv[1]);
}

/* ---- hello and ready checks -------------------------------------------------- */

static void test_hello_check(void **state)
{
	(void)state;
	struct errbuf e = {{0}};
	struct hs_hello h = good_hello();
	assert_int_equal(hs_hello_nfds(&h), GOOD_NFDS);
	if (hs_hello_check(&h, GOOD_NFDS, &e) != 0)
		fail_msg("good hello refused: %s", e.msg);
	hello_bad(&h, GOOD_NFDS - 1, "8 descriptors came with it, its fields announce 9");
	hello_bad(&h, GOOD_NFDS + 1, "10 descriptors");

#define BAD(stmt, what)                                                                            \
	do {                                                                                       \
		h = good_hello();                                                                  \
		stmt;                                                                              \
		hello_bad(&h, hs_hello_nfds(&h), what);                                            \
	} while (0)
	BAD(h.magic = 0x12345678, "magic 0x12345678");
	BAD((h.version_min = 2, h.version_max = 1), "version range 2-1");
	BAD((h.version_min = 0, h.version_max = 0), "version range 0-0");
	BAD((h.version_min = 2, h.version_max = 5), "have none in common");
	BAD(memset(h.name, 'a', sizeof(h.name)), "name is not NUL-terminated");
	BAD(h.name[0] = '\0', "name is empty");
	BAD(strcpy(h.name, "Uart"), "name 'Uart' has a character outside [a-z0-9_-]");
	BAD(strcpy(h.name, "a b"), "name 'a b'");
	BAD(strcpy(h.role, "uart/16550"), "role 'uart/16550'");
	BAD(memset(h.role, 'x', sizeof(h.role)), "role is not NUL-terminated");
	BAD(h.reserved = 1, "reserved 0x1 is not zero");
	BAD(h.nslots = 0, "nslots 0 is outside 1..66");
	BAD(h.nslots = TP_SLOTS_MAX + 1, "nslots 67");
	BAD(h.npieces = HS_PIECES_MAX + 1, "npieces 65 exceeds 64");
	BAD(h.pieces[1].size = 0, "pieces[1].size is 0");
	BAD((h.pieces[1].gpa = UINT64_MAX - 10, h.pieces[1].size = 100), "pieces[1]");
	BAD(h.pieces[1].gpa = 0x1800, "pieces[1] (gpa 0x1800) is not above the end of pieces[0]");
	BAD(h.pieces[1].gpa = 0, "pieces[1] (gpa 0x0)");
	BAD(h.has_input = 2, "has_input 2 is not 0 or 1");
	BAD(h.has_output = 7, "has_output 7");
	BAD(h.nirqs = HS_IRQS_MAX + 1, "nirqs 9 exceeds 8");
	BAD(h.irqs[1].level = 2, "irqs[1].level 2 is not 0 or 1");
	BAD(h.irqs[2].wired = 3, "irqs[2].wired 3");
	BAD(h.irqs[0].reserved = 5, "irqs[0].reserved 0x5 is not zero");
	BAD(h.irqs[2].line = 4, "irqs[2].line 4 repeats irqs[0]");
	BAD(h.nargs = HS_ARGS_MAX + 1, "nargs 17 exceeds 16");
	BAD(h.arg_key[1][0] = '\0', "arg_key[1] is empty");
	BAD(strcpy(h.arg_key[1], "Baud"), "arg_key[1] 'Baud' has a character outside");
	BAD(memset(h.arg_key[0], 'k', HS_ARG_KEY_MAX), "arg_key[0] is not NUL-terminated");
	BAD(memset(h.arg_value[1], 'v', HS_ARG_VALUE_MAX), "arg_value[1] is not NUL-terminated");
	BAD(strcpy(h.arg_key[1], "irq"), "arg_key[1] 'irq' repeats arg_key[0]");
	BAD(h.spin_ns = TP_SPIN_NS_MAX + 1, "spin_ns 1000001 exceeds 1000000");
	BAD(h.log_level = VMMUX_LOG_DEBUG + 1, "log_level 4 is outside 0..3");
#undef BAD

	/* fields beyond the counts are not looked at */
	h = good_hello();
	memset(h.arg_key[5], 'z', HS_ARG_KEY_MAX);
	memset(&h.irqs[6], 0xff, sizeof(h.irqs[6]));
	assert_int_equal(hs_hello_check(&h, GOOD_NFDS, &e), 0);
	/* an empty role (an external program) is fine */
	h.role[0] = '\0';
	assert_int_equal(hs_hello_check(&h, GOOD_NFDS, &e), 0);
	/* the descriptor count follows the fields */
	h.has_output = 1;
	h.irqs[2].wired = 1;
	h.npieces = 0;
	assert_int_equal(hs_hello_nfds(&h), GOOD_NFDS + 1 + 2 - 2);
	/* counts out of range: hs_hello_nfds stays within the arrays */
	memset(&h, 0xff, sizeof(h));
	assert_int_equal(hs_hello_nfds(&h),
			 3 + HS_PIECES_MAX + 2 + 2 * HS_IRQS_MAX + HS_EXTRA_FDS_MAX);
	assert_int_equal(hs_hello_nfds(&h), HS_FDS_MAX);
	hello_bad(&h, HS_FDS_MAX, "magic");
}

static void ready_bad(const struct hs_ready *r, const struct hs_hello *h, const char *what)
{
	struct errbuf e = {{0}};
	if (hs_ready_check(r, h, &e) != -1)
		fail_msg("ready accepted; expected an error about '%s'", what);
	if (strstr(e.msg, what) == NULL)
		fail_msg("message lacks '%s': %s", what, e.msg);
}

static void test_ready_check(void **state)
{
	(void)state;
	struct hs_hello h = good_hello();
	struct hs_ready good = {.magic = HS_MAGIC, .version = 1, .features = HS_F_STATE};
	strcpy(good.role, "uart16550");
	struct errbuf e = {{0}};
	if (hs_ready_check(&good, &h, &e) != 0)
		fail_msg("good ready refused: %s", e.msg);
	struct hs_ready r;
#define BAD(stmt, what)                                                                            \
	do {                                                                                       \
		r = good;                                                                          \
		stmt;                                                                              \
		ready_bad(&r, &h, what);                                                           \
	} while (0)
	BAD(r.magic = 1, "ready: magic 0x00000001");
	BAD(r.version = 2, "version 2 is outside the offered 1-1");
	BAD(r.version = 0, "version 0");
	BAD(r.features = HS_F_IRQFD, "features 0x4 include 0x4, which were not offered");
	BAD(r.status = 1, "status 1 is not 0 or a negative errno");
	BAD(r.status = -5000, "status -5000");
	BAD(memset(r.msg, 'm', sizeof(r.msg)), "msg is not NUL-terminated");
	BAD(memset(r.role, 'r', sizeof(r.role)), "role is not NUL-terminated");
	BAD(r.role[0] = '\0', "role is empty");
	BAD(strcpy(r.role, "chipset"), "role 'chipset' is not the role 'uart16550'");
	BAD(strcpy(r.role, "UART"), "role 'UART' has a character");
	/* a failed set-up: the VMM's reason, its control bytes replaced */
	BAD((r.status = -EINVAL, strcpy(r.msg, "bad arg\033[2J 'irq'")),
	    "VMM set-up failed: bad arg?[2J 'irq' (Invalid argument)");
	BAD((r.status = -ENOENT, r.role[0] = '\0'), "VMM set-up failed: no reason given");
#undef BAD
	/* a hello without a role: any valid role name */
	h.role[0] = '\0';
	r = good;
	strcpy(r.role, "my-monitor");
	assert_int_equal(hs_ready_check(&r, &h, &e), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fds_passed),	 cmocka_unit_test(test_wrong_size),
	    cmocka_unit_test(test_too_many_fds), cmocka_unit_test(test_peer_closed),
	    cmocka_unit_test(test_timeout),	 cmocka_unit_test(test_hello_check),
	    cmocka_unit_test(test_ready_check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
