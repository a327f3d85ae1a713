/*
 * vm.h: the KVM virtual machine: /dev/kvm, the VM, guest RAM, the vCPU
 * descriptors and the machine-wide KVM state (irqchip, PIT, MSR filter,
 * CPUID, guest debug).
 */
#ifndef VMMUX_VM_VM_H
#define VMMUX_VM_VM_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "route/table.h"
#include "util/err.h"
#include "vm/guest_mem.h"

struct vm_vcpu {
	unsigned index;
	int fd;
	struct kvm_run *run;
};

/* A KVM memory slot over guest RAM (a piece, or part of one). */
struct vm_slot {
	uint32_t id;
	uint64_t gpa, size;
	bool readonly; /* KVM_MEM_READONLY: a guest write exits as MMIO */
};
#define VM_SLOTS_MAX (GM_PIECES_MAX + 64)

/*
 * Guest debug set by a debugger (vmm/debug.h): merged with the config's
 * (--single-step, --break, --sw-breakpoints) by vm_vcpu_guest_debug. While
 * on, the debugger's DR0-DR3/DR7 replace the config's breakpoints.
 */
struct vm_debug {
	bool on;
	uint64_t dr[4], dr7;
	bool step[CPUS_MAX];
};

struct vm {
	int kvm_fd;
	int vm_fd;
	size_t run_size; /* KVM_GET_VCPU_MMAP_SIZE */
	struct guest_mem mem;
	bool irqchip;
	bool msr_exits; /* KVM_CAP_X86_USER_SPACE_MSR enabled */
	unsigned ncpus;
	struct vm_vcpu *vcpus;
	struct kvm_cpuid2 *cpuid; /* from KVM_GET_SUPPORTED_CPUID */
	unsigned nslots;	  /* KVM memory slots, in no particular order */
	struct vm_slot slots[VM_SLOTS_MAX];
	uint32_t next_slot_id;
	const struct vm_debug *dbg; /* the debugger's, or NULL */
};

/*
 * Open /dev/kvm, create the VM, guest RAM (memfd, C->mem_bytes), the
 * irqchip and PIT when asked, the vCPUs with CPUID set (each with its own
 * APIC ID), and enable user-space MSR exits (filter and unknown MSRs).
 * Errors name the KVM step that failed and errno.
 */
int vm_create(struct vm *vm, const struct vmmux_config *c, struct errbuf *e);
void vm_destroy(struct vm *vm);

/*
 * Program KVM_X86_SET_MSR_FILTER so that T's MSR routes exit and every other
 * MSR KVM knows stays inside KVM. MSRs that KVM does not know exit too
 * (KVM_MSR_EXIT_REASON_UNKNOWN) and reach the type default (#GP).
 */
int vm_set_msr_filter(struct vm *vm, const struct route_table *t, struct errbuf *e);

/* Program KVM_SET_GUEST_DEBUG on every vCPU from C (single-step, DR0-3,
 * software breakpoints). */
int vm_set_guest_debug(struct vm *vm, const struct vmmux_config *c, struct errbuf *e);

/*
 * The same for one vCPU, with the debugger's state (vm->dbg) merged in. With
 * STEP_OVER the hardware breakpoints are off and single-step is on, so that
 * the vCPU executes the instruction at a breakpoint once (the emulator here
 * does not honour RFLAGS.RF).
 */
int vm_vcpu_guest_debug(struct vm *vm, unsigned index, const struct vmmux_config *c, bool step_over,
			struct errbuf *e);

/*
 * Make guest RAM [gpa, gpa+size) read-only to the guest (page aligned, inside
 * one memory slot): its slot is split and the range becomes a slot with
 * KVM_MEM_READONLY, so that a guest write to it exits as a KVM_EXIT_MMIO
 * write (on every host, PVM included). vmmux's own mapping stays writable
 * (the loader reloads the image on reset). Call before the vCPUs run. -1
 * with a message when KVM lacks KVM_CAP_READONLY_MEM, the range is not
 * aligned or crosses a slot, or KVM refuses.
 */
int vm_set_readonly(struct vm *vm, uint64_t gpa, uint64_t size, struct errbuf *e);

/* Raise or lower an IRQ line of the in-kernel irqchip (KVM_IRQ_LINE). */
int vm_irq_line(struct vm *vm, uint32_t line, int level);

/* Dump the registers of a vCPU to stderr (for fatal errors). */
void vm_dump_vcpu(struct vm *vm, unsigned index);

#endif
