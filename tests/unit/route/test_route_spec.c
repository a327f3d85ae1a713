/*
 * Unit tests of the route-spec grammar: accepted forms of every kind, the
 * errors for every kind of bad input, the canonical text and its round trip,
 * and the name helpers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "route/spec.h"
#include <vmmux/vmmux.h>

/* SPEC parses into KIND [LO, HI] to VMM, with canonical text CANON. */
static void accept(const char *spec, enum route_kind kind, uint64_t lo, uint64_t hi,
		   const char *vmm, const char *canon)
{
	struct route_spec s;
	struct errbuf e = {{0}};
	if (route_spec_parse(spec, &s, &e) != 0)
		fail_msg("'%s' refused: %s", spec, e.msg);
	assert_int_equal(s.kind, kind);
	assert_true(s.lo == lo);
	assert_true(s.hi == hi);
	assert_string_equal(s.vmm, vmm);
	assert_string_equal(s.text, canon);
}

/* SPEC is refused with a message that quotes it and contains WHAT. */
static void refuse(const char *spec, const char *what)
{
	struct route_spec s;
	struct errbuf e = {{0}};
	if (route_spec_parse(spec, &s, &e) != -1)
		fail_msg("'%s' accepted as '%s'", spec, s.text);
	char quoted[400];
	snprintf(quoted, sizeof(quoted), "route '%s': ", spec);
	if (strncmp(e.msg, quoted, strlen(quoted)) != 0)
		fail_msg("message for '%s' does not quote it: %s", spec, e.msg);
	if (strstr(e.msg, what) == NULL)
		fail_msg("message for '%s' lacks '%s': %s", spec, what, e.msg);
}

/* SPEC is refused with exactly MSG. */
static void refuse_exact(const char *spec, const char *msg)
{
	struct route_spec s;
	struct errbuf e = {{0}};
	assert_int_equal(route_spec_parse(spec, &s, &e), -1);
	assert_string_equal(e.msg, msg);
}

static void test_io(void **state)
{
	(void)state;
	accept("io:0x3f8=uart", ROUTE_IO, 0x3f8, 0x3f8, "uart", "io:0x3f8=uart");
	accept("io:0x3f8-0x3ff=uart", ROUTE_IO, 0x3f8, 0x3ff, "uart", "io:0x3f8-0x3ff=uart");
	accept("io:0x3f8+8=uart", ROUTE_IO, 0x3f8, 0x3ff, "uart", "io:0x3f8-0x3ff=uart");
	accept("io:1016+0x8=uart", ROUTE_IO, 0x3f8, 0x3ff, "uart", "io:0x3f8-0x3ff=uart");
	accept("io:0=a", ROUTE_IO, 0, 0, "a", "io:0x0=a");
	accept("io:0xffff=a", ROUTE_IO, 0xffff, 0xffff, "a", "io:0xffff=a");
	accept("io:0-0xffff=a", ROUTE_IO, 0, 0xffff, "a", "io:0x0-0xffff=a");
	accept("io:0xfff0+16=a", ROUTE_IO, 0xfff0, 0xffff, "a", "io:0xfff0-0xffff=a");
	accept("io:0x80+1=a", ROUTE_IO, 0x80, 0x80, "a", "io:0x80=a");
	accept("IO:0X3F8=uart", ROUTE_IO, 0x3f8, 0x3f8, "uart", "io:0x3f8=uart");
	accept("io:010=a", ROUTE_IO, 10, 10, "a", "io:0xa=a"); /* decimal, not octal */
	accept("io:0x60=my_vmm-2", ROUTE_IO, 0x60, 0x60, "my_vmm-2", "io:0x60=my_vmm-2");

	refuse_exact("io:0x3f8-0x3f0=uart",
		     "route 'io:0x3f8-0x3f0=uart': range end 0x3f0 is below its start 0x3f8");
	refuse_exact("io:0x10000=x", "route 'io:0x10000=x': port 0x10000 is beyond 0xffff");
	refuse_exact("io:0xfff0+0x11=x",
		     "route 'io:0xfff0+0x11=x': range '0xfff0+0x11' ends beyond port 0xffff");
	refuse("io:0x3f8-0x10000=x", "port 0x10000 is beyond 0xffff");
	refuse("io:0x3f8+0=x", "size must be at least 1");
	refuse("io:1+x=y", "size 'x' is not a number");
	refuse("io:1+=y", "size is missing");
	refuse("io:1-=x", "range end is missing");
	refuse("io:-1=x", "range start is missing");
	refuse("io:+1=x", "range base is missing");
	refuse("io:0x=x", "key '0x' is not a number");
	refuse("io:0x3fg=x", "key '0x3fg' is not a number");
	refuse("io:12a=x", "key '12a' is not a number");
	refuse("io:1-2-3=x", "range end '2-3' is not a number");
	refuse("io:uart=x", "key 'uart' is not a number");
	refuse("io:=x", "the key is missing");
}

