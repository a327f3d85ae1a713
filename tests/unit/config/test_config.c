/*
 * Unit tests of config.c: the JSON layout into struct vmmux_config, the error
 * of every bad field (with its JSON path), the --vmm option, config_finish
 * (PC-like defaults and whole-config checks) and the VMM ids of a finished
 * config, including a routing table built with them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"
#include "route/table.h"
#include "util/log.h"

/* ---------------------------------------------------------------------- */
/* Helpers                                                                  */
/* ---------------------------------------------------------------------- */

static struct vmmux_config *new_config(void)
{
	struct vmmux_config *c = malloc(sizeof(*c));
	assert_non_null(c);
	config_init(c);
	return c;
}

static void drop(struct vmmux_config *c)
{
	config_free(c);
	free(c);
}

/* Load TEXT as "vm.json" into a fresh config; *e gets the message. */
static struct vmmux_config *load(const char *text, int *rc, struct errbuf *e)
{
	struct vmmux_config *c = new_config();
	memset(e, 0, sizeof(*e));
	*rc = config_load_json_string(c, "vm.json", text, NULL, e);
	return c;
}

static void expect_ok(const char *text)
{
	struct errbuf e;
	int rc;
	struct vmmux_config *c = load(text, &rc, &e);
	if (rc != 0)
		fail_msg("'%s' was refused: %s", text, e.msg);
	drop(c);
}

/* TEXT is refused with a message that contains WANT. */
static void expect_error(const char *text, const char *want)
{
	struct errbuf e;
	int rc;
	struct vmmux_config *c = load(text, &rc, &e);
	if (rc != -1)
		fail_msg("'%s' was accepted (wanted an error with \"%s\")", text, want);
	if (strstr(e.msg, want) == NULL)
		fail_msg("'%s': message \"%s\" lacks \"%s\"", text, e.msg, want);
	drop(c);
}

static struct route_spec spec(const char *text)
{
	struct route_spec s;
	struct errbuf e;
	if (route_spec_parse(text, &s, &e) != 0)
		fail_msg("route spec '%s': %s", text, e.msg);
	return s;
}

static void add_route(struct vmmux_config *c, const char *text)
{
	struct route_spec s = spec(text);
	struct errbuf e;
	assert_int_equal(config_add_route(c, &s, &e), 0);
}

static void add_vmm(struct vmmux_config *c, const char *option)
{
	struct vmm_config v;
	struct errbuf e;
	if (config_parse_vmm_option(option, &v, &e) != 0)
		fail_msg("--vmm '%s': %s", option, e.msg);
	int rc = config_add_vmm(c, &v, &e);
	config_vmm_clear(&v);
	if (rc != 0)
		fail_msg("config_add_vmm '%s': %s", option, e.msg);
}

static bool has_route(const struct vmmux_config *c, const char *text)
{
	for (size_t i = 0; i < c->nroutes; i++)
		if (strcmp(c->routes[i].text, text) == 0)
			return true;
	return false;
}

static long vmm_index(const struct vmmux_config *c, const char *name)
{
	for (size_t i = 0; i < c->nvmms; i++)
		if (strcmp(c->vmms[i].name, name) == 0)
			return (long)i;
	return -1;
}

static const char *arg_of(const struct vmm_config *v, const char *key)
{
	for (size_t i = 0; i < v->nargs; i++)
		if (strcmp(v->args[i].key, key) == 0)
			return v->args[i].value;
	return NULL;
}

/* ---------------------------------------------------------------------- */
/* Good configs                                                             */
/* ---------------------------------------------------------------------- */

static void test_init_defaults(void **state)
{
	(void)state;
	struct vmmux_config *c = new_config();
	assert_int_equal(c->mem_bytes, 64u << 20);
	assert_int_equal(c->cpus, 1);
	assert_false(c->irqchip);
	assert_null(c->kernel);
	assert_int_equal(c->load.format, IMAGE_AUTO);
	assert_int_equal(c->load.mode, CPU_MODE_DEFAULT);
	assert_false(c->load.has_entry);
	assert_false(c->load_addr_set);
	assert_null(c->append);
	assert_int_equal(c->nvmms, 0);
	assert_int_equal(c->nroutes, 0);
	assert_true(c->defaults);
	assert_false(c->single_step);
	assert_int_equal(c->nbreakpoints, 0);
	assert_int_equal(c->watchdog_ns, 0);
	assert_false(c->stats);
	assert_null(c->stats_json);
	assert_int_equal(c->log_level, VMMUX_LOG_WARN);
	drop(c);
}

static const char full_json[] =
    "{\n"
    "  \"machine\": {\"mem\": \"128M\", \"cpus\": 2, \"irqchip\": true,\n"
    "              \"cpu_mode\": \"user\"},\n"
    "  \"guest\": {\"kernel\": \"guest.elf\", \"format\": \"raw\",\n"
    "            \"load_addr\": \"0x100000\", \"entry\": 1048592,\n"
    "            \"append\": \"console=ttyS0 quiet\"},\n"
    "  \"vmms\": [\n"
    "    {\"name\": \"uart\", \"role\": \"uart16550\", \"placement\": \"main\",\n"
    "     \"input\": \"stdin\", \"output\": \"stdout\",\n"
    "     \"args\": {\"base\": \"0x3f8\", \"irq\": 4, \"fifo\": true, \"ratio\": 0.5,\n"
    "              \"quiet\": false}},\n"
    "    {\"name\": \"mon\", \"role\": \"monitor\", \"input\": \"none\",\n"
    "     \"output\": \"mon.log\"},\n"
    "    {\"name\": \"log-2\", \"role\": \"monitor\", \"input\": \"/dev/null\",\n"
    "     \"output\": \"stderr\"}\n"
    "  ],\n"
    "  \"routes\": [\"io:0x3f8-0x3ff=uart\", \"msr:0x40001000+0x100=mon;fallback=main\",\n"
    "             \"hypercall:2=mon\"],\n"
    "  \"debug\": {\"single_step\": true, \"breakpoints\": [\"0x100010\", 4096]},\n"
    "  \"watchdog\": \"1500ms\",\n"
    "  \"stats\": true,\n"
    "  \"stats_json\": \"out/stats.json\",\n"
    "  \"log_level\": \"debug\"\n"
    "}\n";

static void test_full_config(void **state)
{
	(void)state;
	struct vmmux_config *c = new_config();
	struct errbuf e;
	int rc = config_load_json_string(c, "vm.json", full_json, "/srv/vm", &e);
	if (rc != 0)
		fail_msg("%s", e.msg);

	assert_int_equal(c->mem_bytes, 128u << 20);
	assert_int_equal(c->cpus, 2);
	assert_true(c->irqchip);
	assert_int_equal(c->load.mode, CPU_MODE_USER);
	assert_string_equal(c->kernel, "/srv/vm/guest.elf");
	assert_int_equal(c->load.format, IMAGE_RAW);
	assert_true(c->load_addr_set);
	assert_int_equal(c->load.load_addr, 0x100000);
	assert_true(c->load.has_entry);
	assert_int_equal(c->load.entry, 0x100010);
	assert_null(c->load.cmdline);
	assert_string_equal(c->append, "console=ttyS0 quiet");

	assert_int_equal(c->nvmms, 3);
	const struct vmm_config *u = &c->vmms[0];
	assert_string_equal(u->name, "uart");
	assert_string_equal(u->role, "uart16550");
	assert_int_equal(u->placement, VMM_IN_PROCESS);
	assert_string_equal(u->input, "stdin");
	assert_string_equal(u->output, "stdout");
	assert_int_equal(u->nargs, 5);
	assert_string_equal(arg_of(u, "base"), "0x3f8");
	assert_string_equal(arg_of(u, "irq"), "4");
	assert_string_equal(arg_of(u, "fifo"), "true");
	assert_string_equal(arg_of(u, "ratio"), "0.5");
	assert_string_equal(arg_of(u, "quiet"), "false");
	const struct vmm_config *m = &c->vmms[1];
	assert_string_equal(m->name, "mon");
	assert_string_equal(m->role, "monitor");
	assert_null(m->input);
	assert_string_equal(m->output, "/srv/vm/mon.log");
	assert_int_equal(m->nargs, 0);
	const struct vmm_config *l = &c->vmms[2];
	assert_string_equal(l->name, "log-2");
	assert_string_equal(l->input, "/dev/null");
	assert_string_equal(l->output, "stderr");

	assert_int_equal(c->nroutes, 3);
	assert_int_equal(c->routes[0].kind, ROUTE_IO);
	assert_int_equal(c->routes[0].lo, 0x3f8);
	assert_int_equal(c->routes[0].hi, 0x3ff);
	assert_string_equal(c->routes[0].vmm, "uart");
	assert_int_equal(c->routes[1].kind, ROUTE_MSR);
	assert_int_equal(c->routes[1].lo, 0x40001000);
	assert_int_equal(c->routes[1].hi, 0x400010ff);
	assert_true(c->routes[1].opts & ROUTE_OPT_FALLBACK);
	assert_string_equal(c->routes[1].fallback, "main");
	assert_int_equal(c->routes[2].kind, ROUTE_HYPERCALL);
	assert_int_equal(c->routes[2].lo, 2);
	assert_true(c->defaults); /* vmms and routes add to the defaults */

	assert_true(c->single_step);
	assert_int_equal(c->nbreakpoints, 2);
	assert_int_equal(c->breakpoints[0], 0x100010);
	assert_int_equal(c->breakpoints[1], 4096);
	assert_int_equal(c->watchdog_ns, 1500000000ull);
	assert_true(c->stats);
	assert_string_equal(c->stats_json, "/srv/vm/out/stats.json");
	assert_int_equal(c->log_level, VMMUX_LOG_DEBUG);
	drop(c);
}

