/*
 * hvt_elf.c: an hvt executable and its Solo5 notes (hvt.h). The file is
 * untrusted: every offset, size and sum is checked before it is used.
 */
#include <elf.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hvt/hvt.h"

#define PAGE 0x1000ull

static uint64_t page_up(uint64_t x)
{
	return (x + PAGE - 1) & ~(PAGE - 1);
}

static int check_ehdr(const char *name, const uint8_t *img, size_t len, Elf64_Ehdr *eh,
		      struct errbuf *e)
{
	if (len < sizeof(*eh))
		return err_set(e, "%s: not an ELF64 file (%zu bytes, shorter than an ELF header)",
			       name, len);
	memcpy(eh, img, sizeof(*eh));
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0)
		return err_set(e, "%s: bad ELF magic (not an ELF file)", name);
	if (eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_ident[EI_DATA] != ELFDATA2LSB)
		return err_set(e, "%s: not a 64-bit little-endian ELF file", name);
	if (eh->e_ident[EI_VERSION] != EV_CURRENT || eh->e_version != EV_CURRENT)
		return err_set(e, "%s: ELF version is not EV_CURRENT", name);
	if (eh->e_type != ET_EXEC)
		return err_set(e, "%s: ELF type %u is not ET_EXEC", name, eh->e_type);
	if (eh->e_machine != EM_X86_64)
		return err_set(e, "%s: ELF machine %u is not EM_X86_64", name, eh->e_machine);
	if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phnum == 0 || eh->e_phnum == PN_XNUM)
		return err_set(e, "%s: bad program header table (%u entries of %u bytes)", name,
			       eh->e_phnum, eh->e_phentsize);
	uint64_t bytes = (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr);
	if (eh->e_phoff > len || bytes > len - eh->e_phoff)
		return err_set(e, "%s: program header table extends beyond the end of the file",
			       name);
	return 0;
}

/* Validate entry I of manifest M. */
static int check_entry(const char *name, const struct hvt_mft *m, uint32_t i, struct errbuf *e)
{
	const struct hvt_mft_entry *en = &m->e[i];
	if (memchr(en->name, '\0', sizeof(en->name)) == NULL)
		return err_set(e, "%s: manifest entry %u: name is not NUL-terminated", name, i);
	/* attached is a C bool in the ABI, but the file is untrusted: its byte
	 * is read as a byte (a bool holding anything but 0 or 1 is undefined
	 * behaviour to read). Solo5's tender refuses an entry whose attached
	 * is not false; so does vmmux, for every byte other than 0. */
	uint8_t attached;
	memcpy(&attached, (const uint8_t *)en + offsetof(struct hvt_mft_entry, attached), 1);
	if (attached != 0)
		return err_set(e,
			       "%s: manifest entry %u ('%s') is marked attached in the file "
			       "(byte 0x%02x; it must be 0, false)",
			       name, i, en->name, attached);
	bool first = en->type == HVT_MFT_RESERVED_FIRST;
	if (i == 0 && !first)
		return err_set(e, "%s: manifest entry 0 is not the reserved first entry", name);
	if (i != 0 && first)
		return err_set(e, "%s: manifest entry %u has the reserved-first type", name, i);
	if (first)
		return 0;
	if (en->type != HVT_MFT_DEV_BLOCK_BASIC && en->type != HVT_MFT_DEV_NET_BASIC)
		return err_set(e, "%s: manifest entry %u ('%s'): unknown device type %u", name, i,
			       en->name, en->type);
	if (en->name[0] == '\0')
		return err_set(e, "%s: manifest entry %u has an empty name", name, i);
	for (uint32_t j = 1; j < i; j++)
		if (strcmp(m->e[j].name, en->name) == 0)
			return err_set(e, "%s: manifest declares device '%s' twice", name,
				       en->name);
	return 0;
}

/*
 * Validate the manifest note's descriptor D (N = n_descsz bytes: the
 * padding, then struct hvt_mft) and copy the manifest to *out.
 */
