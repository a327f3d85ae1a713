/*
 * Unit tests of the statistics: histogram percentiles on known samples,
 * bucket bounds, merging, concurrent adds, the route registry, per type and
 * per VMM counts, and both reports (the JSON one parsed back with jansson).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <pthread.h>

#include "route/table.h"
#include "stats/stats.h"

static int teardown(void **state)
{
	(void)state;
	stats_fini();
	return 0;
}

/* P lies within [v, v + v/16]. */
static void assert_near(uint64_t p, uint64_t v)
{
	if (p < v || p > v + v / 16)
		fail_msg("percentile %llu not within 1/16 above %llu", (unsigned long long)p,
			 (unsigned long long)v);
}

static void test_percentiles(void **state)
{
	(void)state;
	struct hist *h = calloc(1, sizeof(*h));
	assert_non_null(h);
	assert_true(hist_percentile(h, 50) == 0);
	assert_true(hist_percentile(h, 99) == 0);

	for (uint64_t v = 1; v <= 100; v++)
		hist_add(h, v);
	assert_true(h->count == 100);
	assert_true(h->sum_ns == 5050);
	assert_true(h->max_ns == 100);
	assert_near(hist_percentile(h, 50), 50);
	assert_near(hist_percentile(h, 90), 90);
	assert_near(hist_percentile(h, 99), 99);
	assert_true(hist_percentile(h, 100) == 100);
	assert_true(hist_percentile(h, 0) == 1);
	assert_true(hist_percentile(h, 1) == 1);
	assert_true(hist_percentile(h, 250) == 100); /* clamped */
	assert_true(hist_percentile(h, -3) == 1);

	/* 1 us .. 1 ms in 1 us steps */
	memset(h, 0, sizeof(*h));
	for (uint64_t v = 1; v <= 1000; v++)
		hist_add(h, v * 1000);
	assert_near(hist_percentile(h, 50), 500000);
	assert_near(hist_percentile(h, 99), 990000);
	assert_near(hist_percentile(h, 99.9), 999000);
	assert_true(hist_percentile(h, 100) == 1000000);
	assert_true(h->max_ns == 1000000);

	/* values below 16 ns are exact */
	memset(h, 0, sizeof(*h));
	hist_add(h, 3);
	hist_add(h, 3);
	hist_add(h, 3);
	hist_add(h, 9);
	assert_true(hist_percentile(h, 50) == 3);
	assert_true(hist_percentile(h, 75) == 3);
	assert_true(hist_percentile(h, 76) == 9);
	hist_add(h, 0);
	assert_true(hist_percentile(h, 1) == 0);

	/* a skewed distribution: 990 fast, 10 slow */
	memset(h, 0, sizeof(*h));
	for (int i = 0; i < 990; i++)
		hist_add(h, 7800);
	for (int i = 0; i < 10; i++)
		hist_add(h, 120000);
	assert_near(hist_percentile(h, 50), 7800);
	assert_near(hist_percentile(h, 99), 7800);
	assert_near(hist_percentile(h, 99.5), 120000);
	free(h);
}

static void test_bucket_bounds(void **state)
{
	(void)state;
	/* Around every power of two, with a larger sample above so that the
	 * cap by the maximum does not hide the bucket's own bound. */
	struct hist *h = calloc(1, sizeof(*h));
	assert_non_null(h);
	for (unsigned e = 0; e < 64; e++) {
		uint64_t base = 1ull << e;
		uint64_t vals[] = {base - 1, base, base + 1, base + base / 2};
		for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
			uint64_t v = vals[i];
			if (v == 0 && i > 0)
				continue;
			memset(h, 0, sizeof(*h));
			hist_add(h, v);
			hist_add(h, UINT64_MAX);
			assert_near(hist_percentile(h, 50), v);
			assert_true(hist_percentile(h, 100) == UINT64_MAX);
		}
	}
	free(h);
}

static void test_merge(void **state)
{
	(void)state;
	struct hist *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	assert_non_null(a);
	assert_non_null(b);
	for (int i = 0; i < 50; i++)
		hist_add(a, 1000);
	for (int i = 0; i < 50; i++)
		hist_add(b, 100000);
	hist_merge(a, b);
	assert_true(a->count == 100);
	assert_true(a->sum_ns == 50 * 1000 + 50 * 100000);
	assert_true(a->max_ns == 100000);
	assert_near(hist_percentile(a, 50), 1000);
	assert_near(hist_percentile(a, 51), 100000);
	assert_true(b->count == 50); /* the source is unchanged */
	free(a);
	free(b);
}

#define ADDERS 4
#define ADDS   100000

static void *adder(void *arg)
{
	struct hist *h = arg;
	for (uint64_t i = 0; i < ADDS; i++)
		hist_add(h, i % 5000);
	return NULL;
}

