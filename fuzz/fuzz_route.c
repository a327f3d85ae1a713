/*
 * fuzz_route.c: the route grammar and the table builder (src/route: spec.c
 * route_spec_parse and route_spec_format, table.c route_table_build, the
 * lookups, the MSR ranges KVM's filter gets and the dump of `vmmux
 * routes`), as the command line, the config file and the control API feed
 * them.
 *
 * Input: lines, each a route spec. Each is parsed; a parsed spec's
 * canonical text must parse again to the same text (spec.h). The parsed
 * specs then build one table, with a resolver that knows a fixed set of
 * VMM names (as a config's registry would); on success every spec's first
 * and last keys are looked up, as are events made from the rest of each
 * line's bytes, and the table is dumped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "route/spec.h"
#include "route/table.h"

#define SPECS_MAX 64

static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_quiet();
	devnull = fopen("/dev/null", "w");
	if (devnull == NULL)
		abort();
	return 0;
}

/* The VMMs of the table: the names of the docs' and configs' examples. */
static const char *const names[] = {"uart", "chipset", "smm", "exit",  "mon",	"sink",
				    "a",    "b",       "c",   "fwcfg", "debug", "fault"};
#define NNAMES (sizeof(names) / sizeof(names[0]))

static uint16_t resolve(void *arg, const char *name)
{
	(void)arg;
	for (size_t i = 0; i < NNAMES; i++)
		if (strcmp(names[i], name) == 0)
			return (uint16_t)(i + 1);
	return VMM_ID_NONE;
}

static const char *vmm_name(void *arg, uint16_t id)
{
	(void)arg;
	return id >= 1 && id <= NNAMES ? names[id - 1] : NULL;
}

static void lookup(const struct route_table *t, unsigned type, uint64_t key, uint16_t src)
{
	struct vmmux_event ev = {.type = (uint16_t)type, .key = key, .count = 1, .size = 1};
	uint16_t r = route_lookup_event(t, &ev);
	if (r != ROUTE_NONE && r >= t->nroutes)
		abort();
	ev.src_kind = VMMUX_SRC_VMM;
	ev.src_id = src;
	r = route_lookup_sourced(t, &ev);
	if (r != ROUTE_NONE && r >= t->nroutes)
		abort();
}

static const unsigned kind_type[ROUTE__KINDS] = {
    [ROUTE_IO] = VMMUX_EV_IO,
    [ROUTE_MMIO] = VMMUX_EV_MMIO,
    [ROUTE_MSR] = VMMUX_EV_MSR,
    [ROUTE_HYPERCALL] = VMMUX_EV_HYPERCALL,
    [ROUTE_EXCEPTION] = VMMUX_EV_EXCEPTION,
    [ROUTE_PLATFORM] = VMMUX_EV_PLATFORM,
    [ROUTE_REQUEST] = VMMUX_EV_REQUEST,
    [ROUTE_TYPE] = VMMUX_EV_IO,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = {data, size};
	static struct route_spec specs[SPECS_MAX];
	size_t n = 0;
	struct errbuf e;
	char *line;
	size_t len;
	while (n < SPECS_MAX && (line = fz_line(&f, &len)) != NULL) {
		struct route_spec *s = &specs[n];
		if (route_spec_parse(line, s, &e) == 0) {
			if (s->lo > s->hi || s->hi > route_kind_max(s->kind))
				abort();
			struct route_spec again;
			if (route_spec_parse(s->text, &again, &e) < 0 ||
			    strcmp(again.text, s->text) != 0)
				abort(); /* the canonical text parses to itself */
			char buf[ROUTE_SPEC_TEXT_MAX];
			route_spec_format(s, buf, sizeof(buf));
			if (strcmp(buf, s->text) != 0)
				abort();
			n++;
		} else if (strstr(e.msg, "route") == NULL) {
			abort(); /* a refusal quotes the route */
		}
		free(line);
	}
	struct route_table *t = route_table_build(specs, n, resolve, NULL, &e);
	if (t == NULL)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned type = kind_type[specs[i].kind];
		lookup(t, type, specs[i].lo, (uint16_t)(i % (NNAMES + 2)));
		lookup(t, type, specs[i].hi, (uint16_t)(i % (NNAMES + 2)));
		lookup(t, type, specs[i].hi + 1, 1);
	}
	while (f.n > 0)
		lookup(t, fz_u8(&f) % (VMMUX_EV__COUNT + 1), fz_u64(&f), fz_u16(&f));
	struct route_range ranges[16];
	int nr = route_table_msr_ranges(t, ranges, 16, &e);
	for (int i = 0; i < nr; i++)
		if (ranges[i].lo > ranges[i].hi || (i > 0 && ranges[i].lo <= ranges[i - 1].hi))
			abort();
	route_table_dump(devnull, t, vmm_name, NULL);
	route_table_free(t);
	return 0;
}