static int take_mft(const char *name, const uint8_t *d, uint64_t n, struct hvt_image *out,
		    struct errbuf *e)
{
	if (n < HVT_MFT1_DESCSZ(1) || n > HVT_MFT1_DESCSZ_MAX ||
	    (n - HVT_MFT1_DESCSZ(0)) % sizeof(struct hvt_mft_entry) != 0)
		return err_set(e,
			       "%s: manifest note does not fall within valid size (n_descsz %llu; "
			       "%u bytes of padding, 8 of header and 1 to %u entries of 104 make "
			       "%llu to %llu)",
			       name, (unsigned long long)n, (unsigned)HVT_MFT1_DESC_PAD,
			       HVT_MFT_MAX_ENTRIES, (unsigned long long)HVT_MFT1_DESCSZ(1),
			       (unsigned long long)HVT_MFT1_DESCSZ_MAX);
	d += HVT_MFT1_DESC_PAD;
	n -= HVT_MFT1_DESC_PAD;
	struct hvt_mft h;
	memcpy(&h, d, sizeof(h));
	if (h.version != HVT_MFT_VERSION)
		return err_set(e, "%s: manifest version %u is not %u", name, h.version,
			       HVT_MFT_VERSION);
	if (h.entries == 0 || h.entries > HVT_MFT_MAX_ENTRIES)
		return err_set(e, "%s: manifest has %u entries (1 to %u allowed)", name, h.entries,
			       HVT_MFT_MAX_ENTRIES);
	if (n != HVT_MFT_SIZE(h.entries))
		return err_set(e,
			       "%s: manifest note does not fall within valid size (n_descsz %llu, "
			       "but %u entries need exactly %llu)",
			       name, (unsigned long long)(n + HVT_MFT1_DESC_PAD), h.entries,
			       (unsigned long long)HVT_MFT1_DESCSZ(h.entries));
	struct hvt_mft *m = malloc(n);
	if (m == NULL)
		return err_set(e, "%s: out of memory", name);
	memcpy(m, d, n);
	for (uint32_t i = 0; i < m->entries; i++) {
		if (check_entry(name, m, i, e) < 0) {
			free(m);
			return -1;
		}
	}
	out->mft = m;
	out->mft_size = (size_t)n;
	return 0;
}

/* The notes in the PT_NOTE at [off, off+size) of the file. */
static int scan_notes(const char *name, const uint8_t *img, size_t len, uint64_t off, uint64_t size,
		      bool *have_abi, struct hvt_image *out, struct errbuf *e)
{
	if (off > len || size > len - off)
		return err_set(e, "%s: note does not fall within valid size", name);
	uint64_t pos = 0;
	while (pos < size) {
		Elf64_Nhdr nh;
		if (size - pos < sizeof(nh))
			return err_set(e, "%s: note does not fall within valid size", name);
		memcpy(&nh, img + off + pos, sizeof(nh));
		uint64_t name_sz = ((uint64_t)nh.n_namesz + 3) & ~3ull;
		uint64_t desc_sz = ((uint64_t)nh.n_descsz + 3) & ~3ull;
		uint64_t rest = size - pos - sizeof(nh);
		if (name_sz > rest || desc_sz > rest - name_sz ||
		    (uint64_t)nh.n_descsz > rest - name_sz)
			return err_set(e, "%s: note does not fall within valid size", name);
		const uint8_t *nm = img + off + pos + sizeof(nh);
		const uint8_t *desc = nm + name_sz;
		bool solo5 = nh.n_namesz == sizeof(HVT_NOTE_NAME) &&
			     memcmp(nm, HVT_NOTE_NAME, sizeof(HVT_NOTE_NAME)) == 0;
		if (solo5 && nh.n_type == HVT_NOTE_ABI) {
			if (*have_abi)
				return err_set(e, "%s: more than one Solo5 ABI note", name);
			if (nh.n_descsz != HVT_ABI1_DESCSZ)
				return err_set(e,
					       "%s: ABI note does not fall within valid size "
					       "(n_descsz %u, not %zu)",
					       name, nh.n_descsz, (size_t)HVT_ABI1_DESCSZ);
			struct hvt_abi1 a;
			memcpy(&a, desc + HVT_ABI1_DESC_PAD, sizeof(a));
			if (a.abi_target != HVT_ABI_TARGET)
				return err_set(e,
					       "%s: built for Solo5 ABI target %u, not hvt (%u): "
					       "not an hvt unikernel",
					       name, a.abi_target, HVT_ABI_TARGET);
			if (a.abi_version != HVT_ABI_VERSION)
				return err_set(e,
					       "%s: built for hvt ABI version %u; this host runs "
					       "version %u",
					       name, a.abi_version, HVT_ABI_VERSION);
			*have_abi = true;
		} else if (solo5 && nh.n_type == HVT_NOTE_MFT) {
			if (out->mft != NULL)
				return err_set(e, "%s: more than one Solo5 manifest note", name);
			if (take_mft(name, desc, nh.n_descsz, out, e) < 0)
				return -1;
		}
		pos += sizeof(nh) + name_sz + desc_sz;
	}
	return 0;
}

