/*
 * config.c: the description of a run, from a JSON file (jansson) and from the
 * command line (cli/ calls the helpers here), then finished with the PC-like
 * defaults and the checks that need the whole picture.
 *
 * Strictness is the rule: unknown keys, wrong JSON types, duplicate keys,
 * out-of-range values are all errors, and every error names the file and
 * the JSON path of the value ("vm.json: vmms[1].name: 'uart' is already
 * used"), so that a user never has to guess which field was ignored.
 */
#include "config/config.h"

#include <errno.h>
#include <sched.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "stats/trace.h"
#include "loader/modules.h"
#include "util/log.h"
#include "vm/guest_mem.h"
#include "util/parse.h"
#include "../../vmms/fwcfg/pc_memmap.h"

#define CONFIG_FILE_MAX (16u << 20) /* larger is not a config file */
#define JPATH_MAX	160	    /* JSON path text in messages */

/* ---------------------------------------------------------------------- */
/* Life of a config                                                         */
/* ---------------------------------------------------------------------- */

void config_init(struct vmmux_config *c)
{
	memset(c, 0, sizeof(*c));
	c->mem_bytes = MEM_DEFAULT;
	c->cpus = 1;
	c->irqchip = false;
	c->kernel = NULL;
	c->load.format = IMAGE_AUTO;
	c->load.mode = CPU_MODE_DEFAULT;
	c->load.cmdline = NULL;
	c->append = NULL;
	c->defaults = true;
	c->stats_json = NULL;
	c->log_level = VMMUX_LOG_WARN;
}

void config_vmm_clear(struct vmm_config *v)
{
	free(v->input);
	free(v->output);
	free(v->program);
	for (size_t i = 0; i < v->nprogram_args && i < VMM_PROGRAM_ARGS_MAX; i++)
		free(v->program_args[i]);
	for (size_t i = 0; i < v->ngrants && i < VMM_GRANTS_MAX; i++)
		free(v->grants[i]);
	for (size_t i = 0; i < v->nargs && i < VMM_ARGS_MAX; i++) {
		free(v->args[i].key);
		free(v->args[i].value);
	}
	memset(v, 0, sizeof(*v));
}

static void config_modules_free(struct vmmux_config *c);

static void config_hvt_free(struct config_hvt *h);

void config_free(struct vmmux_config *c)
{
	free(c->kernel);
	free(c->append);
	config_modules_free(c);
	free(c->stats_json);
	free(c->api_sock);
	free(c->trace);
	free(c->gdb);
	for (size_t i = 0; i < c->nvmms && i < CONFIG_VMMS_MAX; i++)
		config_vmm_clear(&c->vmms[i]);
	config_hvt_free(&c->hvt);
	config_init(c);
}

/* Replace the string *FIELD by V (owned); frees the old one. */
static void set_owned(char **field, char *v)
{
	free(*field);
	*field = v;
}

/* BASEDIR/P, or a copy of P when it is absolute or BASEDIR is NULL/empty. */
static char *path_join(const char *basedir, const char *p)
{
	if (basedir == NULL || basedir[0] == '\0' || p[0] == '/')
		return strdup(p);
	size_t n = strlen(basedir);
	char *out;
	if (asprintf(&out, "%s%s%s", basedir, basedir[n - 1] == '/' ? "" : "/", p) < 0)
		return NULL;
	return out;
}

/* "64 MiB", "4 KiB", "1000 bytes": the largest binary unit that divides B. */
static void fmt_size(uint64_t b, char *buf, size_t len)
{
	static const struct {
		const char *name;
		unsigned shift;
	} units[] = {{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}};
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		uint64_t u = 1ull << units[i].shift;
		if (b >= u && b % u == 0) {
			snprintf(buf, len, "%llu %s", (unsigned long long)(b >> units[i].shift),
				 units[i].name);
			return;
		}
	}
	snprintf(buf, len, "%llu bytes", (unsigned long long)b);
}

/* ---------------------------------------------------------------------- */
/* Field checks shared with the command line                                */
/* ---------------------------------------------------------------------- */

int config_check_mem(uint64_t bytes, struct errbuf *e)
{
	char sz[40], lim[40];
	fmt_size(bytes, sz, sizeof(sz));
	if (bytes % 4096 != 0)
		return err_set(e, "%s is not a multiple of 4 KiB", sz);
	if (bytes < MEM_MIN) {
		fmt_size(MEM_MIN, lim, sizeof(lim));
		return err_set(e, "%s is below the minimum of %s", sz, lim);
	}
	if (bytes > MEM_MAX) {
		fmt_size(MEM_MAX, lim, sizeof(lim));
		return err_set(e, "%s is above the maximum of %s", sz, lim);
	}
	return 0;
}

int config_check_cpus(uint64_t n, struct errbuf *e)
{
	if (n < 1 || n > CPUS_MAX)
		return err_set(e, "%llu is not a valid number of vCPUs (1 to %d)",
			       (unsigned long long)n, CPUS_MAX);
	return 0;
}

int config_check_trace_events(uint64_t n, struct errbuf *e)
{
	if (n < 1 || n > TRACE_EVENTS_MAX)
		return err_set(e, "%llu is not a valid number of trace events per track (1 to %u)",
			       (unsigned long long)n, TRACE_EVENTS_MAX);
	return 0;
}

int config_parse_format(const char *s, enum image_format *out, struct errbuf *e)
{
	if (strcmp(s, "auto") == 0)
		*out = IMAGE_AUTO;
	else if (strcmp(s, "raw") == 0)
		*out = IMAGE_RAW;
	else
		return err_set(e, "format '%s' is not known (auto, raw)", s);
	return 0;
}

int config_parse_cpu_mode(const char *s, enum cpu_mode *out, struct errbuf *e)
{
	int m = cpu_mode_parse(s);
	if (m < 0)
		return err_set(e, "CPU mode '%s' is not known (real, protected, long, user)", s);
	*out = (enum cpu_mode)m;
	return 0;
}

int config_parse_log_level(const char *s, int *out, struct errbuf *e)
{
	int l = log_level_parse(s);
	if (l < 0)
		return err_set(e, "log level '%s' is not known (error, warn, info, debug)", s);
	*out = l;
	return 0;
}

/* Index of the VMM named NAME in C, or -1. */
static long find_vmm(const struct vmmux_config *c, const char *name)
{
	for (size_t i = 0; i < c->nvmms; i++)
		if (strcmp(c->vmms[i].name, name) == 0)
			return (long)i;
	return -1;
}

/*
 * A VMM name that may be added to C (C NULL: syntax only). LABEL puts
 * "VMM name " before the quoted name, for messages without a JSON path.
 */
static int check_vmm_name(const struct vmmux_config *c, const char *name, bool label,
			  struct errbuf *e)
{
	const char *l = label ? "VMM name " : "";
	if (strnlen(name, VMMUX_NAME_MAX) >= VMMUX_NAME_MAX)
		return err_set(e, "%s'%.*s...' is too long (at most %d characters)", l,
			       VMMUX_NAME_MAX - 1, name, VMMUX_NAME_MAX - 1);
	if (!vmm_name_valid(name))
		return err_set(
		    e, "%s'%s' is not valid: use 1 to %d characters among a-z, 0-9, '_' and '-'", l,
		    name, VMMUX_NAME_MAX - 1);
	if (strcmp(name, "main") == 0)
		return err_set(e, "%s'main' is reserved for the main VMM", l);
	if (c != NULL && find_vmm(c, name) >= 0)
		return err_set(e, "%s'%s' is already used", l, name);
	return 0;
}

static int check_role_name(const char *role, struct errbuf *e)
{
	if (role[0] == '\0')
		return err_set(e, "the role is empty (`vmmux roles` lists the roles)");
	if (strnlen(role, VMMUX_NAME_MAX) >= VMMUX_NAME_MAX)
		return err_set(e, "role '%.*s...' is too long (at most %d characters)",
			       VMMUX_NAME_MAX - 1, role, VMMUX_NAME_MAX - 1);
	return 0;
}

static int parse_placement(const char *s, enum vmm_placement *out, struct errbuf *e)
{
	if (strcmp(s, "main") == 0) {
		*out = VMM_IN_PROCESS;
		return 0;
	}
	if (strcmp(s, "parallel") == 0) {
		*out = VMM_PARALLEL;
		return 0;
	}
	return err_set(e, "placement '%s' is not known (main, parallel)", s);
}

#define PAGE_SIZE_4K 4096ull

/* A memory grant: "all", or a range "A-B" (inclusive) or "A+SIZE", page-aligned. */
static int parse_window(const char *s, struct vmm_config *v, struct errbuf *e)
{
	if (strcmp(s, "all") == 0) {
		v->memory_all = true;
		return 0;
	}
	char buf[64];
	if (strlen(s) >= sizeof(buf))
		return err_set(e, "memory window '%.20s...' is too long", s);
	memcpy(buf, s, strlen(s) + 1);
	char *sep = strpbrk(buf, "-+");
	if (sep == NULL)
		return err_set(e, "memory window '%s': expected all, A-B or A+SIZE", s);
	char op = *sep;
	*sep = '\0';
	uint64_t a, b;
	struct errbuf pe;
	if (parse_u64(buf, &a, &pe) < 0 || parse_u64(sep + 1, &b, &pe) < 0)
		return err_set(e, "memory window '%s': %s", s, pe.msg);
	uint64_t size;
	if (op == '-') {
		if (b < a)
			return err_set(e, "memory window '%s': the end is below the start", s);
		if (b - a == UINT64_MAX)
			return err_set(e, "memory window '%s' is too large", s);
		size = b - a + 1;
	} else {
		size = b;
		if (size == 0 || a + size - 1 < a)
			return err_set(e, "memory window '%s': bad size", s);
	}
	if (a % PAGE_SIZE_4K || size % PAGE_SIZE_4K)
		return err_set(e, "memory window '%s' is not 4 KiB-aligned (start and size)", s);
	if (v->nwindows >= VMM_WINDOWS_MAX)
		return err_set(e, "too many memory windows (at most %d)", VMM_WINDOWS_MAX);
	v->windows[v->nwindows++] = (struct vmm_window){a, size, false};
	return 0;
}

#define SPIN_MAX_NS 1000000ull /* 1 ms (TP_SPIN_NS_MAX): longer is a busy CPU, not a doorbell */

static int check_spin(uint64_t ns, struct errbuf *e)
{
	if (ns > SPIN_MAX_NS)
		return err_set(e, "a spin of %llu ns is longer than 1ms", (unsigned long long)ns);
	return 0;
}

