/*
 * ctl.c: `vmmux ctl`, the client of the control socket.
 *
 * One command line is one request: the words are turned into {"id": 1,
 * "cmd", "args"} (docs/control-api.md), sent on the socket, and the one
 * reply read back (with a timeout). The result is printed for people
 * (tables for the route and VMM lists, "key: value" lines otherwise) or,
 * with --json, as the JSON the server sent. Exit statuses: 0 the command
 * succeeded, 1 the server answered an error (its message printed), 2 a bad
 * command line, 6 no answer (cannot connect, connection lost, timeout),
 * each message naming the socket's path and the reason.
 */
#include "cli/ctl.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "util/parse.h"
#include "vmm/machine.h"

#define CTL_TIMEOUT_DEFAULT_NS (60ull * 1000000000ull)
#define CTL_REPLY_MAX	       (64u << 20) /* a longer reply line is not the server's */
#define CTL_STDIN_MAX	       (16u << 20)
#define CTL_ARGS_MAX	       4096

static const char help_ctl[] =
    "Usage: vmmux ctl [--api-sock PATH] [--json] [--timeout DURATION]\n"
    "                 COMMAND [ARGS...]\n"
    "\n"
    "Send one command to a running vmmux through its control socket (vmmux run\n"
    "--api-sock PATH) and print the answer. Each command is one request of the\n"
    "control protocol (newline-delimited JSON; docs/control-api.md), shown in\n"
    "brackets below. Options may come anywhere; '--' ends them.\n"
    "\n"
    "Options:\n"
    "  --api-sock PATH       the control socket (default: the environment variable\n"
    "                        VMMUX_API_SOCK)\n"
    "  --json                print the result as the JSON the server sent, instead\n"
    "                        of tables and 'key: value' lines\n"
    "  --timeout DURATION    how long to wait for the answer: a number with ns, us,\n"
    "                        ms or s (default 60s; 0s waits for ever)\n"
    "  -h, --help            show this help\n"
    "\n"
    "Commands:\n"
    "  ping                  check that vmmux answers [ping]\n"
    "  version               vmmux's version, the protocol's, its commands\n"
    "                        [version]\n"
    "  routes [list]         the routing table in use and its generation\n"
    "                        [routes.list]\n"
    "  routes add SPEC       add a route [routes.add]\n"
    "  routes delete SPEC    delete the route with SPEC's kind, key range and\n"
    "                        source; SPEC is a whole spec or KIND:KEY[;from=VMM]\n"
    "                        [routes.delete]\n"
    "  routes replace SPEC   replace the route with SPEC's kind, key range and\n"
    "                        source by SPEC [routes.replace]\n"
    "  routes batch OP:SPEC...\n"
    "                        apply several changes at once, all or none; OP is\n"
    "                        add, delete or replace (for example add:io:0x80=mon\n"
    "                        delete:io:0x3f8-0x3ff); '-' reads a JSON array of\n"
    "                        {\"op\": OP, \"spec\": SPEC} from standard input\n"
    "                        [routes.batch]\n"
    "  vmms, vmm list        the VMMs: state, pid, restarts, requests in flight and\n"
    "                        served, service time, CPU time [vmms.list]\n"
    "  vmm add NAME=ROLE[,KEY=VALUE...]\n"
    "                        add a VMM, described as 'vmmux run --vmm' does; '-'\n"
    "                        reads a JSON object as in the config file's \"vmms\"\n"
    "                        from standard input [vmm.add]\n"
    "  vmm start NAME        start a stopped VMM [vmm.start]\n"
    "  vmm stop NAME         stop a VMM (its events then go to its routes'\n"
    "                        fallbacks or the built-in defaults) [vmm.stop]\n"
    "  vmm restart NAME      restart a VMM [vmm.restart]\n"
    "  vmm swap NAME NAME=ROLE[,KEY=VALUE...]\n"
    "                        replace VMM NAME by a new instance, which takes its\n"
    "                        name, its routes and its state; '-' reads a JSON\n"
    "                        object from standard input [vmm.swap]\n"
    "  raise EVENT [VALUE]   raise a platform event as the host: smi, reset,\n"
    "                        poweroff, powerbtn or watchdog, with VALUE (decimal\n"
    "                        or 0x hex; default 0; for smi the APM command byte)\n"
    "                        [platform.raise]\n"
    "  snapshot PATH [--stop]\n"
    "                        store the whole machine in the file PATH (made\n"
    "                        absolute here); the guest continues, or the run\n"
    "                        ends with --stop; resume it with 'vmmux run\n"
    "                        --restore PATH' (docs/snapshot.md) [snapshot]\n"
    "  update [--program PATH]\n"
    "                        replace the running vmmux by the program PATH (made\n"
    "                        absolute here; default: the same program) under the\n"
    "                        running guest, which sees no reset; the process id\n"
    "                        stays; refused, the guest running on, when PATH does\n"
    "                        not take the state (docs/snapshot.md) [update]\n"
    "  stats                 the statistics, as 'vmmux run --stats-json' writes\n"
    "                        them at exit [stats.get]\n"
    "  metrics               the VMMs' resource usage and the statistics, with\n"
    "                        rates [metrics.get]\n"
    "  call CMD [ARGS-JSON]  send any protocol command CMD with the JSON object\n"
    "                        ARGS-JSON as its args ('-': read it from standard\n"
    "                        input)\n"
    "\n"
    "Exit status:\n"
    "  0     the command succeeded\n"
    "  1     vmmux answered with an error: its message and code are printed\n"
    "  2     bad command line\n"
    "  6     no answer: the socket cannot be reached (the message names the path\n"
    "        and the reason), the connection was lost, or the timeout passed\n"
    "\n"
    "Examples:\n"
    "  vmmux run --kernel guest.elf --api-sock /tmp/vm1.sock &\n"
    "  export VMMUX_API_SOCK=/tmp/vm1.sock\n"
    "  vmmux ctl vmm add 'mon=monitor,output=mon.log'\n"
    "  vmmux ctl routes add 'io:0x80=mon'\n"
    "  vmmux ctl routes replace 'io:0x80=main'\n"
    "  vmmux ctl routes batch add:io:0x81=mon delete:io:0x80\n"
    "  vmmux ctl vmm swap mon 'mon=monitor,output=mon2.log'\n"
    "  vmmux ctl --json stats\n"
    "  vmmux ctl raise poweroff\n";

