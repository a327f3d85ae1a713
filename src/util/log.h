/*
 * log.h: vmmux's log on stderr, with levels.
 *
 * stdout belongs to the guest's console; everything vmmux says goes to
 * stderr as "vmmux: LEVEL: message". The level is set once at start-up
 * (--log-level, VMMUX_LOG) and read without locks afterwards.
 *
 * With timestamps on (--log-timestamps, "log_timestamps" in a config file)
 * each line starts with the monotonic time since the process started, in
 * seconds with microseconds, as the kernel's log shows it:
 * "[    0.123456] vmmux: warn: message".
 */
#ifndef VMMUX_UTIL_LOG_H
#define VMMUX_UTIL_LOG_H

#include <stdbool.h>

#include <vmmux/vmmux.h>

/* Current level (enum vmmux_log_level); messages above it are dropped. */
extern int log_level;

/* Whether lines start with "[SECONDS.MICROS] " (set once at start-up). */
extern bool log_timestamps;

/*
 * The origin of the timestamps: call once, first thing in main (before it,
 * the first log line sets it). A process whose environment holds
 * LOG_ORIGIN_ENV=NS (a parallel VMM that vmmux started with timestamps on:
 * sandbox_env) takes NS, vmmux's own origin on CLOCK_MONOTONIC, and turns
 * timestamps on, so that its lines and vmmux's share one clock.
 */
void log_start(void);
#define LOG_ORIGIN_ENV "VMMUX_LOG_ORIGIN"
/* The origin, in CLOCK_MONOTONIC nanoseconds (log_start first). */
unsigned long long log_origin_ns(void);

/* Parse "error", "warn", "info", "debug"; returns the level or -1. */
int log_level_parse(const char *s);

/* Emit one line at LEVEL; the line is written with a single write(2). */
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(int level, const char *prefix, const char *fmt, __builtin_va_list ap);

#define log_error(...) log_msg(VMMUX_LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(VMMUX_LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(VMMUX_LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
	do {                                                                                       \
		if (log_level >= VMMUX_LOG_DEBUG)                                                  \
			log_msg(VMMUX_LOG_DEBUG, __VA_ARGS__);                                     \
	} while (0)

#endif
