#include "util/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int log_level = VMMUX_LOG_WARN;
bool log_timestamps;

static _Atomic uint64_t origin_ns; /* 0: not set yet */

static uint64_t monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void log_start(void)
{
	if (atomic_load(&origin_ns) != 0)
		return;
	uint64_t origin = monotonic_ns();
	const char *env = getenv(LOG_ORIGIN_ENV);
	if (env != NULL && env[0] != '\0') {
		char *end;
		unsigned long long v = strtoull(env, &end, 10);
		if (*end == '\0' && v != 0 && v <= origin) {
			origin = v;
			log_timestamps = true;
		}
	}
	uint64_t none = 0;
	atomic_compare_exchange_strong(&origin_ns, &none, origin);
}

unsigned long long log_origin_ns(void)
{
	log_start();
	return atomic_load(&origin_ns);
}

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int log_level_parse(const char *s)
{
	for (int i = 0; i < (int)(sizeof(level_names) / sizeof(level_names[0])); i++)
		if (strcmp(s, level_names[i]) == 0)
			return i;
	return -1;
}

void log_vmsg(int level, const char *prefix, const char *fmt, va_list ap)
{
	if (level > log_level)
		return;
	char line[1024];
	char stamp[32] = "";
	log_start(); /* once: the origin, and timestamps from the environment */
	if (log_timestamps) {
		uint64_t t = monotonic_ns() - atomic_load(&origin_ns);
		snprintf(stamp, sizeof(stamp), "[%5llu.%06llu] ",
			 (unsigned long long)(t / 1000000000ull),
			 (unsigned long long)(t % 1000000000ull / 1000ull));
	}
	int n = snprintf(line, sizeof(line), "%svmmux: %s: %s%s", stamp, level_names[level],
			 prefix ? prefix : "", prefix ? ": " : "");
	if (n < 0)
		return;
	if ((size_t)n < sizeof(line)) {
		int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
		if (m > 0)
			n += m;
	}
	if ((size_t)n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, (size_t)n);
	(void)w;
}

void log_msg(int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, NULL, fmt, ap);
	va_end(ap);
}
