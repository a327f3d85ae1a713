/*
 * grants.c: what a VMM may raise (grants.h).
 */
#include "vmm/grants.h"

#include <string.h>
#include <strings.h>

#include "event/event.h"
#include "route/spec.h"
#include "util/parse.h"

static void bit_set(uint64_t *words, unsigned bit)
{
	words[bit / 64] |= 1ull << (bit % 64);
}

static bool bit_get(const uint64_t *words, unsigned bit)
{
	return words[bit / 64] & (1ull << (bit % 64));
}

static int name_lookup(const char *name, const char *(*name_of)(unsigned), unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (name_of(i) && strcasecmp(name, name_of(i)) == 0)
			return (int)i;
	return -1;
}

int grant_parse(const char *s, struct raise_grants *g, struct errbuf *e)
{
	if (strcmp(s, "exception") == 0) {
		g->exception = true;
		return 0;
	}
	if (strcmp(s, "forward") == 0) {
		g->forward = true;
		return 0;
	}
	if (strncmp(s, "irq:", 4) == 0) {
		char num[24];
		const char *colon = strchr(s + 4, ':');
		size_t len = colon ? (size_t)(colon - (s + 4)) : strlen(s + 4);
		bool level = false, wire = colon != NULL;
		if (colon != NULL) {
			if (strcmp(colon + 1, "level") != 0 && strcmp(colon + 1, "edge") != 0)
				return err_set(e, "grant '%s': the trigger is 'level' or 'edge'",
					       s);
			level = strcmp(colon + 1, "level") == 0;
		}
		if (len == 0 || len >= sizeof(num))
			return err_set(e, "grant '%s': expected irq:LINE[:edge|:level]", s);
		memcpy(num, s + 4, len);
		num[len] = '\0';
		uint64_t line;
		struct errbuf pe;
		if (parse_u64(num, &line, &pe) < 0 || line > 255)
			return err_set(e, "grant '%s': the IRQ line is a number from 0 to 255", s);
		bit_set(g->irq, (unsigned)line);
		if (wire)
			bit_set(g->irq_wire, (unsigned)line);
		if (level)
			bit_set(g->irq_level, (unsigned)line);
		return 0;
	}
	if (strncmp(s, "platform:", 9) == 0) {
		int code = name_lookup(s + 9, platform_code_name, VMMUX_PLAT__COUNT);
		if (code < 0)
			return err_set(e,
				       "grant '%s': unknown platform event (smi, reset, poweroff, "
				       "powerbtn, watchdog)",
				       s);
		g->platform |= 1u << code;
		return 0;
	}
	if (strncmp(s, "request:", 8) == 0) {
		int kind = name_lookup(s + 8, request_kind_name, VMMUX_REQ__COUNT);
		if (kind < 0)
			return err_set(e, "grant '%s': unknown request (exit)", s);
		g->request |= 1u << kind;
		return 0;
	}
	return err_set(e,
		       "grant '%s': expected irq:LINE[:edge|:level], platform:NAME, request:NAME, "
		       "exception or forward",
		       s);
}

int grant_parse_list(const char *const *list, struct raise_grants *g, struct errbuf *e)
{
	for (; list && *list; list++)
		if (grant_parse(*list, g, e) < 0)
			return -1;
	return 0;
}

/* Flags vmmux or the VMM library set on the way to a VMM, which a copy may
 * carry or not: the routing decision's mark and the library's re-delivery
 * mark. Every other flag is the guest's access and must be the same. */
#define COPY_FLAGS_IGNORED (VMMUX_EVF_UNROUTED | VMMUX_EVF_REDELIVERED)

bool grant_is_copy(const struct vmmux_event *ev, const struct vmmux_event *served)
{
	return served != NULL && event_is_device(served->type) && ev->type == served->type &&
	       !(served->flags & VMMUX_EVF_STRING) && ev->key == served->key &&
	       ev->size == served->size && ev->value == served->value &&
	       ev->count == served->count && ev->vcpu == served->vcpu && ev->aux == served->aux &&
	       (ev->flags & ~COPY_FLAGS_IGNORED) == (served->flags & ~COPY_FLAGS_IGNORED);
}

bool grant_allows(const struct raise_grants *g, const struct vmmux_event *ev,
		  const struct vmmux_event *served)
{
	switch (ev->type) {
	case VMMUX_EV_IRQ:
		return ev->key < 256 && bit_get(g->irq, (unsigned)ev->key);
	case VMMUX_EV_PLATFORM:
		return ev->key < VMMUX_PLAT__COUNT && (g->platform & (1u << ev->key));
	case VMMUX_EV_REQUEST:
		return ev->key < VMMUX_REQ__COUNT && (g->request & (1u << ev->key));
	case VMMUX_EV_EXCEPTION:
		return g->exception && ev->key < 256;
	case VMMUX_EV_IO:
	case VMMUX_EV_MMIO:
	case VMMUX_EV_MSR:
	case VMMUX_EV_HLT:
	case VMMUX_EV_HYPERCALL:
	case VMMUX_EV_SHUTDOWN:
		return g->forward && grant_is_copy(ev, served);
	default:
		return false;
	}
}

bool grant_irq(const struct raise_grants *g, unsigned line, bool *wire, bool *level)
{
	if (line > 255 || !bit_get(g->irq, line))
		return false;
	if (wire)
		*wire = bit_get(g->irq_wire, line);
	if (level)
		*level = bit_get(g->irq_level, line);
	return true;
}
