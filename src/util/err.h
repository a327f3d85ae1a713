/*
 * err.h: error messages that travel back to the user.
 *
 * Functions that can fail on user input take a struct errbuf and, on failure,
 * fill it with one line that names the input and the problem ("guest.elf:
 * program header 2 ends beyond the file") and return -1. The caller adds
 * context and decides the exit status.
 */
#ifndef VMMUX_UTIL_ERR_H
#define VMMUX_UTIL_ERR_H

#include <stddef.h>

struct errbuf {
	char msg[512];
};

/* Format the message into e (when e is not NULL); always returns -1. */
int err_set(struct errbuf *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefix the message already in e with "PREFIX: "; returns -1. */
int err_prefix(struct errbuf *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
