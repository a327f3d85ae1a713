/*
 * testvmm.h: helpers shared by the test VMMs built on the VMM library (the
 * public <vmmux/vmm.h> only, as a third party writes one).
 */
#ifndef VMMUX_TESTS_TESTVMM_H
#define VMMUX_TESTS_TESTVMM_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vmmux/vmm.h>

/* Argument KEY as an unsigned number (decimal or 0x hex), DEF when absent;
 * -1 with a logged reason when it is not a number. */
static inline int tv_arg_u64(struct vmmux_ctx *ctx, const char *key, uint64_t def, uint64_t *out)
{
	const char *s = vmmux_arg(ctx, key);
	*out = def;
	if (s == NULL)
		return 0;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno != 0 || end == s || *end != '\0') {
		vmmux_log(ctx, VMMUX_LOG_ERROR, "argument %s=%s is not a number", key, s);
		return -1;
	}
	*out = v;
	return 0;
}

/* One line describing EV: "io write port 0x80 size 1 value 0x12", "io read
 * port 0x80 size 2", "io write port 0x81 size 1 count 16" (string I/O). */
static inline void tv_describe(const struct vmmux_event *ev, char *buf, size_t len)
{
	static const char *const types[VMMUX_EV__COUNT] = VMMUX_EV_NAMES;
	const char *type = ev->type < VMMUX_EV__COUNT ? types[ev->type] : "?";
	bool write = ev->flags & VMMUX_EVF_WRITE;
	int n = snprintf(buf, len, "%s %s port 0x%llx size %u", type, write ? "write" : "read",
			 (unsigned long long)ev->key, ev->size);
	if (n < 0 || (size_t)n >= len)
		return;
	if (ev->flags & VMMUX_EVF_STRING)
		snprintf(buf + n, len - (size_t)n, " count %u", ev->count);
	else if (write)
		snprintf(buf + n, len - (size_t)n, " value 0x%llx", (unsigned long long)ev->value);
}

/* Answer a read with VALUE (an INS gets it in every element). */
static inline void tv_answer_read(const struct vmmux_event *ev, struct vmmux_reply *rep,
				  uint64_t value)
{
	if (ev->flags & VMMUX_EVF_WRITE)
		return;
	if ((ev->flags & VMMUX_EVF_STRING) && ev->data != NULL) {
		uint8_t *d = ev->data;
		for (size_t i = 0; i < (size_t)ev->count * ev->size; i++)
			d[i] = (uint8_t)(value >> (8 * (i % ev->size)));
		return;
	}
	rep->value = value;
}

#endif