static void test_concurrent_adds(void **state)
{
	(void)state;
	struct hist *h = calloc(1, sizeof(*h));
	assert_non_null(h);
	pthread_t th[ADDERS];
	for (int i = 0; i < ADDERS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, adder, h), 0);
	for (int i = 0; i < ADDERS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	assert_true(h->count == (uint64_t)ADDERS * ADDS);
	uint64_t total = 0;
	for (unsigned b = 0; b < HIST_BUCKETS; b++)
		total += h->bucket[b];
	assert_true(total == (uint64_t)ADDERS * ADDS);
	assert_true(h->max_ns == 4999);
	uint64_t sum = 0;
	for (uint64_t i = 0; i < ADDS; i++)
		sum += i % 5000;
	assert_true(h->sum_ns == ADDERS * sum);
	free(h);
}

static void test_registry_and_counts(void **state)
{
	(void)state;
	struct route_stats *a = stats_route("io:0x3f8-0x3ff=uart");
	struct route_stats *b = stats_route("io:0x3f8-0x3ff=uart");
	struct route_stats *c = stats_route("io:0x60=chipset");
	assert_non_null(a);
	assert_ptr_equal(a, b);
	assert_ptr_not_equal(a, c);
	assert_string_equal(a->spec, "io:0x3f8-0x3ff=uart");
	assert_non_null(stats_route(NULL));

	stats_record(VMMUX_EV_IO, 1, a, 7800);
	stats_record(VMMUX_EV_IO, 1, a, 8000);
	stats_record(VMMUX_EV_IO, 2, c, 500);
	stats_record(VMMUX_EV_HLT, VMM_ID_MAIN, NULL, 100);
	stats_record(VMMUX_EV__COUNT, VMM_MAX, NULL, 1); /* out of range: ignored */
	stats_record(1000, 0xffff, NULL, 1);
	stats_count_unrouted(VMMUX_EV_IO);
	stats_count_unrouted(VMMUX_EV_IO);
	stats_count_unrouted(VMMUX_EV__COUNT);
	assert_true(stats_type_hist(VMMUX_EV_IO)->count == 3);
	assert_true(stats_type_hist(VMMUX_EV_HLT)->count == 1);
	assert_true(stats_type_hist(VMMUX_EV_MSR)->count == 0);
	assert_true(stats_type_hist(VMMUX_EV__COUNT)->count == 0);
	assert_true(stats_vmm_hist(1)->count == 2);
	assert_true(stats_vmm_hist(2)->count == 1);
	assert_true(stats_vmm_hist(VMM_ID_MAIN)->count == 1);
	assert_true(stats_vmm_hist(VMM_MAX)->count == 0);
	assert_true(a->lat.count == 2);
	assert_true(c->lat.count == 1);
	assert_true(stats_unrouted(VMMUX_EV_IO) == 2);
	assert_true(stats_unrouted(VMMUX_EV_MMIO) == 0);
	assert_true(stats_unrouted(VMMUX_EV__COUNT) == 0);

	uint64_t t0 = stats_now_ns();
	uint64_t t1 = stats_now_ns();
	assert_true(t0 > 0);
	assert_true(t1 >= t0);

	/* fini resets everything */
	stats_fini();
	assert_true(stats_type_hist(VMMUX_EV_IO)->count == 0);
	assert_true(stats_unrouted(VMMUX_EV_IO) == 0);
	struct route_stats *d = stats_route("io:0x3f8-0x3ff=uart");
	assert_true(d->lat.count == 0);
}

static const char *vmm_name(uint16_t id, char *where, size_t wlen)
{
	static const char *const names[] = {"main", "uart", "chipset"};
	snprintf(where, wlen, "%s", id == 0 ? "vmmux" : "in-process");
	return id < 3 ? names[id] : NULL;
}

/* Fill a few statistics for the report tests. */
static void sample_stats(void)
{
	stats_start();
	struct route_stats *uart = stats_route("io:0x3f8-0x3ff=uart");
	struct route_stats *chip = stats_route("io:0x64=chipset");
	(void)stats_route("mmio:0x1000=idle"); /* no events: not reported */
	for (int i = 0; i < 100; i++)
		stats_record(VMMUX_EV_IO, 1, uart, 7800);
	stats_record(VMMUX_EV_IO, 2, chip, 120000);
	stats_record(VMMUX_EV_HLT, 0, stats_route("type:hlt=main"), 1500000);
	stats_record(VMMUX_EV_MSR, 9, stats_route("msr:0x10=\"odd\\"), 900);
	stats_count_unrouted(VMMUX_EV_HLT);
}

static char *capture(void (*print)(FILE *, stats_vmm_name_fn), stats_vmm_name_fn name)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	print(f, name);
	fclose(f);
	return buf;
}

