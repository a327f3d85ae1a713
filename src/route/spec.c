/*
 * spec.c: the route-spec grammar (see spec.h).
 *
 * The parser works on the spec in place, piece by piece (kind, key, VMM,
 * options), and checks every value against its kind's domain before it is
 * stored, so that a struct route_spec never holds a range that wraps or
 * leaves its key space. Every message starts with "route 'SPEC': " (the spec
 * quoted with unprintable bytes shown as '?') and names the offending piece.
 */
#include "route/spec.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util/parse.h"
#include <vmmux/vmmux.h>

/* ---------------------------------------------------------------------- */
/* Names                                                                    */
/* ---------------------------------------------------------------------- */

static const char *const kind_names[ROUTE__KINDS] = {
    [ROUTE_IO] = "io",
    [ROUTE_MMIO] = "mmio",
    [ROUTE_MSR] = "msr",
    [ROUTE_HYPERCALL] = "hypercall",
    [ROUTE_EXCEPTION] = "exception",
    [ROUTE_PLATFORM] = "platform",
    [ROUTE_REQUEST] = "request",
    [ROUTE_TYPE] = "type",
};

static const char *const type_names[VMMUX_EV__COUNT] = VMMUX_EV_NAMES;

static const char *const platform_names[VMMUX_PLAT__COUNT] = VMMUX_PLAT_NAMES;

static const char *const request_names[VMMUX_REQ__COUNT] = VMMUX_REQ_NAMES;

static const char *const policy_names[ROUTE_POLICY__COUNT] = {
    [ROUTE_POLICY_LEAST_LOADED] = "least-loaded",
    [ROUTE_POLICY_ROUND_ROBIN] = "round-robin",
    [ROUTE_POLICY_WEIGHTED] = "weighted",
    [ROUTE_POLICY_STICKY] = "sticky",
};

/* Architectural exception mnemonics accepted as exception keys (vector 9,
 * 15 and 20-31 have no name and are written as numbers). */
static const char *const exception_names[32] = {
    [0] = "de",	 [1] = "db",  [2] = "nmi", [3] = "bp",	[4] = "of",  [5] = "br",
    [6] = "ud",	 [7] = "nm",  [8] = "df",  [10] = "ts", [11] = "np", [12] = "ss",
    [13] = "gp", [14] = "pf", [16] = "mf", [17] = "ac", [18] = "mc", [19] = "xm",
};

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

const char *route_kind_name(enum route_kind k)
{
	if ((unsigned)k >= ROUTE__KINDS)
		return NULL;
	return kind_names[k];
}

const char *route_policy_name(enum route_policy p)
{
	if ((unsigned)p >= ROUTE_POLICY__COUNT)
		return NULL;
	return policy_names[p];
}

const char *event_type_name(unsigned type)
{
	return type < VMMUX_EV__COUNT ? type_names[type] : NULL;
}

const char *platform_code_name(unsigned code)
{
	return code < VMMUX_PLAT__COUNT ? platform_names[code] : NULL;
}

const char *request_kind_name(unsigned kind)
{
	return kind < VMMUX_REQ__COUNT ? request_names[kind] : NULL;
}

/* Index of NAME (LEN bytes, case-insensitive) in NAMES, or -1. */
static int name_index(const char *const *names, size_t n, const char *name, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (names[i] != NULL && strlen(names[i]) == len &&
		    strncasecmp(names[i], name, len) == 0)
			return (int)i;
	return -1;
}

int event_type_parse(const char *name)
{
	if (name == NULL)
		return -1;
	return name_index(type_names, ARRAY_LEN(type_names), name, strlen(name));
}

int route_policy_parse(const char *name)
{
	if (name == NULL)
		return -1;
	return name_index(policy_names, ARRAY_LEN(policy_names), name, strlen(name));
}

static bool vmm_char_valid(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static bool vmm_name_valid_n(const char *name, size_t len)
{
	if (len == 0 || len > VMMUX_NAME_MAX - 1)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!vmm_char_valid(name[i]))
			return false;
	return true;
}

bool vmm_name_valid(const char *name)
{
	if (name == NULL)
		return false;
	size_t len = strnlen(name, VMMUX_NAME_MAX);
	return vmm_name_valid_n(name, len);
}

/* ---------------------------------------------------------------------- */
/* Kind properties                                                          */
/* ---------------------------------------------------------------------- */

