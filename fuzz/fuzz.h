/*
 * fuzz.h: what every libFuzzer harness under fuzz/ shares.
 *
 * A harness is LLVMFuzzerTestOneInput over one untrusted parser of vmmux,
 * linked with the product's own code (fuzz/meson.build): it must return for
 * every input, and AddressSanitizer, UBSan (-fno-sanitize-recover: any
 * report aborts) and LeakSanitizer turn every memory error, undefined
 * behaviour and leak into a crash that libFuzzer saves.
 *
 * struct fz is a reader of the input as a sequence of choices (in the
 * manner of LLVM's FuzzedDataProvider): each call takes bytes from the front
 * and yields 0 once the input is used up, so that every input, including a
 * truncated one, is a valid sequence of choices.
 */
#ifndef VMMUX_FUZZ_FUZZ_H
#define VMMUX_FUZZ_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

struct fz {
	const uint8_t *p;
	size_t n;
};

static inline uint64_t fz_bytes(struct fz *f, unsigned k)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < k && f->n > 0; i++, f->p++, f->n--)
		v |= (uint64_t)*f->p << (8 * i);
	return v;
}

static inline uint8_t fz_u8(struct fz *f)
{
	return (uint8_t)fz_bytes(f, 1);
}

static inline uint16_t fz_u16(struct fz *f)
{
	return (uint16_t)fz_bytes(f, 2);
}

static inline uint32_t fz_u32(struct fz *f)
{
	return (uint32_t)fz_bytes(f, 4);
}

static inline uint64_t fz_u64(struct fz *f)
{
	return fz_bytes(f, 8);
}

/* A value from a list of interesting ones or a raw one. */
static inline uint64_t fz_pick(struct fz *f, const uint64_t *vals, size_t n)
{
	uint8_t c = fz_u8(f);
	if (c < n)
		return vals[c];
	return fz_u64(f);
}

/*
 * The rest of the input up to the next newline (or its end) as a
 * NUL-terminated malloc'd string of *len bytes (which may hold NULs);
 * NULL when the input is used up.
 */
static inline char *fz_line(struct fz *f, size_t *len)
{
	if (f->n == 0)
		return NULL;
	const uint8_t *nl = memchr(f->p, '\n', f->n);
	size_t l = nl ? (size_t)(nl - f->p) : f->n;
	char *s = malloc(l + 1);
	if (s == NULL)
		abort();
	memcpy(s, f->p, l);
	s[l] = '\0';
	f->p += nl ? l + 1 : l;
	f->n -= nl ? l + 1 : l;
	if (len != NULL)
		*len = l;
	return s;
}

/*
 * vmmux logs every refused input; a fuzzer refuses millions. Logging stays
 * off unless VMMUX_FUZZ_LOG names a level (error, warn, info, debug), so
 * that a reproduction can show what vmmux said.
 */
static inline void fz_quiet(void)
{
	const char *s = getenv("VMMUX_FUZZ_LOG");
	int l = s != NULL ? log_level_parse(s) : -1;
	log_level = l >= 0 ? l : -1;
}

#endif
