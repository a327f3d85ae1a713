/*
 * top.c: `vmmux top`, a live view of a running VM in the spirit of kvm_stat.
 *
 * It connects to the control socket of `vmmux run --api-sock PATH`, sends
 * {"id": N, "cmd": "metrics.get"} every interval and draws the reply
 * (src/stats/metrics.h): a header (uptime, routing table generation, event
 * totals), then the event types, the routes and the VMMs, each table sorted
 * by rate. On a terminal each screen is drawn after an ANSI clear-screen and
 * cut to the terminal's size; otherwise screens follow each other as plain
 * text. --once prints one screen without escape codes and exits.
 *
 * Plain POSIX and jansson: no curses. The client never blocks for long: a
 * reply that does not come within REPLY_TIMEOUT_MS is an error.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cli/top.h"
#include "util/err.h"
#include "util/parse.h"
#include "vmm/machine.h"

#define REPLY_TIMEOUT_MS 5000
#define REPLY_MAX	 (64u << 20) /* a reply line longer than this is refused */
#define INTERVAL_MAX_S	 3600.0

static const char help_top[] =
    "Usage: vmmux top [--api-sock PATH] [--once] [--json] [--interval SECONDS]\n"
    "                 [--count N]\n"
    "\n"
    "Watch a running VM: connect to the control socket that 'vmmux run --api-sock\n"
    "PATH' opened, ask it for its metrics every interval (the metrics.get command)\n"
    "and show them, in the manner of kvm_stat:\n"
    "  - a header: the time since the run started, the generation of the routing\n"
    "    table, the events so far and per second, and the unrouted ones;\n"
    "  - the event types, the routes and the VMMs, each sorted by events per\n"
    "    second (then by total): RATE/S over the last interval, TOTAL since the\n"
    "    start, P50 and P99 of the delivery latency (from the exit's\n"
    "    classification to the reply), and for a VMM its requests in flight,\n"
    "    its service time (EWMA), its share of a CPU (parallel VMMs) and where\n"
    "    it runs (in-process, pid N, down, failed, stopped).\n"
    "Types and routes that have seen no event are left out. On a terminal the\n"
    "screen is redrawn in place (ANSI escape codes, no curses) and cut to the\n"
    "terminal's size; otherwise each screen is printed after the previous one.\n"
    "Rates are computed by vmmux over the time since the previous metrics.get,\n"
    "whoever sent it.\n"
    "\n"
    "Options:\n"
    "  --api-sock PATH        the control socket of the run to watch (default: the\n"
    "                         environment variable VMMUX_API_SOCK)\n"
    "  --once                 print one screen, without escape codes, and exit\n"
    "                         (for scripts); its rates cover the time since the\n"
    "                         previous metrics.get, or since the start\n"
    "  --json                 print each sample as the JSON object metrics.get\n"
    "                         returns (docs/observability.md), one per line, in\n"
    "                         place of a screen; with --once, one object\n"
    "  --interval SECONDS     time between screens: a number of seconds (0.5) or\n"
    "                         a duration with a unit (500ms); default 1, from\n"
    "                         0.01 to 3600\n"
    "  --count N              exit after N screens (default: until the run ends\n"
    "                         or top is interrupted)\n"
    "  -h, --help             show this help\n"
    "\n"
    "Exit status: 0 when --once or --count is done, or when the run ends while\n"
    "top watches it; 2 for a bad option; 6 when the socket cannot be reached or\n"
    "does not answer metrics.get.\n"
    "\n"
    "Example:\n"
    "  vmmux run --kernel guest.elf --api-sock /tmp/vm.sock &\n"
    "  vmmux top --api-sock /tmp/vm.sock\n";

void top_print_help(FILE *f)
{
	fputs(help_top, f);
}

enum { OPT_API_SOCK = 256, OPT_ONCE, OPT_INTERVAL, OPT_COUNT, OPT_JSON, OPT_HELP = 'h' };

