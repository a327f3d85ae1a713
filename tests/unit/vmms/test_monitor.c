/*
 * test_monitor.c: the monitor role's JSON lines and configured replies.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "host.h"
#include "../../../vmms/roles.h"

struct mon {
	struct vmmux_ctx *ctx;
	int rfd;
};

/* A monitor with ARGS (key, value pairs, NULL-terminated) and an output. */
static struct mon mon_new(const char *const *args)
{
	struct mon m;

	m.ctx = host_new(&vmmux_role_monitor, "mon");
	for (; args && args[0]; args += 2)
		host_arg(m.ctx, args[0], args[1]);
	m.rfd = host_output(m.ctx);
	assert_int_equal(host_init(m.ctx), 0);
	return m;
}

static void mon_free(struct mon *m)
{
	close(m->rfd);
	host_free(m->ctx);
}

/* Deliver EV, expect success, and parse the one line it wrote. */
static json_t *mon_event(struct mon *m, const struct vmmux_event *ev, struct vmmux_reply *rep)
{
	char buf[2048];
	long n;
	json_error_t err;
	json_t *j;

	assert_int_equal(host_handle(m->ctx, ev, rep), 0);
	n = host_recv(m->rfd, buf, sizeof(buf));
	assert_true(n > 1);
	/* one write(2) = one whole line */
	assert_int_equal(buf[n - 1], '\n');
	assert_null(memchr(buf, '\n', (size_t)n - 1));
	assert_int_equal(host_recv(m->rfd, buf + n + 1, sizeof(buf) - (size_t)n - 1), -1);
	j = json_loads(buf, 0, &err);
	if (!j)
		fail_msg("not JSON (%s): %s", err.text, buf);
	return j;
}

static void assert_str(json_t *j, const char *key, const char *want)
{
	json_t *v = json_object_get(j, key);

	if (!json_is_string(v))
		fail_msg("\"%s\" is not a string", key);
	assert_string_equal(json_string_value(v), want);
}

static void assert_int(json_t *j, const char *key, json_int_t want)
{
	json_t *v = json_object_get(j, key);

	if (!json_is_integer(v))
		fail_msg("\"%s\" is not an integer", key);
	assert_int_equal(json_integer_value(v), want);
}

