/*
 * modules.c: multiboot modules, QEMU's -initrd syntax and their placement
 * (modules.h).
 */
#include "loader/modules.h"
#include "loader/loader.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE	0x1000ull
#define LOW_END 0x9fc00ull /* conventional memory ends (multiboot.c's map) */
#define ONE_MIB 0x100000ull

void mb_modules_free(char **mods, size_t n)
{
	if (mods == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(mods[i]);
	free(mods);
}

int mb_module_check(const char *opt, const char *s, struct errbuf *e)
{
	if (s == NULL || *s == '\0')
		return err_set(e, "%s '': a module needs a file name", opt);
	if (*s == ' ')
		return err_set(e,
			       "%s '%s': the module's file name (the text before the first space) "
			       "is empty",
			       opt, s);
	return 0;
}

int mb_modules_split(const char *opt, const char *s, size_t max, char ***out, size_t *n,
		     struct errbuf *e)
{
	*out = NULL;
	*n = 0;
	if (s == NULL || *s == '\0')
		return err_set(e, "%s '': no module given", opt);
	size_t len = strlen(s);
	char **mods = NULL;
	size_t nmods = 0;
	size_t i = 0;
	for (;;) {
		/* One module: up to a comma that is not part of ",,". */
		char *m = malloc(len + 1);
		if (m == NULL)
			goto oom;
		size_t k = 0;
		bool sep = false;
		while (i < len) {
			if (s[i] == ',') {
				if (i + 1 < len && s[i + 1] == ',') {
					m[k++] = ',';
					i += 2;
					continue;
				}
				sep = true;
				i++;
				break;
			}
			m[k++] = s[i++];
		}
		m[k] = '\0';
		if (k == 0) {
			free(m);
			mb_modules_free(mods, nmods);
			return err_set(e,
				       "%s '%s': module %zu is empty (a comma separates modules; "
				       "write ',,' for a comma in a name or argument)",
				       opt, s, nmods + 1);
		}
		if (m[0] == ' ') {
			mb_modules_free(mods, nmods);
			err_set(e,
				"%s '%s': module %zu ('%s') has no file name before its first "
				"space",
				opt, s, nmods + 1, m);
			free(m);
			return -1;
		}
		if (nmods == max) {
			free(m);
			mb_modules_free(mods, nmods);
			return err_set(e, "%s '%s': more than %zu modules", opt, s, max);
		}
		char **nm = realloc(mods, (nmods + 1) * sizeof(*mods));
		if (nm == NULL) {
			free(m);
			goto oom;
		}
		mods = nm;
		mods[nmods++] = m;
		if (!sep)
			break;
	}
	*out = mods;
	*n = nmods;
	return 0;
oom:
	mb_modules_free(mods, nmods);
	return err_set(e, "%s: out of memory", opt);
}

char *mb_module_path(const char *s)
{
	size_t n = strcspn(s, " ");
	char *p = malloc(n + 1);
	if (p != NULL) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

int mb_module_read(const char *path, uint64_t max, uint8_t **buf, size_t *len, struct errbuf *e)
{
	return loader_read_file_as(path, max > SIZE_MAX ? SIZE_MAX : (size_t)max, true,
				   "a module file", buf, len, e);
}

int mb_place(uint64_t *cursor, uint64_t size, uint64_t limit, uint64_t *addr)
{
	uint64_t c = *cursor < PAGE ? PAGE : *cursor;
	if (c > UINT64_MAX - (PAGE - 1))
		return -1;
	uint64_t a = (c + PAGE - 1) & ~(PAGE - 1);
	/* Not across what the memory map reports as not RAM. */
	if (a < ONE_MIB && (size > ONE_MIB - a || a + size > LOW_END))
		a = ONE_MIB;
	if (a > limit || size > limit - a)
		return -1;
	*addr = a;
	*cursor = a + size;
	return 0;
}
