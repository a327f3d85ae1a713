/*
 * classify.c: KVM exits to events and replies back (classify.h).
 */
#include "exit/classify.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Fill e and say the exit is fatal. */
__attribute__((format(printf, 2, 3))) static enum classify_result fatal(struct errbuf *e,
									const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return CLASSIFY_FATAL;
}

static uint64_t load_le(const uint8_t *p, unsigned size)
{
	uint64_t v = 0;
	memcpy(&v, p, size > 8 ? 8 : size);
	return v;
}

static void store_le(uint8_t *p, unsigned size, uint64_t v)
{
	memcpy(p, &v, size > 8 ? 8 : size);
}

static uint64_t size_mask(unsigned size)
{
	return size >= 8 ? ~0ull : (1ull << (size * 8)) - 1;
}

const char *exit_reason_name(unsigned reason)
{
	static const char *const names[] = {
	    [KVM_EXIT_UNKNOWN] = "KVM_EXIT_UNKNOWN",
	    [KVM_EXIT_EXCEPTION] = "KVM_EXIT_EXCEPTION",
	    [KVM_EXIT_IO] = "KVM_EXIT_IO",
	    [KVM_EXIT_HYPERCALL] = "KVM_EXIT_HYPERCALL",
	    [KVM_EXIT_DEBUG] = "KVM_EXIT_DEBUG",
	    [KVM_EXIT_HLT] = "KVM_EXIT_HLT",
	    [KVM_EXIT_MMIO] = "KVM_EXIT_MMIO",
	    [KVM_EXIT_IRQ_WINDOW_OPEN] = "KVM_EXIT_IRQ_WINDOW_OPEN",
	    [KVM_EXIT_SHUTDOWN] = "KVM_EXIT_SHUTDOWN",
	    [KVM_EXIT_FAIL_ENTRY] = "KVM_EXIT_FAIL_ENTRY",
	    [KVM_EXIT_INTR] = "KVM_EXIT_INTR",
	    [KVM_EXIT_SET_TPR] = "KVM_EXIT_SET_TPR",
	    [KVM_EXIT_TPR_ACCESS] = "KVM_EXIT_TPR_ACCESS",
	    [KVM_EXIT_NMI] = "KVM_EXIT_NMI",
	    [KVM_EXIT_INTERNAL_ERROR] = "KVM_EXIT_INTERNAL_ERROR",
	    [KVM_EXIT_SYSTEM_EVENT] = "KVM_EXIT_SYSTEM_EVENT",
	    [KVM_EXIT_X86_RDMSR] = "KVM_EXIT_X86_RDMSR",
	    [KVM_EXIT_X86_WRMSR] = "KVM_EXIT_X86_WRMSR",
	};
	if (reason < sizeof(names) / sizeof(names[0]) && names[reason])
		return names[reason];
	return "an unknown exit reason";
}

static void event_init(struct vmmux_event *ev, unsigned vcpu, unsigned type)
{
	memset(ev, 0, sizeof(*ev));
	ev->type = (uint16_t)type;
	ev->src_kind = VMMUX_SRC_VCPU;
	ev->src_id = (uint16_t)vcpu;
	ev->vcpu = (uint16_t)vcpu;
	ev->count = 1;
}

static enum classify_result classify_io(struct kvm_run *run, size_t run_size, unsigned vcpu,
					struct vmmux_event *ev, struct errbuf *e)
{
	unsigned size = run->io.size;
	uint32_t count = run->io.count;
	if (size != 1 && size != 2 && size != 4)
		return fatal(e, "vCPU %u: port I/O exit with size %u", vcpu, size);
	if (count == 0)
		count = 1;
	uint64_t off = run->io.data_offset;
	uint64_t bytes = (uint64_t)size * count;
	if (off > run_size || bytes > run_size - off)
		return fatal(e,
			     "vCPU %u: port I/O data (%llu bytes at offset %llu) lies "
			     "outside kvm_run",
			     vcpu, (unsigned long long)bytes, (unsigned long long)off);
	uint8_t *data = (uint8_t *)run + off;
	event_init(ev, vcpu, VMMUX_EV_IO);
	ev->key = run->io.port;
	ev->size = (uint8_t)size;
	ev->count = count;
	if (run->io.direction == KVM_EXIT_IO_OUT) {
		ev->flags |= VMMUX_EVF_WRITE;
		ev->value = load_le(data, size);
	}
	if (count > 1) {
		ev->flags |= VMMUX_EVF_STRING;
		ev->data = data;
	}
	return CLASSIFY_EVENT;
}