void hvt_image_free(struct hvt_image *im)
{
	free(im->mft);
	memset(im, 0, sizeof(*im));
}

int hvt_image_parse(const char *name, const uint8_t *img, size_t len, uint64_t mem_size,
		    struct hvt_image *out, struct errbuf *e)
{
	memset(out, 0, sizeof(*out));
	Elf64_Ehdr eh;
	if (check_ehdr(name, img, len, &eh, e) < 0)
		return -1;
	bool have_abi = false, entry_ok = false;
	uint64_t prev_end = 0;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		memcpy(&ph, img + eh.e_phoff + (size_t)i * sizeof(ph), sizeof(ph));
		if (ph.p_type == PT_NOTE) {
			if (scan_notes(name, img, len, ph.p_offset, ph.p_filesz, &have_abi, out,
				       e) < 0)
				goto fail;
			continue;
		}
		if (ph.p_type != PT_LOAD || (ph.p_memsz == 0 && ph.p_filesz == 0))
			continue;
		if (ph.p_filesz > ph.p_memsz || ph.p_offset > len ||
		    ph.p_filesz > len - ph.p_offset) {
			err_set(e, "%s: program header %u: file data lies outside the file", name,
				i);
			goto fail;
		}
		if (ph.p_vaddr < HVT_GUEST_MIN_BASE || ph.p_vaddr % PAGE != 0) {
			err_set(
			    e,
			    "%s: program header %u: segment at 0x%llx is not page aligned at or "
			    "above 0x%x",
			    name, i, (unsigned long long)ph.p_vaddr, HVT_GUEST_MIN_BASE);
			goto fail;
		}
		if (ph.p_memsz > mem_size || ph.p_vaddr > mem_size - ph.p_memsz ||
		    page_up(ph.p_vaddr + ph.p_memsz) > mem_size) {
			err_set(e,
				"%s: program header %u: segment [0x%llx, +0x%llx) does not fit in "
				"guest memory (0x%llx bytes)",
				name, i, (unsigned long long)ph.p_vaddr,
				(unsigned long long)ph.p_memsz, (unsigned long long)mem_size);
			goto fail;
		}
		if (ph.p_vaddr < prev_end) {
			err_set(e,
				"%s: program header %u: segment at 0x%llx overlaps or precedes the "
				"one before it",
				name, i, (unsigned long long)ph.p_vaddr);
			goto fail;
		}
		if ((ph.p_flags & PF_W) && (ph.p_flags & PF_X)) {
			err_set(e,
				"%s: program header %u: segment at 0x%llx is writable and "
				"executable",
				name, i, (unsigned long long)ph.p_vaddr);
			goto fail;
		}
		uint64_t end = page_up(ph.p_vaddr + ph.p_memsz);
		prev_end = end;
		if (end > out->kernel_end)
			out->kernel_end = end;
		if ((ph.p_flags & PF_X) && eh.e_entry >= ph.p_vaddr &&
		    eh.e_entry - ph.p_vaddr < ph.p_memsz)
			entry_ok = true;
		if (!(ph.p_flags & PF_W)) {
			if (out->nro == HVT_SEGS_MAX) {
				err_set(e, "%s: more than %d read-only segments", name,
					HVT_SEGS_MAX);
				goto fail;
			}
			out->ro[out->nro++] = (struct hvt_range){ph.p_vaddr, end};
		}
	}
	if (out->kernel_end == 0) {
		err_set(e, "%s: no loadable segment", name);
		goto fail;
	}
	if (!entry_ok) {
		err_set(e, "%s: entry point 0x%llx is not inside an executable segment", name,
			(unsigned long long)eh.e_entry);
		goto fail;
	}
	if (!have_abi) {
		err_set(e, "%s: no Solo5 ABI note: not a Solo5 hvt executable", name);
		goto fail;
	}
	if (out->mft == NULL) {
		err_set(e, "%s: no Solo5 manifest note", name);
		goto fail;
	}
	out->entry = eh.e_entry;
	return 0;
fail:
	hvt_image_free(out);
	return -1;
}

int hvt_mft_find(const struct hvt_mft *m, const char *name, uint32_t type)
{
	for (uint32_t i = 1; i < m->entries; i++)
		if (m->e[i].type == type && strcmp(m->e[i].name, name) == 0)
			return (int)i;
	return -1;
}