static void test_mmio(void **state)
{
	(void)state;
	accept("mmio:0xd0000000+0x1000=blk", ROUTE_MMIO, 0xd0000000, 0xd0000fff, "blk",
	       "mmio:0xd0000000-0xd0000fff=blk");
	accept("mmio:0xffffffffffffffff=x", ROUTE_MMIO, UINT64_MAX, UINT64_MAX, "x",
	       "mmio:0xffffffffffffffff=x");
	accept("mmio:0xfffffffffffff000+0x1000=x", ROUTE_MMIO, 0xfffffffffffff000ull, UINT64_MAX,
	       "x", "mmio:0xfffffffffffff000-0xffffffffffffffff=x");
	accept("mmio:1+0xffffffffffffffff=x", ROUTE_MMIO, 1, UINT64_MAX, "x",
	       "mmio:0x1-0xffffffffffffffff=x");
	accept("mmio:0-0xffffffffffffffff=x", ROUTE_MMIO, 0, UINT64_MAX, "x",
	       "mmio:0x0-0xffffffffffffffff=x");

	refuse_exact("mmio:0xffffffffffffffff+2=x",
		     "route 'mmio:0xffffffffffffffff+2=x': range '0xffffffffffffffff+2' ends "
		     "beyond address 0xffffffffffffffff");
	refuse("mmio:2+0xffffffffffffffff=x", "ends beyond address 0xffffffffffffffff");
	refuse("mmio:0x10000000000000000=x", "does not fit in 64 bits");
	refuse("mmio:18446744073709551616=x", "does not fit in 64 bits");
	refuse("mmio:0+0x10000000000000000=x", "size '0x10000000000000000' does not fit");
	refuse("mmio:0x2000-0x1000=x", "range end 0x1000 is below its start 0x2000");
}

static void test_msr(void **state)
{
	(void)state;
	accept("msr:0x40001000-0x400010ff=mon", ROUTE_MSR, 0x40001000, 0x400010ff, "mon",
	       "msr:0x40001000-0x400010ff=mon");
	accept("msr:0xffffffff=x", ROUTE_MSR, 0xffffffff, 0xffffffff, "x", "msr:0xffffffff=x");
	accept("msr:0xc0000080+1=x", ROUTE_MSR, 0xc0000080, 0xc0000080, "x", "msr:0xc0000080=x");
	refuse_exact("msr:0x100000000=x",
		     "route 'msr:0x100000000=x': MSR 0x100000000 is beyond 0xffffffff");
	refuse("msr:0xffffffff+2=x", "ends beyond MSR 0xffffffff");
}

static void test_hypercall_exception(void **state)
{
	(void)state;
	accept("hypercall:2=console", ROUTE_HYPERCALL, 2, 2, "console", "hypercall:2=console");
	accept("hypercall:0-255=x", ROUTE_HYPERCALL, 0, 255, "x", "hypercall:0-255=x");
	accept("hypercall:0x10+2=x", ROUTE_HYPERCALL, 16, 17, "x", "hypercall:16-17=x");
	refuse_exact("hypercall:256=x", "route 'hypercall:256=x': hypercall 256 is beyond 255");
	refuse("hypercall:250+7=x", "ends beyond hypercall 255");
	refuse("hypercall:exit=x", "key 'exit' is not a number");

	accept("exception:bp=mon", ROUTE_EXCEPTION, 3, 3, "mon", "exception:3=mon");
	accept("exception:db-bp=m", ROUTE_EXCEPTION, 1, 3, "m", "exception:1-3=m");
	accept("exception:GP=m", ROUTE_EXCEPTION, 13, 13, "m", "exception:13=m");
	accept("exception:pf+1=m", ROUTE_EXCEPTION, 14, 14, "m", "exception:14=m");
	accept("exception:xm=m", ROUTE_EXCEPTION, 19, 19, "m", "exception:19=m");
	accept("exception:255=m", ROUTE_EXCEPTION, 255, 255, "m", "exception:255=m");
	accept("exception:0-255=m", ROUTE_EXCEPTION, 0, 255, "m", "exception:0-255=m");
	refuse("exception:256=m", "vector 256 is beyond 255");
	refuse("exception:xx=m", "unknown exception 'xx' (a number or one of: de, db, nmi");
	refuse("exception:bp-db=m", "range end 1 is below its start 3");
}

