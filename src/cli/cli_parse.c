/*
 * cli_parse.c: the options of `vmmux run` and `vmmux routes` into a config.
 *
 * Two getopt_long passes over the same arguments: the first checks the
 * syntax of every option and finds --config (loaded first, wherever it
 * appears, so that the command line overrides the file); the second applies
 * the other options in the order given.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "config/config.h"
#include "util/parse.h"

enum {
	OPT_KERNEL = 256,
	OPT_FORMAT,
	OPT_LOAD_ADDR,
	OPT_ENTRY,
	OPT_CPU_MODE,
	OPT_APPEND,
	OPT_MEM,
	OPT_CPUS,
	OPT_IRQCHIP,
	OPT_NO_IRQCHIP,
	OPT_ROUTE,
	OPT_VMM,
	OPT_NO_DEFAULTS,
	OPT_PARALLEL,
	OPT_SPIN,
	OPT_CONFIG,
	OPT_STATS,
	OPT_STATS_JSON,
	OPT_TRACE,
	OPT_TRACE_EVENTS,
	OPT_SINGLE_STEP,
	OPT_SW_BREAKPOINTS,
	OPT_BREAK,
	OPT_WATCHDOG,
	OPT_LOG_LEVEL,
	OPT_API_SOCK,
	OPT_INITRD,
	OPT_MODULE,
	OPT_FW_CFG,
	OPT_LOG_TIMESTAMPS,
	OPT_NO_FW_CFG,
	OPT_GDB,
	OPT_GDB_WAIT,
	OPT_NO_SECCOMP,
	OPT_HELP = 'h',
};

static const struct option run_options[] = {
    {"kernel", required_argument, NULL, OPT_KERNEL},
    {"format", required_argument, NULL, OPT_FORMAT},
    {"load-addr", required_argument, NULL, OPT_LOAD_ADDR},
    {"entry", required_argument, NULL, OPT_ENTRY},
    {"cpu-mode", required_argument, NULL, OPT_CPU_MODE},
    {"append", required_argument, NULL, OPT_APPEND},
    {"mem", required_argument, NULL, OPT_MEM},
    {"cpus", required_argument, NULL, OPT_CPUS},
    {"irqchip", no_argument, NULL, OPT_IRQCHIP},
    {"no-irqchip", no_argument, NULL, OPT_NO_IRQCHIP},
    {"route", required_argument, NULL, OPT_ROUTE},
    {"vmm", required_argument, NULL, OPT_VMM},
    {"no-defaults", no_argument, NULL, OPT_NO_DEFAULTS},
    {"parallel", no_argument, NULL, OPT_PARALLEL},
    {"spin", required_argument, NULL, OPT_SPIN},
    {"config", required_argument, NULL, OPT_CONFIG},
    {"stats", no_argument, NULL, OPT_STATS},
    {"stats-json", required_argument, NULL, OPT_STATS_JSON},
    {"trace", required_argument, NULL, OPT_TRACE},
    {"trace-events", required_argument, NULL, OPT_TRACE_EVENTS},
    {"single-step", no_argument, NULL, OPT_SINGLE_STEP},
    {"sw-breakpoints", no_argument, NULL, OPT_SW_BREAKPOINTS},
    {"break", required_argument, NULL, OPT_BREAK},
    {"watchdog", required_argument, NULL, OPT_WATCHDOG},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"api-sock", required_argument, NULL, OPT_API_SOCK},
    {"initrd", required_argument, NULL, OPT_INITRD},
    {"module", required_argument, NULL, OPT_MODULE},
    {"fw-cfg", no_argument, NULL, OPT_FW_CFG},
    {"log-timestamps", no_argument, NULL, OPT_LOG_TIMESTAMPS},
    {"no-fw-cfg", no_argument, NULL, OPT_NO_FW_CFG},
    {"gdb", required_argument, NULL, OPT_GDB},
    {"gdb-wait", no_argument, NULL, OPT_GDB_WAIT},
    {"no-seccomp", no_argument, NULL, OPT_NO_SECCOMP},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

/* Leading ':' so that a missing argument returns ':' and nothing is printed. */
static const char short_options[] = ":h";

