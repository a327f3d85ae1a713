/*
 * fuzz_api.c: the control socket's request handling (src/api/commands.c),
 * one request line at a time, as the control thread and the live-change
 * worker run it (api_request_begin, then api_deferred_run for a live
 * change): JSON parsing, the request's shape, each command's argument
 * schema, and the commands themselves against a machine's state
 * (registry.h: the routing table, the live route set, the VMM registry
 * with its in-process roles, the KVM VM).
 *
 * Read-only commands (ping, version, routes.list, vmms.list, stats.get,
 * metrics.get), route changes (routes.add, delete, replace, batch: the new
 * table is built, checked against the machine and published, and KVM's
 * MSR filter and compiled routes follow it) and the VMM changes of
 * in-process VMMs (vmm.add, start, stop, restart, swap: roles created,
 * initialised, stopped, their state saved into a new instance) run. Not
 * run, only checked (JSON, shape, arguments): a VMM change whose arguments
 * say parallel, program or external (a process would be started), gdbstub
 * (a debugger's listener), input or output (files the fuzzer names would
 * be opened or created), and platform.raise (it waits for the machine's
 * dispatcher thread, which machine_run starts); fuzz_roles drives the
 * event path those lead to.
 *
 * Input: request lines. The state is built once per process; before each
 * input the config's routes are put back (fzr_reset_routes) and, after an
 * input that changed VMMs, the registry is built again, so that an input's
 * replies do not depend on the inputs before it.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api/commands.h"
#include "registry.h"

static const char config_json[] =
    "{\"machine\": {\"mem\": \"4M\", \"cpus\": 1, \"irqchip\": false},"
    " \"vmms\": ["
    "  {\"name\": \"uart\", \"role\": \"uart16550\", \"input\": \"none\", \"output\": \"none\"},"
    "  {\"name\": \"exit\", \"role\": \"debug-exit\"},"
    "  {\"name\": \"chipset\", \"role\": \"chipset\"},"
    "  {\"name\": \"smm\", \"role\": \"smm\"},"
    "  {\"name\": \"mon\", \"role\": \"monitor\", \"output\": \"none\"},"
    "  {\"name\": \"sink\", \"role\": \"sink\"}"
    " ],"
    " \"routes\": [\"io:0x3f8-0x3ff=uart\", \"io:0xf4-0xf7=exit\", \"io:0x64=chipset\","
    "  \"io:0xb2-0xb3=smm\", \"platform:smi=smm\", \"mmio:0xd0000000+0x1000=mon\","
    "  \"msr:0x40001000-0x400010ff=mon\", \"hypercall:1=mon\", \"io:0x80=sink\"]}";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_quiet();
	fzr_up(config_json, NULL);
	return 0;
}

static bool vmms_changed;

/* Whether the live change on LINE runs here (see above). */
static bool runnable(const char *line, size_t len)
{
	json_t *req = json_loadb(line, len, JSON_DECODE_ANY, NULL);
	const char *cmd = json_string_value(json_object_get(req, "cmd"));
	bool r = false;
	if (cmd != NULL && strncmp(cmd, "routes.", 7) == 0) {
		r = true;
	} else if (cmd != NULL && strncmp(cmd, "vmm.", 4) == 0) {
		/* the decoded text: an escape cannot hide a word */
		char *a = json_dumps(json_object_get(req, "args"), JSON_COMPACT);
		static const char *const refused[] = {"parallel", "program", "external",
						      "gdbstub",  "input",   "output"};
		r = true;
		for (size_t i = 0; a != NULL && i < sizeof(refused) / sizeof(refused[0]); i++)
			if (strstr(a, refused[i]) != NULL)
				r = false;
		free(a);
		vmms_changed |= r;
	}
	json_decref(req);
	return r;
}

static void check_reply(json_t *r)
{
	if (r == NULL)
		return;
	/* every reply says ok, and an error has a code and a message */
	json_t *ok = json_object_get(r, "ok");
	if (!json_is_boolean(ok) || json_object_get(r, "id") == NULL)
		abort();
	if (!json_is_true(ok)) {
		json_t *err = json_object_get(r, "error");
		if (!json_is_string(json_object_get(err, "code")) ||
		    !json_is_string(json_object_get(err, "message")))
			abort();
	}
	char *s = json_dumps(r, JSON_COMPACT);
	if (s == NULL || strchr(s, '\n') != NULL)
		abort(); /* one line on the socket */
	free(s);
	json_decref(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = {data, size};
	char *line;
	size_t len;
	if (vmms_changed) {
		fzr_down();
		fzr_up(config_json, NULL);
		vmms_changed = false;
	}
	fzr_reset_routes();
	for (unsigned k = 0; k < 64 && (line = fz_line(&f, &len)) != NULL; k++) {
		struct api_deferred *d = NULL;
		json_t *r = api_request_begin(line, len, &d);
		if (d != NULL) {
			if (r != NULL)
				abort(); /* a deferred request has no reply yet */
			if (runnable(line, len))
				r = api_deferred_run(d);
			else
				api_deferred_free(d);
		} else if (r == NULL && !api_line_blank(line, len)) {
			abort(); /* every request but a blank line is answered */
		}
		check_reply(r);
		free(line);
	}
	return 0;
}