static void test_named_kinds(void **state)
{
	(void)state;
	accept("platform:smi=smm", ROUTE_PLATFORM, VMMUX_PLAT_SMI, VMMUX_PLAT_SMI, "smm",
	       "platform:smi=smm");
	accept("platform:reset-watchdog=c", ROUTE_PLATFORM, VMMUX_PLAT_RESET, VMMUX_PLAT_WATCHDOG,
	       "c", "platform:reset-watchdog=c");
	accept("platform:0+5=c", ROUTE_PLATFORM, 0, 4, "c", "platform:smi-watchdog=c");
	accept("platform:4=c", ROUTE_PLATFORM, 4, 4, "c", "platform:watchdog=c");
	accept("platform:PowerOff=c", ROUTE_PLATFORM, VMMUX_PLAT_POWEROFF, VMMUX_PLAT_POWEROFF, "c",
	       "platform:poweroff=c");
	refuse_exact("platform:5=c",
		     "route 'platform:5=c': platform code 5 is beyond 4 (watchdog)");
	refuse("platform:smx=c",
	       "unknown platform code 'smx' (a number or one of: smi, reset, poweroff, "
	       "powerbtn, watchdog)");
	refuse("platform:reset+5=c", "ends beyond platform code watchdog");

	accept("request:exit=main", ROUTE_REQUEST, VMMUX_REQ_EXIT, VMMUX_REQ_EXIT, "main",
	       "request:exit=main");
	accept("request:0=x", ROUTE_REQUEST, 0, 0, "x", "request:exit=x");
	refuse("request:1=x", "request kind 1 is beyond 0 (exit)");
	refuse("request:quit=x", "unknown request kind 'quit' (a number or one of: exit)");

	accept("type:hlt=main", ROUTE_TYPE, VMMUX_EV_HLT, VMMUX_EV_HLT, "main", "type:hlt=main");
	accept("type:io-msr=x", ROUTE_TYPE, VMMUX_EV_IO, VMMUX_EV_MSR, "x", "type:io-msr=x");
	accept("type:hlt+2=x", ROUTE_TYPE, VMMUX_EV_HLT, VMMUX_EV_HYPERCALL, "x",
	       "type:hlt-hypercall=x");
	accept("type:fault=x", ROUTE_TYPE, VMMUX_EV_FAULT, VMMUX_EV_FAULT, "x", "type:fault=x");
	accept("type:0-10=x", ROUTE_TYPE, 0, 10, "x", "type:io-fault=x");
	refuse("type:foo=x", "unknown event type 'foo' (a number or one of: io, mmio, msr, hlt");
	refuse("type:11=x", "event type 11 is beyond 10 (fault)");
	refuse("type:io+12=x", "range 'io+12' ends beyond event type fault");
	refuse("type:msr-io=x", "range end io is below its start msr");
}

static void test_structure(void **state)
{
	(void)state;
	struct route_spec s;
	struct errbuf e = {{0}};
	assert_int_equal(route_spec_parse(NULL, &s, &e), -1);
	assert_non_null(strstr(e.msg, "empty route spec"));
	assert_int_equal(route_spec_parse("", &s, &e), -1);
	assert_non_null(strstr(e.msg, "empty route spec"));

	refuse_exact("foo:1=x", "route 'foo:1=x': unknown kind 'foo' (io, mmio, msr, hypercall, "
				"exception, platform, request, type)");
	refuse("io", "missing ':' after the kind");
	refuse(":1=x", "unknown kind ''");
	refuse("io:", "missing '=VMM' after the key");
	refuse("io:0x3f8", "missing '=VMM' after the key");
	refuse("io:0x3f8;posted=a", "missing '=VMM' after the key");
	refuse("io:1=", "VMM name is missing");
	refuse("io:1=;posted", "VMM name is missing");
	refuse("io:1=Uart", "invalid VMM name 'Uart' (1 to 31 characters of a-z, 0-9");
	refuse("io:1=grou(least-loaded:a,b)", "invalid VMM name 'grou(least-loaded:a,b)'");
	refuse("io:1=a=b", "invalid VMM name 'a=b'");
	refuse("io:1=abcdefghijabcdefghijabcdefghijkl", "invalid VMM name"); /* 32 chars */
	accept("io:1=abcdefghijabcdefghijabcdefghijk", ROUTE_IO, 1, 1,	     /* 31 */
	       "abcdefghijabcdefghijabcdefghijk", "io:0x1=abcdefghijabcdefghijabcdefghijk");
	refuse("io:1=a b", "byte 0x20 at offset 6 is not allowed");
	refuse(" io:1=a", "byte 0x20 at offset 0 is not allowed");

	/* unprintable bytes are not echoed */
	assert_int_equal(route_spec_parse("io:1=a\x01", &s, &e), -1);
	assert_string_equal(e.msg, "route 'io:1=a?': byte 0x01 at offset 6 is not allowed (no "
				   "spaces or control characters)");

	/* too long: quoted in part, refused */
	char longspec[400];
	memset(longspec, 'a', sizeof(longspec));
	memcpy(longspec, "io:1=", 5);
	longspec[sizeof(longspec) - 1] = '\0';
	assert_int_equal(route_spec_parse(longspec, &s, &e), -1);
	assert_non_null(strstr(e.msg, "longer than 255 characters"));
	assert_non_null(strstr(e.msg, "...'"));
}

