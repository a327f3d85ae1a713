/*
 * hint.c: the hint for a device the machine does not have (hint.h).
 */
#include "vmm/hint.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/log.h"

#define SLOTS 256u /* counters, by hash of the key; a collision only hints sooner */

enum kind { K_LAPIC, K_IOAPIC, K_PIT, K_PIC, K_FWCFG, K_UART, K_OTHER_IO, K_OTHER_MMIO, K__N };

static _Atomic uint32_t counts[SLOTS];
static atomic_bool given[K__N];

void hint_reset(void)
{
	for (unsigned i = 0; i < SLOTS; i++)
		atomic_store(&counts[i], 0);
	for (unsigned i = 0; i < K__N; i++)
		atomic_store(&given[i], false);
}

static enum kind classify(const struct vmmux_event *ev)
{
	uint64_t k = ev->key;
	if (ev->type == VMMUX_EV_MMIO) {
		if (k >= 0xfee00000ull && k < 0xfee01000ull)
			return K_LAPIC;
		if (k >= 0xfec00000ull && k < 0xfec01000ull)
			return K_IOAPIC;
		return K_OTHER_MMIO;
	}
	if (k >= 0x40 && k <= 0x43)
		return K_PIT;
	if (k == 0x20 || k == 0x21 || k == 0xa0 || k == 0xa1)
		return K_PIC;
	if (k == 0x510 || k == 0x511)
		return K_FWCFG;
	if (k >= 0x3f8 && k <= 0x3ff)
		return K_UART;
	return K_OTHER_IO;
}

void hint_unrouted(const struct vmmux_event *ev)
{
	if (ev->type != VMMUX_EV_IO && ev->type != VMMUX_EV_MMIO)
		return;
	uint64_t key = ev->type == VMMUX_EV_MMIO ? ev->key >> 12 : ev->key;
	uint64_t h = (key ^ (uint64_t)ev->type << 40) * 0x9e3779b97f4a7c15ull;
	uint32_t n = atomic_fetch_add_explicit(&counts[h >> 56], 1, memory_order_relaxed) + 1;
	if (n != HINT_THRESHOLD)
		return;
	enum kind kd = classify(ev);
	if (atomic_exchange(&given[kd], true))
		return;
	const char *verb = ev->flags & VMMUX_EVF_WRITE ? "writing" : "reading";
	const char *what = ev->type == VMMUX_EV_MMIO ? "MMIO" : "port";
	unsigned vcpu = ev->vcpu;
	unsigned long long a = (unsigned long long)ev->key;
	static const char no_irqchip[] = "this machine has no irqchip: give --irqchip (drop "
					 "--no-irqchip or machine.irqchip false)";
	switch (kd) {
	case K_LAPIC:
		log_warn("vCPU %u keeps %s the local APIC at 0x%llx (%u accesses); %s", vcpu, verb,
			 a, n, no_irqchip);
		break;
	case K_IOAPIC:
		log_warn("vCPU %u keeps %s the I/O APIC at 0x%llx (%u accesses); %s", vcpu, verb, a,
			 n, no_irqchip);
		break;
	case K_PIT:
		log_warn("vCPU %u keeps %s the PIT at port 0x%llx (%u accesses); %s", vcpu, verb, a,
			 n, no_irqchip);
		break;
	case K_PIC:
		log_warn("vCPU %u keeps %s the PIC at port 0x%llx (%u accesses); %s", vcpu, verb, a,
			 n, no_irqchip);
		break;
	case K_FWCFG:
		log_warn("vCPU %u keeps %s fw_cfg at port 0x%llx (%u accesses); this machine has "
			 "no fw_cfg: give --fw-cfg (drop --no-fw-cfg or machine.fw_cfg false)",
			 vcpu, verb, a, n);
		break;
	case K_UART:
		log_warn("vCPU %u keeps %s the serial port at 0x%llx (%u accesses); no VMM serves "
			 "it: keep the default uart VMM or route io:0x3f8-0x3ff to a uart16550",
			 vcpu, verb, a, n);
		break;
	case K_OTHER_IO:
	case K_OTHER_MMIO:
	case K__N:
		log_warn("vCPU %u keeps %s %s 0x%llx (%u accesses), which no route takes: route "
			 "it to a VMM that serves it (--route %s:0x%llx=VMM)",
			 vcpu, verb, what, a, n, ev->type == VMMUX_EV_MMIO ? "mmio" : "io", a);
		break;
	}
}