static int add_grant(const char *s, struct vmm_config *v, struct errbuf *e)
{
	struct raise_grants g;
	memset(&g, 0, sizeof(g));
	if (grant_parse(s, &g, e) < 0)
		return -1;
	if (v->ngrants >= VMM_GRANTS_MAX)
		return err_set(e, "too many grants (at most %d)", VMM_GRANTS_MAX);
	if ((v->grants[v->ngrants] = strdup(s)) == NULL)
		return err_set(e, "out of memory");
	v->ngrants++;
	v->raise_set = true;
	return 0;
}

/* "fd:..." is the form in which vmmux itself hands a VMM a descriptor it
 * opened (src/vmm/vmm.c, the hvt set-up): never taken from a user. */
static bool reserved_fd_form(const char *s)
{
	return strncmp(s, "fd:", 3) == 0;
}

/* A VMM's input: "stdin", "none" (NULL) or a path, joined to BASEDIR. */
static int parse_input(const char *s, const char *basedir, char **out, struct errbuf *e)
{
	*out = NULL;
	if (s[0] == '\0')
		return err_set(e, "input is empty (use stdin, none or a path)");
	if (strcmp(s, "none") == 0)
		return 0;
	if (strcmp(s, "stdout") == 0 || strcmp(s, "stderr") == 0)
		return err_set(e, "'%s' cannot be an input (use stdin, none or a path)", s);
	if (reserved_fd_form(s))
		return err_set(
		    e,
		    "input '%s': fd:N is reserved for descriptors vmmux opens itself "
		    "(an hvt guest's devices); give a path (./%s for a file of that name)",
		    s, s);
	*out = strcmp(s, "stdin") == 0 ? strdup(s) : path_join(basedir, s);
	if (*out == NULL)
		return err_set(e, "out of memory");
	return 0;
}