static void test_options(void **state)
{
	(void)state;
	struct route_spec s;
	struct errbuf e = {{0}};
	assert_int_equal(
	    route_spec_parse("io:0x3f8-0x3ff=uart;posted;fallback=main;timeout=50ms", &s, &e), 0);
	assert_int_equal(s.opts, ROUTE_OPT_POSTED | ROUTE_OPT_FALLBACK | ROUTE_OPT_TIMEOUT);
	assert_string_equal(s.fallback, "main");
	assert_true(s.timeout_ns == 50000000ull);
	assert_string_equal(s.text, "io:0x3f8-0x3ff=uart;posted;fallback=main;timeout=50ms");

	/* canonical order of options, largest exact unit */
	accept("io:1=a;timeout=1000ms;posted", ROUTE_IO, 1, 1, "a", "io:0x1=a;posted;timeout=1s");
	accept("mmio:0x1000+0x1000=a;posted", ROUTE_MMIO, 0x1000, 0x1fff, "a",
	       "mmio:0x1000-0x1fff=a;posted");
	accept("msr:0x10=a;fallback=b", ROUTE_MSR, 0x10, 0x10, "a", "msr:0x10=a;fallback=b");
	accept("type:io=a;timeout=1500us", ROUTE_TYPE, 0, 0, "a", "type:io=a;timeout=1500us");
	accept("io:1=a;timeout=7ns", ROUTE_IO, 1, 1, "a", "io:0x1=a;timeout=7ns");
	accept("hypercall:1=a;fallback=main;timeout=2s", ROUTE_HYPERCALL, 1, 1, "a",
	       "hypercall:1=a;fallback=main;timeout=2s");
	assert_int_equal(route_spec_parse("io:1=a", &s, &e), 0);
	assert_int_equal(s.opts, 0);
	assert_true(s.timeout_ns == 0);
	assert_string_equal(s.fallback, "");

	refuse("io:1=a;", "empty option");
	refuse("io:1=a;;posted", "empty option");
	refuse("io:1=a;posted;posted", "option 'posted' is given twice");
	refuse("io:1=a;timeout=5ms;timeout=6ms", "option 'timeout' is given twice");
	refuse("io:1=a;fallback=b;fallback=c", "option 'fallback' is given twice");
	refuse("io:1=a;bogus", "unknown option 'bogus' (posted, fallback=VMM, timeout=DURATION, "
			       "from=VMM, coalesced, doorbell[=VALUE])");
	refuse("platform:reset=mon;from", "option 'from' needs '=VMM'");
	refuse("platform:reset=mon;from=mon", "from= names the route's own VMM");
	refuse("platform:reset=mon;from=uart;from=smm", "option 'from' is given twice");
	refuse("io:1=a;Posted", "unknown option 'Posted'");
	refuse("io:1=a;posted=1", "option 'posted' takes no value");
	refuse("msr:1=a;posted", "option 'posted' applies to io and mmio routes only");
	refuse("hypercall:1=a;posted", "option 'posted' applies to io and mmio routes only");
	refuse("type:io=a;posted", "option 'posted' applies to io and mmio routes only");
	refuse("platform:smi=a;posted", "option 'posted' applies to io and mmio routes only");
	refuse("io:1=a;timeout=5", "timeout: '5': a duration needs a unit");
	refuse("io:1=a;timeout=5min", "unknown duration unit 'min'");
	refuse("io:1=a;timeout=0ms", "timeout must be greater than 0");
	refuse("io:1=a;timeout=", "timeout: empty value");
	refuse("io:1=a;timeout", "option 'timeout' needs '=DURATION'");
	refuse("io:1=a;timeout=99999999999999999999s", "timeout: '99999999999999999999s'");
	refuse("io:1=a;timeout=18446744073709551615s", "is too long");
	refuse("io:1=a;fallback", "option 'fallback' needs '=VMM'");
	refuse("io:1=a;fallback=", "fallback VMM name is missing");
	refuse("io:1=a;fallback=a", "the fallback 'a' is the route's own VMM");
	refuse("io:1=a;fallback=Bad", "invalid fallback VMM name 'Bad'");
}

static bool same_spec(const struct route_spec *a, const struct route_spec *b)
{
	return a->kind == b->kind && a->lo == b->lo && a->hi == b->hi &&
	       strcmp(a->vmm, b->vmm) == 0 && a->opts == b->opts &&
	       strcmp(a->fallback, b->fallback) == 0 && a->timeout_ns == b->timeout_ns &&
	       strcmp(a->text, b->text) == 0 && a->doorbell_value == b->doorbell_value &&
	       memcmp(&a->group, &b->group, sizeof(a->group)) == 0;
}