static const char *option_name(int val)
{
	for (const struct option *o = run_options; o->name != NULL; o++)
		if (o->val == val)
			return o->name;
	return "?";
}

/* The message for a '?' or ':' from getopt_long (opterr is off). */
static int getopt_error(int r, int argc, char **argv, struct errbuf *e)
{
	const char *arg = optind >= 1 && optind - 1 < argc ? argv[optind - 1] : "";
	if (r == ':') {
		if (optopt >= 256)
			return err_set(e, "option '--%s' needs an argument", option_name(optopt));
		return err_set(e, "option '-%c' needs an argument", optopt);
	}
	if (optopt >= 256)
		return err_set(e, "option '--%s' takes no argument", option_name(optopt));
	if (optopt != 0)
		return err_set(e, "unknown option '-%c'", optopt);
	return err_set(e, "unknown or ambiguous option '%s'", arg);
}

static int set_string(char **field, const char *opt, const char *arg, struct errbuf *e)
{
	if (arg[0] == '\0')
		return err_set(e, "--%s: the value is empty", opt);
	char *d = strdup(arg);
	if (d == NULL)
		return err_set(e, "--%s: out of memory", opt);
	free(*field);
	*field = d;
	return 0;
}

static int apply_vmm(struct vmmux_config *c, const char *arg, struct errbuf *e)
{
	struct vmm_config v;
	if (config_parse_vmm_option(arg, &v, e))
		return err_prefix(e, "--vmm '%s'", arg);
	int rc = config_add_vmm(c, &v, e);
	config_vmm_clear(&v);
	if (rc)
		return err_prefix(e, "--vmm '%s'", arg);
	return 0;
}