static void assert_flags(json_t *j, const char *const *want, size_t n)
{
	json_t *f = json_object_get(j, "flags");

	assert_true(json_is_array(f));
	assert_int_equal(json_array_size(f), n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(json_string_value(json_array_get(f, i)), want[i]);
}

static void test_io_write_line(void **state)
{
	struct mon m = mon_new(NULL);
	struct vmmux_event ev = host_event(VMMUX_EV_IO, 0x80, 1, 0x12);
	struct vmmux_reply rep;
	static const char *const flags[] = {"write"};
	json_t *j;

	(void)state;
	ev.flags = VMMUX_EVF_WRITE;
	j = mon_event(&m, &ev, &rep);
	assert_int_equal(rep.action, VMMUX_ACT_DONE);
	assert_str(j, "vmm", "mon");
	assert_str(j, "type", "io");
	assert_true(json_is_true(json_object_get(j, "write")));
	assert_str(j, "key", "0x80");
	assert_int(j, "size", 1);
	assert_int(j, "count", 1);
	assert_str(j, "value", "0x12");
	assert_int(j, "vcpu", 0);
	assert_str(j, "src", "vcpu");
	assert_int(j, "src_id", 0);
	assert_flags(j, flags, 1);
	assert_str(j, "action", "done");
	assert_null(json_object_get(j, "reply"));
	assert_null(json_object_get(j, "data"));
	assert_null(json_object_get(j, "unrouted"));
	json_decref(j);
	mon_free(&m);
}

static void test_read_replies(void **state)
{
	static const char *const args[] = {"read", "0x1122334455667788", "msr_read", "4096", NULL};
	struct mon m = mon_new(args);
	struct vmmux_event ev;
	struct vmmux_reply rep;
	json_t *j;

	(void)state;
	ev = host_event(VMMUX_EV_IO, 0x3fd, 1, 0);
	j = mon_event(&m, &ev, &rep);
	assert_int_equal(rep.value, 0x88);
	assert_true(json_is_false(json_object_get(j, "write")));
	assert_str(j, "reply", "0x88");
	json_decref(j);

	ev = host_event(VMMUX_EV_IO, 0x3fd, 4, 0);
	j = mon_event(&m, &ev, &rep);
	assert_int_equal(rep.value, 0x55667788);
	json_decref(j);

	ev = host_event(VMMUX_EV_MMIO, 0xfee00030, 8, 0);
	j = mon_event(&m, &ev, &rep);
	assert_int_equal(rep.value, 0x1122334455667788);
	assert_str(j, "type", "mmio");
	assert_str(j, "key", "0xfee00030");
	json_decref(j);

	ev = host_event(VMMUX_EV_MSR, 0xc0000080, 8, 0);
	j = mon_event(&m, &ev, &rep);
	assert_int_equal(rep.action, VMMUX_ACT_DONE);
	assert_int_equal(rep.value, 4096);
	assert_str(j, "type", "msr");
	assert_str(j, "key", "0xc0000080");
	assert_str(j, "reply", "0x1000");
	json_decref(j);

	ev = host_event(VMMUX_EV_MSR, 0x10, 8, 5);
	ev.flags = VMMUX_EVF_WRITE | VMMUX_EVF_UNKNOWN_MSR;
	j = mon_event(&m, &ev, &rep);
	assert_int_equal(rep.action, VMMUX_ACT_DONE);
	static const char *const flags[] = {"write", "unknown_msr"};
	assert_flags(j, flags, 2);
	json_decref(j);
	mon_free(&m);
}

static void test_defaults(void **state)
{
	struct mon m = mon_new(NULL);
	struct vmmux_event ev;
	struct vmmux_reply rep;
	json_t *j;

	(void)state;
	ev = host_event(VMMUX_EV_IO, 0x71, 1, 0);
	j = mon_event(&m, &ev, &rep);
	assert_int_equal(rep.value, 0);
	json_decref(j);
	ev = host_event(VMMUX_EV_MSR, 0x1b, 8, 0);
	j = mon_event(&m, &ev, &rep);
	assert_int_equal(rep.action, VMMUX_ACT_DONE);
	assert_int_equal(rep.value, 0);
	json_decref(j);
	ev = host_event(VMMUX_EV_SHUTDOWN, 0, 0, 0);
	j = mon_event(&m, &ev, &rep);
	assert_int_equal(rep.action, VMMUX_ACT_RESET);
	assert_str(j, "type", "shutdown");
	assert_str(j, "action", "reset");
	json_decref(j);
	ev = host_event(VMMUX_EV_EXCEPTION, VMMUX_VEC_BP, 0, 0x401000);
	ev.flags = VMMUX_EVF_HOSTDEBUG;
	j = mon_event(&m, &ev, &rep);
	assert_int_equal(rep.action, VMMUX_ACT_DONE); /* consumed */
	json_decref(j);
	mon_free(&m);
}

static void test_msr_gp(void **state)
{
	static const char *const args[] = {"msr", "gp", "msr_read", "7", NULL};
	struct mon m = mon_new(args);
	struct vmmux_event ev;
	struct vmmux_reply rep;
	json_t *j;

	(void)state;
	ev = host_event(VMMUX_EV_MSR, 0x40000000, 8, 0);
	j = mon_event(&m, &ev, &rep);
	assert_int_equal(rep.action, VMMUX_ACT_GP);
	assert_str(j, "action", "gp");
	assert_null(json_object_get(j, "reply"));
	json_decref(j);
	ev.flags = VMMUX_EVF_WRITE;
	j = mon_event(&m, &ev, &rep);
	assert_int_equal(rep.action, VMMUX_ACT_GP);
	json_decref(j);
	/* io is not affected */
	ev = host_event(VMMUX_EV_IO, 0x80, 1, 0);
	j = mon_event(&m, &ev, &rep);
	assert_int_equal(rep.action, VMMUX_ACT_DONE);
	json_decref(j);
	mon_free(&m);
}

static void test_exception_modes(void **state)
{
	static const char *const reinject[] = {"exception", "reinject", NULL};
	static const char *const end[] = {"exception", "end", "shutdown", "end", NULL};
	struct mon m = mon_new(reinject);
	struct vmmux_event ev;
	struct vmmux_reply rep;
	json_t *j;

	(void)state;
	ev = host_event(VMMUX_EV_EXCEPTION, VMMUX_VEC_DB, 0, 0xffffffff81000000);
	ev.flags = VMMUX_EVF_HOSTDEBUG;
	ev.aux = 0x4000;
	j = mon_event(&m, &ev, &rep);
	assert_int_equal(rep.action, VMMUX_ACT_REINJECT);
	assert_str(j, "type", "exception");
	assert_int(j, "key", 1);
	assert_str(j, "value", "0xffffffff81000000");
	assert_str(j, "aux", "0x4000");
	assert_str(j, "action", "reinject");
	json_decref(j);
	/* a guest-reported exception is always consumed */
	ev = host_event(VMMUX_EV_EXCEPTION, 14, 0, 0x1000);
	ev.flags = VMMUX_EVF_GUEST_REPORTED;
	ev.src_kind = VMMUX_SRC_VMM;
	ev.src_id = 3;
	j = mon_event(&m, &ev, &rep);
	assert_int_equal(rep.action, VMMUX_ACT_DONE);
	assert_str(j, "src", "vmm");
	assert_int(j, "src_id", 3);
	static const char *const flags[] = {"guest_reported"};
	assert_flags(j, flags, 1);
	json_decref(j);
	/* even when it also carries the host-debug flag */
	ev.flags = VMMUX_EVF_GUEST_REPORTED | VMMUX_EVF_HOSTDEBUG;
	j = mon_event(&m, &ev, &rep);
	assert_int_equal(rep.action, VMMUX_ACT_DONE);
	json_decref(j);
	mon_free(&m);

	m = mon_new(end);
	ev = host_event(VMMUX_EV_EXCEPTION, 13, 0, 0x1000);
	ev.flags = VMMUX_EVF_GUEST_REPORTED;
	j = mon_event(&m, &ev, &rep);
	assert_int_equal(rep.action, VMMUX_ACT_END);
	json_decref(j);
	ev = host_event(VMMUX_EV_SHUTDOWN, 0, 0, 0);
	j = mon_event(&m, &ev, &rep);
	assert_int_equal(rep.action, VMMUX_ACT_END);
	assert_str(j, "action", "end");
	json_decref(j);
	mon_free(&m);
}

static void test_other_types(void **state)
{
	struct mon m = mon_new(NULL);
	struct vmmux_event ev;
	struct vmmux_reply rep;
	json_t *j;
	static const struct {
		uint16_t type;
		const char *name;
	} types[] = {
	    {VMMUX_EV_HLT, "hlt"},	     {VMMUX_EV_HYPERCALL, "hypercall"},
	    {VMMUX_EV_PLATFORM, "platform"}, {VMMUX_EV_IRQ, "irq"},
	    {VMMUX_EV_REQUEST, "request"},   {VMMUX_EV_FAULT, "fault"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		ev = host_event(types[i].type, 300 + i, 0, 0xabc);
		ev.vcpu = VMMUX_NO_VCPU;
		ev.src_kind = VMMUX_SRC_HOST;
		ev.flags = VMMUX_EVF_UNROUTED;
		j = mon_event(&m, &ev, &rep);
		assert_int_equal(rep.action, VMMUX_ACT_DONE);
		assert_str(j, "type", types[i].name);
		assert_int(j, "key", (json_int_t)(300 + i)); /* decimal */
		assert_true(json_is_null(json_object_get(j, "vcpu")));
		assert_str(j, "src", "host");
		assert_true(json_is_true(json_object_get(j, "unrouted")));
		static const char *const flags[] = {"unrouted"};
		assert_flags(j, flags, 1);
		json_decref(j);
	}
	mon_free(&m);
}

static void test_string_io(void **state)
{
	static const char *const args[] = {"read", "0xbeef", NULL};
	struct mon m = mon_new(args);
	struct vmmux_event ev;
	struct vmmux_reply rep;
	uint8_t big[100];
	uint16_t in[3] = {0};
	char want[129];
	json_t *j;

	(void)state;
	ev = host_event(VMMUX_EV_IO, 0x3f8, 1, 0);
	ev.flags = VMMUX_EVF_WRITE | VMMUX_EVF_STRING;
	ev.count = 3;
	ev.data = "Hi!";
	j = mon_event(&m, &ev, &rep);
	assert_str(j, "data", "486921");
	assert_int(j, "data_len", 3);
	assert_int(j, "count", 3);
	json_decref(j);

	/* longer than 64 bytes: the first 64 */
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)i;
	for (size_t i = 0; i < 64; i++)
		snprintf(want + 2 * i, 3, "%02x", (unsigned)i);
	ev.count = 25;
	ev.size = 4;
	ev.data = big;
	j = mon_event(&m, &ev, &rep);
	assert_str(j, "data", want);
	assert_int(j, "data_len", 100);
	json_decref(j);

	/* INS: every element gets the read value, and the line shows it */
	ev = host_event(VMMUX_EV_IO, 0x1f0, 2, 0);
	ev.flags = VMMUX_EVF_STRING;
	ev.count = 3;
	ev.data = in;
	j = mon_event(&m, &ev, &rep);
	assert_int_equal(in[0], 0xbeef);
	assert_int_equal(in[1], 0xbeef);
	assert_int_equal(in[2], 0xbeef);
	assert_str(j, "data", "efbeefbeefbe");
	json_decref(j);
	mon_free(&m);
}

static void test_bad_args(void **state)
{
	static const char *const bad[][2] = {
	    {"read", "xyz"},  {"read", "-1"}, {"read", "0x1ffffffffffffffff"}, {"msr_read", ""},
	    {"msr", "maybe"}, {"msr", "GP"},  {"exception", "drop"},	       {"shutdown", "halt"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct vmmux_ctx *ctx = host_new(&vmmux_role_monitor, "mon");
		char needle[64];

		host_arg(ctx, bad[i][0], bad[i][1]);
		assert_true(host_init(ctx) < 0);
		snprintf(needle, sizeof(needle), "arg \"%s\"", bad[i][0]);
		if (host_log_count(ctx, needle) != 1)
			fail_msg("no log naming %s for \"%s\"", needle, bad[i][1]);
		host_free(ctx);
	}
}

static void test_refused_events(void **state)
{
	struct mon m = mon_new(NULL);
	struct vmmux_event ev;
	struct vmmux_reply rep;
	char buf[256];

	(void)state;
	ev = host_event(VMMUX_EV__COUNT, 0, 0, 0);
	assert_true(host_handle(m.ctx, &ev, &rep) < 0);
	ev = host_event(VMMUX_EV_IO, 0x80, 3, 0);
	assert_true(host_handle(m.ctx, &ev, &rep) < 0);
	ev = host_event(VMMUX_EV_IO, 0x80, 1, 0);
	ev.flags = VMMUX_EVF_STRING;
	ev.count = 4; /* no data */
	assert_true(host_handle(m.ctx, &ev, &rep) < 0);
	ev = host_event(VMMUX_EV_MMIO, 0x1000, 16, 0);
	assert_true(host_handle(m.ctx, &ev, &rep) < 0);
	assert_int_equal(host_recv(m.rfd, buf, sizeof(buf)), -1);
	mon_free(&m);
}

static void test_no_output(void **state)
{
	struct vmmux_ctx *ctx = host_new(&vmmux_role_monitor, "mon");
	struct vmmux_event ev = host_event(VMMUX_EV_SHUTDOWN, 0, 0, 0);
	struct vmmux_reply rep;

	(void)state;
	assert_int_equal(host_init(ctx), 0);
	assert_int_equal(host_log_count(ctx, "no output"), 1);
	assert_int_equal(host_handle(ctx, &ev, &rep), 0);
	assert_int_equal(rep.action, VMMUX_ACT_RESET);
	host_free(ctx);
}

/* A monitor writing the file PATH, opened with FLAGS. */
static struct vmmux_ctx *mon_on_file(const char *path, int flags)
{
	struct vmmux_ctx *ctx = host_new(&vmmux_role_monitor, "mon");

	host_output_file(ctx, path, flags);
	assert_int_equal(host_init(ctx), 0);
	return ctx;
}

/* An OUT of VALUE to port 0x80 (one line). */
static void mon_out(struct vmmux_ctx *ctx, uint64_t value)
{
	struct vmmux_event ev = host_event(VMMUX_EV_IO, 0x80, 1, value);
	struct vmmux_reply rep;

	ev.flags = VMMUX_EVF_WRITE;
	assert_int_equal(host_handle(ctx, &ev, &rep), 0);
}

/* How many lines of the file at PATH have "value":"0xV"; *total all lines. */
static int lines_with(const char *path, unsigned v, int *total)
{
	char needle[32];
	size_t len;
	char *buf = host_read_file(path, &len);
	int n = 0;

	snprintf(needle, sizeof(needle), "\"value\":\"0x%x\"", v);
	*total = 0;
	for (char *line = buf; *line;) {
		char *nl = strchr(line, '\n');

		assert_non_null(nl); /* whole lines only */
		*nl = '\0';
		if (strstr(line, needle))
			n++;
		(*total)++;
		line = nl + 1;
	}
	free(buf);
	return n;
}

/*
 * A parallel monitor that dies after writing an event's line and before the
 * record of that event is committed: its successor restores the state saved
 * before the event and applies the event again. The line is in the file
 * once, and the next event's line follows it.
 */
static void test_reapplied_event_writes_once(void **state)
{
	char *path = host_temp_file("mon.jsonl");
	struct vmmux_ctx *a = mon_on_file(path, O_WRONLY);
	struct vmmux_ctx *b;
	uint8_t st[8192];
	long len;
	int total;

	(void)state;
	mon_out(a, 1);
	len = a->role->save(a, st, sizeof(st)); /* committed with event 1 */
	assert_true(len > 0);
	mon_out(a, 2); /* written, then the process dies: never committed */
	host_free(a);

	b = mon_on_file(path, O_WRONLY); /* the successor, same file */
	assert_int_equal(b->role->restore(b, st, (size_t)len), 0);
	mon_out(b, 2); /* re-delivered */
	mon_out(b, 3);
	assert_int_equal(lines_with(path, 1, &total), 1);
	assert_int_equal(lines_with(path, 2, &total), 1);
	assert_int_equal(lines_with(path, 3, &total), 1);
	assert_int_equal(total, 3);

	/* the same event re-applied twice more after restores: still once */
	len = b->role->save(b, st, sizeof(st));
	mon_out(b, 4);
	assert_int_equal(b->role->restore(b, st, (size_t)len), 0);
	mon_out(b, 4);
	assert_int_equal(lines_with(path, 4, &total), 1);
	assert_int_equal(total, 4);

	/* malformed states are refused */
	st[0] ^= 0xff;
	assert_true(b->role->restore(b, st, (size_t)len) < 0);
	assert_true(b->role->restore(b, st, 8) < 0);
	host_free(b);
	host_temp_remove(path);
}

/*
 * A swap hands the state to an instance with another output file: its lines
 * go at that file's end, not at the old file's offset; the same path
 * truncated again (vmmux opens a swap's output with O_TRUNC) starts at 0.
 */
static void test_swap_to_other_file(void **state)
{
	char *p1 = host_temp_file("old.jsonl");
	char *p2 = host_temp_file("new.jsonl");
	struct vmmux_ctx *a = mon_on_file(p1, O_WRONLY);
	struct vmmux_ctx *b, *c;
	uint8_t st[8192];
	long len;
	int total, fd;
	size_t n;
	char *buf;

	(void)state;
	mon_out(a, 1);
	mon_out(a, 2);
	len = a->role->save(a, st, sizeof(st));
	host_free(a);

	fd = open(p2, O_WRONLY | O_CLOEXEC);
	assert_int_equal(write(fd, "x\n", 2), 2);
	close(fd);
	b = mon_on_file(p2, O_WRONLY);
	assert_int_equal(b->role->restore(b, st, (size_t)len), 0);
	mon_out(b, 3);
	host_free(b);
	buf = host_read_file(p2, &n);
	assert_memory_equal(buf, "x\n{", 3);
	free(buf);
	assert_int_equal(lines_with(p2, 3, &total), 1);
	assert_int_equal(total, 2);

	c = mon_on_file(p1, O_WRONLY | O_TRUNC);
	assert_int_equal(c->role->restore(c, st, (size_t)len), 0);
	mon_out(c, 4);
	host_free(c);
	assert_int_equal(lines_with(p1, 4, &total), 1);
	assert_int_equal(total, 1); /* no hole before it */
	host_temp_remove(p1);
	host_temp_remove(p2);
}

/*
 * An output opened with O_APPEND (Linux's pwrite ignores the offset there)
 * is appended to with write(2): lines are whole and in order, and the offset
 * a state carries does not move them.
 */
static void test_append_output(void **state)
{
	char *path = host_temp_file("app.jsonl");
	struct vmmux_ctx *a = mon_on_file(path, O_WRONLY | O_APPEND);
	struct vmmux_ctx *b;
	uint8_t st[8192];
	long len;
	int total;

	(void)state;
	mon_out(a, 1);
	len = a->role->save(a, st, sizeof(st));
	mon_out(a, 2);
	b = mon_on_file(path, O_WRONLY | O_APPEND);
	assert_int_equal(b->role->restore(b, st, (size_t)len), 0);
	mon_out(b, 3);
	mon_out(a, 4);
	host_free(a);
	host_free(b);
	assert_int_equal(lines_with(path, 1, &total), 1);
	assert_int_equal(lines_with(path, 2, &total), 1);
	assert_int_equal(lines_with(path, 3, &total), 1);
	assert_int_equal(lines_with(path, 4, &total), 1);
	assert_int_equal(total, 4);
	host_temp_remove(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_io_write_line),
	    cmocka_unit_test(test_read_replies),
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_msr_gp),
	    cmocka_unit_test(test_exception_modes),
	    cmocka_unit_test(test_other_types),
	    cmocka_unit_test(test_string_io),
	    cmocka_unit_test(test_bad_args),
	    cmocka_unit_test(test_refused_events),
	    cmocka_unit_test(test_no_output),
	    cmocka_unit_test(test_reapplied_event_writes_once),
	    cmocka_unit_test(test_swap_to_other_file),
	    cmocka_unit_test(test_append_output),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