static void test_round_trip(void **state)
{
	(void)state;
	static const char *const specs[] = {
	    "io:0x3f8-0x3ff=uart;posted;fallback=main;timeout=50ms",
	    "IO:1016+8=uart",
	    "mmio:0xd0000000+0x1000=blk;posted",
	    "mmio:0xffffffffffffffff=x",
	    "msr:0x40001000-0x400010ff=mon;timeout=1500000ns",
	    "hypercall:0x2=console",
	    "exception:bp-gp=mon;fallback=main",
	    "platform:smi=smm",
	    "platform:1+4=chipset;timeout=3us",
	    "request:exit=main",
	    "type:hlt=main",
	    "type:io-msr=x;timeout=60s",
	    "type:hlt+2=x",
	    "platform:reset=mon;from=chipset",
	    "io:0x3f8-0x3ff=log;timeout=5ms;from=uart",
	    "io:0x500-0x5ff=group(least-loaded:w1,w2,w3)",
	    "io:0x90=GROUP(Weighted:a*3,b*1,c*1000);fallback=main;timeout=5ms",
	    "mmio:0xd0000000+0x1000=group(sticky:a,b);posted",
	    "type:hlt=group(round-robin:main,x)",
	    "platform:reset=group(least-loaded:a);from=chipset",
	    "io:0x520-0x527=rec;coalesced;fallback=main",
	    "mmio:0xd0000000+0x1000=group(round-robin:a,b);coalesced",
	    "io:0x510-0x513=db;doorbell",
	    "io:0x510=db;doorbell=0xff;timeout=5ms",
	    "mmio:0xd0001000+8=db;doorbell=0xffffffffffffffff",
	};
	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
		struct route_spec a, b;
		struct errbuf e = {{0}};
		if (route_spec_parse(specs[i], &a, &e))
			fail_msg("'%s': %s", specs[i], e.msg);
		char text[ROUTE_SPEC_TEXT_MAX];
		route_spec_format(&a, text, sizeof(text));
		assert_string_equal(text, a.text);
		if (route_spec_parse(text, &b, &e))
			fail_msg("canonical '%s' of '%s' refused: %s", text, specs[i], e.msg);
		assert_true(same_spec(&a, &b));
		route_spec_format(&b, text, sizeof(text));
		assert_string_equal(text, a.text);
	}

	/* a short buffer truncates, never overflows */
	struct route_spec s;
	struct errbuf e;
	assert_int_equal(route_spec_parse("io:0x3f8-0x3ff=uart", &s, &e), 0);
	char small[8];
	memset(small, 'Z', sizeof(small));
	route_spec_format(&s, small, 6);
	assert_string_equal(small, "io:0x");
	assert_int_equal(small[6], 'Z');
	route_spec_format(&s, small, 0);
	assert_int_equal(small[0], 'i');
}

/* SPEC parses into a group of POLICY with the N members and weights given
 * as "name*w" strings (weight 1 when omitted), canonical text CANON. */
static void accept_group(const char *spec, enum route_policy policy, const char *canon, unsigned n,
			 const char *const *members)
{
	struct route_spec s;
	struct errbuf e = {{0}};
	if (route_spec_parse(spec, &s, &e) != 0)
		fail_msg("'%s' refused: %s", spec, e.msg);
	assert_string_equal(s.text, canon);
	assert_int_equal(s.group.policy, policy);
	assert_int_equal(s.group.n, n);
	for (unsigned i = 0; i < n; i++) {
		char name[VMMUX_NAME_MAX];
		unsigned w = 1;
		const char *star = strchr(members[i], '*');
		size_t len = star ? (size_t)(star - members[i]) : strlen(members[i]);
		memcpy(name, members[i], len);
		name[len] = '\0';
		if (star)
			w = (unsigned)strtoul(star + 1, NULL, 0);
		assert_string_equal(s.group.member[i], name);
		assert_int_equal(s.group.weight[i], w);
	}
	/* the single-VMM field names the first member */
	assert_string_equal(s.vmm, s.group.member[0]);
}

