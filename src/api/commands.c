/*
 * commands.c: one request line of the control socket in, one reply out.
 *
 * A request is {"id": SCALAR, "cmd": NAME, "args": {...}}. It is checked in
 * this order, and the first problem is the reply: the line is JSON
 * (bad_json), it is an object with an id that is a scalar (bad_request, id
 * null), it has no other key than id, cmd and args and its cmd is a string
 * (bad_request), the command exists (unknown_command), its args match the
 * command's schema (bad_args). Then the command runs through src/vmm/live.h
 * and its failure is "failed". Every message names the input at fault.
 *
 * The commands are one table of {name, handler, argument schema}: a new
 * command is a handler and a row. A handler sees arguments already checked
 * against its schema (present when required, of the declared JSON type).
 */
#include "api/api.h"
#include "api/commands.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"
#include "route/spec.h"
#include "snapshot/snapshot.h"
#include "snapshot/update.h"
#include "stats/metrics.h"
#include "stats/stats.h"
#include "util/parse.h"
#include "vmm/live.h"
#include "vmm/machine.h"
#include "vmm/parallel.h"
#include "vmm/vmm.h"

#define MSG_MAX	  600 /* an error message */
#define QUOTE_MAX 64  /* characters of user input quoted in a message */

/* ---------------------------------------------------------------------- */
/* Messages and replies                                                     */
/* ---------------------------------------------------------------------- */

struct cmd_error {
	const char *code;
	char msg[MSG_MAX];
};

