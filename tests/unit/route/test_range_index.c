/*
 * Unit tests of the range index (range_index_build and the lookups that use
 * it, route_lookup_mmio and route_lookup_msr): for range counts around every
 * block and level boundary of the fan-out, every range's first and last key
 * and the keys just outside it give the same answer as a plain search;
 * random keys as well; keys 0 and UINT64_MAX; an empty index; too many
 * ranges refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "route/table.h"

/* The route of the range of R (N) containing KEY, by a plain binary search
 * (another algorithm than the index's), checked against a linear search for
 * small N. */
static uint16_t linear(const struct route_range *r, size_t n, uint64_t key)
{
	size_t a = 0, b = n;
	while (a < b) { /* first range with lo > key */
		size_t m = a + (b - a) / 2;
		if (r[m].lo <= key)
			a = m + 1;
		else
			b = m;
	}
	uint16_t got = a == 0 || key > r[a - 1].hi ? ROUTE_NONE : r[a - 1].route;
	if (n <= 64) {
		uint16_t lin = ROUTE_NONE;
		for (size_t i = 0; i < n; i++)
			if (key >= r[i].lo && key <= r[i].hi)
				lin = r[i].route;
		assert_int_equal(got, lin);
	}
	return got;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* A table whose only content is N MMIO ranges: gaps of 1..GAP keys between
 * ranges of 1..SIZE keys, from START. */
static struct route_table *ranges_table(size_t n, uint64_t start, uint64_t size, uint64_t gap)
{
	struct route_table *t = calloc(1, sizeof(*t));
	assert_non_null(t);
	t->mmio = calloc(n ? n : 1, sizeof(*t->mmio));
	assert_non_null(t->mmio);
	uint64_t at = start;
	for (size_t i = 0; i < n; i++) {
		t->mmio[i].lo = at;
		t->mmio[i].hi = at + next_rand() % size;
		t->mmio[i].route = (uint16_t)(i % 4000);
		at = t->mmio[i].hi + 1 + next_rand() % gap;
	}
	t->nmmio = n;
	assert_int_equal(range_index_build(&t->mmio_ix, t->mmio, n), 0);
	return t;
}

static void free_table(struct route_table *t)
{
	range_index_free(&t->mmio_ix);
	free(t->mmio);
	free(t);
}

static void check_all(const struct route_table *t)
{
	const struct route_range *r = t->mmio;
	size_t n = t->nmmio;
	for (size_t i = 0; i < n; i++) {
		uint64_t probe[] = {r[i].lo, r[i].hi, r[i].lo - 1, r[i].hi + 1,
				    (r[i].lo + r[i].hi) / 2};
		for (size_t j = 0; j < sizeof(probe) / sizeof(probe[0]); j++)
			assert_int_equal(route_lookup_mmio(t, probe[j]), linear(r, n, probe[j]));
	}
	for (unsigned i = 0; i < 2000; i++) {
		uint64_t k = n ? r[0].lo + next_rand() % (r[n - 1].hi - r[0].lo + 64) : next_rand();
		assert_int_equal(route_lookup_mmio(t, k), linear(r, n, k));
	}
	assert_int_equal(route_lookup_mmio(t, 0), linear(r, n, 0));
	assert_int_equal(route_lookup_mmio(t, UINT64_MAX), linear(r, n, UINT64_MAX));
}

static void test_boundaries(void **state)
{
	(void)state;
	static const size_t counts[] = {0,   1,	  2,   15,   16,   17,	 31,	32,    33,
					255, 256, 257, 4095, 4096, 4097, 65535, 65536, 65537};
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		struct route_table *t = ranges_table(counts[i], 0x1000, 0x1000, 0x3000);
		check_all(t);
		free_table(t);
	}
}

static void test_dense_and_extremes(void **state)
{
	(void)state;
	/* ranges with no gap between them, starting at 0 */
	struct route_table *t = ranges_table(300, 0, 3, 1);
	check_all(t);
	free_table(t);

	/* a last range that ends at UINT64_MAX, and one starting there */
	struct route_range r[3] = {
	    {0x10, 0x20, 1}, {0x100, UINT64_MAX - 1, 2}, {UINT64_MAX, UINT64_MAX, 3}};
	struct route_table tt = {.mmio = r, .nmmio = 3};
	assert_int_equal(range_index_build(&tt.mmio_ix, r, 3), 0);
	assert_int_equal(route_lookup_mmio(&tt, UINT64_MAX), 3);
	assert_int_equal(route_lookup_mmio(&tt, UINT64_MAX - 1), 2);
	assert_int_equal(route_lookup_mmio(&tt, 0x21), ROUTE_NONE);
	assert_int_equal(route_lookup_mmio(&tt, 0xf), ROUTE_NONE);
	range_index_free(&tt.mmio_ix);
	assert_null(tt.mmio_ix.keys);
	assert_int_equal(tt.mmio_ix.levels, 0);
	/* an empty index finds nothing */
	assert_int_equal(route_lookup_mmio(&tt, 0x10), ROUTE_NONE);
}

static void test_built_table_and_rebuild(void **state)
{
	(void)state;
	/* route_table_build builds both indices */
	struct route_spec s[2];
	struct errbuf e;
	assert_int_equal(route_spec_parse("mmio:0xd0000000-0xd0000fff=main", &s[0], &e), 0);
	assert_int_equal(route_spec_parse("msr:0x40000000-0x400000ff=main", &s[1], &e), 0);
	struct route_table *t = route_table_build(s, 2, NULL, NULL, &e);
	assert_non_null(t);
	assert_int_not_equal(route_lookup_mmio(t, 0xd0000800), ROUTE_NONE);
	assert_int_equal(route_lookup_mmio(t, 0xd0001000), ROUTE_NONE);
	assert_int_not_equal(route_lookup_msr(t, 0x400000ff), ROUTE_NONE);
	assert_int_equal(route_lookup_msr(t, 0x40000100), ROUTE_NONE);
	/* building again over the same array replaces the index */
	assert_int_equal(range_index_build(&t->mmio_ix, t->mmio, t->nmmio), 0);
	assert_int_not_equal(route_lookup_mmio(t, 0xd0000000), ROUTE_NONE);
	route_table_free(t);
}

static void test_too_many(void **state)
{
	(void)state;
	struct range_index ix = {0};
	struct route_range r = {0, 0, 0};
	/* only the count is checked before anything is read */
	size_t too_many = (size_t)1 << (4 * RANGE_LEVELS_MAX + 1);
	assert_int_equal(range_index_build(&ix, &r, too_many), -1);
	assert_int_equal(ix.levels, 0);
	assert_null(ix.keys);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_boundaries),
	    cmocka_unit_test(test_dense_and_extremes),
	    cmocka_unit_test(test_built_table_and_rebuild),
	    cmocka_unit_test(test_too_many),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