void ctl_print_help(FILE *f)
{
	fputs(help_ctl, f);
}

static int usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("vmmux: ctl: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'vmmux ctl --help'.\n", stderr);
	return EXIT_USAGE;
}

/* ---------------------------------------------------------------------- */
/* The request                                                              */
/* ---------------------------------------------------------------------- */

/* Standard input as JSON (WHAT names it in messages). NULL after a message. */
static json_t *read_stdin_json(const char *what)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	while (buf != NULL) {
		if (len == cap) {
			if (cap >= CTL_STDIN_MAX) {
				fprintf(stderr,
					"vmmux: ctl: %s: standard input is larger than %u MiB\n",
					what, CTL_STDIN_MAX >> 20);
				free(buf);
				return NULL;
			}
			char *nb = realloc(buf, cap * 2);
			if (nb == NULL)
				break;
			buf = nb;
			cap *= 2;
		}
		ssize_t n = read(STDIN_FILENO, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "vmmux: ctl: %s: standard input: %s\n", what,
				strerror(errno));
			free(buf);
			return NULL;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (buf == NULL) {
		fprintf(stderr, "vmmux: ctl: out of memory\n");
		return NULL;
	}
	json_error_t je;
	json_t *v = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	free(buf);
	if (v == NULL)
		fprintf(stderr, "vmmux: ctl: %s: standard input, line %d column %d: %s\n", what,
			je.line, je.column, je.text);
	return v;
}

/* Status of building the request: 0, or an exit status after a message. */
struct request {
	const char *cmd;
	json_t *args;
};

static int need(int n, int want_min, int want_max, char **w, const char *usage_text)
{
	if (n < want_min)
		return usage("%s: missing argument (%s)", w[0], usage_text);
	if (n > want_max)
		return usage("%s: unexpected argument '%s' (%s)", w[0], w[want_max], usage_text);
	return 0;
}

static int set_args(struct request *r, const char *cmd, json_t *args)
{
	r->cmd = cmd;
	r->args = args;
	if (args == NULL) {
		fprintf(stderr, "vmmux: ctl: out of memory\n");
		return EXIT_HOST;
	}
	return 0;
}

