/*
 * fuzz_snapshot.c: the snapshot file's reader (src/snapshot/format.c:
 * snap_parse), as `vmmux run --restore PATH` reads a file it is given: the
 * header, every section's bounds, CRCs, layout and contents. Guest memory
 * is never read by the reader, so the input is the part before it.
 *
 * Input: one byte of flags, four bytes of "more file" (the file's length
 * beyond the bytes given: where guest memory would be), then the file. With
 * flag 1 the harness recomputes the header's and every section's CRCs before
 * the parse, so that mutations reach the decoding behind them instead of
 * stopping at a checksum.
 *
 * On success the view must stay inside the buffer: every string, list and
 * record it points to lies within the LEN bytes given, and the strings of
 * the lists are walked (snap_str_at). Every error names what it refused.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "snapshot/format.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_quiet();
	return 0;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

/* The header's CRC (at 36, computed with it zeroed) and each section's:
 * payload CRC at +4, header CRC over its first 20 bytes at +20. */
static void fix_crcs(uint8_t *p, size_t len)
{
	if (len < SNAP_HEADER_SIZE)
		return;
	memset(p + 36, 0, 4);
	uint32_t crc = snap_crc32(0, p, SNAP_HEADER_SIZE);
	memcpy(p + 36, &crc, 4);
	size_t at = SNAP_HEADER_SIZE;
	for (unsigned n = 0; n < SNAP_SECTIONS_MAX && len - at >= SNAP_SECHDR_SIZE; n++) {
		uint64_t slen = get64(p + at + 8);
		if (slen <= len - at - SNAP_SECHDR_SIZE) {
			crc = snap_crc32(0, p + at + SNAP_SECHDR_SIZE, (size_t)slen);
			memcpy(p + at + 4, &crc, 4);
		}
		crc = snap_crc32(0, p + at, 20);
		memcpy(p + at + 20, &crc, 4);
		if (slen > len - at - SNAP_SECHDR_SIZE)
			break;
		at += SNAP_SECHDR_SIZE + ((slen + 7) & ~(uint64_t)7);
		if (at > len)
			break;
	}
}

static void inside(const uint8_t *buf, size_t len, const void *p, uint64_t n)
{
	const uint8_t *q = p;
	if (n == 0)
		return;
	if (q == NULL || q < buf || n > len || (size_t)(q - buf) > len - n)
		abort();
}

static void walk_strings(const uint8_t *buf, size_t len, const uint8_t *list, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		struct snap_str s = snap_str_at(list, i);
		inside(buf, len, s.p, s.len);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = {data, size};
	uint8_t flags = fz_u8(&f);
	uint32_t more = fz_u32(&f);
	size_t len = f.n;
	uint8_t *buf = malloc(len ? len : 1);
	if (buf == NULL)
		abort();
	memcpy(buf, f.p, len);
	if (flags & 1)
		fix_crcs(buf, len);
	struct snap_view *v = malloc(sizeof(*v));
	if (v == NULL)
		abort();
	struct errbuf e = {{0}};
	if (snap_parse(buf, len, (uint64_t)len + more, v, &e) == 0) {
		if (v->cpus == 0 || v->cpus > SNAP_VCPUS_MAX || v->nvmms > SNAP_VMMS_MAX)
			abort();
		inside(buf, len, v->cwd.p, v->cwd.len);
		walk_strings(buf, len, v->argv, v->argc);
		walk_strings(buf, len, v->routes, v->nroutes);
		for (uint32_t c = 0; c < v->cpus; c++)
			for (unsigned r = 0; r < SNAP_VCPU_RECORDS_MAX; r++)
				inside(buf, len, v->vcpu[c].rec[r], v->vcpu[c].len[r]);
		for (uint32_t i = 0; i < v->nvmms; i++) {
			const struct snap_vmm *m = &v->vmm[i];
			inside(buf, len, m->name.p, m->name.len);
			inside(buf, len, m->role.p, m->role.len);
			inside(buf, len, m->program.p, m->program.len);
			walk_strings(buf, len, m->grants, m->ngrants);
			inside(buf, len, m->state, m->state_len);
		}
		inside(buf, len, v->halted, v->halted ? v->cpus : 0);
		if (v->nextents > SNAP_EXTENTS_MAX)
			abort();
		inside(buf, len, v->extents, v->nextents * 16);
	} else if (e.msg[0] == '\0') {
		abort(); /* every refusal says why */
	}
	free(v);
	free(buf);
	return 0;
}
