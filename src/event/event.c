/*
 * event.c: describing events (event.h).
 */
#include "event/event.h"

#include <stdatomic.h>
#include <stdio.h>

#include "route/spec.h"

static _Atomic(event_vmm_name_fn) vmm_namer;

void event_set_vmm_namer(event_vmm_name_fn fn)
{
	atomic_store(&vmm_namer, fn);
}

/* "VMM 'uart'", or "VMM #5" when no namer knows ID. */
static int vmm_label(unsigned id, char *buf, size_t len)
{
	event_vmm_name_fn fn = atomic_load(&vmm_namer);
	const char *name = fn != NULL && id <= 0xffffu ? fn((uint16_t)id) : NULL;
	if (name != NULL)
		return snprintf(buf, len, "VMM '%s'", name);
	return snprintf(buf, len, "VMM #%u", id);
}

static const char *fault_reason_text(uint64_t reason)
{
	switch (reason) {
	case VMMUX_FAULT_CRASH:
		return "crashed";
	case VMMUX_FAULT_TIMEOUT:
		return "did not answer in time";
	case VMMUX_FAULT_PROTOCOL:
		return "broke the protocol";
	default:
		return "failed";
	}
}

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
	case VMMUX_SRC_VMM: {
		char who[VMMUX_NAME_MAX + 16];
		vmm_label(ev->src_id, who, sizeof(who));
		if (ev->vcpu != VMMUX_NO_VCPU)
			return snprintf(buf, len, "%s (for vCPU %u): ", who, ev->vcpu);
		return snprintf(buf, len, "%s: ", who);
	}
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
	bool write = (ev->flags & VMMUX_EVF_WRITE) != 0;
	const char *dir = write ? "write" : "read";
	unsigned long long key = (unsigned long long)ev->key;
	unsigned long long value = (unsigned long long)ev->value;
	switch (ev->type) {
	case VMMUX_EV_IO:
		if (ev->count > 1)
			snprintf(p, rest, "io string %s port 0x%llx size %u count %u", dir, key,
				 ev->size, ev->count);
		else if (write)
			snprintf(p, rest, "io write port 0x%llx size %u value 0x%llx", key,
				 ev->size, value);
		else
			snprintf(p, rest, "io read port 0x%llx size %u", key, ev->size);
		break;
	case VMMUX_EV_MMIO:
		if (write)
			snprintf(p, rest, "mmio write at 0x%llx size %u value 0x%llx", key,
				 ev->size, value);
		else
			snprintf(p, rest, "mmio read at 0x%llx size %u", key, ev->size);
		break;
	case VMMUX_EV_MSR:
		if (write)
			snprintf(p, rest, "wrmsr MSR 0x%llx value 0x%llx", key, value);
		else
			snprintf(p, rest, "rdmsr MSR 0x%llx", key);
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
	case VMMUX_EV_FAULT: {
		char who[VMMUX_NAME_MAX + 16];
		vmm_label((unsigned)ev->key, who, sizeof(who));
		snprintf(p, rest, "fault of %s: %s (reason %llu)", who,
			 fault_reason_text(ev->value), value);
		break;
	}
	default:
		snprintf(p, rest, "%s key 0x%llx value 0x%llx", type ? type : "event", key, value);
		break;
	}
	return buf;
}