/* Largest key of kind K. */
uint64_t route_kind_max(enum route_kind k)
{
	switch (k) {
	case ROUTE_IO:
		return 0xffff;
	case ROUTE_MMIO:
		return UINT64_MAX;
	case ROUTE_MSR:
		return 0xffffffffu;
	case ROUTE_HYPERCALL:
		return 255;
	case ROUTE_EXCEPTION:
		return 255;
	case ROUTE_PLATFORM:
		return VMMUX_PLAT__COUNT - 1;
	case ROUTE_REQUEST:
		return VMMUX_REQ__COUNT - 1;
	case ROUTE_TYPE:
		return VMMUX_EV__COUNT - 1;
	default:
		return 0;
	}
}

/* What one key of kind K is called in messages. */
static const char *kind_noun(enum route_kind k)
{
	switch (k) {
	case ROUTE_IO:
		return "port";
	case ROUTE_MMIO:
		return "address";
	case ROUTE_MSR:
		return "MSR";
	case ROUTE_HYPERCALL:
		return "hypercall";
	case ROUTE_EXCEPTION:
		return "vector";
	case ROUTE_PLATFORM:
		return "platform code";
	case ROUTE_REQUEST:
		return "request kind";
	case ROUTE_TYPE:
		return "event type";
	default:
		return "key";
	}
}

/* The names an item of kind K may take, or NULL for numeric-only kinds. */
static const char *const *kind_item_names(enum route_kind k, size_t *n)
{
	switch (k) {
	case ROUTE_EXCEPTION:
		*n = ARRAY_LEN(exception_names);
		return exception_names;
	case ROUTE_PLATFORM:
		*n = ARRAY_LEN(platform_names);
		return platform_names;
	case ROUTE_REQUEST:
		*n = ARRAY_LEN(request_names);
		return request_names;
	case ROUTE_TYPE:
		*n = ARRAY_LEN(type_names);
		return type_names;
	default:
		*n = 0;
		return NULL;
	}
}

/* Key V of kind K as the canonical text writes it. */
static void key_text(enum route_kind k, uint64_t v, char *buf, size_t len)
{
	const char *name = NULL;
	switch (k) {
	case ROUTE_IO:
	case ROUTE_MMIO:
	case ROUTE_MSR:
		snprintf(buf, len, "0x%llx", (unsigned long long)v);
		return;
	case ROUTE_PLATFORM:
		name = v < VMMUX_PLAT__COUNT ? platform_names[v] : NULL;
		break;
	case ROUTE_REQUEST:
		name = v < VMMUX_REQ__COUNT ? request_names[v] : NULL;
		break;
	case ROUTE_TYPE:
		name = v < VMMUX_EV__COUNT ? type_names[v] : NULL;
		break;
	default:
		break;
	}
	if (name != NULL)
		snprintf(buf, len, "%s", name);
	else
		snprintf(buf, len, "%llu", (unsigned long long)v);
}

/* ---------------------------------------------------------------------- */
/* Parsing                                                                  */
/* ---------------------------------------------------------------------- */

/* The spec as messages quote it: at most 255 bytes, unprintables as '?'. */
struct quoted {
	char s[ROUTE_SPEC_TEXT_MAX + 4];
};

static void quote(const char *spec, struct quoted *q)
{
	size_t i = 0;
	for (; spec[i] != '\0' && i < ROUTE_SPEC_TEXT_MAX - 1; i++) {
		unsigned char c = (unsigned char)spec[i];
		q->s[i] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
	}
	if (spec[i] != '\0') {
		memcpy(q->s + i, "...", 3);
		i += 3;
	}
	q->s[i] = '\0';
}

/* A piece of the spec (not NUL-terminated in place), copied for messages. */
static void piece(const char *p, size_t len, char *buf, size_t blen)
{
	size_t i = 0;
	for (; i < len && i + 1 < blen; i++) {
		unsigned char c = (unsigned char)p[i];
		buf[i] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
	}
	buf[i] = '\0';
}

enum num_result { NUM_OK = 0, NUM_NOT_NUMBER, NUM_TOO_LARGE };