static int build_routes(int n, char **w, struct request *r)
{
	const char *sub = n > 1 ? w[1] : "list";
	int rc;
	if (strcmp(sub, "list") == 0) {
		if ((rc = need(n, 1, 2, w, "routes [list]")) != 0)
			return rc;
		return set_args(r, "routes.list", json_object());
	}
	static const struct {
		const char *word, *cmd;
	} one[] = {
	    {"add", "routes.add"}, {"delete", "routes.delete"}, {"replace", "routes.replace"}};
	for (size_t i = 0; i < sizeof(one) / sizeof(one[0]); i++) {
		if (strcmp(sub, one[i].word) != 0)
			continue;
		char u[64];
		snprintf(u, sizeof(u), "routes %s SPEC", one[i].word);
		if ((rc = need(n, 3, 3, w, u)) != 0)
			return rc;
		return set_args(r, one[i].cmd, json_pack("{s:s}", "spec", w[2]));
	}
	if (strcmp(sub, "batch") == 0) {
		if (n < 3)
			return usage("routes batch: missing changes (OP:SPEC... or -)");
		json_t *changes;
		if (n == 3 && strcmp(w[2], "-") == 0) {
			if ((changes = read_stdin_json("routes batch -")) == NULL)
				return EXIT_USAGE;
		} else {
			changes = json_array();
			for (int i = 2; i < n && changes != NULL; i++) {
				const char *colon = strchr(w[i], ':');
				size_t oplen = colon ? (size_t)(colon - w[i]) : 0;
				bool ok =
				    colon != NULL && ((oplen == 3 && !strncmp(w[i], "add", 3)) ||
						      (oplen == 6 && !strncmp(w[i], "delete", 6)) ||
						      (oplen == 7 && !strncmp(w[i], "replace", 7)));
				if (!ok) {
					json_decref(changes);
					return usage(
					    "routes batch: '%s' is not OP:SPEC (OP is add, "
					    "delete or replace)",
					    w[i]);
				}
				json_array_append_new(changes, json_pack("{s:s%, s:s}", "op", w[i],
									 oplen, "spec", colon + 1));
			}
		}
		return set_args(r, "routes.batch", json_pack("{s:o}", "changes", changes));
	}
	return usage("routes: unknown subcommand '%s' (list, add, delete, replace, batch)", sub);
}

/* args {"spec": S} or, for "-", {"vmm": object from stdin}; NAME (may be
 * NULL) added as "name". */
static json_t *vmm_args(const char *desc, const char *name)
{
	json_t *a = json_object();
	if (a == NULL)
		return NULL;
	if (name != NULL)
		json_object_set_new(a, "name", json_string(name));
	if (strcmp(desc, "-") == 0) {
		json_t *o = read_stdin_json("the VMM");
		if (o == NULL) {
			json_decref(a);
			return NULL;
		}
		json_object_set_new(a, "vmm", o);
	} else {
		json_object_set_new(a, "spec", json_string(desc));
	}
	return a;
}

static int build_vmm(int n, char **w, struct request *r)
{
	if (n < 2)
		return usage("vmm: missing subcommand (list, add, start, stop, restart, swap)");
	const char *sub = w[1];
	int rc;
	if (strcmp(sub, "list") == 0) {
		if ((rc = need(n, 2, 2, w, "vmm list")) != 0)
			return rc;
		return set_args(r, "vmms.list", json_object());
	}
	if (strcmp(sub, "add") == 0) {
		if ((rc = need(n, 3, 3, w, "vmm add NAME=ROLE[,KEY=VALUE...] or -")) != 0)
			return rc;
		json_t *a = vmm_args(w[2], NULL);
		if (a == NULL)
			return EXIT_USAGE;
		return set_args(r, "vmm.add", a);
	}
	static const struct {
		const char *word, *cmd;
	} one[] = {{"start", "vmm.start"}, {"stop", "vmm.stop"}, {"restart", "vmm.restart"}};
	for (size_t i = 0; i < sizeof(one) / sizeof(one[0]); i++) {
		if (strcmp(sub, one[i].word) != 0)
			continue;
		char u[64];
		snprintf(u, sizeof(u), "vmm %s NAME", one[i].word);
		if ((rc = need(n, 3, 3, w, u)) != 0)
			return rc;
		return set_args(r, one[i].cmd, json_pack("{s:s}", "name", w[2]));
	}
	if (strcmp(sub, "swap") == 0) {
		if ((rc = need(n, 4, 4, w, "vmm swap NAME NAME=ROLE[,KEY=VALUE...] or -")) != 0)
			return rc;
		json_t *a = vmm_args(w[3], w[2]);
		if (a == NULL)
			return EXIT_USAGE;
		return set_args(r, "vmm.swap", a);
	}
	return usage("vmm: unknown subcommand '%s' (list, add, start, stop, restart, swap)", sub);
}

