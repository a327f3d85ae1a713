#include "util/parse.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Decimal, or hexadecimal after 0x; never octal ("010" is ten). */
static unsigned long long strtoull_dec_hex(const char *s, char **end)
{
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		if (!isxdigit((unsigned char)s[2])) {
			*end = (char *)s + 1; /* "0x" alone: the number is 0, junk follows */
			return 0;
		}
		return strtoull(s + 2, end, 16);
	}
	return strtoull(s, end, 10);
}

int parse_u64(const char *s, uint64_t *out, struct errbuf *e)
{
	if (s == NULL || *s == '\0')
		return err_set(e, "empty number");
	if (!isdigit((unsigned char)s[0]))
		return err_set(e, "'%s' is not a number", s);
	char *end;
	errno = 0;
	unsigned long long v = strtoull_dec_hex(s, &end);
	if (errno == ERANGE)
		return err_set(e, "'%s' is too large", s);
	if (*end != '\0' || end == s)
		return err_set(e, "'%s' is not a number", s);
	*out = v;
	return 0;
}

/* Split "123K" into number and suffix; the number part is decimal or hex. */
static int split_number(const char *s, uint64_t *num, const char **suffix, struct errbuf *e)
{
	if (s == NULL || *s == '\0')
		return err_set(e, "empty value");
	if (!isdigit((unsigned char)s[0]))
		return err_set(e, "'%s' does not start with a number", s);
	char *end;
	errno = 0;
	unsigned long long v = strtoull_dec_hex(s, &end);
	if (errno == ERANGE)
		return err_set(e, "'%s' is too large", s);
	*num = v;
	*suffix = end;
	return 0;
}

static int scale(uint64_t v, unsigned shift, uint64_t *out, const char *s, struct errbuf *e)
{
	if (shift && v > (UINT64_MAX >> shift))
		return err_set(e, "'%s' is too large", s);
	*out = v << shift;
	return 0;
}

static int unit_shift(const char *suf, unsigned *shift)
{
	static const struct {
		const char *name;
		unsigned shift;
	} units[] = {
	    {"K", 10}, {"KiB", 10}, {"KB", 10}, {"M", 20}, {"MiB", 20}, {"MB", 20},
	    {"G", 30}, {"GiB", 30}, {"GB", 30}, {"T", 40}, {"TiB", 40}, {"TB", 40},
	};
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcasecmp(suf, units[i].name) == 0) {
			*shift = units[i].shift;
			return 0;
		}
	return -1;
}

int parse_mem_size(const char *s, uint64_t *bytes, struct errbuf *e)
{
	uint64_t v;
	const char *suf;
	if (split_number(s, &v, &suf, e))
		return -1;
	unsigned shift = 20;
	if (*suf != '\0' && unit_shift(suf, &shift))
		return err_set(e, "'%s': unknown size suffix '%s' (use K, M, G or T)", s, suf);
	return scale(v, shift, bytes, s, e);
}

int parse_byte_size(const char *s, uint64_t *bytes, struct errbuf *e)
{
	uint64_t v;
	const char *suf;
	if (split_number(s, &v, &suf, e))
		return -1;
	unsigned shift = 0;
	if (*suf != '\0' && unit_shift(suf, &shift))
		return err_set(e, "'%s': unknown size suffix '%s' (use K, M, G or T)", s, suf);
	return scale(v, shift, bytes, s, e);
}

int parse_duration(const char *s, uint64_t *ns, struct errbuf *e)
{
	uint64_t v;
	const char *suf;
	if (split_number(s, &v, &suf, e))
		return -1;
	static const struct {
		const char *name;
		uint64_t mult;
	} units[] = {{"ns", 1}, {"us", 1000}, {"ms", 1000000}, {"s", 1000000000}};
	if (*suf == '\0')
		return err_set(e, "'%s': a duration needs a unit (ns, us, ms or s)", s);
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(suf, units[i].name) == 0) {
			if (v > UINT64_MAX / units[i].mult)
				return err_set(e, "'%s' is too long", s);
			*ns = v * units[i].mult;
			return 0;
		}
	}
	return err_set(e, "'%s': unknown duration unit '%s' (use ns, us, ms or s)", s, suf);
}