/* A number: decimal digits, or 0x and hex digits. The whole of P..P+LEN. */
static enum num_result parse_number(const char *p, size_t len, uint64_t *out)
{
	unsigned base = 10;
	if (len >= 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		base = 16;
		p += 2;
		len -= 2;
	}
	if (len == 0)
		return NUM_NOT_NUMBER;
	uint64_t v = 0;
	bool overflow = false;
	for (size_t i = 0; i < len; i++) {
		unsigned d;
		char c = p[i];
		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (base == 16 && c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else if (base == 16 && c >= 'A' && c <= 'F')
			d = (unsigned)(c - 'A' + 10);
		else
			return NUM_NOT_NUMBER;
		if (v > (UINT64_MAX - d) / base)
			overflow = true;
		else
			v = v * base + d;
	}
	if (overflow)
		return NUM_TOO_LARGE;
	*out = v;
	return NUM_OK;
}

/* Parse one item of kind K (a number or a name of the kind) and check it
 * against the kind's domain. */
static int parse_item(const struct quoted *q, enum route_kind k, const char *p, size_t len,
		      const char *what, uint64_t *out, struct errbuf *e)
{
	char txt[ROUTE_SPEC_TEXT_MAX];
	piece(p, len, txt, sizeof(txt));
	if (len == 0)
		return err_set(e, "route '%s': %s is missing", q->s, what);
	uint64_t v;
	if (p[0] >= '0' && p[0] <= '9') {
		enum num_result r = parse_number(p, len, &v);
		if (r == NUM_NOT_NUMBER)
			return err_set(e, "route '%s': %s '%s' is not a number", q->s, what, txt);
		if (r == NUM_TOO_LARGE)
			return err_set(e, "route '%s': %s '%s' does not fit in 64 bits", q->s, what,
				       txt);
	} else {
		size_t n;
		const char *const *names = kind_item_names(k, &n);
		int idx = names != NULL ? name_index(names, n, p, len) : -1;
		if (names == NULL)
			return err_set(e, "route '%s': %s '%s' is not a number", q->s, what, txt);
		if (idx < 0) {
			char list[256];
			size_t off = 0;
			list[0] = '\0';
			for (size_t i = 0; i < n; i++) {
				if (names[i] == NULL)
					continue;
				int w = snprintf(list + off, sizeof(list) - off, "%s%s",
						 off ? ", " : "", names[i]);
				if (w < 0 || (size_t)w >= sizeof(list) - off)
					break;
				off += (size_t)w;
			}
			return err_set(e, "route '%s': unknown %s '%s' (a number or one of: %s)",
				       q->s, k == ROUTE_EXCEPTION ? "exception" : kind_noun(k), txt,
				       list);
		}
		v = (uint64_t)idx;
	}
	uint64_t max = route_kind_max(k);
	if (v > max) {
		char vt[32], mt[48];
		key_text(k, v, vt, sizeof(vt));
		key_text(k, max, mt, sizeof(mt));
		if (k == ROUTE_PLATFORM || k == ROUTE_REQUEST || k == ROUTE_TYPE)
			/* name the last one of the enumeration */
			snprintf(mt, sizeof(mt), "%llu (%s)", (unsigned long long)max,
				 k == ROUTE_PLATFORM  ? platform_names[max]
				 : k == ROUTE_REQUEST ? request_names[max]
						      : type_names[max]);
		return err_set(e, "route '%s': %s %s is beyond %s", q->s, kind_noun(k), vt, mt);
	}
	*out = v;
	return 0;
}

/* KEY := ITEM | ITEM "-" ITEM | ITEM "+" SIZE */
static int parse_key(const struct quoted *q, enum route_kind k, const char *p, size_t len,
		     struct route_spec *out, struct errbuf *e)
{
	if (len == 0)
		return err_set(e, "route '%s': the key is missing after '%s:'", q->s,
			       kind_names[k]);
	size_t sep = 0;
	while (sep < len && p[sep] != '-' && p[sep] != '+')
		sep++;
	uint64_t lo, hi;
	if (sep == len) {
		if (parse_item(q, k, p, len, "key", &lo, e))
			return -1;
		out->lo = out->hi = lo;
		return 0;
	}
	if (p[sep] == '-') {
		if (parse_item(q, k, p, sep, "range start", &lo, e))
			return -1;
		if (parse_item(q, k, p + sep + 1, len - sep - 1, "range end", &hi, e))
			return -1;
		if (hi < lo) {
			char lt[32], ht[32];
			key_text(k, lo, lt, sizeof(lt));
			key_text(k, hi, ht, sizeof(ht));
			return err_set(e, "route '%s': range end %s is below its start %s", q->s,
				       ht, lt);
		}
		out->lo = lo;
		out->hi = hi;
		return 0;
	}
	/* base and size */
	if (parse_item(q, k, p, sep, "range base", &lo, e))
		return -1;
	const char *sp = p + sep + 1;
	size_t slen = len - sep - 1;
	char st[ROUTE_SPEC_TEXT_MAX];
	piece(sp, slen, st, sizeof(st));
	if (slen == 0)
		return err_set(e, "route '%s': the size is missing after '+'", q->s);
	uint64_t size;
	enum num_result r = parse_number(sp, slen, &size);
	if (r == NUM_NOT_NUMBER)
		return err_set(e, "route '%s': size '%s' is not a number", q->s, st);
	if (r == NUM_TOO_LARGE)
		return err_set(e, "route '%s': size '%s' does not fit in 64 bits", q->s, st);
	if (size == 0)
		return err_set(e, "route '%s': size must be at least 1", q->s);
	uint64_t max = route_kind_max(k);
	if (size - 1 > max - lo) {
		char whole[ROUTE_SPEC_TEXT_MAX], mt[32];
		piece(p, len, whole, sizeof(whole));
		key_text(k, max, mt, sizeof(mt));
		return err_set(e, "route '%s': range '%s' ends beyond %s %s", q->s, whole,
			       kind_noun(k), mt);
	}
	out->lo = lo;
	out->hi = lo + (size - 1);
	return 0;
}

static int parse_vmm_name(const struct quoted *q, const char *p, size_t len, const char *what,
			  char *out, struct errbuf *e)
{
	char txt[ROUTE_SPEC_TEXT_MAX];
	piece(p, len, txt, sizeof(txt));
	if (len == 0)
		return err_set(e, "route '%s': %s is missing", q->s, what);
	if (!vmm_name_valid_n(p, len))
		return err_set(e,
			       "route '%s': invalid %s '%s' (1 to %d characters of a-z, 0-9, "
			       "'_' and '-')",
			       q->s, what, txt, VMMUX_NAME_MAX - 1);
	memcpy(out, p, len);
	out[len] = '\0';
	return 0;
}

/*
 * "group(" POLICY ":" MEMBER { "," MEMBER } ")", the whole of P..P+LEN (the
 * caller saw the "group(" prefix). Fills out->group and out->vmm (the first
 * member's name).
 */
static int parse_group(const struct quoted *q, const char *p, size_t len, struct route_spec *out,
		       struct errbuf *e)
{
	static const char usage[] = "group(POLICY:VMM,VMM...)";
	struct route_group_spec *g = &out->group;
	memset(g, 0, sizeof(*g));
	size_t open = 6; /* strlen("group(") */
	if (len == open || p[len - 1] != ')') {
		const char *close = memchr(p, ')', len);
		if (close != NULL) {
			char rest[ROUTE_SPEC_TEXT_MAX];
			piece(close + 1, len - (size_t)(close + 1 - p), rest, sizeof(rest));
			return err_set(e, "route '%s': unexpected '%s' after the group's ')'", q->s,
				       rest);
		}
		return err_set(e, "route '%s': the group has no closing ')' (%s)", q->s, usage);
	}
	const char *body = p + open;
	size_t blen = len - open - 1; /* without the ')' */
	const char *colon = memchr(body, ':', blen);
	if (colon == NULL)
		return err_set(e, "route '%s': the group has no ':' after its policy (%s)", q->s,
			       usage);
	size_t plen = (size_t)(colon - body);
	int pol = name_index(policy_names, ARRAY_LEN(policy_names), body, plen);
	if (pol < 0) {
		char pt[ROUTE_SPEC_TEXT_MAX];
		piece(body, plen, pt, sizeof(pt));
		return err_set(e,
			       "route '%s': unknown group policy '%s' (least-loaded, round-robin, "
			       "weighted, sticky)",
			       q->s, pt);
	}
	g->policy = (enum route_policy)pol;
	const char *m = colon + 1;
	const char *end = body + blen;
	for (;;) {
		const char *mend = memchr(m, ',', (size_t)(end - m));
		if (mend == NULL)
			mend = end;
		size_t mlen = (size_t)(mend - m);
		char mt[ROUTE_SPEC_TEXT_MAX];
		piece(m, mlen, mt, sizeof(mt));
		if (g->n == ROUTE_GROUP_MAX)
			return err_set(e, "route '%s': a group has at most %d members", q->s,
				       ROUTE_GROUP_MAX);
		if (mlen == 0)
			return err_set(e, "route '%s': member %u of the group is missing", q->s,
				       g->n + 1);
		const char *star = memchr(m, '*', mlen);
		size_t nlen = star ? (size_t)(star - m) : mlen;
		char *name = g->member[g->n];
		if (parse_vmm_name(q, m, nlen, "group member name", name, e))
			return -1;
		for (unsigned i = 0; i < g->n; i++)
			if (strcmp(g->member[i], name) == 0)
				return err_set(e, "route '%s': '%s' is a member of the group twice",
					       q->s, name);
		g->weight[g->n] = 1;
		if (star != NULL) {
			if (g->policy != ROUTE_POLICY_WEIGHTED)
				return err_set(e,
					       "route '%s': member '%s' has a weight, but only the "
					       "weighted policy takes weights",
					       q->s, mt);
			uint64_t w;
			size_t wlen = mlen - nlen - 1;
			char wt[ROUTE_SPEC_TEXT_MAX];
			piece(star + 1, wlen, wt, sizeof(wt));
			if (wlen == 0 || parse_number(star + 1, wlen, &w) != NUM_OK || w < 1 ||
			    w > ROUTE_WEIGHT_MAX)
				return err_set(
				    e,
				    "route '%s': weight '%s' of member '%s' is not a number "
				    "from 1 to %d",
				    q->s, wt, name, ROUTE_WEIGHT_MAX);
			g->weight[g->n] = (uint16_t)w;
		}
		g->n++;
		if (mend == end)
			break;
		m = mend + 1;
	}
	memcpy(out->vmm, g->member[0], sizeof(out->vmm));
	return 0;
}

/* True when P..P+LEN starts a group ("group(", case-insensitive). */
static bool is_group(const char *p, size_t len)
{
	return len >= 6 && strncasecmp(p, "group(", 6) == 0;
}

/* The VMM NAME (fallback, source) is one of the route's own: its VMM or a
 * member of its group. */
static bool own_vmm(const struct route_spec *s, const char *name)
{
	if (s->group.n == 0)
		return strcmp(s->vmm, name) == 0;
	for (unsigned i = 0; i < s->group.n; i++)
		if (strcmp(s->group.member[i], name) == 0)
			return true;
	return false;
}

static int parse_option(const struct quoted *q, const char *p, size_t len, struct route_spec *out,
			struct errbuf *e)
{
	char txt[ROUTE_SPEC_TEXT_MAX];
	piece(p, len, txt, sizeof(txt));
	if (len == 0)
		return err_set(e, "route '%s': empty option (options are separated by one ';')",
			       q->s);
	size_t nlen = 0;
	while (nlen < len && p[nlen] != '=')
		nlen++;
	bool has_value = nlen < len;
	const char *val = p + nlen + 1;
	size_t vlen = has_value ? len - nlen - 1 : 0;
	uint32_t bit;
	if (nlen == 6 && strncmp(p, "posted", 6) == 0)
		bit = ROUTE_OPT_POSTED;
	else if (nlen == 8 && strncmp(p, "fallback", 8) == 0)
		bit = ROUTE_OPT_FALLBACK;
	else if (nlen == 7 && strncmp(p, "timeout", 7) == 0)
		bit = ROUTE_OPT_TIMEOUT;
	else if (nlen == 4 && strncmp(p, "from", 4) == 0)
		bit = ROUTE_OPT_FROM;
	else if (nlen == 9 && strncmp(p, "coalesced", 9) == 0)
		bit = ROUTE_OPT_COALESCED;
	else if (nlen == 8 && strncmp(p, "doorbell", 8) == 0)
		bit = ROUTE_OPT_DOORBELL;
	else
		return err_set(e,
			       "route '%s': unknown option '%s' (posted, fallback=VMM, "
			       "timeout=DURATION, from=VMM, coalesced, doorbell[=VALUE])",
			       q->s, txt);
	char name[16];
	piece(p, nlen, name, sizeof(name));
	if (out->opts & bit)
		return err_set(e, "route '%s': option '%s' is given twice", q->s, name);
	out->opts |= bit;