static const struct option top_options[] = {
    {"api-sock", required_argument, NULL, OPT_API_SOCK},
    {"once", no_argument, NULL, OPT_ONCE},
    {"interval", required_argument, NULL, OPT_INTERVAL},
    {"count", required_argument, NULL, OPT_COUNT},
    {"json", no_argument, NULL, OPT_JSON},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

struct top_opts {
	const char *sock;
	bool once;
	bool json; /* metrics.get's result as JSON lines, not screens */
	double interval_s;
	uint64_t count; /* 0: no limit */
};

static int usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("vmmux: top: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputs("\nTry 'vmmux top --help'.\n", stderr);
	va_end(ap);
	return EXIT_USAGE;
}

/* SECONDS as a decimal number, or a duration with a unit. */
static int parse_interval(const char *s, double *out, struct errbuf *e)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (end == s || *end != '\0' || errno != 0 || !isfinite(v)) {
		uint64_t ns;
		if (parse_duration(s, &ns, e) < 0)
			return err_set(e,
				       "'%s' is neither a number of seconds nor a duration "
				       "(such as 500ms)",
				       s);
		v = (double)ns / 1e9;
	}
	if (!(v >= 0.01 && v <= INTERVAL_MAX_S))
		return err_set(e, "'%s' is outside 0.01 to 3600 seconds", s);
	*out = v;
	return 0;
}