static int build_request(int n, char **w, struct request *r)
{
	const char *c = w[0];
	int rc;
	static const struct {
		const char *word, *cmd;
	} plain[] = {{"ping", "ping"},
		     {"version", "version"},
		     {"vmms", "vmms.list"},
		     {"stats", "stats.get"},
		     {"metrics", "metrics.get"}};
	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		if (strcmp(c, plain[i].word) != 0)
			continue;
		if ((rc = need(n, 1, 1, w, "it takes no argument")) != 0)
			return rc;
		return set_args(r, plain[i].cmd, json_object());
	}
	if (strcmp(c, "routes") == 0)
		return build_routes(n, w, r);
	if (strcmp(c, "vmm") == 0)
		return build_vmm(n, w, r);
	if (strcmp(c, "raise") == 0) {
		if ((rc = need(n, 2, 3, w, "raise EVENT [VALUE]")) != 0)
			return rc;
		json_t *a = json_pack("{s:s}", "event", w[1]);
		if (a != NULL && n == 3) {
			uint64_t v;
			struct errbuf e;
			if (parse_u64(w[2], &v, &e) < 0) {
				json_decref(a);
				return usage("raise: VALUE: %s", e.msg);
			}
			/* beyond JSON's safe integers: as text, which vmmux parses */
			json_object_set_new(a, "value",
					    v <= (uint64_t)INT64_MAX ? json_integer((json_int_t)v)
								     : json_string(w[2]));
		}
		return set_args(r, "platform.raise", a);
	}
	if (strcmp(c, "snapshot") == 0) {
		if ((rc = need(n, 2, 3, w, "snapshot PATH [--stop]")) != 0)
			return rc;
		bool stop = n == 3 && strcmp(w[2], "--stop") == 0;
		if (n == 3 && !stop)
			return usage("snapshot: unknown option '%s' (--stop)", w[2]);
		if (w[1][0] == '\0')
			return usage("snapshot: PATH is empty");
		/* vmmux writes it from its own working directory */
		char *abs = NULL;
		if (w[1][0] != '/') {
			char *cwd = getcwd(NULL, 0);
			if (cwd == NULL || asprintf(&abs, "%s/%s", cwd, w[1]) < 0)
				abs = NULL;
			free(cwd);
			if (abs == NULL)
				return usage("snapshot: cannot make '%s' absolute", w[1]);
		}
		json_t *a = json_pack("{s:s, s:b}", "path", abs ? abs : w[1], "stop", stop);
		free(abs);
		return set_args(r, "snapshot", a);
	}
	if (strcmp(c, "update") == 0) {
		const char *prog = NULL;
		if (n == 3 && strcmp(w[1], "--program") == 0)
			prog = w[2];
		else if (n == 2 && strncmp(w[1], "--program=", 10) == 0)
			prog = w[1] + 10;
		else if (n != 1)
			return usage("update: expected 'update [--program PATH]'");
		if (prog == NULL)
			return set_args(r, "update", json_object());
		if (prog[0] == '\0')
			return usage("update: PATH is empty");
		char *abs = NULL;
		if (prog[0] != '/') {
			char *cwd = getcwd(NULL, 0);
			if (cwd == NULL || asprintf(&abs, "%s/%s", cwd, prog) < 0)
				abs = NULL;
			free(cwd);
			if (abs == NULL)
				return usage("update: cannot make '%s' absolute", prog);
		}
		json_t *a = json_pack("{s:s}", "program", abs ? abs : prog);
		free(abs);
		return set_args(r, "update", a);
	}
	if (strcmp(c, "call") == 0) {
		if ((rc = need(n, 2, 3, w, "call CMD [ARGS-JSON]")) != 0)
			return rc;
		json_t *a;
		if (n == 2) {
			a = json_object();
		} else if (strcmp(w[2], "-") == 0) {
			if ((a = read_stdin_json("call -")) == NULL)
				return EXIT_USAGE;
		} else {
			json_error_t je;
			a = json_loads(w[2], JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
			if (a == NULL)
				return usage("call: ARGS-JSON is not valid JSON: %s", je.text);
		}
		return set_args(r, w[1], a);
	}
	return usage(
	    "unknown command '%s' (ping, version, routes, vmms, vmm, raise, snapshot, update, "
	    "stats, metrics, call)",
	    c);
}

