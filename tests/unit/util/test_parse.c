/*
 * Unit tests of util/parse.c: numbers, memory sizes, byte sizes and
 * durations as users write them, including overflow and junk.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/parse.h"

typedef int (*parse_fn)(const char *, uint64_t *, struct errbuf *);

static void ok(parse_fn fn, const char *s, uint64_t want)
{
	uint64_t v = 0xdeadbeef;
	struct errbuf e = {{0}};
	if (fn(s, &v, &e) != 0)
		fail_msg("'%s' refused: %s", s, e.msg);
	if (v != want)
		fail_msg("'%s' gave %llu, want %llu", s, (unsigned long long)v,
			 (unsigned long long)want);
}

/* Refused, *out untouched, and the message contains WHAT (which quotes the
 * input for every non-empty input). */
static void bad(parse_fn fn, const char *s, const char *what)
{
	uint64_t v = 0xdeadbeef;
	struct errbuf e = {{0}};
	if (fn(s, &v, &e) != -1)
		fail_msg("'%s' accepted as %llu", s ? s : "(null)", (unsigned long long)v);
	assert_true(v == 0xdeadbeef);
	if (strstr(e.msg, what) == NULL)
		fail_msg("message for '%s' lacks '%s': %s", s ? s : "(null)", what, e.msg);
}

static void test_u64(void **state)
{
	(void)state;
	ok(parse_u64, "0", 0);
	ok(parse_u64, "42", 42);
	ok(parse_u64, "0x2a", 42);
	ok(parse_u64, "0X2A", 42);
	ok(parse_u64, "18446744073709551615", UINT64_MAX);
	ok(parse_u64, "0xffffffffffffffff", UINT64_MAX);
	bad(parse_u64, "18446744073709551616", "'18446744073709551616' is too large");
	bad(parse_u64, "0x10000000000000000", "'0x10000000000000000' is too large");
	bad(parse_u64, "", "empty number");
	bad(parse_u64, NULL, "empty number");
	bad(parse_u64, "-1", "'-1' is not a number");
	bad(parse_u64, " 1", "' 1' is not a number");
	bad(parse_u64, "+1", "'+1' is not a number");
	bad(parse_u64, "1 ", "'1 ' is not a number");
	bad(parse_u64, "abc", "'abc' is not a number");
	bad(parse_u64, "0x", "'0x' is not a number");
	bad(parse_u64, "0xg", "'0xg' is not a number");
	bad(parse_u64, "12abc", "'12abc' is not a number");
	bad(parse_u64, "1.5", "'1.5' is not a number");
}

static void test_mem_size(void **state)
{
	(void)state;
	ok(parse_mem_size, "64", 64ull << 20); /* bare: MiB */
	ok(parse_mem_size, "0x10", 16ull << 20);
	ok(parse_mem_size, "64M", 64ull << 20);
	ok(parse_mem_size, "64m", 64ull << 20);
	ok(parse_mem_size, "64MiB", 64ull << 20);
	ok(parse_mem_size, "64MB", 64ull << 20);
	ok(parse_mem_size, "512K", 512ull << 10);
	ok(parse_mem_size, "512k", 512ull << 10);
	ok(parse_mem_size, "512KiB", 512ull << 10);
	ok(parse_mem_size, "1G", 1ull << 30);
	ok(parse_mem_size, "1g", 1ull << 30);
	ok(parse_mem_size, "4GiB", 4ull << 30);
	ok(parse_mem_size, "1T", 1ull << 40);
	ok(parse_mem_size, "16777215T", 16777215ull << 40);
	ok(parse_mem_size, "17592186044415", 17592186044415ull << 20);
	ok(parse_mem_size, "0", 0);
	bad(parse_mem_size, "16777216T", "'16777216T' is too large");
	bad(parse_mem_size, "17592186044416", "'17592186044416' is too large");
	bad(parse_mem_size, "99999999999999999999G", "is too large");
	bad(parse_mem_size, "64X", "'64X': unknown size suffix 'X' (use K, M, G or T)");
	bad(parse_mem_size, "64 M", "unknown size suffix ' M'");
	bad(parse_mem_size, "64MM", "unknown size suffix 'MM'");
	bad(parse_mem_size, "1.5G", "unknown size suffix '.5G'");
	bad(parse_mem_size, "M", "'M' does not start with a number");
	bad(parse_mem_size, "-1", "'-1' does not start with a number");
	bad(parse_mem_size, "", "empty value");
	bad(parse_mem_size, NULL, "empty value");
}

static void test_byte_size(void **state)
{
	(void)state;
	ok(parse_byte_size, "4096", 4096); /* bare: bytes */
	ok(parse_byte_size, "4K", 4096);
	ok(parse_byte_size, "4KiB", 4096);
	ok(parse_byte_size, "1M", 1ull << 20);
	ok(parse_byte_size, "2G", 2ull << 30);
	ok(parse_byte_size, "3T", 3ull << 40);
	ok(parse_byte_size, "0x1000", 0x1000);
	ok(parse_byte_size, "18446744073709551615", UINT64_MAX);
	ok(parse_byte_size, "16777215T", 16777215ull << 40);
	bad(parse_byte_size, "16777216T", "is too large");
	bad(parse_byte_size, "18446744073709551616", "is too large");
	bad(parse_byte_size, "4Q", "'4Q': unknown size suffix 'Q'");
	bad(parse_byte_size, "4B", "unknown size suffix 'B'");
	bad(parse_byte_size, "K", "does not start with a number");
	bad(parse_byte_size, "", "empty value");
}

static void test_duration(void **state)
{
	(void)state;
	ok(parse_duration, "50ms", 50000000ull);
	ok(parse_duration, "1s", 1000000000ull);
	ok(parse_duration, "7ns", 7);
	ok(parse_duration, "3us", 3000);
	ok(parse_duration, "0ns", 0);
	ok(parse_duration, "0x10us", 16000);
	ok(parse_duration, "18446744073709551615ns", UINT64_MAX);
	ok(parse_duration, "18446744073s", 18446744073000000000ull);
	bad(parse_duration, "18446744074s", "'18446744074s' is too long");
	bad(parse_duration, "18446744073709551615us", "is too long");
	bad(parse_duration, "99999999999999999999ns", "is too large");
	bad(parse_duration, "5", "'5': a duration needs a unit (ns, us, ms or s)");
	bad(parse_duration, "5m", "'5m': unknown duration unit 'm' (use ns, us, ms or s)");
	bad(parse_duration, "5MS", "unknown duration unit 'MS'");
	bad(parse_duration, "5 ms", "unknown duration unit ' ms'");
	bad(parse_duration, "5msx", "unknown duration unit 'msx'");
	bad(parse_duration, "ms", "'ms' does not start with a number");
	bad(parse_duration, "-5ms", "does not start with a number");
	bad(parse_duration, "", "empty value");
	bad(parse_duration, NULL, "empty value");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_u64),
	    cmocka_unit_test(test_mem_size),
	    cmocka_unit_test(test_byte_size),
	    cmocka_unit_test(test_duration),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