/* Fill ERR; returns NULL so that a handler can `return fail(...)`. */
static json_t *fail(struct cmd_error *err, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static json_t *fail(struct cmd_error *err, const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	err->code = code;
	return NULL;
}

/*
 * A JSON string of S; S may hold invalid UTF-8 (a message cut in the middle
 * of a character, bytes quoted from a request): then every byte outside
 * printable ASCII becomes '?'.
 */
static json_t *text(const char *s)
{
	json_t *j = json_string(s);
	if (j != NULL)
		return j;
	char *copy = strdup(s);
	if (copy == NULL)
		return NULL;
	for (char *p = copy; *p != '\0'; p++)
		if ((unsigned char)*p >= 0x7f)
			*p = '?';
	j = json_string(copy);
	free(copy);
	return j;
}

/* S quoted for a message: at most QUOTE_MAX characters, then "...". */
static const char *quote(const char *s, char *buf, size_t len)
{
	size_t n = strlen(s);
	if (n <= QUOTE_MAX || len < QUOTE_MAX + 4)
		snprintf(buf, len, "%s", s);
	else
		snprintf(buf, len, "%.*s...", QUOTE_MAX, s);
	return buf;
}

/* A short description of a JSON value, for "got ..." messages. */
static const char *describe(const json_t *v, char *buf, size_t len)
{
	char q[QUOTE_MAX + 4];
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		snprintf(buf, len, "the string \"%s\"", quote(json_string_value(v), q, sizeof(q)));
		return buf;
	case JSON_INTEGER:
		snprintf(buf, len, "the number %" JSON_INTEGER_FORMAT, json_integer_value(v));
		return buf;
	case JSON_REAL:
		snprintf(buf, len, "the number %g", json_real_value(v));
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

static json_t *reply_error(json_t *id, const char *code, const char *msg)
{
	json_t *m = text(msg);
	if (m == NULL)
		return NULL;
	return json_pack("{s:O, s:b, s:{s:s, s:o}}", "id", id != NULL ? id : json_null(), "ok", 0,
			 "error", "code", code, "message", m);
}

json_t *api_error_reply(json_t *id, const char *code, const char *fmt, ...)
{
	char msg[MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return reply_error(id, code, msg);
}

/* ---------------------------------------------------------------------- */
/* Argument schemas                                                         */
/* ---------------------------------------------------------------------- */

enum arg_type {
	ARG_STRING, /* a JSON string */
	ARG_NUMBER, /* a JSON integer >= 0, or a string such as "0x42" */
	ARG_OBJECT,
	ARG_ARRAY,
	ARG_BOOL,
};

struct arg_spec {
	const char *name;
	enum arg_type type;
	bool required;
};

typedef json_t *(*cmd_fn)(json_t *args, struct cmd_error *err);

struct command {
	const char *name;
	cmd_fn run;
	const struct arg_spec *args; /* ends with a NULL name */
	bool waits;		     /* a live change: may wait; runs on the live-change worker */
};

static const char *type_text(enum arg_type t)
{
	switch (t) {
	case ARG_STRING:
		return "a string";
	case ARG_NUMBER:
		return "a number (an integer >= 0, or a string such as \"0x42\")";
	case ARG_OBJECT:
		return "an object";
	case ARG_ARRAY:
		return "an array";
	case ARG_BOOL:
		return "true or false";
	}
	return "?";
}

static bool type_ok(enum arg_type t, const json_t *v)
{
	switch (t) {
	case ARG_STRING:
		return json_is_string(v);
	case ARG_NUMBER:
		return (json_is_integer(v) && json_integer_value(v) >= 0) || json_is_string(v);
	case ARG_OBJECT:
		return json_is_object(v);
	case ARG_ARRAY:
		return json_is_array(v);
	case ARG_BOOL:
		return json_is_boolean(v);
	}
	return false;
}

/* "a, b, c" of the schema's names, or "none". */
static void arg_names(const struct arg_spec *a, char *buf, size_t len)
{
	size_t n = 0;
	buf[0] = '\0';
	for (; a->name != NULL; a++) {
		int w = snprintf(buf + n, len - n, "%s%s", n ? ", " : "", a->name);
		if (w < 0 || (size_t)w >= len - n)
			break;
		n += (size_t)w;
	}
	if (n == 0)
		snprintf(buf, len, "none");
}

/* Check ARGS against CMD's schema. */
static int check_args(const struct command *cmd, json_t *args, struct cmd_error *err)
{
	char names[200], d[QUOTE_MAX + 32], q[QUOTE_MAX + 4];
	const char *key;
	json_t *v;
	arg_names(cmd->args, names, sizeof(names));
	json_object_foreach(args, key, v)
	{
		const struct arg_spec *a = cmd->args;
		while (a->name != NULL && strcmp(a->name, key) != 0)
			a++;
		if (a->name == NULL) {
			fail(err, "bad_args", "args.%s: unknown argument (%s takes %s)",
			     quote(key, q, sizeof(q)), cmd->name, names);
			return -1;
		}
		if (!type_ok(a->type, v)) {
			fail(err, "bad_args", "args.%s: expected %s, got %s", a->name,
			     type_text(a->type), describe(v, d, sizeof(d)));
			return -1;
		}
	}
	for (const struct arg_spec *a = cmd->args; a->name != NULL; a++) {
		if (a->required && json_object_get(args, a->name) == NULL) {
			fail(err, "bad_args", "args.%s: missing (%s needs %s)", a->name, cmd->name,
			     type_text(a->type));
			return -1;
		}
	}
	return 0;
}

/* The value of a number argument (checked by type_ok). */
static int arg_number(json_t *args, const char *name, uint64_t *out, struct cmd_error *err)
{
	json_t *v = json_object_get(args, name);
	if (json_is_integer(v)) {
		*out = (uint64_t)json_integer_value(v);
		return 0;
	}
	struct errbuf e;
	if (parse_u64(json_string_value(v), out, &e) < 0) {
		fail(err, "bad_args", "args.%s: %s", name, e.msg);
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Routes                                                                   */
/* ---------------------------------------------------------------------- */

/* Fill change C from OP and SPEC (WHERE names SPEC in messages). */
static int make_change(struct live_change *c, enum live_op op, const char *spec, const char *where,
		       struct cmd_error *err)
{
	char q[QUOTE_MAX + 4];
	size_t n = strlen(spec);
	if (n == 0) {
		fail(err, "bad_args", "%s: the route spec is empty", where);
		return -1;
	}
	if (n >= sizeof(c->spec)) {
		fail(err, "bad_args", "%s: route '%s' is %zu characters long, at most %zu", where,
		     quote(spec, q, sizeof(q)), n, sizeof(c->spec) - 1);
		return -1;
	}
	c->op = op;
	memcpy(c->spec, spec, n + 1);
	return 0;
}

static json_t *apply_changes(const struct live_change *c, size_t n, struct cmd_error *err)
{
	uint64_t gen = 0;
	struct errbuf e;
	if (live_routes_apply(c, n, &gen, &e) < 0)
		return fail(err, "failed", "%s", e.msg);
	return json_pack("{s:I, s:I}", "generation", (json_int_t)gen, "changes", (json_int_t)n);
}

static json_t *routes_one(json_t *args, enum live_op op, struct cmd_error *err)
{
	struct live_change c;
	if (make_change(&c, op, json_string_value(json_object_get(args, "spec")), "args.spec",
			err) < 0)
		return NULL;
	return apply_changes(&c, 1, err);
}

static json_t *cmd_routes_add(json_t *args, struct cmd_error *err)
{
	return routes_one(args, LIVE_ADD, err);
}

static json_t *cmd_routes_delete(json_t *args, struct cmd_error *err)
{
	return routes_one(args, LIVE_DELETE, err);
}

static json_t *cmd_routes_replace(json_t *args, struct cmd_error *err)
{
	return routes_one(args, LIVE_REPLACE, err);
}

static json_t *cmd_routes_batch(json_t *args, struct cmd_error *err)
{
	json_t *changes = json_object_get(args, "changes");
	size_t n = json_array_size(changes);
	if (n == 0)
		return fail(err, "bad_args", "args.changes: empty (give at least one change)");
	if (n > API_BATCH_MAX)
		return fail(err, "bad_args", "args.changes: %zu changes, at most %d", n,
			    API_BATCH_MAX);
	struct live_change *c = calloc(n, sizeof(*c));
	if (c == NULL)
		return fail(err, "internal", "out of memory");
	json_t *r = NULL;
	size_t i;
	json_t *ch;
	json_array_foreach(changes, i, ch)
	{
		char d[QUOTE_MAX + 32], q[QUOTE_MAX + 4], where[64];
		if (!json_is_object(ch)) {
			fail(err, "bad_args",
			     "args.changes[%zu]: expected an object {\"op\": \"add\", \"spec\": "
			     "\"...\"}, got %s",
			     i, describe(ch, d, sizeof(d)));
			goto out;
		}
		const char *key;
		json_t *v;
		json_object_foreach(ch, key, v)
		{
			if (strcmp(key, "op") != 0 && strcmp(key, "spec") != 0) {
				fail(err, "bad_args",
				     "args.changes[%zu].%s: unknown key (a change takes op and "
				     "spec)",
				     i, quote(key, q, sizeof(q)));
				goto out;
			}
		}
		json_t *op = json_object_get(ch, "op"), *spec = json_object_get(ch, "spec");
		if (op == NULL || spec == NULL) {
			fail(err, "bad_args", "args.changes[%zu].%s: missing", i,
			     op == NULL ? "op" : "spec");
			goto out;
		}
		if (!json_is_string(op) || !json_is_string(spec)) {
			bool bad_op = !json_is_string(op);
			fail(err, "bad_args", "args.changes[%zu].%s: expected a string, got %s", i,
			     bad_op ? "op" : "spec", describe(bad_op ? op : spec, d, sizeof(d)));
			goto out;
		}
		int o = live_op_parse(json_string_value(op));
		if (o < 0) {
			fail(err, "bad_args",
			     "args.changes[%zu].op: '%s' is not an operation (add, delete, "
			     "replace)",
			     i, quote(json_string_value(op), q, sizeof(q)));
			goto out;
		}
		snprintf(where, sizeof(where), "args.changes[%zu].spec", i);
		if (make_change(&c[i], (enum live_op)o, json_string_value(spec), where, err) < 0)
			goto out;
	}
	r = apply_changes(c, n, err);
out:
	free(c);
	return r;
}

static json_t *cmd_routes_list(json_t *args, struct cmd_error *err)
{
	(void)args;
	json_t *r = live_routes_json();
	return r != NULL ? r : fail(err, "internal", "out of memory");
}

/* ---------------------------------------------------------------------- */
/* VMMs                                                                     */
/* ---------------------------------------------------------------------- */

static json_t *cmd_vmms_list(json_t *args, struct cmd_error *err)
{
	(void)args;
	json_t *v = live_vmms_json();
	if (v == NULL)
		return fail(err, "internal", "out of memory");
	return json_pack("{s:o}", "vmms", v);
}

/* The state of VMM NAME as vmms.list gives it, or "unknown". New reference. */
static json_t *vmm_state(const char *name)
{
	json_t *all = live_vmms_json(), *state = NULL;
	size_t i;
	json_t *v;
	json_array_foreach(all, i, v)
	{
		const char *n = json_string_value(json_object_get(v, "name"));
		if (n != NULL && strcmp(n, name) == 0) {
			state = json_object_get(v, "state");
			break;
		}
	}
	json_t *r = json_is_string(state) ? json_incref(state) : json_string("unknown");
	json_decref(all);
	return r;
}

static json_t *vmm_result(const char *name, uint16_t id)
{
	json_t *r = json_pack("{s:s, s:o}", "name", name, "state", vmm_state(name));
	if (r != NULL && id != VMM_ID_NONE)
		json_object_set_new(r, "id", json_integer(id));
	return r;
}

/*
 * The VMM described by args "vmm" (an object as in the config's "vmms") or
 * "spec" (NAME=ROLE,... as --vmm), exactly one of them. NAME, when not NULL,
 * is the name the VMM must have (a swap): an object may leave it out.
 */
static int vmm_description(json_t *args, const char *name, struct vmm_config *out,
			   struct cmd_error *err)
{
	json_t *obj = json_object_get(args, "vmm"), *spec = json_object_get(args, "spec");
	struct errbuf e;
	char q[QUOTE_MAX + 4];
	if (obj != NULL && spec != NULL) {
		fail(err, "bad_args", "args.vmm and args.spec: give one of them, not both");
		return -1;
	}
	if (obj == NULL && spec == NULL) {
		fail(err, "bad_args",
		     "args.vmm or args.spec: missing (the VMM as an object {\"name\": ..., "
		     "\"role\": ...}, or as a string NAME=ROLE[,key=value...])");
		return -1;
	}
	if (obj != NULL) {
		json_t *o = obj;
		if (name != NULL && json_object_get(obj, "name") == NULL) {
			o = json_copy(obj); /* the swapped VMM's name, filled in */
			if (o == NULL || json_object_set_new(o, "name", json_string(name)) < 0) {
				json_decref(o);
				fail(err, "internal", "out of memory");
				return -1;
			}
		} else {
			json_incref(o);
		}
		int rc = config_vmm_from_json(o, "args.vmm", out, &e);
		json_decref(o);
		if (rc < 0) {
			fail(err, "bad_args", "%s", e.msg);
			return -1;
		}
	} else if (config_parse_vmm_option(json_string_value(spec), out, &e) < 0) {
		fail(err, "bad_args", "args.spec: '%s': %s",
		     quote(json_string_value(spec), q, sizeof(q)), e.msg);
		return -1;
	}
	if (name != NULL && strcmp(out->name, name) != 0) {
		fail(err, "bad_args",
		     "args.%s: the VMM is named '%s', not '%s' (the new instance takes the name "
		     "of the one it replaces)",
		     obj != NULL ? "vmm.name" : "spec", out->name, name);
		config_vmm_clear(out);
		return -1;
	}
	/* run --parallel: a VMM whose placement is not given runs as a process */
	const struct vmmux_config *mc = machine_config();
	if (!out->placement_set && mc != NULL && mc->all_parallel)
		out->placement = VMM_PARALLEL;
	return 0;
}

static json_t *cmd_vmm_add(json_t *args, struct cmd_error *err)
{
	struct vmm_config c;
	if (vmm_description(args, NULL, &c, err) < 0)
		return NULL;
	uint16_t id = VMM_ID_NONE;
	struct errbuf e;
	json_t *r;
	if (live_vmm_add(&c, &id, &e) < 0)
		r = fail(err, "failed", "%s", e.msg);
	else
		r = vmm_result(c.name, id);
	config_vmm_clear(&c);
	return r;
}

static json_t *vmm_op(json_t *args, int (*op)(const char *, struct errbuf *), struct cmd_error *err)
{
	const char *name = json_string_value(json_object_get(args, "name"));
	struct errbuf e;
	if (op(name, &e) < 0)
		return fail(err, "failed", "%s", e.msg);
	return vmm_result(name, VMM_ID_NONE);
}

static json_t *cmd_vmm_start(json_t *args, struct cmd_error *err)
{
	return vmm_op(args, live_vmm_start, err);
}

static json_t *cmd_vmm_stop(json_t *args, struct cmd_error *err)
{
	return vmm_op(args, live_vmm_stop, err);
}

static json_t *cmd_vmm_restart(json_t *args, struct cmd_error *err)
{
	return vmm_op(args, live_vmm_restart, err);
}

static json_t *cmd_vmm_swap(json_t *args, struct cmd_error *err)
{
	const char *name = json_string_value(json_object_get(args, "name"));
	struct vmm_config c;
	if (vmm_description(args, name, &c, err) < 0)
		return NULL;
	struct errbuf e;
	json_t *r;
	if (live_vmm_swap(name, &c, &e) < 0)
		r = fail(err, "failed", "%s", e.msg);
	else
		r = vmm_result(name, VMM_ID_NONE);
	config_vmm_clear(&c);
	return r;
}

/* ---------------------------------------------------------------------- */
/* Platform events, statistics                                              */
/* ---------------------------------------------------------------------- */

static json_t *cmd_platform_raise(json_t *args, struct cmd_error *err)
{
	const char *ev = json_string_value(json_object_get(args, "event"));
	unsigned code = VMMUX_PLAT__COUNT;
	for (unsigned i = 0; i < VMMUX_PLAT__COUNT; i++)
		if (platform_code_name(i) != NULL && strcasecmp(ev, platform_code_name(i)) == 0)
			code = i;
	if (code == VMMUX_PLAT__COUNT) {
		char q[QUOTE_MAX + 4];
		return fail(err, "bad_args",
			    "args.event: '%s' is not a platform event (smi, reset, poweroff, "
			    "powerbtn, watchdog)",
			    quote(ev, q, sizeof(q)));
	}
	uint64_t value = 0;
	if (json_object_get(args, "value") != NULL && arg_number(args, "value", &value, err) < 0)
		return NULL;
	struct errbuf e;
	if (live_platform(code, value, &e) < 0)
		return fail(err, "failed", "%s", e.msg);
	return json_pack("{s:s, s:I}", "event", platform_code_name(code), "value",
			 (json_int_t)value);
}

/* Store the machine in a file (src/snapshot/snapshot.h, docs/snapshot.md):
 * the guest continues, or the run ends with status 0 when "stop". */
static json_t *cmd_snapshot(json_t *args, struct cmd_error *err)
{
	const char *path = json_string_value(json_object_get(args, "path"));
	bool stop = json_is_true(json_object_get(args, "stop"));
	struct snapshot_result r;
	struct errbuf e;
	if (snapshot_take(path, stop, &r, &e) < 0)
		return fail(err, "failed", "snapshot: %s", e.msg);
	return json_pack("{s:s, s:b, s:I, s:I, s:i, s:I, s:I}", "path", path, "stopped", stop,
			 "file_bytes", (json_int_t)r.file_bytes, "memory_bytes_written",
			 (json_int_t)r.data_bytes, "sections", (int)r.sections, "pause_ns",
			 (json_int_t)r.pause_ns, "write_ns", (json_int_t)r.write_ns);
}

/* The request being run (its id, for a command answered elsewhere). */
static _Thread_local json_t *current_id;

/* Replace this vmmux by PROGRAM (or the same program) under the running
 * guest (src/snapshot/update.h): on success this process image is gone and
 * the new program answers; returns only on refusal. */
static json_t *cmd_update(json_t *args, struct cmd_error *err)
{
	const char *program = json_string_value(json_object_get(args, "program"));
	char *id = json_dumps(current_id, JSON_ENCODE_ANY | JSON_COMPACT);
	if (id == NULL)
		return fail(err, "internal", "out of memory");
	struct errbuf e;
	update_run(program, api_job_client_fd(), id, &e);
	free(id);
	return fail(err, "failed", "update refused: %s", e.msg);
}

/* The statistics document of --stats-json, as it is now. */
static json_t *stats_document(struct cmd_error *err)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (f == NULL)
		return fail(err, "internal", "statistics: %s", strerror(errno));
	stats_set_vmm_extra(pvmm_stats_extra);
	stats_print_json(f, vmm_stats_name);
	if (fclose(f) != 0) {
		free(buf);
		return fail(err, "internal", "statistics: %s", strerror(errno));
	}
	json_error_t je;
	json_t *doc = json_loadb(buf, len, 0, &je);
	free(buf);
	if (doc == NULL)
		return fail(err, "internal", "statistics: not valid JSON (%s)", je.text);
	return doc;
}

static json_t *cmd_stats_get(json_t *args, struct cmd_error *err)
{
	(void)args;
	return stats_document(err);
}

/* The live metrics, with rates since the previous metrics.get
 * (src/stats/metrics.h; docs/observability.md). */
static json_t *cmd_metrics_get(json_t *args, struct cmd_error *err)
{
	(void)args;
	json_t *m = metrics_get();
	return m != NULL ? m : fail(err, "internal", "out of memory");
}

/* ---------------------------------------------------------------------- */
/* The table                                                                */
/* ---------------------------------------------------------------------- */

static json_t *cmd_ping(json_t *args, struct cmd_error *err);
static json_t *cmd_version(json_t *args, struct cmd_error *err);

static const struct arg_spec no_args[] = {{NULL, ARG_STRING, false}};
static const struct arg_spec spec_args[] = {{"spec", ARG_STRING, true}, {NULL, ARG_STRING, false}};
static const struct arg_spec batch_args[] = {{"changes", ARG_ARRAY, true},
					     {NULL, ARG_STRING, false}};
static const struct arg_spec name_args[] = {{"name", ARG_STRING, true}, {NULL, ARG_STRING, false}};
static const struct arg_spec add_args[] = {
    {"vmm", ARG_OBJECT, false}, {"spec", ARG_STRING, false}, {NULL, ARG_STRING, false}};
static const struct arg_spec swap_args[] = {{"name", ARG_STRING, true},
					    {"vmm", ARG_OBJECT, false},
					    {"spec", ARG_STRING, false},
					    {NULL, ARG_STRING, false}};
static const struct arg_spec snapshot_args[] = {
    {"path", ARG_STRING, true}, {"stop", ARG_BOOL, false}, {NULL, ARG_STRING, false}};
static const struct arg_spec update_args[] = {{"program", ARG_STRING, false},
					      {NULL, ARG_STRING, false}};
static const struct arg_spec raise_args[] = {
    {"event", ARG_STRING, true}, {"value", ARG_NUMBER, false}, {NULL, ARG_STRING, false}};

static const struct command commands[] = {
    {"ping", cmd_ping, no_args, false},
    {"version", cmd_version, no_args, false},
    {"routes.list", cmd_routes_list, no_args, false},
    {"routes.add", cmd_routes_add, spec_args, true},
    {"routes.delete", cmd_routes_delete, spec_args, true},
    {"routes.replace", cmd_routes_replace, spec_args, true},
    {"routes.batch", cmd_routes_batch, batch_args, true},
    {"vmms.list", cmd_vmms_list, no_args, false},
    {"vmm.add", cmd_vmm_add, add_args, true},
    {"vmm.start", cmd_vmm_start, name_args, true},
    {"vmm.stop", cmd_vmm_stop, name_args, true},
    {"vmm.restart", cmd_vmm_restart, name_args, true},
    {"vmm.swap", cmd_vmm_swap, swap_args, true},
    {"platform.raise", cmd_platform_raise, raise_args, true},
    {"snapshot", cmd_snapshot, snapshot_args, true},
    {"update", cmd_update, update_args, true},
    {"stats.get", cmd_stats_get, no_args, false},
    {"metrics.get", cmd_metrics_get, no_args, false},
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static json_t *cmd_ping(json_t *args, struct cmd_error *err)
{
	(void)args;
	(void)err;
	return json_pack("{s:b}", "pong", 1);
}

static json_t *cmd_version(json_t *args, struct cmd_error *err)
{
	(void)args;
	json_t *names = json_array();
	for (size_t i = 0; names != NULL && i < NCOMMANDS; i++)
		json_array_append_new(names, json_string(commands[i].name));
	if (names == NULL)
		return fail(err, "internal", "out of memory");
	return json_pack("{s:s, s:i, s:o}", "version", VMMUX_VERSION, "protocol",
			 API_PROTOCOL_VERSION, "commands", names);
}

static void command_list(char *buf, size_t len)
{
	size_t n = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < NCOMMANDS; i++) {
		int w = snprintf(buf + n, len - n, "%s%s", i ? ", " : "", commands[i].name);
		if (w < 0 || (size_t)w >= len - n)
			break;
		n += (size_t)w;
	}
}

/* ---------------------------------------------------------------------- */
/* One request                                                              */
/* ---------------------------------------------------------------------- */

bool api_line_blank(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return false;
	return true;
}

struct api_deferred {
	json_t *req; /* the request (holds id and args) */
	const struct command *cmd;
};

/* Run CMD with ARGS (checked) for the request whose id is ID: the reply. */
static json_t *run_command(const struct command *cmd, json_t *id, json_t *args)
{
	struct cmd_error err = {.code = NULL};
	current_id = id;
	json_t *result = cmd->run(args, &err);
	current_id = NULL;
	if (result != NULL)
		return json_pack("{s:O, s:b, s:o}", "id", id, "ok", 1, "result", result);
	return reply_error(id, err.code != NULL ? err.code : "internal",
			   err.code != NULL ? err.msg : "out of memory");
}

/* api_request and api_request_begin: DEFER NULL runs every command here. */
static json_t *request(const char *line, size_t len, struct api_deferred **defer)
{
	if (defer != NULL)
		*defer = NULL;
	if (api_line_blank(line, len))
		return NULL;
	json_error_t je;
	json_t *req = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
	if (req == NULL)
		return api_error_reply(NULL, "bad_json",
				       "the request line is not valid JSON: %s (at character %d)",
				       je.text, je.position);

	char d[QUOTE_MAX + 32], q[QUOTE_MAX + 4];
	struct cmd_error err = {.code = NULL};
	json_t *reply = NULL, *id = NULL;
	if (!json_is_object(req)) {
		reply = api_error_reply(NULL, "bad_request",
					"the request is %s, not an object such as {\"id\": 1, "
					"\"cmd\": \"ping\"}",
					describe(req, d, sizeof(d)));
		goto out;
	}
	id = json_object_get(req, "id");
	if (id == NULL) {
		reply = api_error_reply(NULL, "bad_request",
					"id: missing (every request has an id, any JSON scalar, "
					"which its reply carries)");
		goto out;
	}
	if (json_is_object(id) || json_is_array(id)) {
		reply = api_error_reply(NULL, "bad_request",
					"id: expected a string, a number, true, false or null, got "
					"%s",
					describe(id, d, sizeof(d)));
		id = NULL;
		goto out;
	}
	const char *key;
	json_t *v;
	json_object_foreach(req, key, v)
	{
		if (strcmp(key, "id") != 0 && strcmp(key, "cmd") != 0 && strcmp(key, "args") != 0) {
			reply = api_error_reply(
			    id, "bad_request", "%s: unknown key (a request takes id, cmd and args)",
			    quote(key, q, sizeof(q)));
			goto out;
		}
	}
	json_t *cmdv = json_object_get(req, "cmd");
	if (cmdv == NULL || !json_is_string(cmdv)) {
		if (cmdv == NULL)
			reply =
			    api_error_reply(id, "bad_request",
					    "cmd: missing (the command's name, such as \"ping\")");
		else
			reply = api_error_reply(id, "bad_request", "cmd: expected a string, got %s",
						describe(cmdv, d, sizeof(d)));
		goto out;
	}
	const char *name = json_string_value(cmdv);
	const struct command *cmd = NULL;
	for (size_t i = 0; i < NCOMMANDS && cmd == NULL; i++)
		if (strcmp(commands[i].name, name) == 0)
			cmd = &commands[i];
	if (cmd == NULL) {
		char list[400];
		command_list(list, sizeof(list));
		reply =
		    api_error_reply(id, "unknown_command", "unknown command '%s' (commands: %s)",
				    quote(name, q, sizeof(q)), list);
		goto out;
	}
	json_t *args = json_object_get(req, "args");
	json_t *empty = NULL;
	if (args == NULL) {
		args = empty = json_object();
		if (args == NULL)
			goto out;
	}
	if (!json_is_object(args)) {
		reply = api_error_reply(id, "bad_args", "args: expected an object, got %s",
					describe(args, d, sizeof(d)));
		goto out;
	}
	if (check_args(cmd, args, &err) < 0) {
		json_decref(empty);
		reply = reply_error(id, err.code, err.msg);
		goto out;
	}
	if (defer != NULL && cmd->waits) {
		struct api_deferred *d = malloc(sizeof(*d));
		if (d == NULL) {
			json_decref(empty);
			goto out;
		}
		if (empty != NULL)
			json_object_set_new(req, "args", empty); /* the request owns it */
		d->req = req;
		d->cmd = cmd;
		*defer = d;
		return NULL;
	}
	reply = run_command(cmd, id, args);
	json_decref(empty);
out:
	json_decref(req);
	return reply;
}

json_t *api_request(const char *line, size_t len)
{
	return request(line, len, NULL);
}

json_t *api_request_begin(const char *line, size_t len, struct api_deferred **defer)
{
	return request(line, len, defer);
}

json_t *api_deferred_run(struct api_deferred *d)
{
	json_t *reply =
	    run_command(d->cmd, json_object_get(d->req, "id"), json_object_get(d->req, "args"));
	api_deferred_free(d);
	return reply;
}

void api_deferred_free(struct api_deferred *d)
{
	if (d == NULL)
		return;
	json_decref(d->req);
	free(d);
}