/* ---------------------------------------------------------------------- */
/* The exchange                                                             */
/* ---------------------------------------------------------------------- */

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Wait until FD is ready for EVENTS or DEADLINE (0: none). 0, or -1 with
 * errno (ETIMEDOUT). */
static int wait_fd(int fd, short events, uint64_t deadline)
{
	for (;;) {
		int ms = -1;
		if (deadline != 0) {
			uint64_t t = now_ns();
			if (t >= deadline) {
				errno = ETIMEDOUT;
				return -1;
			}
			uint64_t left = (deadline - t + 999999) / 1000000;
			ms = left > 60000 ? 60000 : (int)left;
		}
		struct pollfd p = {.fd = fd, .events = events};
		int r = poll(&p, 1, ms);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -1;
	}
}

/*
 * Send LINE and read one reply line. Returns the parsed reply, or NULL
 * with a message (already printed) and *status set.
 */
static json_t *exchange(const char *path, const char *line, uint64_t timeout_ns, int *status)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	*status = CTL_EXIT_CONNECT;
	if (strlen(path) >= sizeof(a.sun_path)) {
		fprintf(stderr,
			"vmmux: ctl: cannot connect to the control socket %s: the path is longer "
			"than %zu bytes\n",
			path, sizeof(a.sun_path) - 1);
		return NULL;
	}
	memcpy(a.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int err = errno;
		fprintf(stderr, "vmmux: ctl: cannot connect to the control socket %s: %s%s\n", path,
			strerror(err),
			err == ENOENT || err == ECONNREFUSED
			    ? " (is 'vmmux run --api-sock PATH' running?)"
			    : "");
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	uint64_t deadline = timeout_ns ? now_ns() + timeout_ns : 0;
	size_t len = strlen(line), off = 0;
	while (off < len) {
		if (wait_fd(fd, POLLOUT, deadline) < 0)
			goto io_error;
		ssize_t n = send(fd, line + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
			continue;
		if (n < 0) {
			/* vmmux may have answered (busy, too long) before it closed */
			if (errno == EPIPE || errno == ECONNRESET)
				break;
			goto io_error;
		}
		off += (size_t)n;
	}
	size_t cap = 4096, got = 0;
	char *buf = malloc(cap);
	char *nl = NULL;
	while (buf != NULL && nl == NULL) {
		if (got == cap) {
			if (cap >= CTL_REPLY_MAX) {
				fprintf(
				    stderr,
				    "vmmux: ctl: control socket %s: a reply longer than %u MiB\n",
				    path, CTL_REPLY_MAX >> 20);
				free(buf);
				close(fd);
				return NULL;
			}
			char *nb = realloc(buf, cap * 2);
			if (nb == NULL) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		if (wait_fd(fd, POLLIN, deadline) < 0) {
			free(buf);
			goto io_error;
		}
		ssize_t n = recv(fd, buf + got, cap - got, MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
			continue;
		if (n <= 0) {
			free(buf);
			if (n == 0 || errno == ECONNRESET) {
				fprintf(stderr,
					"vmmux: ctl: control socket %s: the connection was closed "
					"before the reply\n",
					path);
				close(fd);
				return NULL;
			}
			goto io_error;
		}
		nl = memchr(buf + got, '\n', (size_t)n);
		got += (size_t)n;
	}
	close(fd);
	if (buf == NULL) {
		fprintf(stderr, "vmmux: ctl: out of memory\n");
		*status = EXIT_HOST;
		return NULL;
	}
	json_error_t je;
	json_t *reply = json_loadb(buf, (size_t)(nl - buf), 0, &je);
	free(buf);
	if (reply == NULL || !json_is_object(reply) ||
	    !json_is_boolean(json_object_get(reply, "ok"))) {
		fprintf(stderr, "vmmux: ctl: control socket %s: the reply is not a reply: %s\n",
			path, reply == NULL ? je.text : "no \"ok\"");
		json_decref(reply);
		return NULL;
	}
	*status = 0;
	return reply;
io_error:
	fprintf(stderr, "vmmux: ctl: control socket %s: %s\n", path,
		errno == ETIMEDOUT ? "no reply within the timeout (--timeout)" : strerror(errno));
	close(fd);
	return NULL;
}

/* ---------------------------------------------------------------------- */
/* Printing                                                                 */
/* ---------------------------------------------------------------------- */

static void print_scalar(FILE *f, const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_STRING:
		fputs(json_string_value(v), f);
		break;
	case JSON_INTEGER:
		fprintf(f, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		break;
	case JSON_REAL:
		fprintf(f, "%g", json_real_value(v));
		break;
	case JSON_TRUE:
		fputs("true", f);
		break;
	case JSON_FALSE:
		fputs("false", f);
		break;
	case JSON_NULL:
		fputs("null", f);
		break;
	default: {
		char *s = json_dumps(v, JSON_COMPACT);
		fputs(s ? s : "?", f);
		free(s);
	}
	}
}

static bool all_scalars(const json_t *a)
{
	size_t i;
	json_t *v;
	json_array_foreach(a, i, v) if (json_is_object(v) || json_is_array(v)) return false;
	return true;
}

/* "key: value" lines, nested keys joined with '.', array elements [i]. */
static void print_flat(FILE *f, const char *prefix, const json_t *v)
{
	char p[512];
	if (json_is_object(v)) {
		const char *key;
		json_t *x;
		if (json_object_size(v) == 0 && prefix[0] != '\0')
			fprintf(f, "%s: {}\n", prefix);
		json_object_foreach((json_t *)v, key, x)
		{
			snprintf(p, sizeof(p), "%s%s%s", prefix, prefix[0] ? "." : "", key);
			print_flat(f, p, x);
		}
		return;
	}
	if (json_is_array(v) && !all_scalars(v)) {
		size_t i;
		json_t *x;
		json_array_foreach(v, i, x)
		{
			snprintf(p, sizeof(p), "%s[%zu]", prefix, i);
			print_flat(f, p, x);
		}
		return;
	}
	fprintf(f, "%s: ", prefix[0] ? prefix : "result");
	if (json_is_array(v)) {
		size_t i;
		json_t *x;
		json_array_foreach(v, i, x)
		{
			if (i)
				fputs(", ", f);
			print_scalar(f, x);
		}
	} else {
		print_scalar(f, v);
	}
	fputc('\n', f);
}

/* A cell of a table: the field's text (or "-"). */
static void cell(const json_t *row, const char *key, char *buf, size_t len)
{
	const json_t *v = json_object_get(row, key);
	if (v == NULL || json_is_null(v)) {
		snprintf(buf, len, "-");
		return;
	}
	char *s = NULL;
	size_t n = 0;
	FILE *m = open_memstream(&s, &n);
	if (m == NULL) {
		snprintf(buf, len, "?");
		return;
	}
	print_scalar(m, v);
	fclose(m);
	snprintf(buf, len, "%s", s ? s : "?");
	free(s);
}

#define TABLE_COLS_MAX 16
#define CELL_MAX       300

/* A table of ROWS (an array of objects): one column per COLS[i].key, headed
 * COLS[i].title; FMT (may be NULL) formats a cell itself. */
struct column {
	const char *title, *key;
	void (*fmt)(const json_t *row, char *buf, size_t len);
};

/* Add cell TEXT to LINE (LEN bytes, *N used), padded to WIDTH and two
 * spaces. */
static void line_cell(char *line, size_t len, size_t *n, const char *text, size_t width)
{
	int w = snprintf(line + *n, len - *n, "%-*s  ", (int)width, text);
	if (w > 0)
		*n = *n + (size_t)w < len ? *n + (size_t)w : len - 1;
}

/* Print LINE without its trailing blanks. */
static void line_end(FILE *f, char *line, size_t n)
{
	while (n > 0 && line[n - 1] == ' ')
		n--;
	fprintf(f, "%.*s\n", (int)n, line);
}

static void print_table(FILE *f, const json_t *rows, const struct column *cols, size_t ncols)
{
	size_t width[TABLE_COLS_MAX];
	char c[CELL_MAX], line[TABLE_COLS_MAX * (CELL_MAX + 2) + 1];
	size_t n;
	for (size_t k = 0; k < ncols; k++)
		width[k] = strlen(cols[k].title);
	size_t i;
	json_t *row;
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1) {
			n = 0;
			for (size_t k = 0; k < ncols; k++)
				line_cell(line, sizeof(line), &n, cols[k].title, width[k]);
			line_end(f, line, n);
		}
		json_array_foreach((json_t *)rows, i, row)
		{
			n = 0;
			for (size_t k = 0; k < ncols; k++) {
				if (cols[k].fmt)
					cols[k].fmt(row, c, sizeof(c));
				else
					cell(row, cols[k].key, c, sizeof(c));
				if (pass == 0 && strlen(c) > width[k])
					width[k] = strlen(c);
				if (pass == 1)
					line_cell(line, sizeof(line), &n, c, width[k]);
			}
			if (pass == 1)
				line_end(f, line, n);
		}
	}
}

static void fmt_route_note(const json_t *row, char *buf, size_t len)
{
	snprintf(buf, len, "%s", json_is_true(json_object_get(row, "implicit")) ? "default" : "");
}

static void fmt_pid(const json_t *row, char *buf, size_t len)
{
	json_int_t pid = json_integer_value(json_object_get(row, "pid"));
	if (pid > 0)
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT, pid);
	else
		snprintf(buf, len, "-");
}