/* A VMM's output: "stdout", "stderr", "none" (NULL) or a path. */
static int parse_output(const char *s, const char *basedir, char **out, struct errbuf *e)
{
	*out = NULL;
	if (s[0] == '\0')
		return err_set(e, "output is empty (use stdout, stderr, none or a path)");
	if (strcmp(s, "none") == 0)
		return 0;
	if (strcmp(s, "stdin") == 0)
		return err_set(e,
			       "'stdin' cannot be an output (use stdout, stderr, none or a path)");
	if (reserved_fd_form(s))
		return err_set(
		    e,
		    "output '%s': fd:N is reserved for descriptors vmmux opens itself "
		    "(an hvt guest's devices); give a path (./%s for a file of that name)",
		    s, s);
	if (strcmp(s, "stdout") == 0 || strcmp(s, "stderr") == 0)
		*out = strdup(s);
	else
		*out = path_join(basedir, s);
	if (*out == NULL)
		return err_set(e, "out of memory");
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Adding VMMs, routes, breakpoints                                         */
/* ---------------------------------------------------------------------- */

int config_add_vmm(struct vmmux_config *c, const struct vmm_config *v, struct errbuf *e)
{
	if (c->nvmms >= CONFIG_VMMS_MAX)
		return err_set(e, "too many VMMs (at most %d besides main)", CONFIG_VMMS_MAX);
	if (check_vmm_name(c, v->name, true, e))
		return -1;
	if (check_role_name(v->role, e))
		return err_prefix(e, "VMM '%s'", v->name);
	if (v->placement != VMM_IN_PROCESS && v->placement != VMM_PARALLEL)
		return err_set(e, "VMM '%s': placement %d is not known", v->name,
			       (int)v->placement);
	if (v->program != NULL && v->placement != VMM_PARALLEL)
		return err_set(e,
			       "VMM '%s': an external program runs as a parallel VMM "
			       "(placement parallel)",
			       v->name);
	if (v->nargs > VMM_ARGS_MAX)
		return err_set(e, "VMM '%s': %zu arguments, at most %d", v->name, v->nargs,
			       VMM_ARGS_MAX);
	for (size_t i = 0; i < v->nargs; i++) {
		if (v->args[i].key == NULL || v->args[i].key[0] == '\0' || v->args[i].value == NULL)
			return err_set(e, "VMM '%s': argument %zu has no key or no value", v->name,
				       i);
		for (size_t j = 0; j < i; j++)
			if (strcmp(v->args[i].key, v->args[j].key) == 0)
				return err_set(e, "VMM '%s': argument '%s' is given twice", v->name,
					       v->args[i].key);
	}

	struct vmm_config *d = &c->vmms[c->nvmms];
	memset(d, 0, sizeof(*d));
	memcpy(d->name, v->name, sizeof(d->name));
	memcpy(d->role, v->role, sizeof(d->role));
	d->placement = v->placement;
	d->placement_set = v->placement_set;
	d->memory_all = v->memory_all;
	d->nwindows = v->nwindows < VMM_WINDOWS_MAX ? v->nwindows : VMM_WINDOWS_MAX;
	memcpy(d->windows, v->windows, d->nwindows * sizeof(d->windows[0]));
	d->nfds = v->nfds < VMM_FDS_MAX ? v->nfds : VMM_FDS_MAX;
	memcpy(d->fds, v->fds, d->nfds * sizeof(d->fds[0]));
	d->raise_set = v->raise_set;
	d->timeout_ns = v->timeout_ns;
	d->spin_set = v->spin_set;
	d->spin_ns = v->spin_ns;
	d->cpu_set = v->cpu_set;
	d->cpu = v->cpu;
	bool oom = false;
	if (v->program != NULL && (d->program = strdup(v->program)) == NULL)
		oom = true;
	for (size_t i = 0; i < v->nprogram_args && i < VMM_PROGRAM_ARGS_MAX && !oom; i++) {
		oom = (d->program_args[i] = strdup(v->program_args[i])) == NULL;
		d->nprogram_args = i + 1;
	}
	for (size_t i = 0; i < v->ngrants && i < VMM_GRANTS_MAX && !oom; i++) {
		oom = (d->grants[i] = strdup(v->grants[i])) == NULL;
		d->ngrants = i + 1;
	}
	if (v->input != NULL && (d->input = strdup(v->input)) == NULL)
		oom = true;
	if (v->output != NULL && (d->output = strdup(v->output)) == NULL)
		oom = true;
	for (size_t i = 0; i < v->nargs && !oom; i++) {
		d->args[i].key = strdup(v->args[i].key);
		d->args[i].value = strdup(v->args[i].value);
		d->nargs = i + 1;
		oom = d->args[i].key == NULL || d->args[i].value == NULL;
	}
	if (oom) {
		config_vmm_clear(d);
		return err_set(e, "VMM '%s': out of memory", v->name);
	}
	c->nvmms++;
	return 0;
}

int config_add_route(struct vmmux_config *c, const struct route_spec *r, struct errbuf *e)
{
	if (c->nroutes >= CONFIG_ROUTES_MAX)
		return err_set(e, "too many routes (at most %d)", CONFIG_ROUTES_MAX);
	c->routes[c->nroutes++] = *r;
	return 0;
}

int config_add_breakpoint(struct vmmux_config *c, uint64_t addr, struct errbuf *e)
{
	if (c->nbreakpoints >= CONFIG_BREAKPOINTS_MAX)
		return err_set(e, "at most %d hardware breakpoints (the debug registers DR0-DR3)",
			       CONFIG_BREAKPOINTS_MAX);
	c->breakpoints[c->nbreakpoints++] = addr;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* --vmm NAME=ROLE[,key=value...]                                           */
/* ---------------------------------------------------------------------- */

#define VMM_OPTION_SYNTAX "NAME=ROLE[,key=value...]"

static int vmm_option_item(char *item, bool *input_seen, bool *output_seen, bool *placement_seen,
			   struct vmm_config *out, struct errbuf *e)
{
	if (item[0] == '\0')
		return err_set(e, "empty argument (two commas, or a comma at the end)");
	char *eq = strchr(item, '=');
	if (eq == NULL)
		return err_set(e, "argument '%s' needs a value (key=value)", item);
	*eq = '\0';
	const char *key = item, *val = eq + 1;
	if (key[0] == '\0')
		return err_set(e, "argument '=%s' has no key", val);
	if (strcmp(key, "input") == 0) {
		if (*input_seen)
			return err_set(e, "input= is given twice");
		*input_seen = true;
		return parse_input(val, NULL, &out->input, e);
	}
	if (strcmp(key, "output") == 0) {
		if (*output_seen)
			return err_set(e, "output= is given twice");
		*output_seen = true;
		return parse_output(val, NULL, &out->output, e);
	}
	if (strcmp(key, "placement") == 0) {
		if (*placement_seen)
			return err_set(e, "placement= is given twice");
		*placement_seen = true;
		out->placement_set = true;
		return parse_placement(val, &out->placement, e);
	}
	if (strcmp(key, "memory") == 0) /* repeatable: one window each */
		return parse_window(val, out, e);
	if (strcmp(key, "raise") == 0) /* repeatable: one grant each */
		return add_grant(val, out, e);
	if (strcmp(key, "cpu") == 0) {
		uint64_t n;
		if (out->cpu_set)
			return err_set(e, "cpu= is given twice");
		if (parse_u64(val, &n, e) < 0)
			return -1;
		if (n >= CPU_SETSIZE)
			return err_set(e, "cpu=%llu: no such CPU", (unsigned long long)n);
		out->cpu_set = true;
		out->cpu = (unsigned)n;
		return 0;
	}
	if (strcmp(key, "spin") == 0) {
		if (out->spin_set)
			return err_set(e, "spin= is given twice");
		out->spin_set = true;
		if (parse_duration(val, &out->spin_ns, e) < 0)
			return -1;
		return check_spin(out->spin_ns, e);
	}
	if (strcmp(key, "timeout") == 0) {
		if (out->timeout_ns)
			return err_set(e, "timeout= is given twice");
		if (parse_duration(val, &out->timeout_ns, e) < 0)
			return -1;
		if (out->timeout_ns == 0)
			return err_set(e, "timeout= must be greater than 0");
		return 0;
	}
	if (strcmp(key, "program") == 0) {
		if (out->program)
			return err_set(e, "program= is given twice");
		if (val[0] == '\0')
			return err_set(e, "program= is empty");
		if ((out->program = strdup(val)) == NULL)
			return err_set(e, "out of memory");
		out->placement = VMM_PARALLEL;
		return 0;
	}
	for (size_t i = 0; i < out->nargs; i++)
		if (strcmp(out->args[i].key, key) == 0)
			return err_set(e, "argument '%s' is given twice", key);
	if (out->nargs >= VMM_ARGS_MAX)
		return err_set(e, "too many arguments (at most %d)", VMM_ARGS_MAX);
	struct vmm_arg *a = &out->args[out->nargs];
	a->key = strdup(key);
	a->value = strdup(val);
	out->nargs++; /* counted before the check so that clearing frees both */
	if (a->key == NULL || a->value == NULL)
		return err_set(e, "out of memory");
	return 0;
}

int config_parse_vmm_option(const char *s, struct vmm_config *out, struct errbuf *e)
{
	memset(out, 0, sizeof(*out));
	out->placement = VMM_IN_PROCESS;
	char *dup = strdup(s);
	if (dup == NULL)
		return err_set(e, "out of memory");

	char *rest = dup;
	char *head = strsep(&rest, ",");
	char *eq = strchr(head, '=');
	int rc = 0;
	if (eq == NULL) {
		rc = err_set(e, "expected " VMM_OPTION_SYNTAX);
		goto out;
	}
	*eq = '\0';
	const char *name = head, *role = eq + 1;
	if (name[0] == '\0') {
		rc = err_set(e, "the VMM name is missing: expected " VMM_OPTION_SYNTAX);
		goto out;
	}
	if (role[0] == '\0') {
		rc = err_set(e, "the role is missing: expected " VMM_OPTION_SYNTAX);
		goto out;
	}
	if ((rc = check_vmm_name(NULL, name, true, e)) != 0)
		goto out;
	if ((rc = check_role_name(role, e)) != 0)
		goto out;
	memcpy(out->name, name, strlen(name) + 1);
	memcpy(out->role, role, strlen(role) + 1);

	bool input_seen = false, output_seen = false, placement_seen = false;
	while (rest != NULL) {
		char *item = strsep(&rest, ",");
		rc = vmm_option_item(item, &input_seen, &output_seen, &placement_seen, out, e);
		if (rc)
			goto out;
	}
out:
	free(dup);
	if (rc)
		config_vmm_clear(out);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* JSON                                                                     */
/* ---------------------------------------------------------------------- */

struct jctx {
	struct vmmux_config *c;
	const char *name;    /* file name for messages */
	const char *basedir; /* for relative paths, or NULL */
	struct errbuf *e;
};

/* "NAME: PATH: message" (no PATH part when PATH is NULL or empty). */
static int jerr(struct jctx *x, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int jerr(struct jctx *x, const char *path, const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (path != NULL && path[0] != '\0')
		return err_set(x->e, "%s: %s: %s", x->name, path, msg);
	return err_set(x->e, "%s: %s", x->name, msg);
}

/* Prefix the message already in x->e with "NAME: PATH". */
static int jprefix(struct jctx *x, const char *path)
{
	return err_prefix(x->e, "%s: %s", x->name, path);
}

/* Append S to the path text in BUF (LEN bytes, N used), cut when full: a
 * path in a message may be shortened, never overflow. */
static void jappend(char *buf, size_t len, size_t *n, const char *s)
{
	while (*s != '\0' && *n + 1 < len)
		buf[(*n)++] = *s++;
	buf[*n] = '\0';
}

/* BASE.KEY, or KEY at the top level. */
static void jpath(char *buf, size_t len, const char *base, const char *key)
{
	size_t n = 0;
	buf[0] = '\0';
	if (base != NULL && base[0] != '\0') {
		jappend(buf, len, &n, base);
		jappend(buf, len, &n, ".");
	}
	jappend(buf, len, &n, key);
}

/* BASE[I]. */
static void jpath_index(char *buf, size_t len, const char *base, size_t i)
{
	char idx[32];
	size_t n = 0;
	snprintf(idx, sizeof(idx), "[%zu]", i);
	buf[0] = '\0';
	jappend(buf, len, &n, base);
	jappend(buf, len, &n, idx);
}

/* A short, printable description of a JSON value for "got ..." messages. */
static const char *describe(const json_t *v, char *buf, size_t len)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING: {
		const char *s = json_string_value(v);
		char t[48];
		size_t n = 0;
		for (; s[n] != '\0' && n < 40; n++)
			t[n] = ((unsigned char)s[n] < 0x20 || s[n] == 0x7f) ? '?' : s[n];
		t[n] = '\0';
		snprintf(buf, len, "\"%s\"%s", t, s[n] != '\0' ? "..." : "");
		return buf;
	}
	case JSON_INTEGER:
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return buf;
	case JSON_REAL:
		snprintf(buf, len, "%g", json_real_value(v));
		return buf;
	case JSON_TRUE:
		return "true";
	case JSON_FALSE:
		return "false";
	case JSON_NULL:
		return "null";
	}
	return "an unknown value";
}

static int jtype_err(struct jctx *x, const char *path, const json_t *v, const char *expected)
{
	char d[64];
	return jerr(x, path, "expected %s, got %s", expected, describe(v, d, sizeof(d)));
}

/* Refuse keys of OBJ not in KNOWN (NULL-terminated); OWNER names OBJ. */
static int jkeys(struct jctx *x, const char *path, json_t *obj, const char *const *known,
		 const char *owner)
{
	const char *key;
	json_t *v;
	json_object_foreach(obj, key, v)
	{
		bool ok = false;
		for (size_t i = 0; known[i] != NULL && !ok; i++)
			ok = strcmp(key, known[i]) == 0;
		if (ok)
			continue;
		char list[256] = "";
		size_t n = 0;
		for (size_t i = 0; known[i] != NULL; i++) {
			int w =
			    snprintf(list + n, sizeof(list) - n, "%s%s", i ? ", " : "", known[i]);
			if (w < 0 || (size_t)w >= sizeof(list) - n)
				break;
			n += (size_t)w;
		}
		char p[JPATH_MAX];
		jpath(p, sizeof(p), path, key);
		return jerr(x, p, "unknown key (%s takes %s)", owner, list);
	}
	return 0;
}

static int jobject(struct jctx *x, const char *path, const json_t *v)
{
	return json_is_object(v) ? 0 : jtype_err(x, path, v, "an object");
}

static int jstring(struct jctx *x, const char *path, const json_t *v, const char **out)
{
	*out = "";
	if (!json_is_string(v))
		return jtype_err(x, path, v, "a string");
	*out = json_string_value(v);
	return 0;
}

/* A string that may not be empty. */
static int jstring_ne(struct jctx *x, const char *path, const json_t *v, const char **out)
{
	if (jstring(x, path, v, out))
		return -1;
	if ((*out)[0] == '\0')
		return jerr(x, path, "is empty");
	return 0;
}

static int jbool(struct jctx *x, const char *path, const json_t *v, bool *out)
{
	if (!json_is_boolean(v)) {
		jtype_err(x, path, v, "true or false");
		return -1; /* *out unchanged */
	}
	*out = json_is_true(v);
	return 0;
}

/* A number: a JSON integer >= 0, or a string parse_u64 takes ("0x7c00"). */
static int jnumber(struct jctx *x, const char *path, const json_t *v, uint64_t *out)
{
	if (json_is_integer(v)) {
		json_int_t n = json_integer_value(v);
		if (n < 0)
			return jerr(x, path, "%" JSON_INTEGER_FORMAT " is negative", n);
		*out = (uint64_t)n;
		return 0;
	}
	if (json_is_string(v)) {
		if (parse_u64(json_string_value(v), out, x->e))
			return jprefix(x, path);
		return 0;
	}
	return jtype_err(x, path, v, "an integer or a number string such as \"0x7c00\"");
}

/* A path string, joined to the config file's directory. */
static int jpath_value(struct jctx *x, const char *path, const json_t *v, char **out)
{
	const char *s = NULL;
	if (jstring_ne(x, path, v, &s))
		return -1;
	*out = path_join(x->basedir, s);
	if (*out == NULL)
		return jerr(x, path, "out of memory");
	return 0;
}

static int load_machine(struct jctx *x, json_t *m)
{
	static const char *const keys[] = {"mem", "cpus", "irqchip", "cpu_mode", "fw_cfg", NULL};
	struct vmmux_config *c = x->c;
	json_t *v;
	if (jobject(x, "machine", m) || jkeys(x, "machine", m, keys, "machine"))
		return -1;

	if ((v = json_object_get(m, "mem")) != NULL) {
		uint64_t bytes;
		if (json_is_string(v)) {
			if (parse_mem_size(json_string_value(v), &bytes, x->e))
				return jprefix(x, "machine.mem");
		} else if (json_is_integer(v)) {
			json_int_t n = json_integer_value(v);
			if (n < 0)
				return jerr(x, "machine.mem",
					    "%" JSON_INTEGER_FORMAT " is negative", n);
			if ((uint64_t)n > (UINT64_MAX >> 20))
				return jerr(x, "machine.mem",
					    "%" JSON_INTEGER_FORMAT " MiB is too large", n);
			bytes = (uint64_t)n << 20;
		} else {
			return jtype_err(x, "machine.mem", v,
					 "a size string such as \"64M\" or an integer number of "
					 "MiB");
		}
		if (config_check_mem(bytes, x->e))
			return jprefix(x, "machine.mem");
		c->mem_bytes = bytes;
	}
	if ((v = json_object_get(m, "cpus")) != NULL) {
		uint64_t n;
		if (jnumber(x, "machine.cpus", v, &n))
			return -1;
		if (config_check_cpus(n, x->e))
			return jprefix(x, "machine.cpus");
		c->cpus = (unsigned)n;
	}
	if ((v = json_object_get(m, "irqchip")) != NULL) {
		if (jbool(x, "machine.irqchip", v, &c->irqchip))
			return -1;
		c->irqchip_set = true;
	}
	if ((v = json_object_get(m, "fw_cfg")) != NULL) {
		if (jbool(x, "machine.fw_cfg", v, &c->fw_cfg))
			return -1;
		c->fw_cfg_set = true;
	}
	if ((v = json_object_get(m, "cpu_mode")) != NULL) {
		const char *s;
		if (jstring(x, "machine.cpu_mode", v, &s))
			return -1;
		if (config_parse_cpu_mode(s, &c->load.mode, x->e))
			return jprefix(x, "machine.cpu_mode");
	}
	return 0;
}

static int load_guest_modules(struct jctx *x, json_t *g);
static int load_hvt_args(struct jctx *x, json_t *v);
static int load_hvt(struct jctx *x, json_t *v);

static int load_guest(struct jctx *x, json_t *g)
{
	static const char *const keys[] = {"kernel", "format",	"load_addr", "entry", "append",
					   "initrd", "modules", "args",	     NULL};
	struct vmmux_config *c = x->c;
	json_t *v;
	if (jobject(x, "guest", g) || jkeys(x, "guest", g, keys, "guest"))
		return -1;

	if ((v = json_object_get(g, "kernel")) != NULL) {
		char *p;
		if (jpath_value(x, "guest.kernel", v, &p))
			return -1;
		set_owned(&c->kernel, p);
	}
	if ((v = json_object_get(g, "format")) != NULL) {
		const char *s;
		if (jstring(x, "guest.format", v, &s))
			return -1;
		c->hvt.on = strcmp(s, "hvt") == 0;
		if (c->hvt.on) {
			c->load.format = IMAGE_AUTO; /* an ELF64, with the hvt boot state */
			if (c->hvt.source == NULL && (c->hvt.source = strdup(x->name)) == NULL)
				return jerr(x, "guest.format", "out of memory");
		} else if (config_parse_format(s, &c->load.format, x->e))
			return jprefix(x, "guest.format");
	}
	if ((v = json_object_get(g, "load_addr")) != NULL) {
		if (jnumber(x, "guest.load_addr", v, &c->load.load_addr))
			return -1;
		c->load_addr_set = true;
	}
	if ((v = json_object_get(g, "entry")) != NULL) {
		if (jnumber(x, "guest.entry", v, &c->load.entry))
			return -1;
		c->load.has_entry = true;
	}
	if ((v = json_object_get(g, "append")) != NULL) {
		const char *s;
		if (jstring(x, "guest.append", v, &s))
			return -1;
		char *d = strdup(s);
		if (d == NULL)
			return jerr(x, "guest.append", "out of memory");
		set_owned(&c->append, d);
	}
	if (load_guest_modules(x, g))
		return -1;
	if ((v = json_object_get(g, "args")) != NULL) {
		if (!c->hvt.on)
			return jerr(x, "guest.args",
				    "the command line of a Solo5 hvt guest (guest.format \"hvt\"); "
				    "other guests take guest.append");
		if (load_hvt_args(x, v))
			return -1;
	}
	return 0;
}

/* One argument value as the role will see it: strings as they are, numbers
 * in decimal, booleans as "true"/"false". */
static int arg_value(struct jctx *x, const char *path, const json_t *v, char **out)
{
	char buf[64];
	const char *s;
	switch (json_typeof(v)) {
	case JSON_STRING:
		s = json_string_value(v);
		break;
	case JSON_INTEGER:
		snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		s = buf;
		break;
	case JSON_REAL:
		snprintf(buf, sizeof(buf), "%.17g", json_real_value(v));
		s = buf;
		break;
	case JSON_TRUE:
		s = "true";
		break;
	case JSON_FALSE:
		s = "false";
		break;
	default:
		return jtype_err(x, path, v, "a string, a number or a boolean");
	}
	*out = strdup(s);
	if (*out == NULL)
		return jerr(x, path, "out of memory");
	return 0;
}

static int load_vmm_args(struct jctx *x, const char *base, json_t *args, struct vmm_config *v)
{
	char path[JPATH_MAX];
	jpath(path, sizeof(path), base, "args");
	if (jobject(x, path, args))
		return -1;
	if (json_object_size(args) > VMM_ARGS_MAX)
		return jerr(x, path, "%zu arguments, at most %d", json_object_size(args),
			    VMM_ARGS_MAX);
	const char *key;
	json_t *val;
	json_object_foreach(args, key, val)
	{
		char p[JPATH_MAX];
		jpath(p, sizeof(p), path, key);
		if (key[0] == '\0')
			return jerr(x, path, "an argument has an empty key");
		if (strcmp(key, "input") == 0 || strcmp(key, "output") == 0 ||
		    strcmp(key, "placement") == 0) {
			char f[JPATH_MAX];
			jpath(f, sizeof(f), base, key);
			return jerr(x, p, "'%s' is a field of the VMM, not an argument: give %s",
				    key, f);
		}
		struct vmm_arg *a = &v->args[v->nargs];
		if ((a->key = strdup(key)) == NULL)
			return jerr(x, p, "out of memory");
		v->nargs++; /* so that clearing frees the key */
		if (arg_value(x, p, val, &a->value))
			return -1;
	}
	return 0;
}

static int load_vmm_fields(struct jctx *x, const char *base, json_t *o, struct vmm_config *v)
{
	char p[JPATH_MAX];
	const char *s;
	json_t *f;

	jpath(p, sizeof(p), base, "name");
	if ((f = json_object_get(o, "name")) == NULL)
		return jerr(x, p, "missing (every VMM needs a name)");
	if (jstring(x, p, f, &s))
		return -1;
	if (check_vmm_name(x->c, s, false, x->e))
		return jprefix(x, p);
	memcpy(v->name, s, strlen(s) + 1);

	if ((f = json_object_get(o, "program")) != NULL) {
		jpath(p, sizeof(p), base, "program");
		if (jstring_ne(x, p, f, &s))
			return -1;
		if ((v->program = path_join(x->basedir, s)) == NULL)
			return jerr(x, p, "out of memory");
		v->placement = VMM_PARALLEL;
		memcpy(v->role, "external", sizeof("external"));
	}
	if ((f = json_object_get(o, "program_args")) != NULL) {
		jpath(p, sizeof(p), base, "program_args");
		if (v->program == NULL)
			return jerr(x, p, "given without a program");
		if (!json_is_array(f))
			return jtype_err(x, p, f, "an array of strings");
		size_t i;
		json_t *a;
		json_array_foreach(f, i, a)
		{
			char pi[JPATH_MAX];
			jpath_index(pi, sizeof(pi), p, i);
			if (i >= VMM_PROGRAM_ARGS_MAX)
				return jerr(x, pi, "too many program arguments (at most %d)",
					    VMM_PROGRAM_ARGS_MAX);
			if (jstring(x, pi, a, &s))
				return -1;
			if ((v->program_args[i] = strdup(s)) == NULL)
				return jerr(x, pi, "out of memory");
			v->nprogram_args = i + 1;
		}
	}

	jpath(p, sizeof(p), base, "role");
	if ((f = json_object_get(o, "role")) == NULL) {
		if (v->program == NULL)
			return jerr(x, p,
				    "missing (every VMM needs a role, or a program; `vmmux roles` "
				    "lists the roles)");
	} else {
		if (jstring(x, p, f, &s))
			return -1;
		if (check_role_name(s, x->e))
			return jprefix(x, p);
		memcpy(v->role, s, strlen(s) + 1);
	}

	if ((f = json_object_get(o, "placement")) != NULL) {
		jpath(p, sizeof(p), base, "placement");
		if (jstring(x, p, f, &s))
			return -1;
		if (parse_placement(s, &v->placement, x->e))
			return jprefix(x, p);
		v->placement_set = true;
	}
	if ((f = json_object_get(o, "memory")) != NULL) {
		jpath(p, sizeof(p), base, "memory");
		if (!json_is_array(f))
			return jtype_err(x, p, f,
					 "an array of windows (\"all\", \"A-B\", \"A+SIZE\")");
		size_t i;
		json_t *a;
		json_array_foreach(f, i, a)
		{
			char pi[JPATH_MAX];
			jpath_index(pi, sizeof(pi), p, i);
			if (jstring(x, pi, a, &s))
				return -1;
			if (parse_window(s, v, x->e))
				return jprefix(x, pi);
		}
	}
	if ((f = json_object_get(o, "raise")) != NULL) {
		jpath(p, sizeof(p), base, "raise");
		if (!json_is_array(f))
			return jtype_err(x, p, f, "an array of grants such as \"irq:4\"");
		v->raise_set = true; /* an empty list grants nothing */
		size_t i;
		json_t *a;
		json_array_foreach(f, i, a)
		{
			char pi[JPATH_MAX];
			jpath_index(pi, sizeof(pi), p, i);
			if (jstring(x, pi, a, &s))
				return -1;
			if (add_grant(s, v, x->e))
				return jprefix(x, pi);
		}
	}
	if ((f = json_object_get(o, "cpu")) != NULL) {
		uint64_t n;
		jpath(p, sizeof(p), base, "cpu");
		if (jnumber(x, p, f, &n))
			return -1;
		if (n >= CPU_SETSIZE)
			return jerr(x, p, "no such CPU: %llu", (unsigned long long)n);
		v->cpu_set = true;
		v->cpu = (unsigned)n;
	}
	if ((f = json_object_get(o, "spin")) != NULL) {
		jpath(p, sizeof(p), base, "spin");
		if (jstring(x, p, f, &s))
			return -1;
		if (parse_duration(s, &v->spin_ns, x->e) || check_spin(v->spin_ns, x->e))
			return jprefix(x, p);
		v->spin_set = true;
	}
	if ((f = json_object_get(o, "timeout")) != NULL) {
		jpath(p, sizeof(p), base, "timeout");
		if (jstring(x, p, f, &s))
			return -1;
		if (parse_duration(s, &v->timeout_ns, x->e))
			return jprefix(x, p);
		if (v->timeout_ns == 0)
			return jerr(x, p, "must be greater than 0");
	}
	if ((f = json_object_get(o, "input")) != NULL) {
		jpath(p, sizeof(p), base, "input");
		if (jstring(x, p, f, &s))
			return -1;
		if (parse_input(s, x->basedir, &v->input, x->e))
			return jprefix(x, p);
	}
	if ((f = json_object_get(o, "output")) != NULL) {
		jpath(p, sizeof(p), base, "output");
		if (jstring(x, p, f, &s))
			return -1;
		if (parse_output(s, x->basedir, &v->output, x->e))
			return jprefix(x, p);
	}
	if ((f = json_object_get(o, "args")) != NULL && load_vmm_args(x, base, f, v))
		return -1;
	return 0;
}

/* The keys of a VMM object (config "vmms" entries, control API vmm.add). */
static const char *const vmm_keys[] = {"name",	  "role",    "placement",    "input",  "output",
				       "args",	  "program", "program_args", "memory", "raise",
				       "timeout", "spin",    "cpu",	     NULL};

static int load_vmms(struct jctx *x, json_t *a)
{
	if (!json_is_array(a))
		return jtype_err(x, "vmms", a, "an array of VMM objects");
	size_t i;
	json_t *o;
	json_array_foreach(a, i, o)
	{
		char base[JPATH_MAX];
		jpath_index(base, sizeof(base), "vmms", i);
		if (jobject(x, base, o) || jkeys(x, base, o, vmm_keys, "a VMM"))
			return -1;
		struct vmm_config v;
		memset(&v, 0, sizeof(v));
		v.placement = VMM_IN_PROCESS;
		int rc = load_vmm_fields(x, base, o, &v);
		if (rc == 0 && config_add_vmm(x->c, &v, x->e))
			rc = jprefix(x, base);
		config_vmm_clear(&v);
		if (rc)
			return -1;
	}
	return 0;
}

int config_vmm_from_json(struct json_t *o, const char *name, struct vmm_config *out,
			 struct errbuf *e)
{
	struct jctx x = {.c = NULL, .name = name != NULL ? name : "vmm", .basedir = NULL, .e = e};
	memset(out, 0, sizeof(*out));
	out->placement = VMM_IN_PROCESS;
	if (jobject(&x, NULL, o) || jkeys(&x, NULL, o, vmm_keys, "a VMM"))
		return -1;
	if (load_vmm_fields(&x, NULL, o, out) < 0) {
		config_vmm_clear(out);
		return -1;
	}
	return 0;
}

static int load_routes(struct jctx *x, json_t *a)
{
	if (!json_is_array(a))
		return jtype_err(x, "routes", a, "an array of route strings");
	size_t i;
	json_t *r;
	json_array_foreach(a, i, r)
	{
		char p[JPATH_MAX];
		const char *s;
		jpath_index(p, sizeof(p), "routes", i);
		if (!json_is_string(r))
			return jtype_err(x, p, r, "a route string such as \"io:0x3f8-0x3ff=uart\"");
		s = json_string_value(r);
		struct route_spec spec;
		if (route_spec_parse(s, &spec, x->e) || config_add_route(x->c, &spec, x->e))
			return jprefix(x, p);
	}
	return 0;
}

static int load_debug(struct jctx *x, json_t *d)
{
	static const char *const keys[] = {"single_step", "sw_breakpoints", "breakpoints",
					   "gdb",	  "gdb_wait",	    NULL};
	json_t *v;
	const char *str;
	if (jobject(x, "debug", d) || jkeys(x, "debug", d, keys, "debug"))
		return -1;
	if ((v = json_object_get(d, "gdb")) != NULL) {
		if (jstring_ne(x, "debug.gdb", v, &str))
			return -1;
		char *dup = strdup(str);
		if (dup == NULL)
			return jerr(x, "debug.gdb", "out of memory");
		set_owned(&x->c->gdb, dup);
	}
	if ((v = json_object_get(d, "gdb_wait")) != NULL &&
	    jbool(x, "debug.gdb_wait", v, &x->c->gdb_wait))
		return -1;
	if ((v = json_object_get(d, "sw_breakpoints")) != NULL &&
	    jbool(x, "debug.sw_breakpoints", v, &x->c->sw_breakpoints))
		return -1;
	if ((v = json_object_get(d, "single_step")) != NULL &&
	    jbool(x, "debug.single_step", v, &x->c->single_step))
		return -1;
	if ((v = json_object_get(d, "breakpoints")) != NULL) {
		if (!json_is_array(v))
			return jtype_err(x, "debug.breakpoints", v, "an array of addresses");
		size_t i;
		json_t *b;
		json_array_foreach(v, i, b)
		{
			char p[JPATH_MAX];
			uint64_t addr;
			jpath_index(p, sizeof(p), "debug.breakpoints", i);
			if (jnumber(x, p, b, &addr))
				return -1;
			if (config_add_breakpoint(x->c, addr, x->e))
				return jprefix(x, p);
		}
	}
	return 0;
}

static int load_root(struct jctx *x, json_t *root)
{
	static const char *const keys[] = {
	    "machine",	    "guest",	  "vmms",	    "routes",	"debug",    "watchdog",
	    "stats",	    "stats_json", "log_level",	    "defaults", "api_sock", "trace",
	    "trace_events", "hvt",	  "log_timestamps", NULL};
	struct vmmux_config *c = x->c;
	json_t *v;
	if (!json_is_object(root)) {
		char d[64];
		return jerr(x, NULL, "expected a JSON object at the top level, got %s",
			    describe(root, d, sizeof(d)));
	}
	if (jkeys(x, NULL, root, keys, "the top level"))
		return -1;
	if ((v = json_object_get(root, "machine")) != NULL && load_machine(x, v))
		return -1;
	if ((v = json_object_get(root, "guest")) != NULL && load_guest(x, v))
		return -1;
	if ((v = json_object_get(root, "vmms")) != NULL && load_vmms(x, v))
		return -1;
	if ((v = json_object_get(root, "routes")) != NULL && load_routes(x, v))
		return -1;
	if ((v = json_object_get(root, "debug")) != NULL && load_debug(x, v))
		return -1;
	if ((v = json_object_get(root, "hvt")) != NULL && load_hvt(x, v))
		return -1;
	if ((v = json_object_get(root, "watchdog")) != NULL) {
		if (!json_is_string(v))
			return jtype_err(x, "watchdog", v, "a duration string such as \"5s\"");
		if (parse_duration(json_string_value(v), &c->watchdog_ns, x->e))
			return jprefix(x, "watchdog");
	}
	if ((v = json_object_get(root, "log_timestamps")) != NULL &&
	    jbool(x, "log_timestamps", v, &c->log_timestamps))
		return -1;
	if ((v = json_object_get(root, "stats")) != NULL && jbool(x, "stats", v, &c->stats))
		return -1;
	if ((v = json_object_get(root, "stats_json")) != NULL) {
		char *p;
		if (jpath_value(x, "stats_json", v, &p))
			return -1;
		set_owned(&c->stats_json, p);
	}
	if ((v = json_object_get(root, "api_sock")) != NULL) {
		char *p;
		if (jpath_value(x, "api_sock", v, &p))
			return -1;
		set_owned(&c->api_sock, p);
	}
	if ((v = json_object_get(root, "trace")) != NULL) {
		char *p;
		if (jpath_value(x, "trace", v, &p))
			return -1;
		set_owned(&c->trace, p);
	}
	if ((v = json_object_get(root, "trace_events")) != NULL) {
		uint64_t n;
		if (jnumber(x, "trace_events", v, &n))
			return -1;
		if (config_check_trace_events(n, x->e))
			return jprefix(x, "trace_events");
		c->trace_events = (uint32_t)n;
	}
	if ((v = json_object_get(root, "log_level")) != NULL) {
		const char *s;
		if (jstring(x, "log_level", v, &s))
			return -1;
		if (config_parse_log_level(s, &c->log_level, x->e))
			return jprefix(x, "log_level");
	}
	if ((v = json_object_get(root, "defaults")) != NULL &&
	    jbool(x, "defaults", v, &c->defaults))
		return -1;
	return 0;
}

int config_load_json_string(struct vmmux_config *c, const char *name, const char *text,
			    const char *basedir, struct errbuf *e)
{
	struct jctx x = {
	    .c = c, .name = name != NULL ? name : "config", .basedir = basedir, .e = e};
	json_error_t je;
	json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &je);
	if (root == NULL) {
		if (je.line > 0)
			return err_set(e, "%s: line %d column %d: JSON syntax error: %s", x.name,
				       je.line, je.column, je.text);
		return err_set(e, "%s: JSON syntax error: %s", x.name, je.text);
	}
	int rc = load_root(&x, root);
	json_decref(root);
	return rc;
}

/* Read PATH whole (at most CONFIG_FILE_MAX bytes) into a NUL-terminated
 * buffer. */
static int read_text(const char *path, char **out, struct errbuf *e)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return err_set(e, "%s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
		fclose(f);
		return err_set(e, "%s: is a directory, not a config file", path);
	}
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	int rc = 0;
	while (buf != NULL && rc == 0) {
		if (len > CONFIG_FILE_MAX) {
			rc = err_set(e, "%s: larger than %u MiB, not a config file", path,
				     CONFIG_FILE_MAX >> 20);
			break;
		}
		if (cap - len < 2) {
			char *nb = realloc(buf, cap * 2);
			if (nb == NULL) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		size_t n = fread(buf + len, 1, cap - 1 - len, f);
		len += n;
		if (n == 0 && ferror(f))
			rc = err_set(e, "%s: %s", path, strerror(errno ? errno : EIO));
		else if (n == 0)
			break;
	}
	fclose(f);
	if (buf == NULL)
		return err_set(e, "%s: out of memory", path);
	const char *nul = rc == 0 ? memchr(buf, '\0', len) : NULL;
	if (nul != NULL)
		rc = err_set(e, "%s: contains a NUL byte at offset %zu, not a JSON text", path,
			     (size_t)(nul - buf));
	if (rc) {
		free(buf);
		return -1;
	}
	buf[len] = '\0';
	*out = buf;
	return 0;
}

int config_load_json(struct vmmux_config *c, const char *path, struct errbuf *e)
{
	char *text = NULL;
	if (read_text(path, &text, e))
		return -1;
	char *dir = strdup(path);
	if (dir == NULL) {
		free(text);
		return err_set(e, "%s: out of memory", path);
	}
	char *slash = strrchr(dir, '/');
	const char *basedir = NULL;
	if (slash != NULL) {
		slash[slash == dir ? 1 : 0] = '\0';
		basedir = dir;
	}
	int rc = config_load_json_string(c, path, text, basedir, e);
	free(dir);
	free(text);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Finishing: PC-like defaults and whole-config checks                      */
/* ---------------------------------------------------------------------- */

static const struct {
	const char *name, *role, *input, *output;
} default_vmms[] = {
    {"uart", "uart16550", "stdin", "stdout"}, {"exit", "debug-exit", NULL, NULL},
    {"chipset", "chipset", NULL, NULL},	      {"smm", "smm", NULL, NULL},
    {"fault", "fault-report", NULL, NULL},
};
#define NDEFAULT_VMMS (sizeof(default_vmms) / sizeof(default_vmms[0]))

static const char *const default_routes[] = {
    "io:0x3f8-0x3ff=uart",    "io:0xf4-0xf7=exit", "io:0x64=chipset",  "io:0xcf9=chipset",
    "io:0x604-0x605=chipset", "io:0xb2-0xb3=smm",  "platform:smi=smm", "io:0x4f0-0x4f3=fault",
};
#define NDEFAULT_ROUTES (sizeof(default_routes) / sizeof(default_routes[0]))

/* The key space of a spec: io and hypercall share the port space. */
static void key_space(const struct route_spec *s, int *space, uint64_t *lo, uint64_t *hi)
{
	if (s->kind == ROUTE_HYPERCALL) {
		*space = ROUTE_IO;
		*lo = s->lo + HYPERCALL_PORT_BASE;
		*hi = s->hi + HYPERCALL_PORT_BASE;
	} else {
		*space = (int)s->kind;
		*lo = s->lo;
		*hi = s->hi;
	}
}

static bool specs_overlap(const struct route_spec *a, const struct route_spec *b)
{
	/* A route keyed by source takes nothing from the routes without. */
	if ((a->opts & ROUTE_OPT_FROM) || (b->opts & ROUTE_OPT_FROM))
		return false;
	int sa, sb;
	uint64_t alo, ahi, blo, bhi;
	key_space(a, &sa, &alo, &ahi);
	key_space(b, &sb, &blo, &bhi);
	return sa == sb && alo <= bhi && blo <= ahi;
}

/* True when one of the first N routes targets NAME (or falls back to it). */
static bool routes_name(const struct vmmux_config *c, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++) {
		const struct route_spec *r = &c->routes[i];
		if (strcmp(r->vmm, name) == 0 ||
		    ((r->opts & ROUTE_OPT_FALLBACK) && strcmp(r->fallback, name) == 0) ||
		    ((r->opts & ROUTE_OPT_FROM) && strcmp(r->from, name) == 0))
			return true;
	}
	return false;
}

struct key_piece {
	uint64_t lo, hi;
};

static int piece_cmp(const void *a, const void *b)
{
	const struct key_piece *x = a, *y = b;
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/*
 * What is left of default route D once the first NUSER routes of C have
 * taken their keys: at most NUSER + 1 disjoint pieces of D's range, in key
 * order, written to OUT (in D's own keys: a hypercall's number, not its
 * port). Returns their number; 0 when the user's routes cover all of D.
 * Routes keyed by source take nothing from it.
 */
static size_t default_pieces(const struct route_spec *d, const struct vmmux_config *c, size_t nuser,
			     struct key_piece *cut, struct key_piece *out)
{
	int space;
	uint64_t lo, hi;
	key_space(d, &space, &lo, &hi);
	size_t ncut = 0;
	for (size_t j = 0; j < nuser; j++) {
		if (!specs_overlap(d, &c->routes[j]))
			continue;
		int us;
		key_space(&c->routes[j], &us, &cut[ncut].lo, &cut[ncut].hi);
		ncut++;
	}
	qsort(cut, ncut, sizeof(cut[0]), piece_cmp);
	uint64_t base = d->kind == ROUTE_HYPERCALL ? HYPERCALL_PORT_BASE : 0;
	size_t n = 0;
	uint64_t cur = lo; /* the first key not yet placed */
	bool done = false;
	for (size_t j = 0; j < ncut && !done; j++) {
		if (cut[j].lo > cur)
			out[n++] = (struct key_piece){cur - base, cut[j].lo - 1 - base};
		if (cut[j].hi >= hi)
			done = true;
		else if (cut[j].hi + 1 > cur)
			cur = cut[j].hi + 1;
	}
	if (!done)
		out[n++] = (struct key_piece){cur - base, hi - base};
	return n;
}

/*
 * Add what is left of default route D once the first NUSER routes of C have
 * taken their keys (default_pieces): 0, or -1 with a message.
 */
static int add_uncovered(struct vmmux_config *c, const struct route_spec *d, size_t nuser,
			 struct errbuf *e)
{
	struct key_piece *cut = malloc((nuser + 1) * sizeof(*cut));
	struct key_piece *pieces = malloc((nuser + 1) * sizeof(*pieces));
	int rc = 0;
	if (cut == NULL || pieces == NULL) {
		rc = err_set(e, "out of memory");
	} else {
		size_t n = default_pieces(d, c, nuser, cut, pieces);
		for (size_t k = 0; k < n && rc == 0; k++) {
			struct route_spec r = *d;
			r.lo = pieces[k].lo;
			r.hi = pieces[k].hi;
			route_spec_format(&r, r.text, sizeof(r.text));
			if (config_add_route(c, &r, e))
				rc = err_prefix(e, "default route '%s'", r.text);
		}
	}
	free(cut);
	free(pieces);
	return rc;
}

/*
 * The PC-like defaults (docs/routing.md, "Defaults"): each default route
 * minus the keys the user's routes take (a route io:0x3f8=main leaves
 * io:0x3f9-0x3ff=uart), and each default VMM that a route (default or the
 * user's) still names and the user did not define.
 */
static int add_defaults(struct vmmux_config *c, struct errbuf *e)
{
	struct route_spec specs[NDEFAULT_ROUTES];
	size_t nuser = c->nroutes;
	struct key_piece *cut = malloc((nuser + 1) * sizeof(*cut));
	struct key_piece *pieces = malloc((nuser + 1) * sizeof(*pieces));
	size_t npieces[NDEFAULT_ROUTES];
	int rc = -1;
	if (cut == NULL || pieces == NULL) {
		err_set(e, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < NDEFAULT_ROUTES; i++) {
		if (route_spec_parse(default_routes[i], &specs[i], e)) {
			err_prefix(e, "default route");
			goto out;
		}
		npieces[i] = default_pieces(&specs[i], c, nuser, cut, pieces);
	}
	for (size_t d = 0; d < NDEFAULT_VMMS; d++) {
		if (find_vmm(c, default_vmms[d].name) >= 0)
			continue; /* the user's own VMM by that name */
		bool needed = routes_name(c, nuser, default_vmms[d].name);
		for (size_t i = 0; i < NDEFAULT_ROUTES && !needed; i++)
			needed = npieces[i] > 0 && strcmp(specs[i].vmm, default_vmms[d].name) == 0;
		if (!needed)
			continue;
		struct vmm_config v;
		memset(&v, 0, sizeof(v));
		memcpy(v.name, default_vmms[d].name, strlen(default_vmms[d].name) + 1);
		memcpy(v.role, default_vmms[d].role, strlen(default_vmms[d].role) + 1);
		v.placement = VMM_IN_PROCESS;
		v.input = (char *)default_vmms[d].input; /* copied by config_add_vmm */
		v.output = (char *)default_vmms[d].output;
		/* the fault-report port reads the guest's report from its memory */
		v.memory_all = strcmp(default_vmms[d].role, "fault-report") == 0;
		if (config_add_vmm(c, &v, e)) {
			err_prefix(e, "default VMM '%s'", default_vmms[d].name);
			goto out;
		}
	}
	for (size_t i = 0; i < NDEFAULT_ROUTES; i++)
		if (find_vmm(c, specs[i].vmm) >= 0 && add_uncovered(c, &specs[i], nuser, e))
			goto out;
	rc = 0;
out:
	free(cut);
	free(pieces);
	return rc;
}

/* "main, uart, exit" for messages, cut with ", ..." when long. */
static void vmm_list(const struct vmmux_config *c, char *buf, size_t len)
{
	static const char more[] = ", ...";
	size_t n = (size_t)snprintf(buf, len, "main");
	for (size_t i = 0; i < c->nvmms; i++) {
		size_t w = 2 + strlen(c->vmms[i].name);
		if (n + w + sizeof(more) > len) {
			memcpy(buf + n, more, sizeof(more));
			return;
		}
		snprintf(buf + n, len - n, ", %s", c->vmms[i].name);
		n += w;
	}
}

static bool vmm_known(const struct vmmux_config *c, const char *name)
{
	return strcmp(name, "main") == 0 || find_vmm(c, name) >= 0;
}

static int window_cmp(const void *a, const void *b)
{
	const struct vmm_window *x = a, *y = b;
	return x->gpa < y->gpa ? -1 : x->gpa > y->gpa;
}

/* A VMM's placement and memory grants, checked against the machine: the
 * windows inside guest RAM, sorted, not overlapping. */
static int check_vmm_memory(struct vmmux_config *c, struct vmm_config *v, struct errbuf *e)
{
	if (c->all_parallel && !v->placement_set)
		v->placement = VMM_PARALLEL;
	if (strcmp(v->role, "external") == 0 && v->program == NULL)
		return err_set(e, "VMM '%s': role 'external' needs a program (program=PATH)",
			       v->name);
	qsort(v->windows, v->nwindows, sizeof(v->windows[0]), window_cmp);
	for (size_t i = 0; i < v->nwindows; i++) {
		const struct vmm_window *w = &v->windows[i];
		if (w->gpa >= c->mem_bytes || w->size > c->mem_bytes - w->gpa) {
			char sz[40];
			fmt_size(c->mem_bytes, sz, sizeof(sz));
			return err_set(
			    e,
			    "VMM '%s': memory window 0x%llx+0x%llx lies outside the guest "
			    "RAM (%s)",
			    v->name, (unsigned long long)w->gpa, (unsigned long long)w->size, sz);
		}
		if (i > 0 && w->gpa < v->windows[i - 1].gpa + v->windows[i - 1].size)
			return err_set(e, "VMM '%s': memory windows at 0x%llx and 0x%llx overlap",
				       v->name, (unsigned long long)v->windows[i - 1].gpa,
				       (unsigned long long)w->gpa);
	}
	return 0;
}

static int finish_fw_cfg(struct vmmux_config *c, struct errbuf *e);
static int finish_gdb(struct vmmux_config *c, struct errbuf *e);
static int finish_modules(struct vmmux_config *c, struct errbuf *e);

/* True when the file PATH starts (first 8 KiB) with a multiboot v1 header;
 * a file that cannot be read is not (the loader reports it). */
static bool kernel_is_multiboot(const char *path)
{
	uint8_t buf[8192];
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return false;
	size_t n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	return multiboot_find_header(buf, n) >= 0;
}

/*
 * The machine (docs/guests.md, "Which machine"): a multiboot kernel, what
 * `qemu -kernel` boots, gets QEMU's pc machine: KVM's in-kernel local APIC,
 * I/O APIC and PIT, and fw_cfg, each unless the options or the file turn it
 * off, and at most 3.5 GiB of RAM (QEMU's pc machine moves RAM above that
 * to 4 GiB; vmmux keeps RAM below 4 GiB). ELF64 and raw images get vmmux's
 * bare machine (neither, unless asked for); Solo5 hvt unikernels get
 * solo5-hvt's (src/hvt/, which never calls this with hvt.on unset).
 */
static int finish_machine(struct vmmux_config *c, struct errbuf *e)
{
	c->pc = !c->hvt.on && c->kernel != NULL && c->load.format == IMAGE_AUTO &&
		kernel_is_multiboot(c->kernel);
	if (c->pc && !c->irqchip_set)
		c->irqchip = true;
	if (c->pc && !c->fw_cfg_set)
		c->fw_cfg = true;
	if (c->pc && c->mem_bytes >= PC_RAM_MAX)
		return err_set(e,
			       "memory size: %llu MiB is too much for QEMU's pc machine in vmmux: "
			       "at most %llu MiB (QEMU moves RAM from 3 GiB up above 4 GiB; "
			       "vmmux keeps guest RAM below 4 GiB)",
			       (unsigned long long)(c->mem_bytes >> 20),
			       (unsigned long long)((PC_RAM_MAX >> 20) - 1));
	return 0;
}

int config_finish_flags(struct vmmux_config *c, unsigned flags, struct errbuf *e)
{
	if (c->defaults && add_defaults(c, e))
		return -1;
	if (finish_machine(c, e) || finish_fw_cfg(c, e) || finish_modules(c, e) || finish_gdb(c, e))
		return -1;

	if (!(flags & CONFIG_FINISH_NO_KERNEL) && c->kernel == NULL)
		return err_set(e, "no guest: give --kernel FILE or guest.kernel in the config");
	if (config_check_mem(c->mem_bytes, e))
		return err_prefix(e, "memory size");
	if (config_check_cpus(c->cpus, e))
		return -1;
	if (c->load.format == IMAGE_RAW && !c->load_addr_set)
		return err_set(e, "a raw image needs a load address: give --load-addr ADDR or "
				  "guest.load_addr in the config");
	for (size_t i = 0; i < c->nbreakpoints; i++) {
		if (c->breakpoints[i] >= c->mem_bytes) {
			char sz[40];
			fmt_size(c->mem_bytes, sz, sizeof(sz));
			return err_set(e, "breakpoint 0x%llx is outside the guest RAM (%s)",
				       (unsigned long long)c->breakpoints[i], sz);
		}
	}
	for (size_t i = 0; i < c->nroutes; i++) {
		const struct route_spec *r = &c->routes[i];
		if (c->irqchip && r->kind == ROUTE_TYPE && r->lo <= VMMUX_EV_HLT &&
		    VMMUX_EV_HLT <= r->hi)
			return err_set(e,
				       "route '%s': HLT is handled inside KVM when the in-kernel "
				       "irqchip is on%s; use --no-irqchip",
				       r->text,
				       c->irqchip_set || !c->pc
					   ? ""
					   : " (QEMU's pc machine, the default for "
					     "multiboot kernels)");
		const char *missing = NULL;
		if (!vmm_known(c, r->vmm))
			missing = r->vmm;
		else if ((r->opts & ROUTE_OPT_FALLBACK) && !vmm_known(c, r->fallback))
			missing = r->fallback;
		else if ((r->opts & ROUTE_OPT_FROM) && !vmm_known(c, r->from))
			missing = r->from;
		if (missing != NULL) {
			char list[256];
			vmm_list(c, list, sizeof(list));
			return err_set(e, "route '%s': no VMM named '%s' (VMMs: %s)", r->text,
				       missing, list);
		}
	}
	/* RAM is cut at each distinct edge of the parallel VMMs' windows
	 * (windows that several VMMs share cut it once) */
	size_t edges = 0;
	uint64_t edge[GM_PIECES_MAX];
	for (size_t i = 0; i < c->nvmms; i++) {
		if (check_vmm_memory(c, &c->vmms[i], e))
			return -1;
		const struct vmm_config *v = &c->vmms[i];
		if (v->placement != VMM_PARALLEL || v->memory_all)
			continue;
		for (size_t w = 0; w < 2 * v->nwindows; w++) {
			uint64_t x = v->windows[w / 2].gpa + (w % 2 ? v->windows[w / 2].size : 0);
			bool seen = false;
			for (size_t k = 0; k < edges && k < GM_PIECES_MAX && !seen; k++)
				seen = edge[k] == x;
			if (!seen && edges++ < GM_PIECES_MAX)
				edge[edges - 1] = x;
		}
	}
	if (edges > GM_PIECES_MAX - 1)
		return err_set(
		    e,
		    "the memory windows of the parallel VMMs have %zu edges in all; guest "
		    "RAM can be cut at %d at most",
		    edges, GM_PIECES_MAX - 1);
	if (c->log_level < VMMUX_LOG_ERROR || c->log_level > VMMUX_LOG_DEBUG)
		return err_set(e, "log level %d is not known", c->log_level);
	log_level = c->log_level;
	log_timestamps = c->log_timestamps;
	return 0;
}

int config_finish(struct vmmux_config *c, struct errbuf *e)
{
	return config_finish_flags(c, 0, e);
}

/* ---------------------------------------------------------------------- */
/* VMM ids of a finished config                                             */
/* ---------------------------------------------------------------------- */

uint16_t config_vmm_resolve(void *arg, const char *name)
{
	const struct vmmux_config *c = arg;
	if (strcmp(name, "main") == 0)
		return VMM_ID_MAIN;
	long i = find_vmm(c, name);
	return i < 0 ? VMM_ID_NONE : (uint16_t)(i + 1);
}

const char *config_vmm_name(void *arg, uint16_t id)
{
	const struct vmmux_config *c = arg;
	if (id == VMM_ID_MAIN)
		return "main";
	if (id == VMM_ID_NONE || id > c->nvmms)
		return NULL;
	return c->vmms[id - 1].name;
}

/* ---------------------------------------------------------------------- */
/* Multiboot modules and the fwcfg VMM                                      */
/* ---------------------------------------------------------------------- */

static void config_modules_free(struct vmmux_config *c)
{
	mb_modules_free(c->initrd, c->ninitrd);
	mb_modules_free(c->modules, c->nmodules);
	free(c->mb_modules);
	c->initrd = c->modules = NULL;
	c->ninitrd = c->nmodules = 0;
	c->mb_modules = NULL;
	c->load.modules = NULL;
	c->load.nmodules = 0;
}

/* Module string S with its file part (before the first space) made
 * relative to BASEDIR; malloc'd, NULL when out of memory. */
static char *module_resolve(const char *basedir, const char *s)
{
	size_t n = strcspn(s, " ");
	char *path = strndup(s, n);
	if (path == NULL)
		return NULL;
	char *full = path_join(basedir, path);
	free(path);
	if (full == NULL)
		return NULL;
	char *out;
	int r = asprintf(&out, "%s%s", full, s + n);
	free(full);
	return r < 0 ? NULL : out;
}

int config_set_initrd(struct vmmux_config *c, const char *opt, const char *s, const char *basedir,
		      struct errbuf *e)
{
	char **mods;
	size_t n;
	if (mb_modules_split(opt, s, MB_MODULES_MAX, &mods, &n, e))
		return -1;
	for (size_t i = 0; basedir != NULL && i < n; i++) {
		char *r = module_resolve(basedir, mods[i]);
		if (r == NULL) {
			mb_modules_free(mods, n);
			return err_set(e, "%s: out of memory", opt);
		}
		free(mods[i]);
		mods[i] = r;
	}
	mb_modules_free(c->initrd, c->ninitrd);
	c->initrd = mods;
	c->ninitrd = n;
	return 0;
}

int config_add_module(struct vmmux_config *c, const char *opt, const char *s, const char *basedir,
		      struct errbuf *e)
{
	if (mb_module_check(opt, s, e))
		return -1;
	if (c->nmodules >= MB_MODULES_MAX)
		return err_set(e, "%s '%s': more than %u modules", opt, s, MB_MODULES_MAX);
	char *d = basedir != NULL ? module_resolve(basedir, s) : strdup(s);
	char **nm = d != NULL ? realloc(c->modules, (c->nmodules + 1) * sizeof(*nm)) : NULL;
	if (nm == NULL) {
		free(d);
		return err_set(e, "%s: out of memory", opt);
	}
	c->modules = nm;
	c->modules[c->nmodules++] = d;
	return 0;
}

/* guest.initrd (a string in QEMU's syntax) and guest.modules (an array of
 * module strings); file parts relative to the config file. */
static int load_guest_modules(struct jctx *x, json_t *g)
{
	json_t *v;
	const char *base = x->basedir != NULL ? x->basedir : "";
	if ((v = json_object_get(g, "initrd")) != NULL) {
		const char *s;
		if (jstring(x, "guest.initrd", v, &s))
			return -1;
		if (config_set_initrd(x->c, "guest.initrd", s, base, x->e))
			return err_prefix(x->e, "%s", x->name);
	}
	if ((v = json_object_get(g, "modules")) != NULL) {
		if (!json_is_array(v))
			return jtype_err(x, "guest.modules", v,
					 "an array of module strings such as \"mod.bin arg=1\"");
		size_t i;
		json_t *m;
		json_array_foreach(v, i, m)
		{
			char p[JPATH_MAX];
			jpath_index(p, sizeof(p), "guest.modules", i);
			if (!json_is_string(m))
				return jtype_err(x, p, m,
						 "a module string such as \"mod.bin arg=1\"");
			if (config_add_module(x->c, p, json_string_value(m), base, x->e))
				return err_prefix(x->e, "%s", x->name);
		}
	}
	return 0;
}

/* Add the VMM arg KEY=VALUE to V unless V gives KEY already. */
static int vmm_default_arg(struct vmm_config *v, const char *key, unsigned long long value,
			   struct errbuf *e)
{
	for (size_t i = 0; i < v->nargs; i++)
		if (strcmp(v->args[i].key, key) == 0)
			return 0;
	if (v->nargs >= VMM_ARGS_MAX)
		return err_set(e, "VMM '%s': no room for the argument '%s' (at most %d)", v->name,
			       key, VMM_ARGS_MAX);
	char *k = strdup(key), *val = NULL;
	if (k == NULL || asprintf(&val, "%llu", value) < 0) {
		free(k);
		return err_set(e, "out of memory");
	}
	v->args[v->nargs].key = k;
	v->args[v->nargs].value = val;
	v->nargs++;
	return 0;
}

static int finish_fw_cfg(struct vmmux_config *c, struct errbuf *e)
{
	static const char route[] = "io:0x510-0x511=fwcfg";
	if (c->fw_cfg && find_vmm(c, "fwcfg") < 0) {
		struct vmm_config v;
		memset(&v, 0, sizeof(v));
		memcpy(v.name, "fwcfg", sizeof("fwcfg"));
		memcpy(v.role, "fwcfg", sizeof("fwcfg"));
		v.placement = VMM_IN_PROCESS;
		if (config_add_vmm(c, &v, e))
			return err_prefix(e, "--fw-cfg");
	}
	if (c->fw_cfg) {
		struct route_spec spec;
		if (route_spec_parse(route, &spec, e))
			return err_prefix(e, "--fw-cfg");
		/* the ports a route takes are its; fwcfg keeps the others */
		if (add_uncovered(c, &spec, c->nroutes, e))
			return err_prefix(e, "--fw-cfg");
	}
	for (size_t i = 0; i < c->nvmms; i++) {
		struct vmm_config *v = &c->vmms[i];
		if (strcmp(v->role, "fwcfg") != 0)
			continue;
		if (vmm_default_arg(v, "cpus", c->cpus, e) ||
		    vmm_default_arg(v, "max_cpus", c->cpus, e) ||
		    vmm_default_arg(v, "ram", c->mem_bytes, e))
			return -1;
	}
	return 0;
}

/*
 * The GDB stub: a gdbstub VMM runs in the main VMM's process only (it needs
 * the vCPUs' registers and KVM guest debug); one without a placement stays
 * there even under run --parallel. --gdb adds the VMM 'gdb' and routes the
 * debug exceptions (#DB, #BP) to it.
 */
static int finish_gdb(struct vmmux_config *c, struct errbuf *e)
{
	static const char *const routes[] = {"exception:1=gdb", "exception:3=gdb"};
	if (c->gdb_wait && c->gdb == NULL)
		return err_set(e, "--gdb-wait needs --gdb tcp::PORT or --gdb unix:PATH");
	if (c->gdb != NULL && (c->single_step || c->nbreakpoints))
		return err_set(e,
			       "--gdb cannot be given with %s: the debugger sets breakpoints "
			       "and single-steps itself (hbreak, stepi)",
			       c->single_step ? "--single-step" : "--break");
	if (c->gdb != NULL && find_vmm(c, "gdb") < 0) {
		struct vmm_config v;
		memset(&v, 0, sizeof(v));
		memcpy(v.name, "gdb", sizeof("gdb"));
		memcpy(v.role, "gdbstub", sizeof("gdbstub"));
		v.placement = VMM_IN_PROCESS;
		v.placement_set = true;
		v.nargs = 2;
		v.args[0].key = strdup("listen");
		v.args[0].value = strdup(c->gdb);
		v.args[1].key = strdup("wait");
		v.args[1].value = strdup(c->gdb_wait ? "yes" : "no");
		int rc = -1;
		if (v.args[0].key && v.args[0].value && v.args[1].key && v.args[1].value)
			rc = config_add_vmm(c, &v, e);
		else
			err_set(e, "out of memory");
		config_vmm_clear(&v);
		if (rc)
			return err_prefix(e, "--gdb");
	}
	for (size_t i = 0; c->gdb != NULL && i < sizeof(routes) / sizeof(routes[0]); i++) {
		struct route_spec spec;
		if (route_spec_parse(routes[i], &spec, e))
			return err_prefix(e, "--gdb");
		bool have = false;
		for (size_t j = 0; j < c->nroutes && !have; j++) {
			if (!specs_overlap(&spec, &c->routes[j]))
				continue;
			if (strcmp(c->routes[j].vmm, "gdb") != 0)
				return err_set(
				    e,
				    "--gdb needs the route %s, but route '%s' takes that "
				    "exception",
				    routes[i], c->routes[j].text);
			have = true;
		}
		if (!have && config_add_route(c, &spec, e))
			return err_prefix(e, "--gdb: route '%s'", routes[i]);
	}
	for (size_t i = 0; i < c->nvmms; i++) {
		struct vmm_config *v = &c->vmms[i];
		if (strcmp(v->role, "gdbstub") != 0)
			continue;
		if (v->placement_set && v->placement == VMM_PARALLEL)
			return err_set(e,
				       "VMM '%s': role gdbstub runs in the main VMM's process only "
				       "(it needs the vCPUs' registers and KVM guest debug); "
				       "placement=parallel is refused",
				       v->name);
		v->placement = VMM_IN_PROCESS;
		v->placement_set = true;
	}
	return 0;
}

static int finish_modules(struct vmmux_config *c, struct errbuf *e)
{
	size_t n = c->ninitrd + c->nmodules;
	if (n > MB_MODULES_MAX)
		return err_set(e, "%zu multiboot modules (--initrd and --module): at most %u", n,
			       MB_MODULES_MAX);
	free(c->mb_modules);
	c->mb_modules = NULL;
	c->load.modules = NULL;
	c->load.nmodules = 0;
	if (n == 0)
		return 0;
	c->mb_modules = calloc(n, sizeof(*c->mb_modules));
	if (c->mb_modules == NULL)
		return err_set(e, "out of memory");
	for (size_t i = 0; i < c->ninitrd; i++)
		c->mb_modules[i] = c->initrd[i];
	for (size_t i = 0; i < c->nmodules; i++)
		c->mb_modules[c->ninitrd + i] = c->modules[i];
	c->load.modules = c->mb_modules;
	c->load.nmodules = n;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Solo5 hvt guests: guest.args and the "hvt" section                       */
/* ---------------------------------------------------------------------- */

static void config_hvt_free(struct config_hvt *h)
{
	for (size_t i = 0; i < h->nargs; i++)
		free(h->args[i]);
	free(h->args);
	for (size_t i = 0; i < h->ndev && i < CONFIG_HVT_DEVS_MAX; i++) {
		free(h->dev[i].name);
		free(h->dev[i].target);
	}
	free(h->source);
	memset(h, 0, sizeof(*h));
}

bool config_route_taken(const struct vmmux_config *c, size_t n, const struct route_spec *r)
{
	for (size_t i = 0; i < n && i < c->nroutes; i++)
		if (specs_overlap(r, &c->routes[i]))
			return true;
	return false;
}

/* guest.args: an array of strings (a later file's list replaces it). */
static int load_hvt_args(struct jctx *x, json_t *v)
{
	struct config_hvt *h = &x->c->hvt;
	if (!json_is_array(v))
		return jtype_err(x, "guest.args", v, "an array of strings");
	char **args = calloc(json_array_size(v) + 1, sizeof(char *));
	if (args == NULL)
		return jerr(x, "guest.args", "out of memory");
	size_t i, n = 0;
	json_t *a;
	int rc = 0;
	json_array_foreach(v, i, a)
	{
		char p[JPATH_MAX];
		jpath_index(p, sizeof(p), "guest.args", i);
		if (!json_is_string(a)) {
			rc = jtype_err(x, p, a, "a string");
			break;
		}
		if ((args[n] = strdup(json_string_value(a))) == NULL) {
			rc = jerr(x, p, "out of memory");
			break;
		}
		n++;
	}
	if (rc) {
		for (size_t k = 0; k < n; k++)
			free(args[k]);
		free(args);
		return rc;
	}
	for (size_t k = 0; k < h->nargs; k++)
		free(h->args[k]);
	free(h->args);
	h->args = args;
	h->nargs = n;
	return 0;
}

/* "xx:xx:xx:xx:xx:xx" */
static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];
	char tail;
	if (strlen(s) != 17 || sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3],
				      &v[4], &v[5], &tail) != 6)
		return -1;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)v[i];
	return 0;
}

