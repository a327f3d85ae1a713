/*
 * modules.h: multiboot modules as `qemu -kernel` takes them.
 *
 * QEMU's `-initrd "FILE ARGS,FILE2"`: a comma separates modules, ",," is a
 * literal comma; each module's string is the text between the separators
 * with ",," turned into ",", given to the guest whole (its multiboot module
 * string), and the file is that string up to its first space. vmmux's
 * `--initrd` parses the same syntax (mb_modules_split), `--module STRING`
 * adds one module string as it is (no comma processing), and the config file
 * has guest.initrd and guest.modules.
 *
 * Placement (mb_place): every module starts on a page boundary after the
 * kernel and the modules before it, in order, never in page 0, never across
 * the legacy hole [0x9fc00, 1 MiB) (a module that would cross it goes to
 * 1 MiB), and ends inside guest RAM and below 4 GiB; every sum is
 * overflow-checked.
 */
#ifndef VMMUX_LOADER_MODULES_H
#define VMMUX_LOADER_MODULES_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* At most this many modules in one run (QEMU has no limit; a multiboot
 * kernel walks an array of 16-byte entries). */
#define MB_MODULES_MAX 64u

/*
 * Split S, in QEMU's -initrd syntax, into module strings: *out gets an array
 * of *n malloc'd strings (release with mb_modules_free). At most MAX
 * modules. Errors (-1, "--initrd 'S': ..." in e, nothing allocated): an
 * empty module (a leading or trailing single comma, or an empty S), a
 * module whose file name (the text before its first space) is empty, more
 * than MAX modules, out of memory. OPT names the option or config field in
 * messages ("--initrd", "guest.initrd").
 */
int mb_modules_split(const char *opt, const char *s, size_t max, char ***out, size_t *n,
		     struct errbuf *e);
void mb_modules_free(char **mods, size_t n);

/*
 * Check one module string as a whole (a --module value or one element of
 * guest.modules): not empty, a file name before its first space. -1 with
 * "OPT 'S': ..." in e.
 */
int mb_module_check(const char *opt, const char *s, struct errbuf *e);

/* The file name of module string S (up to its first space), malloc'd; NULL
 * when out of memory. */
char *mb_module_path(const char *s);

/*
 * Read module file PATH (at most MAX bytes; an empty file is a valid empty
 * module, as in QEMU). Returns 0 with *buf (malloc'd, NULL for an empty
 * file) and *len, or -1 with "PATH: reason" in e (cannot open, a directory,
 * larger than MAX, read error).
 */
int mb_module_read(const char *path, uint64_t max, uint8_t **buf, size_t *len, struct errbuf *e);

/*
 * Place SIZE bytes at the first page boundary at or above *CURSOR that is
 * not page 0 and does not cross [0x9fc00, 1 MiB) (then 1 MiB), ending at
 * or below LIMIT. Returns 0 with the address in *addr and *cursor moved to
 * its end, or -1 (nothing changed) when it does not fit.
 */
int mb_place(uint64_t *cursor, uint64_t size, uint64_t limit, uint64_t *addr);

#endif