static void test_empty_object_changes_nothing(void **state)
{
	(void)state;
	struct errbuf e;
	int rc;
	struct vmmux_config *c = load("{}", &rc, &e);
	assert_int_equal(rc, 0);
	struct vmmux_config *d = new_config();
	/* Every field is as config_init left it. */
	assert_memory_equal(c, d, sizeof(*c));
	drop(c);
	drop(d);
}

static void test_mem_forms(void **state)
{
	(void)state;
	static const struct {
		const char *json;
		uint64_t bytes;
	} cases[] = {
	    {"{\"machine\": {\"mem\": \"64M\"}}", 64ull << 20},
	    {"{\"machine\": {\"mem\": \"1G\"}}", 1ull << 30},
	    {"{\"machine\": {\"mem\": \"4G\"}}", 4ull << 30},
	    {"{\"machine\": {\"mem\": \"1M\"}}", 1ull << 20},
	    {"{\"machine\": {\"mem\": \"4096K\"}}", 4ull << 20},
	    {"{\"machine\": {\"mem\": \"256\"}}", 256ull << 20}, /* bare: MiB */
	    {"{\"machine\": {\"mem\": 32}}", 32ull << 20},	 /* integer: MiB */
	    {"{\"machine\": {\"mem\": \"2MiB\"}}", 2ull << 20},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct errbuf e;
		int rc;
		struct vmmux_config *c = load(cases[i].json, &rc, &e);
		if (rc != 0)
			fail_msg("%s: %s", cases[i].json, e.msg);
		assert_int_equal(c->mem_bytes, cases[i].bytes);
		drop(c);
	}
}

static void test_relative_paths(void **state)
{
	(void)state;
	static const char text[] =
	    "{\"guest\": {\"kernel\": \"k.elf\"}, \"stats_json\": \"/abs/s.json\"}";
	struct errbuf e;
	struct vmmux_config *c = new_config();
	/* No basedir: as written. */
	assert_int_equal(config_load_json_string(c, "vm.json", text, NULL, &e), 0);
	assert_string_equal(c->kernel, "k.elf");
	assert_string_equal(c->stats_json, "/abs/s.json");
	/* A basedir with a trailing slash; absolute paths unchanged. A second
	 * load replaces the strings (no leak under ASan). */
	assert_int_equal(config_load_json_string(c, "vm.json", text, "/etc/", &e), 0);
	assert_string_equal(c->kernel, "/etc/k.elf");
	assert_string_equal(c->stats_json, "/abs/s.json");
	drop(c);
}

static void test_log_timestamps_key(void **state)
{
	(void)state;
	struct errbuf e;
	int rc;
	struct vmmux_config *c = load("{\"stats\": false}", &rc, &e);
	assert_int_equal(rc, 0);
	assert_false(c->log_timestamps);
	drop(c);
	c = load("{\"log_timestamps\": true}", &rc, &e);
	assert_int_equal(rc, 0);
	assert_true(c->log_timestamps);
	drop(c);
	expect_error("{\"log_timestamps\": 1}", "vm.json: log_timestamps: expected true or false");
}

static void test_defaults_key(void **state)
{
	(void)state;
	struct errbuf e;
	int rc;
	struct vmmux_config *c;

	c = load("{\"stats\": false}", &rc, &e);
	assert_int_equal(rc, 0);
	assert_true(c->defaults);
	drop(c);
	/* A file's VMMs and routes add to the defaults, as --vmm and --route
	 * do: only "defaults": false (--no-defaults) leaves them out. */
	c = load("{\"routes\": [\"io:0x80=main\"]}", &rc, &e);
	assert_int_equal(rc, 0);
	assert_true(c->defaults);
	drop(c);
	c = load("{\"vmms\": [{\"name\": \"m\", \"role\": \"monitor\"}]}", &rc, &e);
	assert_int_equal(rc, 0);
	assert_true(c->defaults);
	drop(c);
	/* "defaults" wins wherever it is in the object. */
	c = load("{\"defaults\": false, \"routes\": [\"io:0x80=main\"]}", &rc, &e);
	assert_int_equal(rc, 0);
	assert_false(c->defaults);
	drop(c);
	c = load("{\"routes\": [\"io:0x80=main\"], \"defaults\": true}", &rc, &e);
	assert_int_equal(rc, 0);
	assert_true(c->defaults);
	drop(c);
	c = load("{\"defaults\": false}", &rc, &e);
	assert_int_equal(rc, 0);
	assert_false(c->defaults);
	drop(c);
}

static void test_lists_append(void **state)
{
	(void)state;
	struct vmmux_config *c = new_config();
	struct errbuf e;
	add_vmm(c, "first=monitor");
	add_route(c, "io:0x80=first");
	assert_int_equal(config_add_breakpoint(c, 0x1000, &e), 0);
	const char *text = "{\"vmms\": [{\"name\": \"second\", \"role\": \"monitor\"}],"
			   " \"routes\": [\"io:0x81=second\"],"
			   " \"debug\": {\"breakpoints\": [8192]}}";
	assert_int_equal(config_load_json_string(c, "vm.json", text, NULL, &e), 0);
	assert_int_equal(c->nvmms, 2);
	assert_string_equal(c->vmms[0].name, "first");
	assert_string_equal(c->vmms[1].name, "second");
	assert_int_equal(c->nroutes, 2);
	assert_string_equal(c->routes[1].vmm, "second");
	assert_int_equal(c->nbreakpoints, 2);
	assert_int_equal(c->breakpoints[1], 8192);
	/* A name of the file clashing with one already in C is refused. */
	text = "{\"vmms\": [{\"name\": \"first\", \"role\": \"monitor\"}]}";
	assert_int_equal(config_load_json_string(c, "vm.json", text, NULL, &e), -1);
	assert_string_equal(e.msg, "vm.json: vmms[0].name: 'first' is already used");
	drop(c);
}

/* ---------------------------------------------------------------------- */
/* Bad configs: every error names the file, the JSON path and the problem   */
/* ---------------------------------------------------------------------- */