/* One device object at PATH (hvt.block.NAME or hvt.net.NAME). */
static int load_hvt_dev(struct jctx *x, const char *path, const char *name, bool net, json_t *o)
{
	static const char *const bkeys[] = {"path", "sector_size", NULL};
	static const char *const nkeys[] = {"tap", "mac", NULL};
	struct config_hvt *h = &x->c->hvt;
	char p[JPATH_MAX];
	json_t *v;
	if (jobject(x, path, o) || jkeys(x, path, o, net ? nkeys : bkeys, path))
		return -1;
	if (name[0] == '\0' || strlen(name) >= 68)
		return jerr(x, path, "a device name has 1 to 67 characters");
	for (size_t i = 0; i < h->ndev; i++)
		if (strcmp(h->dev[i].name, name) == 0)
			return jerr(x, path, "device '%s' is given twice (as block and net)", name);
	if (h->ndev >= CONFIG_HVT_DEVS_MAX)
		return jerr(x, path, "more than %d devices", CONFIG_HVT_DEVS_MAX);
	struct config_hvt_dev d = {.net = net};
	const char *s;
	jpath(p, sizeof(p), path, net ? "tap" : "path");
	if ((v = json_object_get(o, net ? "tap" : "path")) == NULL)
		return jerr(x, p, "missing (the %s)", net ? "tap interface" : "disk image");
	if (net) {
		if (jstring_ne(x, p, v, &s))
			return -1;
		d.target = strdup(s);
	} else if (jpath_value(x, p, v, &d.target)) {
		return -1;
	}
	if ((v = json_object_get(o, "sector_size")) != NULL) {
		jpath(p, sizeof(p), path, "sector_size");
		if (jnumber(x, p, v, &d.sector)) {
			free(d.target);
			return -1;
		}
		if (d.sector < 512 || (d.sector & (d.sector - 1)) || d.sector > 0x8000) {
			free(d.target);
			return jerr(x, p,
				    "%llu: a power of two from 512 to 32768 (Block size must be a "
				    "multiple of 2 greater than or equal 512)",
				    (unsigned long long)d.sector);
		}
	}
	if ((v = json_object_get(o, "mac")) != NULL) {
		jpath(p, sizeof(p), path, "mac");
		if (jstring(x, p, v, &s) || parse_mac(s, d.mac) < 0) {
			free(d.target);
			return json_is_string(v)
				   ? jerr(x, p, "'%s': want a MAC address xx:xx:xx:xx:xx:xx", s)
				   : -1;
		}
		d.mac_set = true;
	}
	d.name = strdup(name);
	if (d.name == NULL || d.target == NULL) {
		free(d.name);
		free(d.target);
		return jerr(x, path, "out of memory");
	}
	h->dev[h->ndev++] = d;
	return 0;
}