static void fmt_ewma(const json_t *row, char *buf, size_t len)
{
	json_int_t ns = json_integer_value(json_object_get(row, "service_time_ewma_ns"));
	snprintf(buf, len, "%.1f", (double)ns / 1000.0);
}

static void fmt_cpu(const json_t *row, char *buf, size_t len)
{
	json_int_t ns = json_integer_value(json_object_get(row, "cpu_time_ns"));
	json_t *pm = json_object_get(row, "cpu_permille");
	if (pm != NULL)
		snprintf(buf, len, "%.3fs %.1f%%", (double)ns / 1e9,
			 (double)json_integer_value(pm) / 10.0);
	else
		snprintf(buf, len, "%.3fs", (double)ns / 1e9);
}

static void fmt_healthy(const json_t *row, char *buf, size_t len)
{
	const json_t *h = json_object_get(row, "healthy");
	snprintf(buf, len, "%s", h == NULL ? "-" : json_is_true(h) ? "yes" : "no");
}

static void print_result(FILE *f, const char *cmd, const json_t *result)
{
	if (strcmp(cmd, "routes.list") == 0 && json_is_array(json_object_get(result, "routes"))) {
		static const struct column cols[] = {{"SPEC", "spec", NULL},
						     {"VMM", "vmm", NULL},
						     {"KIND", "kind", NULL},
						     {"", "implicit", fmt_route_note}};
		fprintf(f, "generation: ");
		print_scalar(f, json_object_get(result, "generation"));
		fputc('\n', f);
		/* as `vmmux routes` shows a table: the keyed routes, then the type
		 * routes */
		json_t *sorted = json_array(), *all = json_object_get(result, "routes");
		for (int type = 0; type < 2 && sorted != NULL; type++) {
			size_t i;
			json_t *r;
			json_array_foreach(all, i, r)
			{
				const char *kind = json_string_value(json_object_get(r, "kind"));
				if ((kind != NULL && strcmp(kind, "type") == 0) == (type == 1))
					json_array_append(sorted, r);
			}
		}
		print_table(f, sorted != NULL ? sorted : all, cols, 4);
		json_decref(sorted);
		return;
	}
	if (strcmp(cmd, "vmms.list") == 0 && json_is_array(json_object_get(result, "vmms"))) {
		static const struct column cols[] = {
		    {"ID", "id", NULL},
		    {"NAME", "name", NULL},
		    {"ROLE", "role", NULL},
		    {"PLACEMENT", "placement", NULL},
		    {"STATE", "state", NULL},
		    {"PID", "pid", fmt_pid},
		    {"RESTARTS", "restarts", NULL},
		    {"INFLIGHT", "requests_inflight", NULL},
		    {"REQUESTS", "requests_total", NULL},
		    {"SERVICE_US", "service_time_ewma_ns", fmt_ewma},
		    {"CPU", "cpu_time_ns", fmt_cpu},
		    {"HEALTHY", "healthy", fmt_healthy},
		};
		print_table(f, json_object_get(result, "vmms"), cols,
			    sizeof(cols) / sizeof(cols[0]));
		return;
	}
	print_flat(f, "", result);
}

