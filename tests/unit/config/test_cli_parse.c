/*
 * Unit tests of cli_parse.c: the options of `vmmux run` into a config. Every
 * option lands in its field; --config is loaded first wherever it is and the
 * other options override it; lists append; every bad option gives a message
 * naming the option and the value.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli/cli.h"
#include "config/config.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])))

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

/* Parse ARGV into a fresh config that must be accepted. */
static struct vmmux_config *parse_ok(int argc, char **argv)
{
	struct vmmux_config *c = new_config();
	struct errbuf e;
	int rc = cli_parse_run(argc, argv, c, &e);
	if (rc != 0)
		fail_msg("refused (%d): %s", rc, rc < 0 ? e.msg : "help");
	return c;
}

/* ARGV is refused with exactly MSG. */
static void parse_fails(int argc, char **argv, const char *msg)
{
	struct vmmux_config *c = new_config();
	struct errbuf e;
	memset(&e, 0, sizeof(e));
	int rc = cli_parse_run(argc, argv, c, &e);
	if (rc != -1)
		fail_msg("accepted (%d), wanted \"%s\"", rc, msg);
	if (strcmp(e.msg, msg) != 0)
		fail_msg("\"%s\", wanted \"%s\"", e.msg, msg);
	drop(c);
}

/* ARGV is refused with a message that starts with PREFIX. */
static void parse_fails_prefix(int argc, char **argv, const char *prefix)
{
	struct vmmux_config *c = new_config();
	struct errbuf e;
	memset(&e, 0, sizeof(e));
	assert_int_equal(cli_parse_run(argc, argv, c, &e), -1);
	if (strncmp(e.msg, prefix, strlen(prefix)) != 0)
		fail_msg("\"%s\" does not start with \"%s\"", e.msg, prefix);
	drop(c);
}

static void test_no_options(void **state)
{
	(void)state;
	char *argv[] = {"run"};
	struct vmmux_config *c = parse_ok(ARGC(argv), argv);
	struct vmmux_config *d = new_config();
	assert_memory_equal(c, d, sizeof(*c));
	drop(c);
	drop(d);
}

static void test_every_option(void **state)
{
	(void)state;
	char *argv[] = {"run",
			"--kernel",
			"guest.bin",
			"--format",
			"raw",
			"--load-addr",
			"0x7c00",
			"--entry=0x7c10",
			"--cpu-mode",
			"real",
			"--append",
			"a b",
			"--mem",
			"128M",
			"--cpus",
			"2",
			"--irqchip",
			"--route",
			"io:0x80=mon",
			"--vmm",
			"mon=monitor,output=stderr,verbose=1",
			"--no-defaults",
			"--stats",
			"--stats-json",
			"s.json",
			"--single-step",
			"--break",
			"0x7c00",
			"--watchdog",
			"250ms",
			"--log-level",
			"info",
			"--log-timestamps"};
	struct vmmux_config *c = parse_ok(ARGC(argv), argv);
	assert_string_equal(c->kernel, "guest.bin");
	assert_int_equal(c->load.format, IMAGE_RAW);
	assert_true(c->load_addr_set);
	assert_int_equal(c->load.load_addr, 0x7c00);
	assert_true(c->load.has_entry);
	assert_int_equal(c->load.entry, 0x7c10);
	assert_int_equal(c->load.mode, CPU_MODE_REAL);
	assert_string_equal(c->append, "a b");
	assert_int_equal(c->mem_bytes, 128u << 20);
	assert_int_equal(c->cpus, 2);
	assert_true(c->irqchip);
	assert_int_equal(c->nroutes, 1);
	assert_string_equal(c->routes[0].text, "io:0x80=mon");
	assert_int_equal(c->nvmms, 1);
	assert_string_equal(c->vmms[0].name, "mon");
	assert_string_equal(c->vmms[0].role, "monitor");
	assert_null(c->vmms[0].input);
	assert_string_equal(c->vmms[0].output, "stderr");
	assert_int_equal(c->vmms[0].nargs, 1);
	assert_string_equal(c->vmms[0].args[0].key, "verbose");
	assert_false(c->defaults);
	assert_true(c->stats);
	assert_string_equal(c->stats_json, "s.json");
	assert_true(c->single_step);
	assert_int_equal(c->nbreakpoints, 1);
	assert_int_equal(c->breakpoints[0], 0x7c00);
	assert_int_equal(c->watchdog_ns, 250000000ull);
	assert_int_equal(c->log_level, VMMUX_LOG_INFO);
	assert_true(c->log_timestamps);
	/* The config is complete: it finishes without defaults. */
	struct errbuf e;
	if (config_finish(c, &e) != 0)
		fail_msg("%s", e.msg);
	assert_int_equal(c->nvmms, 1);
	drop(c);
}