static void test_groups(void **state)
{
	(void)state;
	static const char *const w123[] = {"w1", "w2", "w3"};
	accept_group("io:0x500-0x5ff=group(least-loaded:w1,w2,w3)", ROUTE_POLICY_LEAST_LOADED,
		     "io:0x500-0x5ff=group(least-loaded:w1,w2,w3)", 3, w123);
	static const char *const ab31[] = {"a*3", "b*1"};
	accept_group("io:0x90=group(weighted:a*3,b*1)", ROUTE_POLICY_WEIGHTED,
		     "io:0x90=group(weighted:a*3,b)", 2, ab31);
	static const char *const ab[] = {"a", "b"};
	accept_group("mmio:0xd0000000+0x1000=group(sticky:a,b)", ROUTE_POLICY_STICKY,
		     "mmio:0xd0000000-0xd0000fff=group(sticky:a,b)", 2, ab);
	accept_group("io:0x90=Group(ROUND-ROBIN:a,b);posted", ROUTE_POLICY_ROUND_ROBIN,
		     "io:0x90=group(round-robin:a,b);posted", 2, ab);
	static const char *const one[] = {"main"};
	accept_group("type:hlt=group(sticky:main)", ROUTE_POLICY_STICKY,
		     "type:hlt=group(sticky:main)", 1, one);
	static const char *const wx[] = {"a*1000", "b*0x10", "c*007"};
	accept_group("io:1=group(weighted:a*1000,b*0x10,c*007)", ROUTE_POLICY_WEIGHTED,
		     "io:0x1=group(weighted:a*1000,b*16,c*7)", 3, wx);
	/* 16 members, the most */
	static const char *const m16[] = {"v1", "v2",  "v3",  "v4",  "v5",  "v6",  "v7",  "v8",
					  "v9", "v10", "v11", "v12", "v13", "v14", "v15", "v16"};
	accept_group("io:1=group(round-robin:v1,v2,v3,v4,v5,v6,v7,v8,v9,v10,v11,v12,v13,v14,v15,"
		     "v16)",
		     ROUTE_POLICY_ROUND_ROBIN,
		     "io:0x1=group(round-robin:v1,v2,v3,v4,v5,v6,v7,v8,v9,v10,v11,v12,v13,v14,"
		     "v15,v16)",
		     16, m16);
	/* options that name VMMs: never a member, never a group */
	accept_group("io:1=group(least-loaded:a,b);fallback=c;from=d", ROUTE_POLICY_LEAST_LOADED,
		     "io:0x1=group(least-loaded:a,b);fallback=c;from=d", 2, ab);

	refuse_exact("io:1=group(least-loaded:a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q)",
		     "route 'io:1=group(least-loaded:a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q)': a group "
		     "has at most 16 members");
	refuse_exact("io:1=group(fastest:a,b)",
		     "route 'io:1=group(fastest:a,b)': unknown group policy 'fastest' "
		     "(least-loaded, round-robin, weighted, sticky)");
	refuse_exact("io:1=group(least-loaded:a,b,a)",
		     "route 'io:1=group(least-loaded:a,b,a)': 'a' is a member of the group twice");
	refuse("io:1=group(a,b)", "the group has no ':' after its policy");
	refuse("io:1=group(least-loaded:a,b", "the group has no closing ')'");
	refuse("io:1=group(", "the group has no closing ')'");
	refuse("io:1=group()", "the group has no ':' after its policy");
	refuse("io:1=group(least-loaded:a,b)c", "unexpected 'c' after the group's ')'");
	refuse("io:1=group(least-loaded:a,b))", "invalid group member name 'b)'");
	refuse("io:1=group(least-loaded:)", "member 1 of the group is missing");
	refuse("io:1=group(least-loaded:a,,b)", "member 2 of the group is missing");
	refuse("io:1=group(least-loaded:a,)", "member 2 of the group is missing");
	refuse("io:1=group(:a)", "unknown group policy ''");
	refuse("io:1=group(least-loaded:A)", "invalid group member name 'A'");
	refuse("io:1=group(least-loaded:group(sticky:a))", "invalid group member name");
	refuse_exact("io:1=group(least-loaded:a*2,b)",
		     "route 'io:1=group(least-loaded:a*2,b)': member 'a*2' has a weight, but only "
		     "the weighted policy takes weights");
	refuse("io:1=group(sticky:a,b*1)", "member 'b*1' has a weight, but only the weighted");
	refuse_exact("io:1=group(weighted:a*0,b)",
		     "route 'io:1=group(weighted:a*0,b)': weight "
		     "'0' of member 'a' is not a number from 1 to 1000");
	refuse("io:1=group(weighted:a*1001)", "weight '1001' of member 'a' is not a number");
	refuse("io:1=group(weighted:a*)", "weight '' of member 'a' is not a number");
	refuse("io:1=group(weighted:a*x)", "weight 'x' of member 'a' is not a number");
	refuse("io:1=group(weighted:a*-1)", "weight '-1' of member 'a' is not a number");
	refuse("io:1=group(weighted:a*99999999999999999999)", "weight '99999999999999999999'");
	refuse("io:1=group(weighted:*3)", "group member name is missing");
	refuse_exact(
	    "io:1=group(least-loaded:a,b);fallback=b",
	    "route 'io:1=group(least-loaded:a,b);fallback=b': the fallback 'b' is a member "
	    "of the route's group");
	refuse_exact(
	    "io:1=a;fallback=group(least-loaded:b,c)",
	    "route 'io:1=a;fallback=group(least-loaded:b,c)': a group cannot be a fallback");
	refuse("io:1=group(round-robin:a,b);from=a", "from= names a member of the route's group");
	refuse("io:1=a;from=group(round-robin:b,c)", "a group cannot be a source (from=)");

	/* the canonical text must fit: here it is 4 characters longer than the
	 * spec of 254 (keys written 0x1-0x2), 258 */
	char spec[ROUTE_SPEC_TEXT_MAX];
	size_t len = (size_t)snprintf(spec, sizeof(spec), "mmio:1-2=group(round-robin:");
	for (int i = 0; i < 10; i++) {
		size_t nl = i < 9 ? 22 : 19;
		len += (size_t)snprintf(spec + len, sizeof(spec) - len, "%sm%d", i ? "," : "", i);
		while (nl-- > 2)
			spec[len++] = 'x';
	}
	snprintf(spec + len, sizeof(spec) - len, ")");
	assert_int_equal(strlen(spec), 254);
	refuse(spec, "is longer than 255 characters");

	assert_string_equal(route_policy_name(ROUTE_POLICY_LEAST_LOADED), "least-loaded");
	assert_string_equal(route_policy_name(ROUTE_POLICY_ROUND_ROBIN), "round-robin");
	assert_string_equal(route_policy_name(ROUTE_POLICY_WEIGHTED), "weighted");
	assert_string_equal(route_policy_name(ROUTE_POLICY_STICKY), "sticky");
	assert_null(route_policy_name(ROUTE_POLICY__COUNT));
	assert_int_equal(route_policy_parse("Sticky"), ROUTE_POLICY_STICKY);
	assert_int_equal(route_policy_parse("least-loaded"), ROUTE_POLICY_LEAST_LOADED);
	assert_int_equal(route_policy_parse("least"), -1);
	assert_int_equal(route_policy_parse(NULL), -1);
}