/* 0; 1 for --help; or EXIT_USAGE after a message. */
static int parse_top(int argc, char **argv, struct top_opts *o)
{
	int r;
	struct errbuf e;
	opterr = 0;
	optind = 0;
	while ((r = getopt_long(argc, argv, ":h", top_options, NULL)) != -1) {
		switch (r) {
		case OPT_API_SOCK:
			if (optarg[0] == '\0')
				return usage("--api-sock: the path is empty");
			o->sock = optarg;
			break;
		case OPT_ONCE:
			o->once = true;
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case OPT_INTERVAL:
			if (parse_interval(optarg, &o->interval_s, &e) < 0)
				return usage("--interval: %s", e.msg);
			break;
		case OPT_COUNT:
			if (parse_u64(optarg, &o->count, &e) < 0)
				return usage("--count: %s", e.msg);
			if (o->count == 0)
				return usage("--count: '%s' is not a number of screens (1 or more)",
					     optarg);
			break;
		case OPT_HELP:
			return 1;
		case ':':
			return usage("option '%s' needs an argument", argv[optind - 1]);
		default:
			return usage("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage("unexpected argument '%s'", argv[optind]);
	if (o->sock == NULL) {
		const char *env = getenv("VMMUX_API_SOCK");
		if (env == NULL || env[0] == '\0')
			return usage(
			    "--api-sock PATH is required (the control socket of 'vmmux run "
			    "--api-sock PATH'), or the environment variable VMMUX_API_SOCK");
		o->sock = env;
	}
	struct sockaddr_un sa;
	if (strlen(o->sock) >= sizeof(sa.sun_path))
		return usage("--api-sock: '%s' is longer than %zu bytes, the most a socket path "
			     "may have",
			     o->sock, sizeof(sa.sun_path) - 1);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* The connection                                                           */
/* ---------------------------------------------------------------------- */

struct conn {
	int fd;
	const char *path;
	uint64_t next_id;
	char *buf; /* bytes received after the last reply line */
	size_t len, cap;
};

static int conn_open(struct conn *c, const char *path)
{
	c->path = path;
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		fprintf(stderr, "vmmux: top: socket: %s\n", strerror(errno));
		return EXIT_HOST;
	}
	struct sockaddr_un sa;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = errno;
		fprintf(stderr, "vmmux: top: cannot connect to the control socket %s: %s%s\n", path,
			strerror(err),
			err == ENOENT || err == ECONNREFUSED
			    ? " (is 'vmmux run --api-sock' running with this path?)"
			    : "");
		close(c->fd);
		c->fd = -1;
		return EXIT_HOST;
	}
	return 0;
}

static void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
	c->len = c->cap = 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

enum { CONN_OK = 0, CONN_CLOSED = 1, CONN_ERROR = 2 };

/*
 * Send one metrics.get and read its reply line into *REPLY (parsed). Returns
 * CONN_OK, CONN_CLOSED when vmmux closed the socket (the run ended) before a
 * reply, or CONN_ERROR after a message.
 */
static int conn_call(struct conn *c, json_t **reply)
{
	char req[96];
	uint64_t id = ++c->next_id;
	int n = snprintf(req, sizeof(req), "{\"id\":%llu,\"cmd\":\"metrics.get\"}\n",
			 (unsigned long long)id);
	for (int off = 0; off < n;) {
		ssize_t w = send(c->fd, req + off, (size_t)(n - off), MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			if (errno == EPIPE || errno == ECONNRESET)
				return CONN_CLOSED;
			fprintf(stderr, "vmmux: top: %s: send: %s\n", c->path, strerror(errno));
			return CONN_ERROR;
		}
		off += (int)w;
	}
	int64_t deadline = now_ms() + REPLY_TIMEOUT_MS;
	for (;;) {
		char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
		if (nl != NULL) {
			size_t line = (size_t)(nl - c->buf);
			json_error_t je;
			json_t *j = json_loadb(c->buf, line, 0, &je);
			memmove(c->buf, nl + 1, c->len - line - 1);
			c->len -= line + 1;
			if (j == NULL) {
				fprintf(stderr, "vmmux: top: %s: the reply is not valid JSON: %s\n",
					c->path, je.text);
				return CONN_ERROR;
			}
			json_t *rid = json_object_get(j, "id");
			if (!json_is_integer(rid) || (uint64_t)json_integer_value(rid) != id) {
				json_decref(j); /* not ours (an earlier request's): skip */
				continue;
			}
			*reply = j;
			return CONN_OK;
		}
		if (c->len == c->cap) {
			if (c->cap >= REPLY_MAX) {
				fprintf(stderr,
					"vmmux: top: %s: a reply line is longer than %u bytes\n",
					c->path, REPLY_MAX);
				return CONN_ERROR;
			}
			size_t ncap = c->cap ? c->cap * 2 : 65536;
			char *nb = realloc(c->buf, ncap);
			if (nb == NULL) {
				fprintf(stderr, "vmmux: top: out of memory\n");
				return CONN_ERROR;
			}
			c->buf = nb;
			c->cap = ncap;
		}
		int64_t left = deadline - now_ms();
		if (left <= 0) {
			fprintf(stderr, "vmmux: top: %s: no reply to metrics.get within %d ms\n",
				c->path, REPLY_TIMEOUT_MS);
			return CONN_ERROR;
		}
		struct pollfd p = {.fd = c->fd, .events = POLLIN};
		int pr = poll(&p, 1, (int)left);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0) {
			fprintf(stderr, "vmmux: top: %s: poll: %s\n", c->path, strerror(errno));
			return CONN_ERROR;
		}
		if (pr == 0)
			continue; /* the deadline check above reports it */
		ssize_t rd = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
		if (rd < 0 && errno == EINTR)
			continue;
		if (rd < 0 && errno != ECONNRESET) {
			fprintf(stderr, "vmmux: top: %s: recv: %s\n", c->path, strerror(errno));
			return CONN_ERROR;
		}
		if (rd <= 0)
			return CONN_CLOSED;
		c->len += (size_t)rd;
	}
}

/* ---------------------------------------------------------------------- */
/* The screen                                                               */
/* ---------------------------------------------------------------------- */

static uint64_t jint(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	if (json_is_integer(v))
		return json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
	if (json_is_real(v))
		return json_real_value(v) > 0 ? (uint64_t)json_real_value(v) : 0;
	return 0;
}

static double jreal(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	double d = json_is_number(v) ? json_number_value(v) : 0.0;
	return isfinite(d) && d > 0 ? d : 0.0;
}

static const char *jstr(json_t *o, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s != NULL ? s : dflt;
}

/* "850ns", "7.8us", "125us", "1.5ms", "2.0s"; "-" for 0 samples. */
static const char *fmt_ns(uint64_t ns, bool any, char *buf, size_t len)
{
	static const struct {
		uint64_t div;
		const char *unit;
	} units[] = {{1000000000u, "s"}, {1000000u, "ms"}, {1000u, "us"}};
	if (!any) {
		snprintf(buf, len, "-");
		return buf;
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (ns < units[i].div)
			continue;
		double v = (double)ns / (double)units[i].div;
		snprintf(buf, len, v < 100 ? "%.1f%s" : "%.0f%s", v, units[i].unit);
		return buf;
	}
	snprintf(buf, len, "%lluns", (unsigned long long)ns);
	return buf;
}

/* One row of a table: the object and its label. */
struct row {
	json_t *o;
	const char *label;
	double rate;
	uint64_t total;
};

static int cmp_row(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	if (x->rate != y->rate)
		return x->rate > y->rate ? -1 : 1;
	if (x->total != y->total)
		return x->total > y->total ? -1 : 1;
	return strcmp(x->label, y->label);
}

/* Width of the widest label of ROWS, at least MIN and at most MAX. */
static int label_width(const struct row *rows, size_t n, int min, int max)
{
	int w = min;
	for (size_t i = 0; i < n; i++)
		if ((int)strlen(rows[i].label) > w)
			w = (int)strlen(rows[i].label);
	return w < max ? w : max;
}

static void draw_types(FILE *f, json_t *types)
{
	struct row rows[64];
	size_t n = 0;
	const char *key;
	json_t *o;
	json_object_foreach(types, key, o)
	{
		if (n == sizeof(rows) / sizeof(rows[0]))
			break;
		uint64_t total = jint(o, "count");
		if (total == 0)
			continue;
		rows[n++] = (struct row){o, key, jreal(o, "rate_per_s"), total};
	}
	fputc('\n', f);
	if (n == 0) {
		fprintf(f, "no events yet\n");
		return;
	}
	qsort(rows, n, sizeof(rows[0]), cmp_row);
	int w = label_width(rows, n, 10, 24);
	fprintf(f, "%-*s %12s %12s %9s %9s %9s %10s\n", w, "TYPE", "RATE/S", "TOTAL", "P50", "P99",
		"MAX", "UNROUTED");
	for (size_t i = 0; i < n; i++) {
		char p50[24], p99[24], max[24];
		fprintf(f, "%-*.*s %12.1f %12llu %9s %9s %9s %10llu\n", w, w, rows[i].label,
			rows[i].rate, (unsigned long long)rows[i].total,
			fmt_ns(jint(rows[i].o, "latency_p50_ns"), true, p50, sizeof(p50)),
			fmt_ns(jint(rows[i].o, "latency_p99_ns"), true, p99, sizeof(p99)),
			fmt_ns(jint(rows[i].o, "latency_max_ns"), true, max, sizeof(max)),
			(unsigned long long)jint(rows[i].o, "unrouted"));
	}
}

/* Rows of the array A whose total (key TOTAL_KEY) is nonzero, or all when
 * ALL; LABEL_KEY labels them. Caller frees. */
static struct row *array_rows(json_t *a, const char *label_key, const char *total_key, bool all,
			      size_t *n)
{
	*n = 0;
	size_t cap = json_array_size(a);
	struct row *rows = calloc(cap ? cap : 1, sizeof(*rows));
	if (rows == NULL)
		return NULL;
	size_t i;
	json_t *o;
	json_array_foreach(a, i, o)
	{
		uint64_t total = jint(o, total_key);
		if (!json_is_object(o) || (!all && total == 0))
			continue;
		rows[(*n)++] =
		    (struct row){o, jstr(o, label_key, "?"), jreal(o, "rate_per_s"), total};
	}
	qsort(rows, *n, sizeof(rows[0]), cmp_row);
	return rows;
}

static void draw_routes(FILE *f, json_t *routes)
{
	size_t n;
	struct row *rows = array_rows(routes, "spec", "count", false, &n);
	if (rows == NULL || n == 0) {
		free(rows);
		return;
	}
	int w = label_width(rows, n, 24, 48);
	fprintf(f, "\n%-*s %-12s %12s %12s %9s %9s\n", w, "ROUTE", "VMM", "RATE/S", "TOTAL", "P50",
		"P99");
	for (size_t i = 0; i < n; i++) {
		char p50[24], p99[24];
		fprintf(f, "%-*.*s %-12.12s %12.1f %12llu %9s %9s\n", w, w, rows[i].label,
			jstr(rows[i].o, "vmm", "?"), rows[i].rate,
			(unsigned long long)rows[i].total,
			fmt_ns(jint(rows[i].o, "latency_p50_ns"), true, p50, sizeof(p50)),
			fmt_ns(jint(rows[i].o, "latency_p99_ns"), true, p99, sizeof(p99)));
	}
	free(rows);
}

static void draw_vmms(FILE *f, json_t *vmms)
{
	size_t n;
	struct row *rows = array_rows(vmms, "name", "requests_total", true, &n);
	if (rows == NULL || n == 0) {
		free(rows);
		return;
	}
	int w = label_width(rows, n, 10, 24);
	fprintf(f, "\n%-*s %-12s %12s %12s %9s %9s %8s %9s %6s %8s\n", w, "VMM", "WHERE", "RATE/S",
		"TOTAL", "P50", "P99", "INFLIGHT", "EWMA", "CPU%", "RESTARTS");
	for (size_t i = 0; i < n; i++) {
		json_t *o = rows[i].o;
		char p50[24], p99[24], ewma[24], where[40];
		bool any = rows[i].total > 0;
		snprintf(where, sizeof(where), "%s%s", jstr(o, "where", "?"),
			 json_is_false(json_object_get(o, "healthy")) ? "!" : "");
		fprintf(f, "%-*.*s %-12.12s %12.1f %12llu %9s %9s %8llu %9s %6.1f %8llu\n", w, w,
			rows[i].label, where, rows[i].rate, (unsigned long long)rows[i].total,
			fmt_ns(jint(o, "latency_p50_ns"), any, p50, sizeof(p50)),
			fmt_ns(jint(o, "latency_p99_ns"), any, p99, sizeof(p99)),
			(unsigned long long)jint(o, "requests_inflight"),
			fmt_ns(jint(o, "service_time_ewma_ns"), any, ewma, sizeof(ewma)),
			(double)jint(o, "cpu_permille") / 10.0,
			(unsigned long long)jint(o, "restarts"));
	}
	free(rows);
}

/* One screen of metrics M into F. */
static void draw(FILE *f, const char *path, json_t *m)
{
	double up = jreal(m, "uptime_s");
	fprintf(f,
		"vmmux top - %s   uptime %.1fs   routing table generation %llu\n"
		"events %llu total, %.1f/s   unrouted %llu\n",
		path, up, (unsigned long long)jint(m, "generation"),
		(unsigned long long)jint(m, "events_total"), jreal(m, "events_rate_per_s"),
		(unsigned long long)jint(m, "unrouted_total"));
	draw_types(f, json_object_get(m, "types"));
	draw_routes(f, json_object_get(m, "routes"));
	draw_vmms(f, json_object_get(m, "vmms"));
}

/*
 * Put TEXT (LEN bytes) on the screen. On a terminal: clear it for the first
 * screen, then overwrite in place (cursor home, each line cleared to its
 * end, the rest of the screen cleared: no flicker), at most ROWS-1 lines of
 * at most COLS characters (0: no limit). Otherwise the text and a blank line.
 */
static void put_screen(const char *text, size_t len, bool tty, bool first, unsigned rows,
		       unsigned cols)
{
	if (!tty) {
		fwrite(text, 1, len, stdout);
		fputc('\n', stdout);
		fflush(stdout);
		return;
	}
	fputs(first ? "\033[H\033[2J" : "\033[H", stdout);
	unsigned line = 0;
	const char *p = text, *end = text + len;
	while (p < end && (rows == 0 || line + 1 < rows)) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		fwrite(p, 1, cols && n > cols ? cols : n, stdout);
		fputs("\033[K\n", stdout);
		line++;
		p += n + (nl ? 1 : 0);
	}
	fputs("\033[J", stdout);
	fflush(stdout);
}

