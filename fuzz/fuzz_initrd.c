/*
 * fuzz_initrd.c: the --initrd and --module lists (src/loader/modules.c), as
 * the command line and the config's guest.initrd / guest.modules give them:
 * QEMU's -initrd syntax split into module strings (mb_modules_split), each
 * string checked (mb_module_check) and its file name taken
 * (mb_module_path), then the placement of modules of fuzzed sizes after a
 * kernel (mb_place), whose every sum is checked.
 *
 * Input: the first line is an --initrd value, the second a --module value;
 * after them, pairs of 8-byte numbers (a limit, then sizes) for mb_place.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "loader/modules.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_quiet();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = {data, size};
	struct errbuf e;
	char *initrd = fz_line(&f, NULL);
	if (initrd != NULL) {
		char **mods = NULL;
		size_t n = 0;
		if (mb_modules_split("--initrd", initrd, MB_MODULES_MAX, &mods, &n, &e) == 0) {
			if (n == 0 || n > MB_MODULES_MAX)
				abort();
			for (size_t i = 0; i < n; i++) {
				/* every module of a split list is a valid module string */
				if (mb_module_check("--initrd", mods[i], &e) < 0)
					abort();
				char *p = mb_module_path(mods[i]);
				if (p == NULL || p[0] == '\0' || strchr(p, ' ') != NULL)
					abort();
				free(p);
			}
			mb_modules_free(mods, n);
		} else if (mods != NULL || n != 0) {
			abort(); /* nothing allocated on error */
		}
		free(initrd);
	}
	char *module = fz_line(&f, NULL);
	if (module != NULL) {
		if (mb_module_check("--module", module, &e) == 0) {
			char *p = mb_module_path(module);
			if (p == NULL || p[0] == '\0')
				abort();
			free(p);
		}
		free(module);
	}
	uint64_t cursor = fz_u64(&f), limit = fz_u64(&f);
	for (unsigned i = 0; i < 16 && f.n > 0; i++) {
		uint64_t sz = fz_u64(&f), addr = 0, before = cursor;
		if (mb_place(&cursor, sz, limit, &addr) == 0) {
			/* on a page boundary, not page 0, inside the limit, and
			 * not across the legacy hole */
			if ((addr & 0xfff) != 0 || addr == 0 || addr < before || addr + sz < addr ||
			    addr + sz > limit || cursor != addr + sz)
				abort();
			if (sz > 0 && addr < 0x100000 && addr + sz > 0x9fc00)
				abort();
		} else if (cursor != before) {
			abort(); /* nothing changed on failure */
		}
	}
	return 0;
}
