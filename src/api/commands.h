/*
 * commands.h: the requests of the control socket (inside src/api).
 *
 * server.c frames lines and owns the clients; commands.c turns one request
 * line into one reply object. docs/control-api.md is the protocol.
 */
#ifndef VMMUX_API_COMMANDS_H
#define VMMUX_API_COMMANDS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define API_PROTOCOL_VERSION 1
#define API_BATCH_MAX	     1024 /* changes in one routes.batch (as many as a config's routes) */

/*
 * The reply to the request line LINE (LEN bytes, without its newline; it
 * need not be NUL-terminated and may hold any bytes): a new reference to
 * {"id", "ok": true, "result"} or {"id", "ok": false, "error": {"code",
 * "message"}}. NULL for a blank line (nothing is answered), and when memory
 * runs out. The command runs before this returns, on the calling thread.
 */
json_t *api_request(const char *line, size_t len);

/*
 * A checked request whose command is a live change (every command that
 * changes the machine: routes.add/delete/replace/batch, vmm.*,
 * platform.raise): it may wait (a set-up, a drain, a stop's grace), so the
 * control thread does not run it but hands it to the live-change worker
 * (docs/architecture.md, "Threads and who waits for whom").
 */
struct api_deferred;

/*
 * As api_request, except that a live change is not run: NULL is returned
 * with *DEFER set to it, for api_deferred_run on the live-change worker.
 * Otherwise *DEFER is NULL and the reply is as api_request's: read-only
 * commands (ping, version, routes.list, vmms.list, stats.get, metrics.get)
 * run here and read only state that is safe to read while a live change
 * runs; a request with an error is answered at once.
 */
json_t *api_request_begin(const char *line, size_t len, struct api_deferred **defer);

/* Run D's command and free D: its reply (as api_request's). */
json_t *api_deferred_run(struct api_deferred *d);

/* Free D without running it (the run ends). */
void api_deferred_free(struct api_deferred *d);

/* True when LINE (LEN bytes) holds only blanks (space, tab, CR): not a
 * request, and not answered. */
bool api_line_blank(const char *line, size_t len);

/*
 * An error reply {"id": ID (NULL: null), "ok": false, "error": {"code":
 * CODE, "message": ...}}, the message made valid UTF-8. New reference, or
 * NULL when memory runs out.
 */
json_t *api_error_reply(json_t *id, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
