/*
 * cpu_setup.h: the CPU state at entry for each CPU mode.
 *
 * Long mode (CPL0 or CPL3): cpu_setup_tables writes a GDT at 0x1000 (null,
 * 64-bit code, data, user data, user code), identity page tables at 0x2000
 * (PML4), 0x3000 (PDPT), 0x4000.. (page directories of 2 MiB pages covering
 * max(RAM, 4 GiB)) and at 0x8000 a page table for the first 2 MiB with page 0
 * not present (a NULL dereference faults), and a 64-bit TSS at 0xa000 whose
 * I/O permission bitmap allows every port. In CPL3 mode every page is
 * user-accessible and RFLAGS.IOPL = 3, so that IN/OUT work at CPL3 (PVM
 * checks the bitmap). Page 0x9000 is never written by vmmux, not even on
 * reset: guests may keep state there across resets.
 *
 * Entry convention for 64-bit guests (ELF64 and raw long/user): RIP = entry,
 * RSI = vCPU index, RDX = number of vCPUs, RDI = 0, RSP = top of RAM -
 * index * 64 KiB - 8 (16-byte aligned as after a call). Multiboot: EAX =
 * 0x2BADB002, EBX = information structure, flat 32-bit segments, paging off;
 * vCPUs other than 0 wait for INIT/SIPI (in-kernel irqchip) or stay stopped.
 * Real mode: CS = load_addr >> 4 & 0xf000, IP = the rest, other segments 0.
 */
#ifndef VMMUX_VM_CPU_SETUP_H
#define VMMUX_VM_CPU_SETUP_H

#include "loader/loader.h"
#include "util/err.h"
#include "vm/guest_mem.h"

#define CPU_STACK_PER_VCPU 0x10000u

/* Write the GDT and page tables that MODE needs into M (no-op for real and
 * 32-bit protected mode except for a flat GDT). */
int cpu_setup_tables(struct guest_mem *m, enum cpu_mode mode, struct errbuf *e);

/*
 * Set the registers of vCPU fd VCPU_FD (index INDEX of NCPUS) for entering
 * IMG. Returns 0, 1 when this vCPU does not start running (it waits for a
 * SIPI), or -1 with a message.
 */
int cpu_setup_vcpu(int vcpu_fd, const struct boot_image *img, const struct guest_mem *m,
		   unsigned index, unsigned ncpus, bool irqchip, struct errbuf *e);

#endif