	switch (bit) {
	case ROUTE_OPT_COALESCED:
		if (has_value)
			return err_set(e, "route '%s': option 'coalesced' takes no value", q->s);
		return 0;
	case ROUTE_OPT_DOORBELL: {
		if (!has_value)
			return 0;
		char vt[ROUTE_SPEC_TEXT_MAX];
		piece(val, vlen, vt, sizeof(vt));
		enum num_result r =
		    vlen ? parse_number(val, vlen, &out->doorbell_value) : NUM_NOT_NUMBER;
		if (r == NUM_NOT_NUMBER)
			return err_set(e, "route '%s': doorbell value '%s' is not a number", q->s,
				       vt);
		if (r == NUM_TOO_LARGE)
			return err_set(e, "route '%s': doorbell value '%s' does not fit in 64 bits",
				       q->s, vt);
		out->opts |= ROUTE_OPT_DATAMATCH;
		return 0;
	}
	case ROUTE_OPT_POSTED:
		if (has_value)
			return err_set(e, "route '%s': option 'posted' takes no value", q->s);
		if (out->kind != ROUTE_IO && out->kind != ROUTE_MMIO)
			return err_set(e,
				       "route '%s': option 'posted' applies to io and mmio "
				       "routes only",
				       q->s);
		return 0;
	case ROUTE_OPT_FROM:
		if (!has_value)
			return err_set(e, "route '%s': option 'from' needs '=VMM'", q->s);
		if (is_group(val, vlen))
			return err_set(e, "route '%s': a group cannot be a source (from=)", q->s);
		if (parse_vmm_name(q, val, vlen, "source VMM name", out->from, e))
			return -1;
		if (own_vmm(out, out->from))
			return err_set(e,
				       "route '%s': a VMM never receives what it raises itself: "
				       "from= names %s",
				       q->s,
				       out->group.n ? "a member of the route's group"
						    : "the route's own VMM");
		return 0;
	case ROUTE_OPT_FALLBACK:
		if (!has_value)
			return err_set(e, "route '%s': option 'fallback' needs '=VMM'", q->s);
		if (is_group(val, vlen))
			return err_set(e, "route '%s': a group cannot be a fallback", q->s);
		if (parse_vmm_name(q, val, vlen, "fallback VMM name", out->fallback, e))
			return -1;
		if (own_vmm(out, out->fallback))
			return err_set(
			    e, "route '%s': the fallback '%s' is %s", q->s, out->fallback,
			    out->group.n ? "a member of the route's group" : "the route's own VMM");
		return 0;
	default: {
		if (!has_value)
			return err_set(e, "route '%s': option 'timeout' needs '=DURATION'", q->s);
		char dur[ROUTE_SPEC_TEXT_MAX];
		piece(val, vlen, dur, sizeof(dur));
		struct errbuf pe;
		uint64_t ns;
		if (parse_duration(dur, &ns, &pe))
			return err_set(e, "route '%s': timeout: %s", q->s, pe.msg);
		if (ns == 0)
			return err_set(e, "route '%s': timeout must be greater than 0", q->s);
		out->timeout_ns = ns;
		return 0;
	}
	}
}

int route_spec_parse(const char *spec, struct route_spec *out, struct errbuf *e)
{
	if (out == NULL)
		return err_set(e, "route spec: nowhere to store the result");
	if (spec == NULL || spec[0] == '\0')
		return err_set(e, "route '': empty route spec (KIND:KEY=VMM)");
	struct quoted q;
	quote(spec, &q);
	size_t total = strlen(spec);
	if (total >= ROUTE_SPEC_TEXT_MAX)
		return err_set(e, "route '%s': longer than %d characters", q.s,
			       ROUTE_SPEC_TEXT_MAX - 1);
	for (size_t i = 0; i < total; i++) {
		unsigned char c = (unsigned char)spec[i];
		if (c <= 0x20 || c >= 0x7f)
			return err_set(e,
				       "route '%s': byte 0x%02x at offset %zu is not allowed "
				       "(no spaces or control characters)",
				       q.s, c, i);
	}

	struct route_spec s;
	memset(&s, 0, sizeof(s));

	const char *colon = strchr(spec, ':');
	if (colon == NULL)
		return err_set(e, "route '%s': missing ':' after the kind (KIND:KEY=VMM)", q.s);
	size_t klen = (size_t)(colon - spec);
	int kind = name_index(kind_names, ARRAY_LEN(kind_names), spec, klen);
	if (kind < 0) {
		char kt[ROUTE_SPEC_TEXT_MAX];
		piece(spec, klen, kt, sizeof(kt));
		return err_set(e,
			       "route '%s': unknown kind '%s' (io, mmio, msr, hypercall, "
			       "exception, platform, request, type)",
			       q.s, kt);
	}
	s.kind = (enum route_kind)kind;

	const char *key = colon + 1;
	const char *eq = strchr(key, '=');
	const char *semi = strchr(key, ';');
	if (eq == NULL || (semi != NULL && semi < eq))
		return err_set(e, "route '%s': missing '=VMM' after the key", q.s);
	if (parse_key(&q, s.kind, key, (size_t)(eq - key), &s, e))
		return -1;

	const char *vmm = eq + 1;
	const char *vend = strchr(vmm, ';');
	if (vend == NULL)
		vend = vmm + strlen(vmm);
	size_t vlen = (size_t)(vend - vmm);
	if (is_group(vmm, vlen) ? parse_group(&q, vmm, vlen, &s, e)
				: parse_vmm_name(&q, vmm, vlen, "VMM name", s.vmm, e))
		return -1;

	const char *p = vend;
	while (*p == ';') {
		const char *o = p + 1;
		const char *oend = strchr(o, ';');
		if (oend == NULL)
			oend = o + strlen(o);
		if (parse_option(&q, o, (size_t)(oend - o), &s, e))
			return -1;
		p = oend;
	}

	char why[200];
	if (route_spec_check_compiled(&s, why, sizeof(why)) < 0)
		return err_set(e, "route '%s': %s", q.s, why);

	char text[ROUTE_SPEC_TEXT_MAX + 1];
	route_spec_format(&s, text, sizeof(text));
	if (strlen(text) >= ROUTE_SPEC_TEXT_MAX)
		return err_set(e,
			       "route '%s': its canonical text '%.40s...' is longer than %d "
			       "characters",
			       q.s, text, ROUTE_SPEC_TEXT_MAX - 1);
	memcpy(s.text, text, sizeof(s.text));
	*out = s;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Routes compiled into KVM                                                 */
/* ---------------------------------------------------------------------- */

int route_spec_check_compiled(const struct route_spec *s, char *why, size_t len)
{
	uint32_t o = s->opts;
	bool db = o & ROUTE_OPT_DOORBELL, co = o & ROUTE_OPT_COALESCED;
	if ((o & ROUTE_OPT_DATAMATCH) && !db) {
		snprintf(why, len, "a doorbell value without the option 'doorbell'");
		return -1;
	}
	if (!db && !co)
		return 0;
	const char *opt = db ? "doorbell" : "coalesced";
	if (db && co) {
		snprintf(why, len, "options 'coalesced' and 'doorbell' exclude each other");
		return -1;
	}
	if (s->kind != ROUTE_IO && s->kind != ROUTE_MMIO) {
		snprintf(why, len, "option '%s' applies to io and mmio routes only", opt);
		return -1;
	}
	if (o & ROUTE_OPT_FROM) {
		snprintf(why, len,
			 "option '%s' does not go with 'from=': KVM never sees the events a "
			 "VMM raises",
			 opt);
		return -1;
	}
	if (co) {
		if (o & ROUTE_OPT_POSTED) {
			snprintf(why, len,
				 "option 'coalesced' posts the route's writes already: drop "
				 "'posted'");
			return -1;
		}
		if (s->kind == ROUTE_MMIO && s->hi - s->lo >= 0xffffffffull) {
			snprintf(why, len,
				 "option 'coalesced' takes at most 0xffffffff addresses (KVM's "
				 "coalesced zone has a 32-bit size)");
			return -1;
		}
		return 0;
	}
	/* doorbell: exactly one naturally aligned access */
	if (s->group.n > 0) {
		snprintf(why, len, "option 'doorbell' signals one VMM: its VMM cannot be a group");
		return -1;
	}
	if (o & ROUTE_OPT_POSTED) {
		snprintf(why, len,
			 "option 'doorbell' never waits for its VMM already: drop 'posted'");
		return -1;
	}
	uint64_t size = s->hi - s->lo + 1; /* 0 when the range is the whole space */
	bool io = s->kind == ROUTE_IO;
	if (size == 0 || (size != 1 && size != 2 && size != 4 && (io || size != 8))) {
		snprintf(why, len,
			 "option 'doorbell' needs a key range of exactly one access: %s (the "
			 "range's size is the access size)",
			 io ? "1, 2 or 4 ports" : "1, 2, 4 or 8 bytes");
		return -1;
	}
	if (s->lo % size != 0) {
		snprintf(why, len,
			 "option 'doorbell': a %llu-byte access at 0x%llx is not naturally "
			 "aligned",
			 (unsigned long long)size, (unsigned long long)s->lo);
		return -1;
	}
	if ((o & ROUTE_OPT_DATAMATCH) && size < 8 && (s->doorbell_value >> (8 * size)) != 0) {
		snprintf(why, len, "doorbell value 0x%llx does not fit a %llu-byte write",
			 (unsigned long long)s->doorbell_value, (unsigned long long)size);
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Canonical text                                                           */
/* ---------------------------------------------------------------------- */

/* Append to BUF at *off, never past LEN; *off keeps counting what did not
 * fit so that the caller can tell truncation. */
static void append(char *buf, size_t len, size_t *off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void append(char *buf, size_t len, size_t *off, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	size_t room = *off < len ? len - *off : 0;
	int n = vsnprintf(room ? buf + *off : NULL, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		*off += (size_t)n;
}

static void duration_text(uint64_t ns, char *buf, size_t len)
{
	if (ns != 0 && ns % 1000000000u == 0)
		snprintf(buf, len, "%llus", (unsigned long long)(ns / 1000000000u));
	else if (ns != 0 && ns % 1000000u == 0)
		snprintf(buf, len, "%llums", (unsigned long long)(ns / 1000000u));
	else if (ns != 0 && ns % 1000u == 0)
		snprintf(buf, len, "%lluus", (unsigned long long)(ns / 1000u));
	else
		snprintf(buf, len, "%lluns", (unsigned long long)ns);
}

void route_spec_format(const struct route_spec *s, char *buf, size_t len)
{
	if (buf == NULL || len == 0)
		return;
	buf[0] = '\0';
	if (s == NULL)
		return;
	size_t off = 0;
	const char *kn = route_kind_name(s->kind);
	char lo[32], hi[32];
	key_text(s->kind, s->lo, lo, sizeof(lo));
	key_text(s->kind, s->hi, hi, sizeof(hi));
	if (kn == NULL)
		append(buf, len, &off, "kind%u:", (unsigned)s->kind);
	else
		append(buf, len, &off, "%s:", kn);
	if (s->lo == s->hi)
		append(buf, len, &off, "%s", lo);
	else
		append(buf, len, &off, "%s-%s", lo, hi);
	if (s->group.n == 0) {
		append(buf, len, &off, "=%.*s", VMMUX_NAME_MAX - 1, s->vmm);
	} else {
		const char *pn = route_policy_name(s->group.policy);
		append(buf, len, &off, "=group(%s:", pn ? pn : "?");
		unsigned n = s->group.n < ROUTE_GROUP_MAX ? s->group.n : ROUTE_GROUP_MAX;
		for (unsigned i = 0; i < n; i++) {
			append(buf, len, &off, "%s%.*s", i ? "," : "", VMMUX_NAME_MAX - 1,
			       s->group.member[i]);
			if (s->group.weight[i] != 1)
				append(buf, len, &off, "*%u", (unsigned)s->group.weight[i]);
		}
		append(buf, len, &off, ")");
	}
	if (s->opts & ROUTE_OPT_POSTED)
		append(buf, len, &off, ";posted");
	if (s->opts & ROUTE_OPT_COALESCED)
		append(buf, len, &off, ";coalesced");
	if ((s->opts & ROUTE_OPT_DOORBELL) && (s->opts & ROUTE_OPT_DATAMATCH))
		append(buf, len, &off, ";doorbell=0x%llx", (unsigned long long)s->doorbell_value);
	else if (s->opts & ROUTE_OPT_DOORBELL)
		append(buf, len, &off, ";doorbell");
	if (s->opts & ROUTE_OPT_FALLBACK)
		append(buf, len, &off, ";fallback=%.*s", VMMUX_NAME_MAX - 1, s->fallback);
	if (s->opts & ROUTE_OPT_TIMEOUT) {
		char d[32];
		duration_text(s->timeout_ns, d, sizeof(d));
		append(buf, len, &off, ";timeout=%s", d);
	}
	if (s->opts & ROUTE_OPT_FROM)
		append(buf, len, &off, ";from=%.*s", VMMUX_NAME_MAX - 1, s->from);
}