static void test_exact_messages(void **state)
{
	(void)state;
	static const struct {
		const char *json, *msg;
	} cases[] = {
	    {"{\"machine\": {\"mem\": true}}",
	     "vm.json: machine.mem: expected a size string such as \"64M\" or an integer "
	     "number of MiB, got true"},
	    {"{\"vmms\": [{\"name\": \"uart\", \"role\": \"uart16550\"},"
	     " {\"name\": \"uart\", \"role\": \"monitor\"}]}",
	     "vm.json: vmms[1].name: 'uart' is already used"},
	    {"{\"routes\": [\"io:0x3f8=uart\", \"io:0x60=kbd\", \"io:0x10000=x\"]}",
	     "vm.json: routes[2]: route 'io:0x10000=x': port 0x10000 is beyond 0xffff"},
	    {"{\"vmms\": [{\"name\": \"a\", \"role\": \"r\", \"placement\": \"process\"}]}",
	     "vm.json: vmms[0].placement: placement 'process' is not known (main, parallel)"},
	    {"{\"machine\": {\"mem\": \"12X\"}}",
	     "vm.json: machine.mem: '12X': unknown size suffix 'X' (use K, M, G or T)"},
	    {"{\"machine\": {\"ram\": \"64M\"}}",
	     "vm.json: machine.ram: unknown key (machine takes mem, cpus, irqchip, cpu_mode, "
	     "fw_cfg)"},
	    {"[1, 2]", "vm.json: expected a JSON object at the top level, got an array"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct errbuf e;
		int rc;
		struct vmmux_config *c = load(cases[i].json, &rc, &e);
		assert_int_equal(rc, -1);
		assert_string_equal(e.msg, cases[i].msg);
		drop(c);
	}
}

static void test_unknown_keys(void **state)
{
	(void)state;
	expect_error("{\"memory\": \"64M\"}", "vm.json: memory: unknown key (the top level takes "
					      "machine, guest, vmms, routes, debug");
	expect_error("{\"guest\": {\"kernl\": \"k\"}}", "vm.json: guest.kernl: unknown key");
	expect_error("{\"vmms\": [{\"name\": \"a\", \"role\": \"r\", \"colour\": 1}]}",
		     "vm.json: vmms[0].colour: unknown key (a VMM takes name, role, placement");
	expect_error("{\"debug\": {\"watch\": 1}}", "vm.json: debug.watch: unknown key");
	/* Key names are case-sensitive. */
	expect_error("{\"Stats\": true}", "vm.json: Stats: unknown key");
}

static void test_wrong_types(void **state)
{
	(void)state;
	expect_error("{\"machine\": []}", "vm.json: machine: expected an object, got an array");
	expect_error("{\"machine\": {\"mem\": 1.5}}", "vm.json: machine.mem: expected a size "
						      "string such as \"64M\" or an integer "
						      "number of MiB, got 1.5");
	expect_error("{\"machine\": {\"irqchip\": \"yes\"}}",
		     "vm.json: machine.irqchip: expected true or false, got \"yes\"");
	expect_error("{\"machine\": {\"cpus\": true}}",
		     "vm.json: machine.cpus: expected an integer or a number string");
	expect_error("{\"machine\": {\"cpu_mode\": 3}}",
		     "vm.json: machine.cpu_mode: expected a string, got 3");
	expect_error("{\"guest\": \"k.elf\"}", "vm.json: guest: expected an object, got \"k.elf\"");
	expect_error("{\"guest\": {\"kernel\": 5}}",
		     "vm.json: guest.kernel: expected a string, got 5");
	expect_error("{\"guest\": {\"entry\": true}}",
		     "vm.json: guest.entry: expected an integer or a number string such as "
		     "\"0x7c00\", got true");
	expect_error("{\"guest\": {\"append\": null}}",
		     "vm.json: guest.append: expected a string, got null");
	expect_error("{\"vmms\": {}}", "vm.json: vmms: expected an array of VMM objects, got an "
				       "object");
	expect_error("{\"vmms\": [\"uart\"]}",
		     "vm.json: vmms[0]: expected an object, got \"uart\"");
	expect_error("{\"vmms\": [{\"name\": 1, \"role\": \"r\"}]}",
		     "vm.json: vmms[0].name: expected a string, got 1");
	expect_error("{\"vmms\": [{\"name\": \"a\", \"role\": \"r\", \"output\": 3}]}",
		     "vm.json: vmms[0].output: expected a string, got 3");
	expect_error("{\"vmms\": [{\"name\": \"a\", \"role\": \"r\", \"args\": []}]}",
		     "vm.json: vmms[0].args: expected an object, got an array");
	expect_error("{\"vmms\": [{\"name\": \"a\", \"role\": \"r\", \"args\": {\"k\": null}}]}",
		     "vm.json: vmms[0].args.k: expected a string, a number or a boolean, got "
		     "null");
	expect_error("{\"vmms\": [{\"name\": \"a\", \"role\": \"r\", \"args\": {\"k\": [1]}}]}",
		     "vm.json: vmms[0].args.k: expected a string, a number or a boolean, got "
		     "an array");
	expect_error("{\"routes\": \"io:0x80=main\"}",
		     "vm.json: routes: expected an array of route strings, got \"io:0x80=main\"");
	expect_error("{\"routes\": [5]}", "vm.json: routes[0]: expected a route string such as "
					  "\"io:0x3f8-0x3ff=uart\", got 5");
	expect_error("{\"debug\": {\"single_step\": 1}}",
		     "vm.json: debug.single_step: expected true or false, got 1");
	expect_error("{\"debug\": {\"breakpoints\": \"0x1000\"}}",
		     "vm.json: debug.breakpoints: expected an array of addresses");
	expect_error("{\"debug\": {\"breakpoints\": [{}]}}",
		     "vm.json: debug.breakpoints[0]: expected an integer or a number string");
	expect_error("{\"watchdog\": 5}",
		     "vm.json: watchdog: expected a duration string such as \"5s\", got 5");
	expect_error("{\"stats\": \"yes\"}", "vm.json: stats: expected true or false, got \"yes\"");
	expect_error("{\"stats_json\": false}",
		     "vm.json: stats_json: expected a string, got false");
	expect_error("{\"log_level\": 2}", "vm.json: log_level: expected a string, got 2");
	expect_error("{\"defaults\": \"no\"}", "vm.json: defaults: expected true or false");
	expect_error("\"text\"", "vm.json: line 1 column");
}

static void test_bad_values(void **state)
{
	(void)state;
	/* sizes */
	expect_error("{\"machine\": {\"mem\": \"1000K\"}}",
		     "vm.json: machine.mem: 1000 KiB is below the minimum of 1 MiB");
	expect_error("{\"machine\": {\"mem\": \"8G\"}}",
		     "vm.json: machine.mem: 8 GiB is above the maximum of 4 GiB");
	expect_error("{\"machine\": {\"mem\": 8192}}",
		     "vm.json: machine.mem: 8 GiB is above the maximum of 4 GiB");
	expect_error("{\"machine\": {\"mem\": \"1025K\"}}",
		     "vm.json: machine.mem: 1025 KiB is not a multiple of 4 KiB");
	expect_error("{\"machine\": {\"mem\": 0}}",
		     "vm.json: machine.mem: 0 bytes is below the minimum of 1 MiB");
	expect_error("{\"machine\": {\"mem\": -64}}", "vm.json: machine.mem: -64 is negative");
	expect_error("{\"machine\": {\"mem\": \"\"}}", "vm.json: machine.mem: empty value");
	expect_error("{\"machine\": {\"mem\": \"99999999999999999999\"}}",
		     "vm.json: machine.mem: '99999999999999999999' is too large");
	expect_error("{\"machine\": {\"mem\": 9223372036854775807}}",
		     "vm.json: machine.mem: 9223372036854775807 MiB is too large");
	/* cpus */
	expect_error("{\"machine\": {\"cpus\": 0}}",
		     "vm.json: machine.cpus: 0 is not a valid number of vCPUs (1 to 64)");
	expect_error("{\"machine\": {\"cpus\": 65}}",
		     "vm.json: machine.cpus: 65 is not a valid number of vCPUs (1 to 64)");
	expect_error("{\"machine\": {\"cpus\": \"two\"}}",
		     "vm.json: machine.cpus: 'two' is not a number");
	expect_error("{\"machine\": {\"cpus\": -1}}", "vm.json: machine.cpus: -1 is negative");
	/* enumerations */
	expect_error("{\"machine\": {\"cpu_mode\": \"v86\"}}",
		     "vm.json: machine.cpu_mode: CPU mode 'v86' is not known (real, protected, "
		     "long, user)");
	expect_error("{\"guest\": {\"format\": \"elf\"}}",
		     "vm.json: guest.format: format 'elf' is not known (auto, raw)");
	expect_error("{\"log_level\": \"loud\"}",
		     "vm.json: log_level: log level 'loud' is not known (error, warn, info, "
		     "debug)");
	/* guest */
	expect_error("{\"guest\": {\"kernel\": \"\"}}", "vm.json: guest.kernel: is empty");
	expect_error("{\"guest\": {\"load_addr\": \"0xZZ\"}}",
		     "vm.json: guest.load_addr: '0xZZ' is not a number");
	expect_error("{\"guest\": {\"entry\": -5}}", "vm.json: guest.entry: -5 is negative");
	/* durations, paths */
	expect_error("{\"watchdog\": \"5\"}",
		     "vm.json: watchdog: '5': a duration needs a unit (ns, us, ms or s)");
	expect_error("{\"watchdog\": \"5h\"}", "vm.json: watchdog: '5h': unknown duration unit");
	expect_error("{\"stats_json\": \"\"}", "vm.json: stats_json: is empty");
	/* routes */
	expect_error("{\"routes\": [\"io:0x80=main\", \"bogus\"]}", "vm.json: routes[1]: route "
								    "'bogus'");
	expect_error("{\"routes\": [\"io:0x3f8-0x3f0=uart\"]}",
		     "vm.json: routes[0]: route 'io:0x3f8-0x3f0=uart': range end");
}

static void test_bad_vmms(void **state)
{
	(void)state;
	expect_error("{\"vmms\": [{\"role\": \"monitor\"}]}",
		     "vm.json: vmms[0].name: missing (every VMM needs a name)");
	expect_error("{\"vmms\": [{\"name\": \"a\"}]}", "vm.json: vmms[0].role: missing");
	expect_error("{\"vmms\": [{\"name\": \"Bad!\", \"role\": \"r\"}]}",
		     "vm.json: vmms[0].name: 'Bad!' is not valid");
	expect_error("{\"vmms\": [{\"name\": \"\", \"role\": \"r\"}]}",
		     "vm.json: vmms[0].name: '' is not valid");
	expect_error("{\"vmms\": [{\"name\": \"a23456789012345678901234567890123\", \"role\": "
		     "\"r\"}]}",
		     "vm.json: vmms[0].name: 'a234567890123456789012345678901...' is too long "
		     "(at most 31 characters)");
	expect_error("{\"vmms\": [{\"name\": \"main\", \"role\": \"r\"}]}",
		     "vm.json: vmms[0].name: 'main' is reserved for the main VMM");
	expect_error("{\"vmms\": [{\"name\": \"a\", \"role\": \"\"}]}",
		     "vm.json: vmms[0].role: the role is empty");
	expect_error("{\"vmms\": [{\"name\": \"a\", \"role\": "
		     "\"r2345678901234567890123456789012345\"}]}",
		     "vm.json: vmms[0].role: role 'r234567890123456789012345678901...' is too "
		     "long");
	expect_error("{\"vmms\": [{\"name\": \"a\", \"role\": \"r\", \"input\": \"stdout\"}]}",
		     "vm.json: vmms[0].input: 'stdout' cannot be an input (use stdin, none or a "
		     "path)");
	expect_error("{\"vmms\": [{\"name\": \"a\", \"role\": \"r\", \"input\": \"\"}]}",
		     "vm.json: vmms[0].input: input is empty");
	expect_error("{\"vmms\": [{\"name\": \"a\", \"role\": \"r\", \"output\": \"stdin\"}]}",
		     "vm.json: vmms[0].output: 'stdin' cannot be an output");
	expect_error("{\"vmms\": [{\"name\": \"a\", \"role\": \"r\", \"args\": {\"input\": "
		     "\"x\"}}]}",
		     "vm.json: vmms[0].args.input: 'input' is a field of the VMM, not an "
		     "argument: give vmms[0].input");
	expect_error("{\"vmms\": [{\"name\": \"a\", \"role\": \"r\", \"args\": {\"\": 1}}]}",
		     "vm.json: vmms[0].args: an argument has an empty key");
	/* Too many args: 17 keys. */
	char text[1024];
	int n = snprintf(text, sizeof(text),
			 "{\"vmms\": [{\"name\": \"a\", \"role\": \"r\", "
			 "\"args\": {");
	for (int i = 0; i < VMM_ARGS_MAX + 1; i++)
		n += snprintf(text + n, sizeof(text) - (size_t)n, "%s\"k%d\": %d", i ? ", " : "", i,
			      i);
	snprintf(text + n, sizeof(text) - (size_t)n, "}}]}");
	expect_error(text, "vm.json: vmms[0].args: 17 arguments, at most 16");
	/* Exactly VMM_ARGS_MAX is fine. */
	n = snprintf(text, sizeof(text),
		     "{\"vmms\": [{\"name\": \"a\", \"role\": \"r\", "
		     "\"args\": {");
	for (int i = 0; i < VMM_ARGS_MAX; i++)
		n += snprintf(text + n, sizeof(text) - (size_t)n, "%s\"k%d\": %d", i ? ", " : "", i,
			      i);
	snprintf(text + n, sizeof(text) - (size_t)n, "}}]}");
	expect_ok(text);
}

static void test_too_many(void **state)
{
	(void)state;
	/* Five breakpoints: the fifth is refused with its path. */
	expect_error("{\"debug\": {\"breakpoints\": [1, 2, 3, 4, 5]}}",
		     "vm.json: debug.breakpoints[4]: at most 4 hardware breakpoints");
	expect_ok("{\"debug\": {\"breakpoints\": [1, 2, 3, \"0x4\"]}}");

	/* 64 VMMs: one more than CONFIG_VMMS_MAX. */
	size_t cap = 64 * 64 + 64;
	char *text = malloc(cap);
	assert_non_null(text);
	size_t n = (size_t)snprintf(text, cap, "{\"vmms\": [");
	for (int i = 0; i < CONFIG_VMMS_MAX + 1; i++)
		n += (size_t)snprintf(text + n, cap - n, "%s{\"name\": \"v%d\", \"role\": \"r\"}",
				      i ? ", " : "", i);
	snprintf(text + n, cap - n, "]}");
	expect_error(text, "vm.json: vmms[63]: too many VMMs (at most 63 besides main)");
	free(text);

	/* 1025 routes: one more than CONFIG_ROUTES_MAX. */
	cap = 32 * (CONFIG_ROUTES_MAX + 1) + 64;
	text = malloc(cap);
	assert_non_null(text);
	n = (size_t)snprintf(text, cap, "{\"routes\": [");
	for (int i = 0; i < CONFIG_ROUTES_MAX + 1; i++)
		n += (size_t)snprintf(text + n, cap - n, "%s\"io:%d=main\"", i ? ", " : "", i);
	snprintf(text + n, cap - n, "]}");
	expect_error(text, "vm.json: routes[1024]: too many routes (at most 1024)");
	free(text);
}

static void test_syntax_errors(void **state)
{
	(void)state;
	/* A missing ':' on line 3. */
	expect_error("{\n  \"machine\": {\n    \"mem\" \"64M\"\n  }\n}",
		     "vm.json: line 3 column 15: JSON syntax error: ");
	expect_error("{\"stats\": true,}", "vm.json: line 1 column 16: JSON syntax error: ");
	expect_error("", "vm.json: line 1 column 0: JSON syntax error: ");
	/* Duplicate keys are refused, not silently merged. */
	expect_error("{\"stats\": true,\n \"stats\": false}",
		     "vm.json: line 2 column 8: JSON syntax error: duplicate object key");
	/* A value too large for a JSON integer. */
	expect_error("{\"machine\": {\"cpus\": 99999999999999999999999}}",
		     "vm.json: line 1 column 44: JSON syntax error: too big integer");
}

/* Mutations of a good config (bytes replaced, inserted, cut) never crash the
 * loader; each is accepted or refused with a message naming the file. */
static void test_mutations(void **state)
{
	(void)state;
	static const char alphabet[] = "{}[]:,\"\\ 0x1aZ-.e+tfn\n\t\x01\xff";
	size_t len = strlen(full_json);
	char *buf = malloc(len + 8);
	assert_non_null(buf);
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	unsigned accepted = 0, refused = 0;
	for (int i = 0; i < 3000; i++) {
		memcpy(buf, full_json, len + 1);
		size_t n = len;
		for (int k = 0; k < 1 + i % 3; k++) {
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			size_t pos = (size_t)(seed >> 33) % n;
			char ch = alphabet[(seed >> 17) % (sizeof(alphabet) - 1)];
			switch ((seed >> 8) % 3) {
			case 0: /* replace */
				buf[pos] = ch;
				break;
			case 1: /* insert */
				memmove(buf + pos + 1, buf + pos, n - pos + 1);
				buf[pos] = ch;
				n++;
				break;
			default: /* cut the rest */
				buf[pos] = '\0';
				n = pos > 0 ? pos : 1;
				break;
			}
			if (n >= len + 4)
				break;
		}
		struct vmmux_config *c = new_config();
		struct errbuf e;
		memset(&e, 0, sizeof(e));
		int rc = config_load_json_string(c, "vm.json", buf, "/srv", &e);
		if (rc == 0) {
			accepted++;
		} else {
			assert_int_equal(rc, -1);
			if (strncmp(e.msg, "vm.json: ", 9) != 0)
				fail_msg("mutation %d: message \"%s\"", i, e.msg);
			refused++;
		}
		drop(c);
	}
	free(buf);
	/* Both outcomes occur: the mutations reach past the syntax check. */
	assert_true(accepted > 0);
	assert_true(refused > 0);
}

/* Errors from files: name the path; the file's directory is the base. */
static void test_files(void **state)
{
	(void)state;
	char dir[] = "/tmp/vmmux-test-config-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[128], bad[128], nul[128];
	snprintf(path, sizeof(path), "%s/vm.json", dir);
	snprintf(bad, sizeof(bad), "%s/bad.json", dir);
	snprintf(nul, sizeof(nul), "%s/nul.json", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("{\"guest\": {\"kernel\": \"guest.elf\"},\n"
	      " \"vmms\": [{\"name\": \"m\", \"role\": \"monitor\", \"output\": \"m.log\"}]}\n",
	      f);
	fclose(f);
	f = fopen(bad, "w");
	assert_non_null(f);
	fputs("{\"machine\": {\"cpus\": 0}}", f);
	fclose(f);
	f = fopen(nul, "w");
	assert_non_null(f);
	fwrite("{}\0{", 1, 4, f);
	fclose(f);

	struct vmmux_config *c = new_config();
	struct errbuf e;
	assert_int_equal(config_load_json(c, path, &e), 0);
	char want[300];
	snprintf(want, sizeof(want), "%s/guest.elf", dir);
	assert_string_equal(c->kernel, want);
	snprintf(want, sizeof(want), "%s/m.log", dir);
	assert_string_equal(c->vmms[0].output, want);

	assert_int_equal(config_load_json(c, bad, &e), -1);
	snprintf(want, sizeof(want), "%s: machine.cpus: 0 is not a valid number", bad);
	assert_non_null(strstr(e.msg, want));

	assert_int_equal(config_load_json(c, nul, &e), -1);
	snprintf(want, sizeof(want), "%s: contains a NUL byte at offset 2", nul);
	assert_non_null(strstr(e.msg, want));

	assert_int_equal(config_load_json(c, dir, &e), -1);
	snprintf(want, sizeof(want), "%s: is a directory", dir);
	assert_non_null(strstr(e.msg, want));

	char missing[128];
	snprintf(missing, sizeof(missing), "%s/none.json", dir);
	assert_int_equal(config_load_json(c, missing, &e), -1);
	snprintf(want, sizeof(want), "%s: No such file or directory", missing);
	assert_string_equal(e.msg, want);
	drop(c);

	unlink(path);
	unlink(bad);
	unlink(nul);
	rmdir(dir);
}

/* ---------------------------------------------------------------------- */
/* --vmm NAME=ROLE[,key=value...]                                           */
/* ---------------------------------------------------------------------- */

static void test_vmm_option_good(void **state)
{
	(void)state;
	struct vmm_config v;
	struct errbuf e;

	assert_int_equal(config_parse_vmm_option("mon=monitor", &v, &e), 0);
	assert_string_equal(v.name, "mon");
	assert_string_equal(v.role, "monitor");
	assert_int_equal(v.placement, VMM_IN_PROCESS);
	assert_null(v.input);
	assert_null(v.output);
	assert_int_equal(v.nargs, 0);
	config_vmm_clear(&v);

	assert_int_equal(config_parse_vmm_option("com2=uart16550,input=stdin,output=stdout,"
						 "base=0x2f8,irq=3,label=",
						 &v, &e),
			 0);
	assert_string_equal(v.name, "com2");
	assert_string_equal(v.role, "uart16550");
	assert_string_equal(v.input, "stdin");
	assert_string_equal(v.output, "stdout");
	assert_int_equal(v.nargs, 3);
	assert_string_equal(v.args[0].key, "base");
	assert_string_equal(v.args[0].value, "0x2f8");
	assert_string_equal(v.args[1].key, "irq");
	assert_string_equal(v.args[1].value, "3");
	assert_string_equal(v.args[2].key, "label");
	assert_string_equal(v.args[2].value, "");
	config_vmm_clear(&v);

	assert_int_equal(config_parse_vmm_option("log_1=monitor,input=none,output=none,"
						 "placement=main,path=a=b",
						 &v, &e),
			 0);
	assert_null(v.input);
	assert_null(v.output);
	assert_int_equal(v.nargs, 1);
	assert_string_equal(v.args[0].value, "a=b"); /* split at the first '=' */
	config_vmm_clear(&v);

	assert_int_equal(config_parse_vmm_option("t=monitor,input=in.txt,output=stderr", &v, &e),
			 0);
	assert_string_equal(v.input, "in.txt");
	assert_string_equal(v.output, "stderr");
	config_vmm_clear(&v);
}

static void test_vmm_option_bad(void **state)
{
	(void)state;
	static const struct {
		const char *opt, *msg;
	} cases[] = {
	    {"mon", "expected NAME=ROLE[,key=value...]"},
	    {"=monitor", "the VMM name is missing: expected NAME=ROLE[,key=value...]"},
	    {"mon=", "the role is missing: expected NAME=ROLE[,key=value...]"},
	    {"mon=,input=stdin", "the role is missing"},
	    {"Mon=monitor", "VMM name 'Mon' is not valid: use 1 to 31 characters among a-z, "
			    "0-9, '_' and '-'"},
	    {"main=monitor", "VMM name 'main' is reserved for the main VMM"},
	    {"mon=monitor,k", "argument 'k' needs a value (key=value)"},
	    {"mon=monitor,,k=v", "empty argument (two commas, or a comma at the end)"},
	    {"mon=monitor,k=v,", "empty argument"},
	    {"mon=monitor,=v", "argument '=v' has no key"},
	    {"mon=monitor,k=1,k=2", "argument 'k' is given twice"},
	    {"mon=monitor,input=a,input=b", "input= is given twice"},
	    {"mon=monitor,output=a,output=none", "output= is given twice"},
	    {"mon=monitor,input=stdout", "'stdout' cannot be an input"},
	    {"mon=monitor,output=stdin", "'stdin' cannot be an output"},
	    {"mon=monitor,input=", "input is empty (use stdin, none or a path)"},
	    {"mon=monitor,placement=process", "placement 'process' is not known (main, parallel)"},
	    {"mon=monitor,memory=0x1000", "memory window '0x1000': expected all, A-B or A+SIZE"},
	    {"mon=monitor,memory=0x1001+0x1000", "is not 4 KiB-aligned"},
	    {"mon=monitor,memory=0x2000-0x1000", "the end is below the start"},
	    {"mon=monitor,raise=irq:300",
	     "grant 'irq:300': the IRQ line is a number from 0 to 255"},
	    {"mon=monitor,raise=platform:nap", "grant 'platform:nap': unknown platform event"},
	    {"mon=monitor,raise=bogus", "grant 'bogus': expected irq:LINE[:edge|:level]"},
	    {"mon=monitor,timeout=5", "a duration needs a unit"},
	    {"mon=monitor,timeout=1s,timeout=2s", "timeout= is given twice"},
	    {"mon=monitor,program=", "program= is empty"},
	    {"mon=monitor,a=1,b=2,c=3,d=4,e=5,f=6,g=7,h=8,i=9,j=10,k=11,l=12,m=13,n=14,"
	     "o=15,p=16,q=17",
	     "too many arguments (at most 16)"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vmm_config v;
		struct errbuf e;
		memset(&e, 0, sizeof(e));
		if (config_parse_vmm_option(cases[i].opt, &v, &e) != -1)
			fail_msg("'%s' was accepted", cases[i].opt);
		if (strstr(e.msg, cases[i].msg) == NULL)
			fail_msg("'%s': \"%s\" lacks \"%s\"", cases[i].opt, e.msg, cases[i].msg);
		/* Nothing is left to free; clearing again is harmless. */
		assert_int_equal(v.nargs, 0);
		assert_null(v.input);
		assert_null(v.output);
		config_vmm_clear(&v);
	}
}

static void test_add_limits(void **state)
{
	(void)state;
	struct vmmux_config *c = new_config();
	struct errbuf e;
	struct vmm_config v;

	add_vmm(c, "mon=monitor");
	assert_int_equal(config_parse_vmm_option("mon=uart16550", &v, &e), 0);
	assert_int_equal(config_add_vmm(c, &v, &e), -1);
	assert_string_equal(e.msg, "VMM name 'mon' is already used");
	config_vmm_clear(&v);
	assert_int_equal(c->nvmms, 1);

	/* A hand-made config with a bad name or a duplicate argument. */
	memset(&v, 0, sizeof(v));
	memcpy(v.name, "UP", 3);
	memcpy(v.role, "monitor", 8);
	assert_int_equal(config_add_vmm(c, &v, &e), -1);
	assert_non_null(strstr(e.msg, "VMM name 'UP' is not valid"));
	memcpy(v.name, "x", 2);
	char k[] = "k", v1[] = "1", v2[] = "2";
	v.nargs = 2;
	v.args[0].key = k;
	v.args[0].value = v1;
	v.args[1].key = k;
	v.args[1].value = v2;
	assert_int_equal(config_add_vmm(c, &v, &e), -1);
	assert_string_equal(e.msg, "VMM 'x': argument 'k' is given twice");
	v.nargs = VMM_ARGS_MAX + 1;
	assert_int_equal(config_add_vmm(c, &v, &e), -1);
	assert_string_equal(e.msg, "VMM 'x': 17 arguments, at most 16");

	/* The copy owns its strings: the caller's buffers may change. */
	v.nargs = 1;
	assert_int_equal(config_add_vmm(c, &v, &e), 0);
	v1[0] = '9';
	assert_string_equal(c->vmms[1].args[0].value, "1");

	for (size_t i = c->nvmms; i < CONFIG_VMMS_MAX; i++) {
		char opt[64];
		snprintf(opt, sizeof(opt), "v%zu=monitor", i);
		add_vmm(c, opt);
	}
	assert_int_equal(c->nvmms, CONFIG_VMMS_MAX);
	assert_int_equal(config_parse_vmm_option("last=monitor", &v, &e), 0);
	assert_int_equal(config_add_vmm(c, &v, &e), -1);
	assert_string_equal(e.msg, "too many VMMs (at most 63 besides main)");
	config_vmm_clear(&v);

	struct route_spec s = spec("io:0x80=main");
	for (size_t i = 0; i < CONFIG_ROUTES_MAX; i++)
		assert_int_equal(config_add_route(c, &s, &e), 0);
	assert_int_equal(config_add_route(c, &s, &e), -1);
	assert_string_equal(e.msg, "too many routes (at most 1024)");

	for (size_t i = 0; i < CONFIG_BREAKPOINTS_MAX; i++)
		assert_int_equal(config_add_breakpoint(c, i, &e), 0);
	assert_int_equal(config_add_breakpoint(c, 9, &e), -1);
	assert_non_null(strstr(e.msg, "at most 4 hardware breakpoints"));
	drop(c);
}

static void test_field_parsers(void **state)
{
	(void)state;
	struct errbuf e;
	enum image_format f;
	enum cpu_mode m;
	int l;
	assert_int_equal(config_parse_format("auto", &f, &e), 0);
	assert_int_equal(f, IMAGE_AUTO);
	assert_int_equal(config_parse_format("raw", &f, &e), 0);
	assert_int_equal(f, IMAGE_RAW);
	assert_int_equal(config_parse_format("RAW", &f, &e), -1);
	static const struct {
		const char *name;
		enum cpu_mode mode;
	} modes[] = {{"real", CPU_MODE_REAL},
		     {"protected", CPU_MODE_PROT32},
		     {"long", CPU_MODE_LONG},
		     {"user", CPU_MODE_USER}};
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(config_parse_cpu_mode(modes[i].name, &m, &e), 0);
		assert_int_equal(m, modes[i].mode);
	}
	assert_int_equal(config_parse_cpu_mode("", &m, &e), -1);
	assert_int_equal(config_parse_log_level("info", &l, &e), 0);
	assert_int_equal(l, VMMUX_LOG_INFO);
	assert_int_equal(config_parse_log_level("error", &l, &e), 0);
	assert_int_equal(l, VMMUX_LOG_ERROR);
	assert_int_equal(config_check_mem(MEM_MIN, &e), 0);
	assert_int_equal(config_check_mem(MEM_MAX, &e), 0);
	assert_int_equal(config_check_mem(MEM_MAX + 4096, &e), -1);
	assert_string_equal(e.msg, "4194308 KiB is above the maximum of 4 GiB");
	assert_int_equal(config_check_mem(MEM_MIN + 1, &e), -1);
	assert_string_equal(e.msg, "1048577 bytes is not a multiple of 4 KiB");
	assert_int_equal(config_check_cpus(1, &e), 0);
	assert_int_equal(config_check_cpus(CPUS_MAX, &e), 0);
	assert_int_equal(config_check_cpus(CPUS_MAX + 1, &e), -1);
}

/* ---------------------------------------------------------------------- */
/* config_finish                                                            */
/* ---------------------------------------------------------------------- */

static struct vmmux_config *with_kernel(void)
{
	struct vmmux_config *c = new_config();
	c->kernel = strdup("guest.elf");
	assert_non_null(c->kernel);
	return c;
}

static void finish_ok(struct vmmux_config *c)
{
	struct errbuf e;
	if (config_finish(c, &e) != 0)
		fail_msg("config_finish: %s", e.msg);
}

static void finish_fails(struct vmmux_config *c, const char *msg)
{
	struct errbuf e;
	memset(&e, 0, sizeof(e));
	assert_int_equal(config_finish(c, &e), -1);
	if (strcmp(e.msg, msg) != 0)
		fail_msg("config_finish: \"%s\", wanted \"%s\"", e.msg, msg);
}

static const char *const all_default_routes[] = {
    "io:0x3f8-0x3ff=uart",    "io:0xf4-0xf7=exit", "io:0x64=chipset",  "io:0xcf9=chipset",
    "io:0x604-0x605=chipset", "io:0xb2-0xb3=smm",  "platform:smi=smm", "io:0x4f0-0x4f3=fault",
};

static void test_finish_defaults(void **state)
{
	(void)state;
	struct vmmux_config *c = with_kernel();
	finish_ok(c);
	static const char *const names[] = {"uart", "exit", "chipset", "smm", "fault"};
	static const char *const roles[] = {"uart16550", "debug-exit", "chipset", "smm",
					    "fault-report"};
	assert_int_equal(c->nvmms, 5);
	for (size_t i = 0; i < 5; i++) {
		assert_string_equal(c->vmms[i].name, names[i]);
		assert_string_equal(c->vmms[i].role, roles[i]);
		assert_int_equal(c->vmms[i].placement, VMM_IN_PROCESS);
		assert_int_equal(c->vmms[i].nargs, 0);
	}
	assert_string_equal(c->vmms[0].input, "stdin");
	assert_string_equal(c->vmms[0].output, "stdout");
	for (size_t i = 1; i < 5; i++) {
		assert_null(c->vmms[i].input);
		assert_null(c->vmms[i].output);
	}
	assert_int_equal(c->nroutes, 8);
	for (size_t i = 0; i < 8; i++)
		assert_string_equal(c->routes[i].text, all_default_routes[i]);

	/* Finishing again adds nothing. */
	finish_ok(c);
	assert_int_equal(c->nvmms, 5);
	assert_int_equal(c->nroutes, 8);
	drop(c);
}

static void test_finish_no_defaults(void **state)
{
	(void)state;
	struct vmmux_config *c = with_kernel();
	c->defaults = false;
	finish_ok(c);
	assert_int_equal(c->nvmms, 0);
	assert_int_equal(c->nroutes, 0);
	drop(c);
}

/* A user route replaces what it covers of a default route: the rest of the
 * default range keeps its VMM; a default route it covers whole goes, and a
 * default VMM left with no route is not added. */
static void test_finish_user_route_splits_default(void **state)
{
	(void)state;
	struct vmmux_config *c = with_kernel();
	add_vmm(c, "mon=monitor");
	add_route(c, "io:0x3fc=mon");	      /* inside COM1: uart keeps the rest */
	add_route(c, "io:0xf0-0xf4=mon");     /* overlaps exit's first port */
	add_route(c, "platform:smi=mon");     /* smm keeps io:0xb2-0xb3 */
	add_route(c, "mmio:0x3f8-0x3ff=mon"); /* another key space: no effect */
	add_route(c, "io:0x604-0x605=main");  /* all of a chipset route */
	finish_ok(c);

	assert_int_equal(c->nvmms, 6); /* mon and the five defaults */
	assert_true(vmm_index(c, "mon") == 0);
	assert_true(has_route(c, "io:0x3f8-0x3fb=uart"));
	assert_true(has_route(c, "io:0x3fd-0x3ff=uart"));
	assert_false(has_route(c, "io:0x3f8-0x3ff=uart"));
	assert_true(has_route(c, "io:0xf5-0xf7=exit"));
	assert_false(has_route(c, "io:0xf4-0xf7=exit"));
	assert_false(has_route(c, "platform:smi=smm"));
	assert_true(has_route(c, "io:0xb2-0xb3=smm"));
	assert_true(has_route(c, "io:0x64=chipset"));
	assert_true(has_route(c, "io:0xcf9=chipset"));
	assert_false(has_route(c, "io:0x604-0x605=chipset"));
	assert_true(has_route(c, "io:0x4f0-0x4f3=fault"));
	assert_int_equal(c->nroutes, 5 + 2 + 1 + 2 + 1 + 1);
	/* the table builds: nothing overlaps */
	struct errbuf e;
	struct route_table *t = route_table_build(c->routes, c->nroutes, config_vmm_resolve, c, &e);
	assert_non_null(t);
	route_table_free(t);
	drop(c);

	/* Routes that cover a default range between them leave nothing of it,
	 * and its VMM is not added; pieces in any order. */
	c = with_kernel();
	add_route(c, "io:0x3fc-0x3ff=main");
	add_route(c, "io:0x3f0-0x3fb=main");
	add_route(c, "io:0xf4=main");
	add_route(c, "io:0xf6=main");
	finish_ok(c);
	assert_true(vmm_index(c, "uart") < 0);
	assert_true(has_route(c, "io:0xf5=exit"));
	assert_true(has_route(c, "io:0xf7=exit"));
	assert_int_equal(c->nvmms, 4);
	assert_int_equal(c->nroutes, 4 + 2 + 3 + 2 + 1);
	drop(c);
}

/* fw_cfg's route io:0x510-0x511=fwcfg follows the same rule: a route of the
 * user's takes the ports it covers, fwcfg keeps the others. */
static void test_finish_fw_cfg_route_split(void **state)
{
	(void)state;
	struct vmmux_config *c = with_kernel();
	c->fw_cfg = true;
	add_route(c, "io:0x510=main");
	finish_ok(c);
	assert_true(vmm_index(c, "fwcfg") >= 0);
	assert_true(has_route(c, "io:0x511=fwcfg"));
	assert_false(has_route(c, "io:0x510-0x511=fwcfg"));
	drop(c);

	c = with_kernel();
	c->fw_cfg = true;
	finish_ok(c);
	assert_true(has_route(c, "io:0x510-0x511=fwcfg"));
	drop(c);
}

/* A default VMM that a user route names is added even when its own default
 * routes are all replaced. */
static void test_finish_default_vmm_named_by_route(void **state)
{
	(void)state;
	struct vmmux_config *c = with_kernel();
	add_vmm(c, "mon=monitor");
	add_route(c, "io:0x3f8-0x3ff=mon");
	add_route(c, "io:0x2f8-0x2ff=uart");		/* names the default uart */
	add_route(c, "io:0xf4-0xf7=mon;fallback=exit"); /* names exit as fallback */
	finish_ok(c);
	assert_true(vmm_index(c, "uart") >= 0);
	assert_true(vmm_index(c, "exit") >= 0);
	assert_false(has_route(c, "io:0x3f8-0x3ff=uart"));
	assert_false(has_route(c, "io:0xf4-0xf7=exit"));
	drop(c);
}

/* A user VMM with a default's name is kept, and gets the default routes. */
static void test_finish_user_vmm_takes_default_name(void **state)
{
	(void)state;
	struct vmmux_config *c = with_kernel();
	add_vmm(c, "uart=monitor,output=stderr");
	finish_ok(c);
	assert_int_equal(c->nvmms, 5);
	assert_string_equal(c->vmms[0].name, "uart");
	assert_string_equal(c->vmms[0].role, "monitor");
	assert_null(c->vmms[0].input);
	assert_string_equal(c->vmms[0].output, "stderr");
	assert_true(has_route(c, "io:0x3f8-0x3ff=uart"));
	assert_int_equal(c->nroutes, 8);
	drop(c);
}

/* io and hypercall routes share the port space, hypercall:N being port
 * 0x500+N: hypercalls 0-255 (ports 0x500-0x5ff) leave the defaults on ports
 * 0x64, 0xb2 and 0xf4 alone, which they would hit were they numbered as
 * ports 0-0xff. */
static void test_finish_hypercall_port_space(void **state)
{
	(void)state;
	struct vmmux_config *c = with_kernel();
	add_route(c, "hypercall:0-255=main");
	finish_ok(c);
	assert_int_equal(c->nroutes, 1 + 8);
	assert_int_equal(c->nvmms, 5);
	drop(c);

	/* An io route reaching into the hypercall ports and down over the fault
	 * device's ports takes those: fault keeps its first two. */
	c = with_kernel();
	add_route(c, "io:0x4f2-0x5ff=main");
	finish_ok(c);
	assert_false(has_route(c, "io:0x4f0-0x4f3=fault"));
	assert_true(has_route(c, "io:0x4f0-0x4f1=fault"));
	assert_true(vmm_index(c, "fault") >= 0);
	assert_int_equal(c->nroutes, 1 + 8);
	drop(c);
}

/* A file holding a multiboot v1 header at offset 0 (MB) or not. */
static char *kernel_file(bool mb)
{
	char *path = strdup("/tmp/vmmux-test-kernel-XXXXXX");
	assert_non_null(path);
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	uint32_t hdr[4] = {0x1BADB002u, 0, (uint32_t)-0x1BADB002, 0};
	if (!mb)
		hdr[0] = 0x464c457f; /* "\x7fELF", no multiboot header */
	assert_int_equal(write(fd, hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
	close(fd);
	return path;
}

/* A multiboot kernel gets QEMU's pc machine (irqchip, fw_cfg, at most
 * 3583 MiB) unless told otherwise; any other image does not. */
static void test_finish_machine(void **state)
{
	(void)state;
	char *mb = kernel_file(true), *other = kernel_file(false);
	struct vmmux_config *c = new_config();
	c->kernel = strdup(mb);
	finish_ok(c);
	assert_true(c->pc && c->irqchip && c->fw_cfg);
	drop(c);
	c = new_config();
	c->kernel = strdup(mb);
	c->irqchip_set = true; /* --no-irqchip */
	c->fw_cfg_set = true;  /* --no-fw-cfg */
	finish_ok(c);
	assert_true(c->pc);
	assert_false(c->irqchip || c->fw_cfg);
	drop(c);
	c = new_config();
	c->kernel = strdup(mb);
	c->mem_bytes = 3584ull << 20;
	struct errbuf e;
	assert_int_equal(config_finish(c, &e), -1);
	assert_non_null(strstr(e.msg, "at most 3583 MiB"));
	drop(c);
	c = new_config();
	c->kernel = strdup(other);
	finish_ok(c);
	assert_false(c->pc || c->irqchip || c->fw_cfg);
	drop(c);
	unlink(mb);
	unlink(other);
	free(mb);
	free(other);
}

static void test_finish_checks(void **state)
{
	(void)state;
	struct vmmux_config *c;
	struct errbuf e;

	/* No kernel. */
	c = new_config();
	finish_fails(c, "no guest: give --kernel FILE or guest.kernel in the config");
	drop(c);
	/* ... unless the flag says a kernel is not needed. */
	c = new_config();
	assert_int_equal(config_finish_flags(c, CONFIG_FINISH_NO_KERNEL, &e), 0);
	assert_int_equal(c->nvmms, 5);
	drop(c);

	/* type:hlt with the in-kernel irqchip. */
	c = with_kernel();
	c->irqchip = true;
	add_vmm(c, "mon=monitor");
	add_route(c, "type:hlt=mon");
	finish_fails(c, "route 'type:hlt=mon': HLT is handled inside KVM when the in-kernel "
			"irqchip is on; use --no-irqchip");
	drop(c);
	c = with_kernel();
	c->irqchip = true;
	add_route(c, "type:io-hlt=main"); /* a type range covering hlt */
	assert_int_equal(config_finish(c, &e), -1);
	assert_non_null(strstr(e.msg, "HLT is handled inside KVM"));
	drop(c);
	c = with_kernel();
	c->irqchip = true;
	add_route(c, "type:msr=main"); /* other types are fine */
	finish_ok(c);
	drop(c);
	c = with_kernel();
	c->irqchip = false;
	add_vmm(c, "mon=monitor");
	add_route(c, "type:hlt=mon");
	finish_ok(c);
	drop(c);

	/* Raw images need a load address. */
	c = with_kernel();
	c->load.format = IMAGE_RAW;
	finish_fails(c, "a raw image needs a load address: give --load-addr ADDR or "
			"guest.load_addr in the config");
	c->load_addr_set = true;
	c->load.load_addr = 0; /* zero is a valid address */
	finish_ok(c);
	drop(c);

	/* Breakpoints inside RAM. */
	c = with_kernel();
	assert_int_equal(config_add_breakpoint(c, (64u << 20) - 1, &e), 0);
	finish_ok(c);
	assert_int_equal(config_add_breakpoint(c, 64u << 20, &e), 0);
	finish_fails(c, "breakpoint 0x4000000 is outside the guest RAM (64 MiB)");
	drop(c);

	/* Every route names a known VMM. */
	c = with_kernel();
	add_route(c, "io:0x80=mon");
	finish_fails(c, "route 'io:0x80=mon': no VMM named 'mon' (VMMs: main, uart, exit, "
			"chipset, smm, fault)");
	drop(c);
	c = with_kernel();
	c->defaults = false;
	add_route(c, "io:0x80=main;fallback=spare");
	finish_fails(c, "route 'io:0x80=main;fallback=spare': no VMM named 'spare' (VMMs: main)");
	drop(c);
	/* A long VMM list is cut. */
	c = with_kernel();
	c->defaults = false;
	for (int i = 0; i < 40; i++) {
		char opt[64];
		snprintf(opt, sizeof(opt), "vmm-with-a-long-name-%d=monitor", i);
		add_vmm(c, opt);
	}
	add_route(c, "io:0x80=nobody");
	assert_int_equal(config_finish(c, &e), -1);
	assert_non_null(strstr(e.msg, "no VMM named 'nobody' (VMMs: main, vmm-with-a-long-name-0"));
	assert_non_null(strstr(e.msg, ", ...)"));
	drop(c);

	/* Values set by hand are checked again. */
	c = with_kernel();
	c->cpus = 0;
	finish_fails(c, "0 is not a valid number of vCPUs (1 to 64)");
	c->cpus = 1;
	c->mem_bytes = 12345;
	finish_fails(c, "memory size: 12345 bytes is not a multiple of 4 KiB");
	drop(c);
}

static void test_finish_sets_log_level(void **state)
{
	(void)state;
	int saved = log_level;
	struct vmmux_config *c = with_kernel();
	c->log_level = VMMUX_LOG_DEBUG;
	finish_ok(c);
	assert_int_equal(log_level, VMMUX_LOG_DEBUG);
	c->log_level = VMMUX_LOG_ERROR;
	finish_ok(c);
	assert_int_equal(log_level, VMMUX_LOG_ERROR);
	log_level = saved;
	drop(c);
}

/* ---------------------------------------------------------------------- */
/* VMM ids                                                                  */
/* ---------------------------------------------------------------------- */

/* Placement, memory grants, raise grants, timeouts, external programs. */
static void test_parallel_fields(void **state)
{
	(void)state;
	struct errbuf e;
	int rc;
	struct vmmux_config *c = load(
	    "{\"vmms\": [{\"name\": \"u\", \"role\": \"uart16550\", \"placement\": \"parallel\","
	    " \"memory\": [\"0x200000+0x100000\", \"0x1000-0x1fff\"], \"raise\": [\"irq:4:level\","
	    " \"platform:reset\"], \"timeout\": \"50ms\"},"
	    " {\"name\": \"x\", \"program\": \"bin/dev\", \"program_args\": [\"-v\"],"
	    " \"memory\": [\"all\"], \"raise\": []}],"
	    " \"guest\": {\"kernel\": \"k\"}}",
	    &rc, &e);
	if (rc != 0)
		fail_msg("%s", e.msg);
	const struct vmm_config *u = &c->vmms[0], *x = &c->vmms[1];
	assert_int_equal(u->placement, VMM_PARALLEL);
	assert_true(u->placement_set);
	assert_int_equal(u->nwindows, 2);
	assert_int_equal(u->ngrants, 2);
	assert_string_equal(u->grants[0], "irq:4:level");
	assert_true(u->raise_set);
	assert_int_equal(u->timeout_ns, 50000000ull);
	assert_string_equal(x->program, "bin/dev");
	assert_string_equal(x->role, "external");
	assert_int_equal(x->placement, VMM_PARALLEL);
	assert_int_equal(x->nprogram_args, 1);
	assert_true(x->memory_all);
	assert_true(x->raise_set);
	assert_int_equal(x->ngrants, 0);
	finish_ok(c);
	/* windows sorted by config_finish */
	assert_int_equal(c->vmms[0].windows[0].gpa, 0x1000);
	assert_int_equal(c->vmms[0].windows[1].gpa, 0x200000);
	drop(c);

	/* --parallel: every VMM without an explicit placement */
	c = with_kernel();
	c->all_parallel = true;
	add_vmm(c, "a=monitor");
	add_vmm(c, "b=monitor,placement=main");
	finish_ok(c);
	assert_int_equal(c->vmms[0].placement, VMM_PARALLEL);
	assert_int_equal(c->vmms[1].placement, VMM_IN_PROCESS);
	for (size_t i = 2; i < c->nvmms; i++) /* the PC-like defaults too */
		assert_int_equal(c->vmms[i].placement, VMM_PARALLEL);
	drop(c);

	/* the default fault-report VMM reads guest memory */
	c = with_kernel();
	finish_ok(c);
	for (size_t i = 0; i < c->nvmms; i++)
		assert_int_equal(c->vmms[i].memory_all, strcmp(c->vmms[i].name, "fault") == 0);
	drop(c);

	/* windows checked against the RAM size, overlaps refused */
	c = with_kernel();
	add_vmm(c, "a=monitor,memory=0x3ff0000+0x20000");
	finish_fails(c, "VMM 'a': memory window 0x3ff0000+0x20000 lies outside the guest RAM "
			"(64 MiB)");
	drop(c);
	c = with_kernel();
	add_vmm(c, "a=monitor,memory=0x2000+0x2000,memory=0x1000+0x2000");
	finish_fails(c, "VMM 'a': memory windows at 0x1000 and 0x2000 overlap");
	drop(c);
	c = with_kernel();
	add_vmm(c, "a=external");
	finish_fails(c, "VMM 'a': role 'external' needs a program (program=PATH)");
	drop(c);

	expect_error("{\"vmms\": [{\"name\": \"a\", \"role\": \"r\", \"program_args\": [\"x\"]}]}",
		     "vm.json: vmms[0].program_args: given without a program");
	expect_error("{\"vmms\": [{\"name\": \"a\", \"role\": \"r\", \"raise\": [\"irq\"]}]}",
		     "vm.json: vmms[0].raise[0]: grant 'irq'");
	expect_error("{\"vmms\": [{\"name\": \"a\"}]}",
		     "vm.json: vmms[0].role: missing (every VMM needs a role, or a program");
	expect_error("{\"vmms\": [{\"name\": \"a\", \"role\": \"r\", \"placement\": \"main\","
		     " \"program\": \"p\"}]}",
		     "an external program runs as a parallel VMM");
}

static void test_resolve_ids(void **state)
{
	(void)state;
	struct vmmux_config *c = with_kernel();
	add_vmm(c, "mon=monitor");
	finish_ok(c);
	/* mon first (the user's), then the defaults in their order. */
	assert_int_equal(config_vmm_resolve(c, "main"), VMM_ID_MAIN);
	assert_int_equal(config_vmm_resolve(c, "mon"), 1);
	assert_int_equal(config_vmm_resolve(c, "uart"), 2);
	assert_int_equal(config_vmm_resolve(c, "exit"), 3);
	assert_int_equal(config_vmm_resolve(c, "chipset"), 4);
	assert_int_equal(config_vmm_resolve(c, "smm"), 5);
	assert_int_equal(config_vmm_resolve(c, "fault"), 6);
	assert_int_equal(config_vmm_resolve(c, "nobody"), VMM_ID_NONE);
	assert_int_equal(config_vmm_resolve(c, ""), VMM_ID_NONE);
	assert_string_equal(config_vmm_name(c, 0), "main");
	for (uint16_t id = 1; id <= 6; id++)
		assert_int_equal(config_vmm_resolve(c, config_vmm_name(c, id)), id);
	assert_null(config_vmm_name(c, 7));
	assert_null(config_vmm_name(c, VMM_ID_NONE));
	drop(c);
}

/* The ids work for a real routing table: `vmmux routes` builds one so. */
static void test_table_from_config(void **state)
{
	(void)state;
	struct vmmux_config *c = with_kernel();
	add_vmm(c, "mon=monitor");
	add_route(c, "io:0x80=mon");
	add_route(c, "hypercall:2=mon");
	finish_ok(c);
	struct errbuf e;
	struct route_table *t = route_table_build(c->routes, c->nroutes, config_vmm_resolve, c, &e);
	if (t == NULL)
		fail_msg("route_table_build: %s", e.msg);
	uint16_t r = route_lookup_port(t, 0x3fd);
	assert_int_not_equal(r, ROUTE_NONE);
	assert_int_equal(t->routes[r].vmm, config_vmm_resolve(c, "uart"));
	r = route_lookup_port(t, 0x80);
	assert_int_not_equal(r, ROUTE_NONE);
	assert_int_equal(t->routes[r].vmm, 1);
	r = route_lookup_port(t, HYPERCALL_PORT_BASE + 2);
	assert_int_not_equal(r, ROUTE_NONE);
	assert_string_equal(config_vmm_name(c, t->routes[r].vmm), "mon");
	assert_int_equal(route_lookup_port(t, 0x81), ROUTE_NONE);
	route_table_free(t);
	drop(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_init_defaults),
	    cmocka_unit_test(test_full_config),
	    cmocka_unit_test(test_empty_object_changes_nothing),
	    cmocka_unit_test(test_mem_forms),
	    cmocka_unit_test(test_relative_paths),
	    cmocka_unit_test(test_defaults_key),
	    cmocka_unit_test(test_log_timestamps_key),
	    cmocka_unit_test(test_lists_append),
	    cmocka_unit_test(test_exact_messages),
	    cmocka_unit_test(test_unknown_keys),
	    cmocka_unit_test(test_wrong_types),
	    cmocka_unit_test(test_bad_values),
	    cmocka_unit_test(test_bad_vmms),
	    cmocka_unit_test(test_too_many),
	    cmocka_unit_test(test_syntax_errors),
	    cmocka_unit_test(test_mutations),
	    cmocka_unit_test(test_files),
	    cmocka_unit_test(test_vmm_option_good),
	    cmocka_unit_test(test_vmm_option_bad),
	    cmocka_unit_test(test_add_limits),
	    cmocka_unit_test(test_field_parsers),
	    cmocka_unit_test(test_finish_defaults),
	    cmocka_unit_test(test_finish_no_defaults),
	    cmocka_unit_test(test_finish_user_route_splits_default),
	    cmocka_unit_test(test_finish_fw_cfg_route_split),
	    cmocka_unit_test(test_finish_default_vmm_named_by_route),
	    cmocka_unit_test(test_finish_user_vmm_takes_default_name),
	    cmocka_unit_test(test_finish_hypercall_port_space),
	    cmocka_unit_test(test_finish_checks),
	    cmocka_unit_test(test_finish_machine),
	    cmocka_unit_test(test_finish_sets_log_level),
	    cmocka_unit_test(test_parallel_fields),
	    cmocka_unit_test(test_resolve_ids),
	    cmocka_unit_test(test_table_from_config),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