/* "hvt": {"block": {NAME: {...}}, "net": {NAME: {...}}}; only with
 * guest.format "hvt" (given before, in this file or an earlier one). */
static int load_hvt(struct jctx *x, json_t *v)
{
	static const char *const keys[] = {"block", "net", NULL};
	struct config_hvt *h = &x->c->hvt;
	if (jobject(x, "hvt", v) || jkeys(x, "hvt", v, keys, "hvt"))
		return -1;
	if (!h->on)
		return jerr(x, "hvt", "devices of a Solo5 hvt guest: give guest.format \"hvt\"");
	if (h->source == NULL && (h->source = strdup(x->name)) == NULL)
		return jerr(x, "hvt", "out of memory");
	for (int net = 0; net < 2; net++) {
		const char *kind = net ? "net" : "block";
		json_t *devs = json_object_get(v, kind), *o;
		const char *name;
		char p[JPATH_MAX];
		jpath(p, sizeof(p), "hvt", kind);
		if (devs == NULL)
			continue;
		if (jobject(x, p, devs))
			return -1;
		json_object_foreach(devs, name, o)
		{
			char dp[JPATH_MAX];
			jpath(dp, sizeof(dp), p, name);
			if (load_hvt_dev(x, dp, name, net, o))
				return -1;
		}
	}
	return 0;
}