/* Later options override earlier ones; --no-irqchip undoes --irqchip. */
static void test_last_wins(void **state)
{
	(void)state;
	char *argv[] = {"run",		"--mem",    "32M",   "--irqchip", "--mem",
			"256",		"--kernel", "a.elf", "--kernel",  "b.elf",
			"--no-irqchip", "--format", "raw",   "--format",  "auto"};
	struct vmmux_config *c = parse_ok(ARGC(argv), argv);
	assert_int_equal(c->mem_bytes, 256u << 20); /* a bare number is MiB */
	assert_false(c->irqchip);
	assert_true(c->irqchip_set); /* given: the machine's default does not apply */
	assert_false(c->fw_cfg_set);
	assert_string_equal(c->kernel, "b.elf");
	assert_int_equal(c->load.format, IMAGE_AUTO);
	drop(c);
	char *argv2[] = {"run", "--fw-cfg", "--no-fw-cfg"};
	c = parse_ok(ARGC(argv2), argv2);
	assert_false(c->fw_cfg);
	assert_true(c->fw_cfg_set);
	assert_false(c->irqchip_set);
	drop(c);
}

static void test_repeated_route_and_vmm(void **state)
{
	(void)state;
	char *argv[] = {"run",
			"--route",
			"io:0x80=a",
			"--vmm",
			"a=monitor",
			"--route",
			"mmio:0xd0000000+0x1000=b",
			"--vmm",
			"b=monitor,input=none",
			"--route",
			"type:hlt=a"};
	struct vmmux_config *c = parse_ok(ARGC(argv), argv);
	assert_int_equal(c->nroutes, 3);
	assert_string_equal(c->routes[0].text, "io:0x80=a");
	assert_int_equal(c->routes[1].kind, ROUTE_MMIO);
	assert_int_equal(c->routes[1].lo, 0xd0000000ull);
	assert_int_equal(c->routes[1].hi, 0xd0000fffull);
	assert_string_equal(c->routes[2].text, "type:hlt=a");
	assert_int_equal(c->nvmms, 2);
	assert_string_equal(c->vmms[0].name, "a");
	assert_string_equal(c->vmms[1].name, "b");
	assert_true(c->defaults); /* --route and --vmm keep the defaults */
	drop(c);
}

/* --config loads first wherever it is; the other options override it and
 * lists append to the file's. */
