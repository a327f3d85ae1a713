/*
 * event.c: describing events (event.h).
 */
#include "event/event.h"

#include <stdio.h>

#include "route/spec.h"

const char *exception_mnemonic(unsigned vector)
{
	static const char *const names[] = {
	    "#DE", "#DB", "#NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#CSO",
	    "#TS", "#NP", "#SS",  "#GP", "#PF", "#15", "#MF", "#AC", "#MC", "#XM",
	};
	if (vector < sizeof(names) / sizeof(names[0]))
		return names[vector];
	return "#?";
}

static int describe_source(const struct vmmux_event *ev, char *buf, size_t len)
{
	switch (ev->src_kind) {
	case VMMUX_SRC_VCPU:
		return snprintf(buf, len, "vCPU %u: ", ev->src_id);
	case VMMUX_SRC_VMM:
		if (ev->vcpu != VMMUX_NO_VCPU)
			return snprintf(buf, len, "VMM %u (for vCPU %u): ", ev->src_id, ev->vcpu);
		return snprintf(buf, len, "VMM %u: ", ev->src_id);
	default:
		return snprintf(buf, len, "vmmux: ");
	}
}

char *event_describe(const struct vmmux_event *ev, char *buf, size_t len)
{
	if (len == 0)
		return buf;
	int n = describe_source(ev, buf, len);
	if (n < 0 || (size_t)n >= len)
		return buf;
	char *p = buf + n;
	size_t rest = len - (size_t)n;
	const char *type = event_type_name(ev->type);
	const char *dir = ev->flags & VMMUX_EVF_WRITE ? "write" : "read";
	unsigned long long key = (unsigned long long)ev->key;
	unsigned long long value = (unsigned long long)ev->value;
	switch (ev->type) {
	case VMMUX_EV_IO:
		if (ev->count > 1)
			snprintf(p, rest, "io string %s port 0x%llx size %u count %u", dir, key,
				 ev->size, ev->count);
		else
			snprintf(p, rest, "io %s port 0x%llx size %u value 0x%llx", dir, key,
				 ev->size, value);
		break;
	case VMMUX_EV_MMIO:
		snprintf(p, rest, "mmio %s at 0x%llx size %u value 0x%llx", dir, key, ev->size,
			 value);
		break;
	case VMMUX_EV_MSR:
		snprintf(p, rest, "%s MSR 0x%llx value 0x%llx",
			 ev->flags & VMMUX_EVF_WRITE ? "wrmsr" : "rdmsr", key, value);
		break;
	case VMMUX_EV_HYPERCALL:
		snprintf(p, rest, "hypercall %llu argument 0x%llx", key, value);
		break;
	case VMMUX_EV_EXCEPTION:
		snprintf(p, rest, "exception %s (vector %llu) at rip 0x%llx, %s 0x%llx%s",
			 exception_mnemonic((unsigned)ev->key), key, value,
			 ev->flags & VMMUX_EVF_HOSTDEBUG ? "dr6" : "error code",
			 (unsigned long long)ev->aux,
			 ev->flags & VMMUX_EVF_GUEST_REPORTED ? " (reported by the guest)" : "");
		break;
	case VMMUX_EV_SHUTDOWN:
		snprintf(p, rest, "shutdown (triple fault)");
		break;
	case VMMUX_EV_PLATFORM: {
		const char *code = platform_code_name((unsigned)ev->key);
		snprintf(p, rest, "platform event %s value 0x%llx", code ? code : "?", value);
		break;
	}
	case VMMUX_EV_IRQ:
		snprintf(p, rest, "irq line %llu level %llu", key, value);
		break;
	case VMMUX_EV_REQUEST: {
		const char *kind = request_kind_name((unsigned)ev->key);
		snprintf(p, rest, "request %s value %llu", kind ? kind : "?", value);
		break;
	}
	default:
		snprintf(p, rest, "%s key 0x%llx value 0x%llx", type ? type : "event", key, value);
		break;
	}
	return buf;
}