static void test_print_text(void **state)
{
	(void)state;
	sample_stats();
	char *out = capture(stats_print, vmm_name);
	assert_non_null(strstr(out, "7.8us"));
	assert_non_null(strstr(out, "120us"));
	assert_non_null(strstr(out, "1.5ms"));
	assert_non_null(strstr(out, "900ns"));
	assert_non_null(strstr(out, "io:0x3f8-0x3ff=uart"));
	assert_non_null(strstr(out, "io:0x64=chipset"));
	assert_null(strstr(out, "mmio:0x1000=idle"));
	assert_non_null(strstr(out, "uart (in-process)"));
	assert_non_null(strstr(out, "main (vmmux)"));
	assert_non_null(strstr(out, "vmm9"));
	/* every type has a row */
	for (unsigned ty = 0; ty < VMMUX_EV__COUNT; ty++) {
		char row[32];
		snprintf(row, sizeof(row), "\n  %s ", event_type_name(ty));
		if (strstr(out, row) == NULL)
			fail_msg("no row for %s in:\n%s", event_type_name(ty), out);
	}
	/* the busiest route first */
	assert_true(strstr(out, "io:0x3f8-0x3ff=uart") < strstr(out, "io:0x64=chipset"));
	free(out);
	/* no name callback */
	out = capture(stats_print, NULL);
	assert_non_null(strstr(out, "vmm1"));
	free(out);
}

static json_int_t jint(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	if (!json_is_integer(v))
		fail_msg("'%s' is not an integer", k);
	return json_integer_value(v);
}

static void test_print_json(void **state)
{
	(void)state;
	sample_stats();
	char *out = capture(stats_print_json, vmm_name);
	json_error_t err;
	json_t *root = json_loads(out, 0, &err);
	if (root == NULL)
		fail_msg("invalid JSON (%s) in: %s", err.text, out);
	assert_true(json_is_object(root));
	assert_true(json_is_number(json_object_get(root, "duration_s")));
	assert_true(json_number_value(json_object_get(root, "duration_s")) >= 0);

	json_t *types = json_object_get(root, "types");
	assert_true(json_is_object(types));
	assert_int_equal(json_object_size(types), VMMUX_EV__COUNT);
	for (unsigned ty = 0; ty < VMMUX_EV__COUNT; ty++) {
		json_t *o = json_object_get(types, event_type_name(ty));
		assert_true(json_is_object(o));
		jint(o, "count");
		jint(o, "p50_ns");
		jint(o, "p99_ns");
		jint(o, "max_ns");
		jint(o, "unrouted");
	}
	json_t *io = json_object_get(types, "io");
	assert_int_equal(jint(io, "count"), 101);
	assert_near((uint64_t)jint(io, "p50_ns"), 7800);
	assert_int_equal(jint(io, "max_ns"), 120000);
	assert_int_equal(jint(json_object_get(types, "hlt"), "unrouted"), 1);
	assert_int_equal(jint(json_object_get(types, "mmio"), "count"), 0);

	json_t *routes = json_object_get(root, "routes");
	assert_true(json_is_array(routes));
	assert_int_equal(json_array_size(routes), 4); /* the idle route is left out */
	json_t *r0 = json_array_get(routes, 0);
	assert_string_equal(json_string_value(json_object_get(r0, "spec")), "io:0x3f8-0x3ff=uart");
	assert_int_equal(jint(r0, "count"), 100);
	assert_int_equal(jint(r0, "p99_ns"), 7800);
	bool odd = false;
	for (size_t i = 0; i < json_array_size(routes); i++) {
		const char *s =
		    json_string_value(json_object_get(json_array_get(routes, i), "spec"));
		assert_non_null(s);
		odd |= strcmp(s, "msr:0x10=\"odd\\") == 0; /* escaped and read back */
	}
	assert_true(odd);

	json_t *vmms = json_object_get(root, "vmms");
	assert_true(json_is_array(vmms));
	assert_int_equal(json_array_size(vmms), 4); /* ids 0, 1, 2, 9 */
	json_t *v1 = json_array_get(vmms, 1);
	assert_int_equal(jint(v1, "id"), 1);
	assert_string_equal(json_string_value(json_object_get(v1, "name")), "uart");
	assert_string_equal(json_string_value(json_object_get(v1, "where")), "in-process");
	assert_int_equal(jint(v1, "count"), 100);
	json_t *v3 = json_array_get(vmms, 3);
	assert_int_equal(jint(v3, "id"), 9);
	assert_string_equal(json_string_value(json_object_get(v3, "name")), "vmm9");
	json_decref(root);
	free(out);

	/* empty statistics are still a complete object */
	stats_fini();
	out = capture(stats_print_json, NULL);
	root = json_loads(out, 0, &err);
	assert_non_null(root);
	assert_int_equal(json_object_size(json_object_get(root, "types")), VMMUX_EV__COUNT);
	assert_int_equal(json_array_size(json_object_get(root, "routes")), 0);
	assert_int_equal(json_array_size(json_object_get(root, "vmms")), 0);
	json_decref(root);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_percentiles),
	    cmocka_unit_test(test_bucket_bounds),
	    cmocka_unit_test(test_merge),
	    cmocka_unit_test(test_concurrent_adds),
	    cmocka_unit_test_teardown(test_registry_and_counts, teardown),
	    cmocka_unit_test_teardown(test_print_text, teardown),
	    cmocka_unit_test_teardown(test_print_json, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
