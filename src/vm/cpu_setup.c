/*
 * cpu_setup.c: tables in guest memory and registers at entry (cpu_setup.h).
 */
#include "vm/cpu_setup.h"

#include <errno.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>

#define GDT_ADDR  0x1000u
#define PML4_ADDR 0x2000u
#define PDPT_ADDR 0x3000u
#define PD_ADDR	  0x4000u		    /* four page directories: 0x4000-0x7fff */
#define PT_ADDR	  0x8000u		    /* 4 KiB pages of the first 2 MiB */
#define PD_COUNT  4u			    /* 4 GiB identity mapped */
#define TSS_ADDR  0xa000u		    /* 64-bit TSS with a full I/O permission bitmap */
#define TSS_IOMAP 0x68u			    /* offset of the bitmap in the TSS */
#define TSS_LIMIT (TSS_IOMAP + 65536u / 8u) /* the bitmap and its 0xff end byte */
#define TSS_RSP0  0x10000u		    /* stack for interrupts taken at CPL3 */

#define PTE_P  0x001ull
#define PTE_RW 0x002ull
#define PTE_US 0x004ull
#define PTE_PS 0x080ull

/* GDT selectors for long mode. User data before user code, as SYSRET wants. */
#define SEL_CODE64 0x08
#define SEL_DATA   0x10
#define SEL_UDATA  0x1b /* index 3, RPL 3 */
#define SEL_UCODE  0x23 /* index 4, RPL 3 */

static const uint64_t gdt_long[] = {
    0,			   /* null */
    0x00af9a000000ffffull, /* 0x08: 64-bit code, DPL 0 */
    0x00cf92000000ffffull, /* 0x10: data, DPL 0 */
    0x00cff2000000ffffull, /* 0x18: data, DPL 3 */
    0x00affa000000ffffull, /* 0x20: 64-bit code, DPL 3 */
};

int cpu_setup_tables(struct guest_mem *m, enum cpu_mode mode, struct errbuf *e)
{
	if (mode != CPU_MODE_LONG && mode != CPU_MODE_USER)
		return 0;
	if (m->size < LOADER_LOW_RESERVED)
		return err_set(e, "guest RAM of %llu bytes is too small for long mode",
			       (unsigned long long)m->size);
	uint64_t us = mode == CPU_MODE_USER ? PTE_US : 0;
	uint64_t *gdt = gm_ptr(m, GDT_ADDR, sizeof(gdt_long));
	uint64_t *pml4 = gm_ptr(m, PML4_ADDR, 4096);
	uint64_t *pdpt = gm_ptr(m, PDPT_ADDR, 4096);
	uint64_t *pd = gm_ptr(m, PD_ADDR, 4096 * PD_COUNT);
	uint64_t *pt = gm_ptr(m, PT_ADDR, 4096);
	memcpy(gdt, gdt_long, sizeof(gdt_long));
	memset(pml4, 0, 4096);
	memset(pdpt, 0, 4096);
	pml4[0] = PDPT_ADDR | PTE_P | PTE_RW | us;
	for (unsigned i = 0; i < PD_COUNT; i++)
		pdpt[i] = (PD_ADDR + i * 4096ull) | PTE_P | PTE_RW | us;
	for (uint64_t i = 0; i < 512ull * PD_COUNT; i++)
		pd[i] = (i << 21) | PTE_P | PTE_RW | PTE_PS | us;
	pd[0] = PT_ADDR | PTE_P | PTE_RW | us;
	pt[0] = 0; /* page 0 not present: a NULL dereference faults */
	for (uint64_t i = 1; i < 512; i++)
		pt[i] = (i << 12) | PTE_P | PTE_RW | us;

	/*
	 * The TSS: RSP0 for interrupts taken at CPL3, and an I/O permission
	 * bitmap that allows every port. On PVM hosts CPL3 port I/O is checked
	 * against this bitmap (IOPL=3 alone is not enough).
	 */
	uint8_t *tss = gm_ptr(m, TSS_ADDR, TSS_LIMIT + 1);
	memset(tss, 0, TSS_LIMIT + 1);
	uint64_t rsp0 = TSS_RSP0;
	memcpy(tss + 4, &rsp0, sizeof(rsp0));
	uint16_t iomap = TSS_IOMAP;
	memcpy(tss + 0x66, &iomap, sizeof(iomap));
	tss[TSS_LIMIT] = 0xff;
	return 0;
}

static struct kvm_segment seg(uint16_t sel, uint8_t type, uint8_t dpl, bool l, bool db)
{
	struct kvm_segment s = {
	    .base = 0,
	    .limit = 0xffffffff,
	    .selector = sel,
	    .type = type,
	    .present = 1,
	    .dpl = dpl,
	    .db = db,
	    .s = 1,
	    .l = l,
	    .g = 1,
	};
	return s;
}