enum classify_result exit_classify(struct kvm_run *run, size_t run_size, unsigned vcpu,
				   struct vmmux_event *ev, struct errbuf *e)
{
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		return classify_io(run, run_size, vcpu, ev, e);
	case KVM_EXIT_MMIO:
		if (run->mmio.len == 0 || run->mmio.len > 8)
			return fatal(e, "vCPU %u: MMIO exit with length %u", vcpu, run->mmio.len);
		event_init(ev, vcpu, VMMUX_EV_MMIO);
		ev->key = run->mmio.phys_addr;
		ev->size = (uint8_t)run->mmio.len;
		if (run->mmio.is_write) {
			ev->flags |= VMMUX_EVF_WRITE;
			ev->value = load_le(run->mmio.data, run->mmio.len);
		}
		return CLASSIFY_EVENT;
	case KVM_EXIT_X86_RDMSR:
	case KVM_EXIT_X86_WRMSR:
		event_init(ev, vcpu, VMMUX_EV_MSR);
		ev->key = run->msr.index;
		ev->size = 8;
		if (run->exit_reason == KVM_EXIT_X86_WRMSR) {
			ev->flags |= VMMUX_EVF_WRITE;
			ev->value = run->msr.data;
		}
		if (run->msr.reason == KVM_MSR_EXIT_REASON_UNKNOWN)
			ev->flags |= VMMUX_EVF_UNKNOWN_MSR;
		return CLASSIFY_EVENT;
	case KVM_EXIT_HLT:
		event_init(ev, vcpu, VMMUX_EV_HLT);
		return CLASSIFY_EVENT;
	case KVM_EXIT_SHUTDOWN:
		event_init(ev, vcpu, VMMUX_EV_SHUTDOWN);
		return CLASSIFY_EVENT;
	case KVM_EXIT_DEBUG:
		event_init(ev, vcpu, VMMUX_EV_EXCEPTION);
		ev->flags |= VMMUX_EVF_HOSTDEBUG;
		ev->key = run->debug.arch.exception;
		ev->value = run->debug.arch.pc;
		ev->aux = run->debug.arch.dr6;
		return CLASSIFY_EVENT;
	case KVM_EXIT_SYSTEM_EVENT:
		switch (run->system_event.type) {
		case KVM_SYSTEM_EVENT_RESET:
			event_init(ev, vcpu, VMMUX_EV_PLATFORM);
			ev->key = VMMUX_PLAT_RESET;
			return CLASSIFY_EVENT;
		case KVM_SYSTEM_EVENT_SHUTDOWN:
			event_init(ev, vcpu, VMMUX_EV_PLATFORM);
			ev->key = VMMUX_PLAT_POWEROFF;
			return CLASSIFY_EVENT;
		default:
			return fatal(e, "vCPU %u: KVM_EXIT_SYSTEM_EVENT of type %u", vcpu,
				     run->system_event.type);
		}
	case KVM_EXIT_INTR:
	case KVM_EXIT_IRQ_WINDOW_OPEN:
		return CLASSIFY_NONE;
	case KVM_EXIT_FAIL_ENTRY:
		return fatal(e,
			     "vCPU %u: KVM_EXIT_FAIL_ENTRY: hardware entry failure reason "
			     "0x%llx",
			     vcpu,
			     (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
	case KVM_EXIT_INTERNAL_ERROR: {
		char extra[160] = "";
		size_t used = 0;
		for (uint32_t i = 0; i < run->internal.ndata && i < 4; i++) {
			int n = snprintf(extra + used, sizeof(extra) - used, " data[%u]=0x%llx", i,
					 (unsigned long long)run->internal.data[i]);
			if (n < 0 || (size_t)n >= sizeof(extra) - used)
				break;
			used += (size_t)n;
		}
		const char *what = run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION
				       ? " (KVM could not emulate a guest instruction)"
				       : "";
		return fatal(e, "vCPU %u: KVM_EXIT_INTERNAL_ERROR, suberror %u%s%s", vcpu,
			     run->internal.suberror, what, extra);
	}
	default:
		return fatal(e, "vCPU %u: %s (exit reason %u) is not modelled by vmmux", vcpu,
			     exit_reason_name(run->exit_reason), run->exit_reason);
	}
}

unsigned exit_apply(struct kvm_run *run, const struct vmmux_event *ev,
		    const struct vmmux_reply *rep)
{
	bool write = ev->flags & VMMUX_EVF_WRITE;
	switch (ev->type) {
	case VMMUX_EV_IO:
	case VMMUX_EV_HYPERCALL:
		/* A hypercall is an OUT; only IN carries a value back. */
		if (run->exit_reason == KVM_EXIT_IO && !write && ev->count <= 1 &&
		    run->io.direction == KVM_EXIT_IO_IN)
			store_le((uint8_t *)run + run->io.data_offset, run->io.size,
				 rep->value & size_mask(run->io.size));
		return 0;
	case VMMUX_EV_MMIO:
		if (!write)
			store_le(run->mmio.data, run->mmio.len, rep->value & size_mask(ev->size));
		return 0;
	case VMMUX_EV_MSR:
		run->msr.error = rep->action == VMMUX_ACT_GP ? 1 : 0;
		if (!write)
			run->msr.data = rep->action == VMMUX_ACT_GP ? 0 : rep->value;
		return 0;
	case VMMUX_EV_EXCEPTION: {
		unsigned flags = 0;
		if (!(ev->flags & VMMUX_EVF_HOSTDEBUG))
			return 0;
		if (rep->action == VMMUX_ACT_REINJECT)
			flags |= APPLY_REINJECT;
		/* An instruction breakpoint (DR6.B0-B3) hits again unless RF is set. */
		if (ev->key == VMMUX_VEC_DB && (ev->aux & 0xf))
			flags |= APPLY_SKIP_BP;
		return flags;
	}
	default:
		return 0;
	}
}
