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
 * runs out. The command runs before this returns (on the main thread).
 */
json_t *api_request(const char *line, size_t len);

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