static struct kvm_segment real_seg(uint16_t sel, uint8_t type)
{
	struct kvm_segment s = {
	    .base = (uint64_t)sel << 4,
	    .limit = 0xffff,
	    .selector = sel,
	    .type = type,
	    .present = 1,
	    .s = 1,
	};
	return s;
}

int cpu_setup_vcpu(int vcpu_fd, const struct boot_image *img, const struct guest_mem *m,
		   unsigned index, unsigned ncpus, bool irqchip, struct errbuf *e)
{
	struct kvm_sregs s;
	struct kvm_regs r;
	if (ioctl(vcpu_fd, KVM_GET_SREGS, &s) < 0)
		return err_set(e, "vCPU %u: KVM_GET_SREGS: %s", index, strerror(errno));
	memset(&r, 0, sizeof(r));
	r.rflags = 0x2;
	int waits = 0;

	switch (img->mode) {
	case CPU_MODE_LONG:
	case CPU_MODE_USER: {
		bool user = img->mode == CPU_MODE_USER;
		uint8_t dpl = user ? 3 : 0;
		s.cs = seg(user ? SEL_UCODE : SEL_CODE64, 11, dpl, true, false);
		s.ds = seg(user ? SEL_UDATA : SEL_DATA, 3, dpl, false, true);
		s.es = s.fs = s.gs = s.ss = s.ds;
		s.gdt.base = GDT_ADDR;
		s.gdt.limit = sizeof(gdt_long) - 1;
		s.idt.base = 0;
		s.idt.limit = 0;
		memset(&s.tr, 0, sizeof(s.tr));
		s.tr.base = TSS_ADDR;
		s.tr.limit = TSS_LIMIT;
		s.tr.type = 11; /* busy 64-bit TSS */
		s.tr.present = 1;
		memset(&s.ldt, 0, sizeof(s.ldt));
		s.ldt.unusable = 1;
		s.cr0 = 0x80010033; /* PG, WP, NE, ET, MP, PE */
		s.cr3 = PML4_ADDR;
		s.cr4 = 0x620;	/* OSXMMEXCPT, OSFXSR, PAE */
		s.efer = 0x500; /* LMA, LME */
		uint64_t stack_top = m->size - (uint64_t)index * CPU_STACK_PER_VCPU;
		if (m->size < (uint64_t)(index + 1) * CPU_STACK_PER_VCPU + img->image_hi)
			return err_set(e,
				       "guest RAM is too small for %u vCPU stacks above the "
				       "image",
				       ncpus);
		r.rip = img->entry;
		r.rsp = stack_top - 8;
		r.rsi = index;
		r.rdx = ncpus;
		if (user)
			r.rflags |= 0x3000; /* IOPL = 3 */
		break;
	}
	case CPU_MODE_PROT32:
		s.cs = seg(0x08, 11, 0, false, true);
		s.ds = seg(0x10, 3, 0, false, true);
		s.es = s.fs = s.gs = s.ss = s.ds;
		s.cr0 = 0x11; /* ET, PE */
		s.cr3 = 0;
		s.cr4 = 0;
		s.efer = 0;
		r.rip = img->entry;
		r.rsp = 0x8000;
		if (img->kind == BOOT_MULTIBOOT) {
			r.rax = 0x2badb002;
			r.rbx = img->mb_info;
			waits = index != 0;
		}
		break;
	case CPU_MODE_REAL:
	default: {
		uint16_t cs = (uint16_t)((img->entry >> 4) & 0xf000);
		s.cs = real_seg(cs, 11);
		s.ds = real_seg(0, 3);
		s.es = s.fs = s.gs = s.ss = s.ds;
		s.cr0 = 0x10;
		s.cr3 = 0;
		s.cr4 = 0;
		s.efer = 0;
		r.rip = img->entry - ((uint64_t)cs << 4);
		r.rsp = 0x7000;
		waits = index != 0;
		break;
	}
	}

	if (ioctl(vcpu_fd, KVM_SET_SREGS, &s) < 0)
		return err_set(e, "vCPU %u: KVM_SET_SREGS: %s", index, strerror(errno));
	if (ioctl(vcpu_fd, KVM_SET_REGS, &r) < 0)
		return err_set(e, "vCPU %u: KVM_SET_REGS: %s", index, strerror(errno));
	if (irqchip) {
		struct kvm_mp_state mp = {
		    .mp_state = waits ? KVM_MP_STATE_INIT_RECEIVED : KVM_MP_STATE_RUNNABLE,
		};
		if (ioctl(vcpu_fd, KVM_SET_MP_STATE, &mp) < 0)
			return err_set(e, "vCPU %u: KVM_SET_MP_STATE: %s", index, strerror(errno));
		/* With an irqchip, a waiting AP runs KVM_RUN and sleeps in KVM. */
		return 0;
	}
	return waits;
}