/* ---------------------------------------------------------------------- */
/* The command                                                              */
/* ---------------------------------------------------------------------- */

int cmd_ctl(int argc, char **argv)
{
	const char *sock = NULL;
	bool json = false, help = false;
	uint64_t timeout_ns = CTL_TIMEOUT_DEFAULT_NS;
	char **words = calloc((size_t)argc + 1, sizeof(char *));
	int n = 0;
	if (words == NULL) {
		fprintf(stderr, "vmmux: ctl: out of memory\n");
		return EXIT_HOST;
	}
	int status = 0;
	bool options = true;
	for (int i = 1; i < argc && status == 0; i++) {
		const char *a = argv[i];
		if (!options || a[0] != '-' || strcmp(a, "-") == 0 ||
		    (n > 0 && strcmp(words[0], "snapshot") == 0 && strcmp(a, "--stop") == 0) ||
		    (n > 0 && strcmp(words[0], "update") == 0 && strncmp(a, "--program", 9) == 0)) {
			words[n++] = argv[i];
			continue;
		}
		if (strcmp(a, "--") == 0) {
			options = false;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			help = true;
		} else if (strcmp(a, "--json") == 0) {
			json = true;
		} else if (strcmp(a, "--api-sock") == 0 || strncmp(a, "--api-sock=", 11) == 0 ||
			   strcmp(a, "--timeout") == 0 || strncmp(a, "--timeout=", 10) == 0) {
			bool is_sock = strncmp(a, "--api-sock", 10) == 0;
			const char *eq = strchr(a, '=');
			const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
			const char *name = is_sock ? "--api-sock" : "--timeout";
			struct errbuf e;
			if (v == NULL)
				status = usage("option '%s' needs an argument", name);
			else if (v[0] == '\0')
				status = usage("%s: the value is empty", name);
			else if (is_sock)
				sock = v;
			else if (parse_duration(v, &timeout_ns, &e) < 0)
				status = usage("--timeout: %s", e.msg);
		} else {
			status = usage("unknown option '%s'", a);
		}
	}
	if (status != 0 || help) {
		free(words);
		if (help && status == 0)
			ctl_print_help(stdout);
		return status;
	}
	if (n == 0) {
		free(words);
		return usage("no command given");
	}
	if (sock == NULL) {
		const char *env = getenv("VMMUX_API_SOCK");
		if (env == NULL || env[0] == '\0') {
			free(words);
			return usage("no control socket: give --api-sock PATH (or set "
				     "VMMUX_API_SOCK)");
		}
		sock = env;
	}
	struct request r = {NULL, NULL};
	status = build_request(n, words, &r);
	free(words);
	if (status != 0)
		return status;
	json_t *req = json_pack("{s:i, s:s, s:o}", "id", 1, "cmd", r.cmd, "args", r.args);
	char *s = req != NULL ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	char *line = NULL;
	if (s == NULL || asprintf(&line, "%s\n", s) < 0) {
		free(s);
		fprintf(stderr, "vmmux: ctl: out of memory\n");
		return EXIT_HOST;
	}
	free(s);
	json_t *reply = exchange(sock, line, timeout_ns, &status);
	free(line);
	if (reply == NULL)
		return status;
	if (!json_is_true(json_object_get(reply, "ok"))) {
		json_t *err = json_object_get(reply, "error");
		const char *msg = json_string_value(json_object_get(err, "message"));
		const char *code = json_string_value(json_object_get(err, "code"));
		fprintf(stderr, "vmmux: ctl: %s: %s (%s)\n", r.cmd, msg ? msg : "(no message)",
			code ? code : "no code");
		json_decref(reply);
		return CTL_EXIT_ERROR;
	}
	json_t *result = json_object_get(reply, "result");
	if (json) {
		char *out = json_dumps(result, JSON_INDENT(2) | JSON_ENCODE_ANY);
		if (out != NULL)
			printf("%s\n", out);
		free(out);
	} else {
		print_result(stdout, r.cmd, result);
	}
	json_decref(reply);
	return fflush(stdout) == 0 ? 0 : EXIT_HOST;
}