static void test_names(void **state)
{
	(void)state;
	static const char *const types[] = {"io",	 "mmio",      "msr",	  "hlt",
					    "hypercall", "exception", "shutdown", "platform",
					    "irq",	 "request",   "fault"};
	assert_int_equal(sizeof(types) / sizeof(types[0]), VMMUX_EV__COUNT);
	for (unsigned i = 0; i < VMMUX_EV__COUNT; i++) {
		assert_string_equal(event_type_name(i), types[i]);
		assert_int_equal(event_type_parse(types[i]), (int)i);
	}
	assert_null(event_type_name(VMMUX_EV__COUNT));
	assert_null(event_type_name(1000));
	assert_int_equal(event_type_parse("HLT"), VMMUX_EV_HLT);
	assert_int_equal(event_type_parse("nope"), -1);
	assert_int_equal(event_type_parse(""), -1);
	assert_int_equal(event_type_parse(NULL), -1);

	static const char *const plats[] = {"smi", "reset", "poweroff", "powerbtn", "watchdog"};
	assert_int_equal(sizeof(plats) / sizeof(plats[0]), VMMUX_PLAT__COUNT);
	for (unsigned i = 0; i < VMMUX_PLAT__COUNT; i++)
		assert_string_equal(platform_code_name(i), plats[i]);
	assert_null(platform_code_name(VMMUX_PLAT__COUNT));
	assert_string_equal(request_kind_name(VMMUX_REQ_EXIT), "exit");
	assert_null(request_kind_name(VMMUX_REQ__COUNT));

	static const char *const kinds[] = {"io",	 "mmio",     "msr",	"hypercall",
					    "exception", "platform", "request", "type"};
	for (unsigned i = 0; i < ROUTE__KINDS; i++)
		assert_string_equal(route_kind_name((enum route_kind)i), kinds[i]);
	assert_null(route_kind_name(ROUTE__KINDS));

	assert_true(vmm_name_valid("main"));
	assert_true(vmm_name_valid("uart0"));
	assert_true(vmm_name_valid("a_b-c"));
	assert_true(vmm_name_valid("0"));
	assert_true(vmm_name_valid("abcdefghijabcdefghijabcdefghij1"));	  /* 31 */
	assert_false(vmm_name_valid("abcdefghijabcdefghijabcdefghij12")); /* 32 */
	assert_false(vmm_name_valid(""));
	assert_false(vmm_name_valid(NULL));
	assert_false(vmm_name_valid("Uart"));
	assert_false(vmm_name_valid("a b"));
	assert_false(vmm_name_valid("a.b"));
	assert_false(vmm_name_valid("a;b"));
}