static void sleep_s(double s)
{
	struct timespec ts = {.tv_sec = (time_t)s,
			      .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int cmd_top(int argc, char **argv)
{
	struct top_opts o = {.sock = NULL, .once = false, .interval_s = 1.0, .count = 0};
	int r = parse_top(argc, argv, &o);
	if (r == 1) {
		top_print_help(stdout);
		return 0;
	}
	if (r != 0)
		return r;
	struct conn c = {.fd = -1};
	if ((r = conn_open(&c, o.sock)) != 0)
		return r;
	bool tty = !o.once && !o.json && isatty(STDOUT_FILENO);
	int status = 0;
	for (uint64_t screen = 0;; screen++) {
		json_t *reply = NULL;
		int cr = conn_call(&c, &reply);
		if (cr == CONN_CLOSED) {
			if (screen == 0) {
				fprintf(stderr,
					"vmmux: top: %s closed the connection before it answered\n",
					o.sock);
				status = EXIT_HOST;
			} else {
				fprintf(stderr, "vmmux: top: %s: the run ended\n", o.sock);
			}
			break;
		}
		if (cr != CONN_OK) {
			status = EXIT_HOST;
			break;
		}
		json_t *result = json_object_get(reply, "result");
		if (!json_is_true(json_object_get(reply, "ok")) || !json_is_object(result)) {
			json_t *err = json_object_get(reply, "error");
			fprintf(stderr, "vmmux: top: %s: metrics.get failed: %s (%s)\n", o.sock,
				jstr(err, "message", "no message"), jstr(err, "code", "no code"));
			json_decref(reply);
			status = EXIT_HOST;
			break;
		}
		if (o.json) {
			/* one line per sample: the result as the server sent it */
			int jr = json_dumpf(result, stdout, JSON_COMPACT);
			json_decref(reply);
			if (jr != 0 || fputc('\n', stdout) == EOF || fflush(stdout) != 0) {
				status = EXIT_HOST;
				break;
			}
			if (o.once || (o.count && screen + 1 >= o.count))
				break;
			sleep_s(o.interval_s);
			continue;
		}
		char *text = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&text, &len);
		if (f == NULL) {
			fprintf(stderr, "vmmux: top: %s\n", strerror(errno));
			json_decref(reply);
			status = EXIT_HOST;
			break;
		}
		draw(f, o.sock, result);
		json_decref(reply);
		bool ok = fclose(f) == 0;
		if (ok) {
			struct winsize ws = {0, 0, 0, 0};
			if (tty && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) < 0)
				ws.ws_row = ws.ws_col = 0;
			put_screen(text, len, tty, screen == 0, ws.ws_row, ws.ws_col);
		}
		free(text);
		if (!ok) {
			fprintf(stderr, "vmmux: top: out of memory\n");
			status = EXIT_HOST;
			break;
		}
		if (ferror(stdout)) {
			status = EXIT_HOST;
			break;
		}
		if (o.once || (o.count && screen + 1 >= o.count))
			break;
		sleep_s(o.interval_s);
	}
	conn_close(&c);
	return status;
}
