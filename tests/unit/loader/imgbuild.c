#include "imgbuild.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define MB_MAGIC   0x1BADB002u
#define GUARD_BYTE 0xa5u

uint8_t seg_byte(unsigned i, uint64_t j)
{
	return (uint8_t)(0x11 + i * 0x35 + j * 7 + (j >> 8) * 13);
}

uint32_t rd32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

uint64_t rd64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

void wr32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

void mb_put_header(uint8_t *img, size_t off, uint32_t flags)
{
	wr32(img + off, MB_MAGIC);
	wr32(img + off + 4, flags);
	wr32(img + off + 8, (uint32_t)(0u - MB_MAGIC - flags));
}

uint64_t seg_off(const struct tseg *s, unsigned i)
{
	uint64_t off = 0x1000;
	for (unsigned k = 0; k < i; k++)
		off += (s[k].filesz + 0xfff) & ~0xfffull;
	return off;
}

static uint8_t *alloc_image(const struct tseg *s, unsigned n, size_t *len)
{
	*len = seg_off(s, n);
	uint8_t *b = calloc(1, *len);
	assert_non_null(b);
	for (unsigned i = 0; i < n; i++)
		for (uint64_t j = 0; j < s[i].filesz; j++)
			b[seg_off(s, i) + j] = seg_byte(i, j);
	return b;
}

uint8_t *build_elf64(const struct tseg *s, unsigned n, uint64_t entry, size_t *len)
{
	assert_true(sizeof(Elf64_Ehdr) + n * sizeof(Elf64_Phdr) <= 0x1000);
	uint8_t *b = alloc_image(s, n, len);
	Elf64_Ehdr eh = {0};
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_type = ET_EXEC;
	eh.e_machine = EM_X86_64;
	eh.e_version = EV_CURRENT;
	eh.e_entry = entry;
	eh.e_phoff = sizeof(Elf64_Ehdr);
	eh.e_ehsize = sizeof(Elf64_Ehdr);
	eh.e_phentsize = sizeof(Elf64_Phdr);
	eh.e_phnum = (uint16_t)n;
	memcpy(b, &eh, sizeof(eh));
	for (unsigned i = 0; i < n; i++) {
		Elf64_Phdr ph = {0};
		ph.p_type = s[i].type;
		ph.p_flags = s[i].flags;
		ph.p_offset = seg_off(s, i);
		ph.p_vaddr = s[i].vaddr;
		ph.p_paddr = s[i].paddr ? s[i].paddr : s[i].vaddr;
		ph.p_filesz = s[i].filesz;
		ph.p_memsz = s[i].memsz;
		ph.p_align = 0x1000;
		memcpy(b + sizeof(eh) + i * sizeof(ph), &ph, sizeof(ph));
	}
	return b;
}

uint8_t *build_elf32_mb(const struct tseg *s, unsigned n, uint32_t entry, uint32_t mbflags,
			size_t *len)
{
	assert_true(sizeof(Elf32_Ehdr) + n * sizeof(Elf32_Phdr) <= MB_ELF_HDR_OFF);
	uint8_t *b = alloc_image(s, n, len);
	Elf32_Ehdr eh = {0};
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS32;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_type = ET_EXEC;
	eh.e_machine = EM_386;
	eh.e_version = EV_CURRENT;
	eh.e_entry = entry;
	eh.e_phoff = sizeof(Elf32_Ehdr);
	eh.e_ehsize = sizeof(Elf32_Ehdr);
	eh.e_phentsize = sizeof(Elf32_Phdr);
	eh.e_phnum = (uint16_t)n;
	memcpy(b, &eh, sizeof(eh));
	for (unsigned i = 0; i < n; i++) {
		Elf32_Phdr ph = {0};
		ph.p_type = s[i].type;
		ph.p_flags = s[i].flags;
		ph.p_offset = (uint32_t)seg_off(s, i);
		ph.p_vaddr = (uint32_t)s[i].vaddr;
		ph.p_paddr = (uint32_t)(s[i].paddr ? s[i].paddr : s[i].vaddr);
		ph.p_filesz = (uint32_t)s[i].filesz;
		ph.p_memsz = (uint32_t)s[i].memsz;
		ph.p_align = 0x1000;
		memcpy(b + sizeof(eh) + i * sizeof(ph), &ph, sizeof(ph));
	}
	mb_put_header(b, MB_ELF_HDR_OFF, mbflags);
	return b;
}

uint8_t *build_aout(const struct aout *a, size_t *len)
{
	assert_true(a->hdr_off + 32 <= a->file_len);
	uint8_t *b = malloc(a->file_len);
	assert_non_null(b);
	for (size_t j = 0; j < a->file_len; j++)
		b[j] = seg_byte(0, j);
	mb_put_header(b, a->hdr_off, 0x10000u | a->extra_flags);
	wr32(b + a->hdr_off + 12, a->header_addr);
	wr32(b + a->hdr_off + 16, a->load_addr);
	wr32(b + a->hdr_off + 20, a->load_end);
	wr32(b + a->hdr_off + 24, a->bss_end);
	wr32(b + a->hdr_off + 28, a->entry);
	*len = a->file_len;
	return b;
}

void tmem_init(struct tmem *t, uint64_t size, uint8_t fill)
{
	t->alloc = malloc(size + 2 * TMEM_GUARD);
	assert_non_null(t->alloc);
	memset(t->alloc, GUARD_BYTE, TMEM_GUARD);
	memset(t->alloc + TMEM_GUARD, fill, size);
	memset(t->alloc + TMEM_GUARD + size, GUARD_BYTE, TMEM_GUARD);
	t->m.host = t->alloc + TMEM_GUARD;
	t->m.size = size;
	t->m.memfd = -1;
}

bool tmem_guards_ok(const struct tmem *t)
{
	for (size_t i = 0; i < TMEM_GUARD; i++)
		if (t->alloc[i] != GUARD_BYTE || t->alloc[TMEM_GUARD + t->m.size + i] != GUARD_BYTE)
			return false;
	return true;
}

void tmem_free(struct tmem *t)
{
	free(t->alloc);
	t->alloc = NULL;
}

void expect_error_at(int rc, const struct errbuf *e, const char *name, const char *want,
		     const char *file, int line)
{
	if (rc != -1)
		fail_msg("%s:%d: expected failure with \"%s\", got rc %d", file, line, want, rc);
	size_t nl = strlen(name);
	if (strncmp(e->msg, name, nl) != 0 || strncmp(e->msg + nl, ": ", 2) != 0)
		fail_msg("%s:%d: message does not begin with \"%s: \": %s", file, line, name,
			 e->msg);
	if (strstr(e->msg, want) == NULL)
		fail_msg("%s:%d: expected \"%s\" in: %s", file, line, want, e->msg);
}

void expect_ok_at(int rc, const struct errbuf *e, const char *file, int line)
{
	if (rc != 0)
		fail_msg("%s:%d: expected success, got rc %d: %s", file, line, rc, e->msg);
}