/* Routes compiled into KVM: coalesced and doorbell[=VALUE]. */
static void test_compiled(void **state)
{
	(void)state;
	accept("io:0x520-0x527=rec;coalesced", ROUTE_IO, 0x520, 0x527, "rec",
	       "io:0x520-0x527=rec;coalesced");
	accept("mmio:0xd0000000+0xffffffff=rec;coalesced", ROUTE_MMIO, 0xd0000000, 0x1cffffffeull,
	       "rec", "mmio:0xd0000000-0x1cffffffe=rec;coalesced");
	accept("io:0x90=group(weighted:a*2,b);coalesced;fallback=main", ROUTE_IO, 0x90, 0x90, "a",
	       "io:0x90=group(weighted:a*2,b);coalesced;fallback=main");
	accept("io:0x510=db;doorbell", ROUTE_IO, 0x510, 0x510, "db", "io:0x510=db;doorbell");
	accept("io:0x510+2=db;doorbell", ROUTE_IO, 0x510, 0x511, "db",
	       "io:0x510-0x511=db;doorbell");
	accept("io:0x510-0x513=db;timeout=1s;doorbell", ROUTE_IO, 0x510, 0x513, "db",
	       "io:0x510-0x513=db;doorbell;timeout=1s");
	accept("mmio:0xd0000008+8=db;doorbell=7", ROUTE_MMIO, 0xd0000008, 0xd000000f, "db",
	       "mmio:0xd0000008-0xd000000f=db;doorbell=0x7");
	accept("io:0x510=main;doorbell=0xff", ROUTE_IO, 0x510, 0x510, "main",
	       "io:0x510=main;doorbell=0xff");

	struct route_spec s;
	struct errbuf e = {{0}};
	assert_int_equal(route_spec_parse("io:0x510-0x511=db;doorbell=0x1234", &s, &e), 0);
	assert_true(s.opts == (ROUTE_OPT_DOORBELL | ROUTE_OPT_DATAMATCH));
	assert_true(s.doorbell_value == 0x1234);
	assert_int_equal(route_spec_parse("io:0x510=db;doorbell", &s, &e), 0);
	assert_true(s.opts == ROUTE_OPT_DOORBELL);
	assert_true(s.doorbell_value == 0);
	assert_int_equal(route_spec_parse("io:0x520=db;coalesced", &s, &e), 0);
	assert_true(s.opts == ROUTE_OPT_COALESCED);

	/* where they cannot apply */
	refuse("msr:0x10=a;coalesced", "option 'coalesced' applies to io and mmio routes only");
	refuse("hypercall:2=a;doorbell", "option 'doorbell' applies to io and mmio routes only");
	refuse("type:io=a;coalesced", "option 'coalesced' applies to io and mmio routes only");
	refuse("platform:smi=a;doorbell", "option 'doorbell' applies to io and mmio routes only");
	refuse("exception:ud=a;coalesced", "applies to io and mmio routes only");
	refuse("io:0x520=a;coalesced;doorbell", "'coalesced' and 'doorbell' exclude each other");
	refuse("io:0x520=a;posted;coalesced", "posts the route's writes already: drop 'posted'");
	refuse("io:0x520=a;doorbell;posted", "drop 'posted'");
	refuse("io:0x520=a;coalesced;from=b", "does not go with 'from='");
	refuse("io:0x520=a;from=b;doorbell", "does not go with 'from='");
	refuse("mmio:0+0x100000000=a;coalesced", "at most 0xffffffff addresses");
	refuse("mmio:0-0xffffffffffffffff=a;coalesced", "at most 0xffffffff addresses");
	/* one naturally aligned access */
	refuse("io:0x510-0x512=a;doorbell", "1, 2 or 4 ports");
	refuse("io:0x510-0x517=a;doorbell", "1, 2 or 4 ports");
	refuse("io:0-0xffff=a;doorbell", "1, 2 or 4 ports");
	refuse("mmio:0xd0000000+16=a;doorbell", "1, 2, 4 or 8 bytes");
	refuse("mmio:0-0xffffffffffffffff=a;doorbell", "1, 2, 4 or 8 bytes");
	refuse("io:0x511-0x512=a;doorbell", "a 2-byte access at 0x511 is not naturally aligned");
	refuse("mmio:0xd0000004+8=a;doorbell", "not naturally aligned");
	refuse("io:0x510=group(round-robin:a,b);doorbell", "its VMM cannot be a group");
	/* the value */
	refuse("io:0x510=a;doorbell=0x100", "doorbell value 0x100 does not fit a 1-byte write");
	refuse("io:0x510+2=a;doorbell=65536", "does not fit a 2-byte write");
	refuse("io:0x510=a;doorbell=", "doorbell value '' is not a number");
	refuse("io:0x510=a;doorbell=x1", "doorbell value 'x1' is not a number");
	refuse("io:0x510=a;doorbell=99999999999999999999", "does not fit in 64 bits");
	refuse("io:0x510=a;doorbell;doorbell=1", "option 'doorbell' is given twice");
	refuse("io:0x510=a;coalesced=1", "option 'coalesced' takes no value");
	refuse("io:0x510=a;Doorbell", "unknown option 'Doorbell'");
}

/* A hand-built spec gets the same checks from route_table_build. */
static void test_compiled_check(void **state)
{
	(void)state;
	struct route_spec s;
	struct errbuf e = {{0}};
	char why[200];
	assert_int_equal(route_spec_parse("io:0x510=a", &s, &e), 0);
	assert_int_equal(route_spec_check_compiled(&s, why, sizeof(why)), 0);
	s.opts |= ROUTE_OPT_DATAMATCH;
	assert_int_equal(route_spec_check_compiled(&s, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "without the option 'doorbell'"));
	s.opts |= ROUTE_OPT_DOORBELL;
	s.doorbell_value = 0x1ff;
	assert_int_equal(route_spec_check_compiled(&s, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "does not fit a 1-byte write"));
	s.doorbell_value = 0xff;
	assert_int_equal(route_spec_check_compiled(&s, why, sizeof(why)), 0);
	s.kind = ROUTE_MSR;
	assert_int_equal(route_spec_check_compiled(&s, why, sizeof(why)), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_io),		cmocka_unit_test(test_mmio),
	    cmocka_unit_test(test_msr),		cmocka_unit_test(test_hypercall_exception),
	    cmocka_unit_test(test_named_kinds), cmocka_unit_test(test_structure),
	    cmocka_unit_test(test_options),	cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_names),	cmocka_unit_test(test_groups),
	    cmocka_unit_test(test_compiled),	cmocka_unit_test(test_compiled_check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
