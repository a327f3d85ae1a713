/*
 * parse.h: numbers, sizes and durations as users write them.
 *
 * Every parser takes the whole string (no trailing junk), reports overflow,
 * and returns 0 on success or -1 with a message in e that quotes the input.
 */
#ifndef VMMUX_UTIL_PARSE_H
#define VMMUX_UTIL_PARSE_H

#include <stdint.h>

#include "util/err.h"

/* Unsigned integer: decimal, or hexadecimal with 0x. */
int parse_u64(const char *s, uint64_t *out, struct errbuf *e);

/*
 * A memory size as QEMU's -m takes it: a number with an optional suffix K,
 * M, G or T (binary units; also KiB/MiB/GiB/TiB and lower case), a bare
 * number meaning MiB. Result in bytes.
 */
int parse_mem_size(const char *s, uint64_t *bytes, struct errbuf *e);

/* A byte size with a required-or-bare unit: bare means bytes; K/M/G as above. */
int parse_byte_size(const char *s, uint64_t *bytes, struct errbuf *e);

/* A duration with a unit: ns, us, ms, s (for example "50ms"). Result in ns. */
int parse_duration(const char *s, uint64_t *ns, struct errbuf *e);

#endif