static void test_config_then_overrides(void **state)
{
	(void)state;
	char dir[] = "/tmp/vmmux-test-cli-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[256];
	snprintf(path, sizeof(path), "%s/vm.json", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("{\"machine\": {\"mem\": \"32M\", \"cpus\": 3, \"irqchip\": true},\n"
	      " \"guest\": {\"kernel\": \"file.elf\"},\n"
	      " \"vmms\": [{\"name\": \"mon\", \"role\": \"monitor\"}],\n"
	      " \"routes\": [\"io:0x80=mon\"],\n"
	      " \"debug\": {\"breakpoints\": [4096, 8192, 12288]},\n"
	      " \"log_level\": \"debug\"}\n",
	      f);
	fclose(f);

	char *argv[] = {"run",	    "--mem",  "128M",	      "--route", "io:0x81=mon",
			"--config", path,     "--no-irqchip", "--vmm",	 "extra=monitor",
			"--break",  "0x4000", "--log-level",  "error"};
	struct vmmux_config *c = parse_ok(ARGC(argv), argv);
	assert_int_equal(c->mem_bytes, 128u << 20); /* before --config, still wins */
	assert_int_equal(c->cpus, 3);		    /* from the file */
	assert_false(c->irqchip);
	char want[300];
	snprintf(want, sizeof(want), "%s/file.elf", dir);
	assert_string_equal(c->kernel, want);
	assert_int_equal(c->nroutes, 2);
	assert_string_equal(c->routes[0].text, "io:0x80=mon"); /* the file's first */
	assert_string_equal(c->routes[1].text, "io:0x81=mon");
	assert_int_equal(c->nvmms, 2);
	assert_string_equal(c->vmms[0].name, "mon");
	assert_string_equal(c->vmms[1].name, "extra");
	assert_int_equal(c->nbreakpoints, 4);
	assert_int_equal(c->breakpoints[3], 0x4000);
	assert_int_equal(c->log_level, VMMUX_LOG_ERROR);
	assert_true(c->defaults); /* the file's vmms and routes add to them */
	drop(c);

	/* The file's three breakpoints and two more: the limit counts both. */
	char *argv2[] = {"run", "--config", path, "--break", "1", "--break", "2"};
	parse_fails(ARGC(argv2), argv2,
		    "--break: at most 4 hardware breakpoints (the debug registers DR0-DR3)");

	/* A --vmm clashing with the file's VMM. */
	char *argv3[] = {"run", "--vmm", "mon=monitor", "--config", path};
	parse_fails(ARGC(argv3), argv3, "--vmm 'mon=monitor': VMM name 'mon' is already used");

	/* Errors of the file come as the file gives them. */
	char *argv4[] = {"run", "--config", "/nonexistent/vm.json"};
	parse_fails(ARGC(argv4), argv4, "/nonexistent/vm.json: No such file or directory");

	/* --config twice. */
	char *argv5[] = {"run", "--config", path, "--config=other.json"};
	char msg[400];
	snprintf(msg, sizeof(msg), "--config is given twice ('%s', 'other.json')", path);
	parse_fails(ARGC(argv5), argv5, msg);

	unlink(path);
	rmdir(dir);
}

static void test_bad_mem(void **state)
{
	(void)state;
	char *a1[] = {"run", "--mem", "12X"};
	parse_fails(ARGC(a1), a1, "--mem: '12X': unknown size suffix 'X' (use K, M, G or T)");
	char *a2[] = {"run", "--mem", "8G"};
	parse_fails(ARGC(a2), a2, "--mem: '8G': 8 GiB is above the maximum of 4 GiB");
	char *a3[] = {"run", "--mem", "512K"};
	parse_fails(ARGC(a3), a3, "--mem: '512K': 512 KiB is below the minimum of 1 MiB");
	char *a4[] = {"run", "--mem=1025K"};
	parse_fails(ARGC(a4), a4, "--mem: '1025K': 1025 KiB is not a multiple of 4 KiB");
	char *a5[] = {"run", "--mem", "-1"};
	parse_fails(ARGC(a5), a5, "--mem: '-1' does not start with a number");
	char *a6[] = {"run", "--mem", ""};
	parse_fails(ARGC(a6), a6, "--mem: empty value");
	/* Accepted forms. */
	char *ok[] = {"run", "--mem", "1g"};
	struct vmmux_config *c = parse_ok(ARGC(ok), ok);
	assert_int_equal(c->mem_bytes, 1u << 30);
	drop(c);
}

static void test_break_limit(void **state)
{
	(void)state;
	char *ok[] = {"run", "--break", "1", "--break", "2", "--break", "3", "--break", "0x4"};
	struct vmmux_config *c = parse_ok(ARGC(ok), ok);
	assert_int_equal(c->nbreakpoints, 4);
	assert_int_equal(c->breakpoints[0], 1);
	assert_int_equal(c->breakpoints[3], 4);
	drop(c);
	char *bad[] = {"run", "--break", "1", "--break", "2", "--break",
		       "3",   "--break", "4", "--break", "5"};
	parse_fails(ARGC(bad), bad,
		    "--break: at most 4 hardware breakpoints (the debug registers DR0-DR3)");
	char *nan[] = {"run", "--break", "main"};
	parse_fails(ARGC(nan), nan, "--break: 'main' is not a number");
}

static void test_bad_values(void **state)
{
	(void)state;
	char *a1[] = {"run", "--cpus", "0"};
	parse_fails(ARGC(a1), a1, "--cpus: 0 is not a valid number of vCPUs (1 to 64)");
	char *a2[] = {"run", "--cpus", "many"};
	parse_fails(ARGC(a2), a2, "--cpus: 'many' is not a number");
	char *a3[] = {"run", "--format", "elf"};
	parse_fails(ARGC(a3), a3, "--format: format 'elf' is not known (auto, raw)");
	char *a4[] = {"run", "--cpu-mode", "v86"};
	parse_fails(ARGC(a4), a4,
		    "--cpu-mode: CPU mode 'v86' is not known (real, protected, long, user)");
	char *a5[] = {"run", "--log-level", "loud"};
	parse_fails(ARGC(a5), a5,
		    "--log-level: log level 'loud' is not known (error, warn, info, debug)");
	char *a6[] = {"run", "--watchdog", "5"};
	parse_fails(ARGC(a6), a6, "--watchdog: '5': a duration needs a unit (ns, us, ms or s)");
	char *a7[] = {"run", "--load-addr", "0x"};
	parse_fails(ARGC(a7), a7, "--load-addr: '0x' is not a number");
	char *a8[] = {"run", "--kernel", ""};
	parse_fails(ARGC(a8), a8, "--kernel: the value is empty");
	char *a9[] = {"run", "--stats-json", ""};
	parse_fails(ARGC(a9), a9, "--stats-json: the value is empty");
	char *a10[] = {"run", "--route", "io:0x10000=x"};
	parse_fails(ARGC(a10), a10, "--route: route 'io:0x10000=x': port 0x10000 is beyond 0xffff");
	char *a11[] = {"run", "--route", "nonsense"};
	parse_fails_prefix(ARGC(a11), a11, "--route: route 'nonsense': ");
	char *a12[] = {"run", "--vmm", "Mon=monitor"};
	parse_fails_prefix(ARGC(a12), a12, "--vmm 'Mon=monitor': VMM name 'Mon' is not valid");
	char *a13[] = {"run", "--vmm", "a=monitor", "--vmm", "a=uart16550"};
	parse_fails(ARGC(a13), a13, "--vmm 'a=uart16550': VMM name 'a' is already used");
	char *a14[] = {"run", "--vmm", "a=monitor,k"};
	parse_fails(ARGC(a14), a14, "--vmm 'a=monitor,k': argument 'k' needs a value (key=value)");
	/* The first bad option is reported, after the good ones applied. */
	char *a15[] = {"run", "--cpus", "2", "--cpus", "99", "--mem", "12X"};
	parse_fails(ARGC(a15), a15, "--cpus: 99 is not a valid number of vCPUs (1 to 64)");
}

static void test_syntax(void **state)
{
	(void)state;
	char *a1[] = {"run", "--bogus"};
	parse_fails(ARGC(a1), a1, "unknown or ambiguous option '--bogus'");
	char *a2[] = {"run", "--mem"};
	parse_fails(ARGC(a2), a2, "option '--mem' needs an argument");
	char *a3[] = {"run", "--stats=yes"};
	parse_fails(ARGC(a3), a3, "option '--stats' takes no argument");
	char *a4[] = {"run", "-x"};
	parse_fails(ARGC(a4), a4, "unknown option '-x'");
	char *a5[] = {"run", "--kernel", "k.elf", "guest.elf"};
	parse_fails(ARGC(a5), a5,
		    "unexpected argument 'guest.elf' (the guest image is given with --kernel "
		    "FILE)");
	char *a6[] = {"run", "--no"}; /* --no-irqchip or --no-defaults */
	parse_fails(ARGC(a6), a6, "unknown or ambiguous option '--no'");
	/* A syntax error anywhere wins over --config (nothing is loaded). */
	char *a7[] = {"run", "--config", "/nonexistent.json", "--bogus"};
	parse_fails(ARGC(a7), a7, "unknown or ambiguous option '--bogus'");
	/* Unambiguous abbreviations work, as getopt_long allows. */
	char *ok[] = {"run", "--kern", "k.elf", "--no-irq"};
	struct vmmux_config *c = parse_ok(ARGC(ok), ok);
	assert_string_equal(c->kernel, "k.elf");
	drop(c);
	/* "--" ends the options; what follows is an unexpected argument. */
	char *a8[] = {"run", "--", "--mem"};
	parse_fails(ARGC(a8), a8,
		    "unexpected argument '--mem' (the guest image is given with --kernel FILE)");
}

static void test_help(void **state)
{
	(void)state;
	char *a1[] = {"run", "--mem", "64M", "--help"};
	char *a2[] = {"run", "-h"};
	char *a3[] = {"run", "--config", "/nonexistent.json", "-h"};
	char **all[] = {a1, a2, a3};
	int argcs[] = {ARGC(a1), ARGC(a2), ARGC(a3)};
	for (size_t i = 0; i < 3; i++) {
		struct vmmux_config *c = new_config();
		struct errbuf e;
		assert_int_equal(cli_parse_run(argcs[i], all[i], c, &e), CLI_HELP);
		assert_int_equal(c->mem_bytes, 64u << 20);
		drop(c);
	}
}

/* The parser may be called several times in one process (getopt reset). */
/* --gdb adds the VMM 'gdb' (role gdbstub, in the main VMM even under
 * --parallel) and routes #DB and #BP to it; what cannot go with it. */
static void test_gdb(void **state)
{
	(void)state;
	char *argv[] = {"run",	 "--kernel",	     "k.elf",	  "--parallel",
			"--gdb", "unix:/tmp/g.sock", "--gdb-wait"};
	struct vmmux_config *c = parse_ok(ARGC(argv), argv);
	assert_string_equal(c->gdb, "unix:/tmp/g.sock");
	assert_true(c->gdb_wait);
	struct errbuf e;
	if (config_finish(c, &e) != 0)
		fail_msg("%s", e.msg);
	size_t g = c->nvmms;
	for (size_t i = 0; i < c->nvmms; i++)
		if (strcmp(c->vmms[i].name, "gdb") == 0)
			g = i;
	assert_true(g < c->nvmms);
	assert_string_equal(c->vmms[g].role, "gdbstub");
	assert_int_equal(c->vmms[g].placement, VMM_IN_PROCESS);
	assert_int_equal(c->vmms[g].nargs, 2);
	assert_string_equal(c->vmms[g].args[0].key, "listen");
	assert_string_equal(c->vmms[g].args[0].value, "unix:/tmp/g.sock");
	assert_string_equal(c->vmms[g].args[1].value, "yes");
	unsigned routes = 0;
	for (size_t i = 0; i < c->nroutes; i++)
		routes += strcmp(c->routes[i].text, "exception:1=gdb") == 0 ||
			  strcmp(c->routes[i].text, "exception:3=gdb") == 0;
	assert_int_equal(routes, 2);
	drop(c);

	char *wait_alone[] = {"run", "--kernel", "k.elf", "--gdb-wait"};
	char *with_break[] = {"run", "--kernel", "k.elf", "--gdb", "tcp::1", "--break", "0x1000"};
	char *parallel[] = {"run", "--kernel", "k.elf", "--vmm",
			    "d=gdbstub,listen=tcp::1,placement=parallel"};
	char *taken[] = {"run",	   "--kernel", "k.elf",		  "--gdb",
			 "tcp::1", "--route",  "exception:3=main"};
	struct {
		int argc;
		char **argv;
		const char *msg;
	} bad[] = {
	    {ARGC(wait_alone), wait_alone, "--gdb-wait needs --gdb"},
	    {ARGC(with_break), with_break, "--gdb cannot be given with --break"},
	    {ARGC(parallel), parallel, "VMM 'd': role gdbstub runs in the main VMM's process only"},
	    {ARGC(taken), taken, "--gdb needs the route exception:3=gdb, but route "},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		c = parse_ok(bad[i].argc, bad[i].argv);
		memset(&e, 0, sizeof(e));
		assert_int_equal(config_finish(c, &e), -1);
		if (strncmp(e.msg, bad[i].msg, strlen(bad[i].msg)) != 0)
			fail_msg("\"%s\" does not start with \"%s\"", e.msg, bad[i].msg);
		drop(c);
	}
	/* --gdb needs a value */
	char *empty[] = {"run", "--gdb", ""};
	parse_fails(ARGC(empty), empty, "--gdb: the value is empty");
}

static void test_parse_twice(void **state)
{
	(void)state;
	for (int i = 0; i < 3; i++) {
		char *argv[] = {"run", "--cpus", "4", "--route", "io:0x80=main"};
		struct vmmux_config *c = parse_ok(ARGC(argv), argv);
		assert_int_equal(c->cpus, 4);
		assert_int_equal(c->nroutes, 1);
		drop(c);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_no_options),
	    cmocka_unit_test(test_every_option),
	    cmocka_unit_test(test_last_wins),
	    cmocka_unit_test(test_repeated_route_and_vmm),
	    cmocka_unit_test(test_config_then_overrides),
	    cmocka_unit_test(test_bad_mem),
	    cmocka_unit_test(test_break_limit),
	    cmocka_unit_test(test_bad_values),
	    cmocka_unit_test(test_syntax),
	    cmocka_unit_test(test_help),
	    cmocka_unit_test(test_parse_twice),
	    cmocka_unit_test(test_gdb),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
