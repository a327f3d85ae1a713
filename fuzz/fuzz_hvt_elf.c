/*
 * fuzz_hvt_elf.c: the Solo5 hvt executable and its notes (src/hvt/hvt_elf.c:
 * hvt_image_parse), as `vmmux hvt UNIKERNEL` and a config's hvt section
 * read them: the ELF64 header and program headers, the PT_LOAD layout, the
 * ABI1 note and the MFT1 manifest with its entries.
 *
 * Input: one byte choosing the guest RAM size, then the executable (its own
 * exact-size allocation). On success the parse must describe an image that
 * fits the RAM, and the manifest copy must be as the checks promise (1 to
 * 64 entries, entry 0 the reserved one, names NUL-terminated, none
 * attached); the manifest lookups are run over it.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "hvt/hvt.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_quiet();
	return 0;
}

static const uint64_t mem_sizes[] = {512ull << 20, 2ull << 20, 0x110000, 1ull << 32, 1ull << 40};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = {data, size};
	uint64_t mem = mem_sizes[fz_u8(&f) % (sizeof(mem_sizes) / sizeof(mem_sizes[0]))];
	uint8_t *img = malloc(f.n ? f.n : 1);
	if (img == NULL)
		abort();
	memcpy(img, f.p, f.n);
	struct hvt_image im;
	struct errbuf e;
	if (hvt_image_parse("fuzz.hvt", img, f.n, mem, &im, &e) == 0) {
		if (im.kernel_end > mem || im.entry >= im.kernel_end || im.nro > HVT_SEGS_MAX ||
		    im.mft == NULL || im.mft_size != HVT_MFT_SIZE(im.mft->entries))
			abort();
		const struct hvt_mft *m = im.mft;
		if (m->entries == 0 || m->entries > HVT_MFT_MAX_ENTRIES ||
		    m->e[0].type != HVT_MFT_RESERVED_FIRST)
			abort();
		for (uint32_t i = 0; i < m->entries; i++) {
			uint8_t attached;
			memcpy(&attached, &m->e[i].attached, 1);
			if (memchr(m->e[i].name, '\0', sizeof(m->e[i].name)) == NULL ||
			    attached != 0)
				abort();
			if (i > 0 && hvt_mft_find(m, m->e[i].name, m->e[i].type) != (int)i)
				abort();
		}
		hvt_image_free(&im);
	} else if (strncmp(e.msg, "fuzz.hvt: ", 10) != 0) {
		abort(); /* every error names the file */
	}
	free(img);
	return 0;
}