/* Apply one option of the second pass. */
static int apply(struct vmmux_config *c, int opt, const char *arg, struct errbuf *e)
{
	const char *name = option_name(opt);
	uint64_t n;
	struct route_spec spec;

	switch (opt) {
	case OPT_KERNEL:
		return set_string(&c->kernel, name, arg, e);
	case OPT_FORMAT:
		if (config_parse_format(arg, &c->load.format, e))
			return err_prefix(e, "--%s", name);
		return 0;
	case OPT_LOAD_ADDR:
		if (parse_u64(arg, &c->load.load_addr, e))
			return err_prefix(e, "--%s", name);
		c->load_addr_set = true;
		return 0;
	case OPT_ENTRY:
		if (parse_u64(arg, &c->load.entry, e))
			return err_prefix(e, "--%s", name);
		c->load.has_entry = true;
		return 0;
	case OPT_CPU_MODE:
		if (config_parse_cpu_mode(arg, &c->load.mode, e))
			return err_prefix(e, "--%s", name);
		return 0;
	case OPT_APPEND: {
		char *d = strdup(arg); /* may be empty */
		if (d == NULL)
			return err_set(e, "--%s: out of memory", name);
		free(c->append);
		c->append = d;
		return 0;
	}
	case OPT_MEM:
		if (parse_mem_size(arg, &n, e))
			return err_prefix(e, "--%s", name);
		if (config_check_mem(n, e))
			return err_prefix(e, "--%s: '%s'", name, arg);
		c->mem_bytes = n;
		return 0;
	case OPT_CPUS:
		if (parse_u64(arg, &n, e))
			return err_prefix(e, "--%s", name);
		if (config_check_cpus(n, e))
			return err_prefix(e, "--%s", name);
		c->cpus = (unsigned)n;
		return 0;
	case OPT_IRQCHIP:
	case OPT_NO_IRQCHIP:
		c->irqchip = opt == OPT_IRQCHIP;
		c->irqchip_set = true;
		return 0;
	case OPT_ROUTE:
		if (route_spec_parse(arg, &spec, e) || config_add_route(c, &spec, e))
			return err_prefix(e, "--%s", name);
		return 0;
	case OPT_VMM:
		return apply_vmm(c, arg, e);
	case OPT_PARALLEL:
		c->all_parallel = true;
		return 0;
	case OPT_SPIN:
		if (parse_duration(arg, &c->spin_ns, e))
			return err_prefix(e, "--%s", name);
		if (c->spin_ns > 1000000ull)
			return err_set(e, "--%s: '%s' is longer than 1ms", name, arg);
		c->spin_set = true;
		return 0;
	case OPT_NO_DEFAULTS:
		c->defaults = false;
		return 0;
	case OPT_STATS:
		c->stats = true;
		return 0;
	case OPT_STATS_JSON:
		return set_string(&c->stats_json, name, arg, e);
	case OPT_API_SOCK:
		return set_string(&c->api_sock, name, arg, e);
	case OPT_TRACE:
		return set_string(&c->trace, name, arg, e);
	case OPT_TRACE_EVENTS:
		if (parse_u64(arg, &n, e) || config_check_trace_events(n, e))
			return err_prefix(e, "--%s", name);
		c->trace_events = (uint32_t)n;
		return 0;
	case OPT_SINGLE_STEP:
		c->single_step = true;
		return 0;
	case OPT_SW_BREAKPOINTS:
		c->sw_breakpoints = true;
		return 0;
	case OPT_BREAK:
		if (parse_u64(arg, &n, e) || config_add_breakpoint(c, n, e))
			return err_prefix(e, "--%s", name);
		return 0;
	case OPT_WATCHDOG:
		if (parse_duration(arg, &c->watchdog_ns, e))
			return err_prefix(e, "--%s", name);
		return 0;
	case OPT_LOG_LEVEL:
		if (config_parse_log_level(arg, &c->log_level, e))
			return err_prefix(e, "--%s", name);
		return 0;
	case OPT_INITRD:
		return config_set_initrd(c, "--initrd", arg, NULL, e);
	case OPT_MODULE:
		return config_add_module(c, "--module", arg, NULL, e);
	case OPT_FW_CFG:
	case OPT_NO_FW_CFG:
		c->fw_cfg = opt == OPT_FW_CFG;
		c->fw_cfg_set = true;
		return 0;
	case OPT_LOG_TIMESTAMPS:
		c->log_timestamps = true;
		return 0;
	case OPT_GDB:
		return set_string(&c->gdb, name, arg, e);
	case OPT_NO_SECCOMP:
		c->no_seccomp = true;
		return 0;
	case OPT_GDB_WAIT:
		c->gdb_wait = true;
		return 0;
	default:
		return 0; /* --config and --help: first pass */
	}
}

int cli_parse_run(int argc, char **argv, struct vmmux_config *c, struct errbuf *e)
{
	const char *config = NULL;
	bool help = false;
	int r;

	/* First pass: syntax, --config, --help. */
	opterr = 0;
	optind = 0;
	while ((r = getopt_long(argc, argv, short_options, run_options, NULL)) != -1) {
		if (r == '?' || r == ':')
			return getopt_error(r, argc, argv, e);
		if (r == OPT_HELP)
			help = true;
		if (r == OPT_CONFIG) {
			if (config != NULL)
				return err_set(e, "--config is given twice ('%s', '%s')", config,
					       optarg);
			config = optarg;
		}
	}
	if (optind < argc)
		return err_set(
		    e, "unexpected argument '%s' (the guest image is given with --kernel FILE)",
		    argv[optind]);
	if (help)
		return CLI_HELP;
	if (config != NULL && config_load_json(c, config, e))
		return -1;

	/* Second pass: every other option, in order. */
	optind = 0;
	while ((r = getopt_long(argc, argv, short_options, run_options, NULL)) != -1)
		if (apply(c, r, optarg, e))
			return -1;
	return 0;
}
