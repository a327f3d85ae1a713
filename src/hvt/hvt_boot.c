/*
 * hvt_boot.c: the hvt boot state (hvt.h): low memory and the vCPU's
 * registers, as the hvt ABI fixes them.
 */
#include <errno.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>

#include "hvt/hvt.h"

#define PTE_P  0x1ull
#define PTE_RW 0x2ull
#define PTE_PS 0x80ull

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v));
}

int hvt_boot_write(struct guest_mem *m, const struct hvt_image *im, const struct hvt_mft *mft,
		   size_t mft_size, const char *cmdline, uint64_t tsc_hz, struct errbuf *e)
{
	if (m->size < HVT_GUEST_MIN_BASE || im->kernel_end > m->size)
		return err_set(e, "guest memory (%llu bytes) cannot hold the image",
			       (unsigned long long)m->size);
	size_t clen = strlen(cmdline);
	if (clen >= HVT_CMDLINE_SIZE)
		return err_set(e, "command line is %zu characters; at most %u fit", clen,
			       HVT_CMDLINE_SIZE - 1);
	if (mft_size > HVT_CMDLINE_GPA - HVT_MFT_GPA)
		return err_set(e, "manifest of %zu bytes does not fit", mft_size);
	uint8_t *low = gm_ptr(m, 0, HVT_GUEST_MIN_BASE);
	if (low == NULL)
		return err_set(e, "guest memory is smaller than 1 MiB");
	memset(low, 0, HVT_GUEST_MIN_BASE);

	/* GDT: null, 64-bit code, data. */
	uint8_t *gdt = low + HVT_GDT_BASE;
	put64(gdt + 8, 0x00af9b000000ffffull);	/* code: P, DPL0, type 0xb, L, G */
	put64(gdt + 16, 0x00cf93000000ffffull); /* data: P, DPL0, type 0x3, D/B, G */

	/* Page tables: 4 GiB identity. */
	put64(low + HVT_PML4_BASE, HVT_PDPT_BASE | PTE_P | PTE_RW);
	for (uint64_t i = 0; i < 4; i++)
		put64(low + HVT_PDPT_BASE + i * 8, (HVT_PD_BASE + i * 0x1000) | PTE_P | PTE_RW);
	for (uint64_t i = 0; i < 4 * 512; i++) {
		uint64_t pde = (i << 21) | PTE_P | PTE_RW | PTE_PS;
		if (i == 0)
			pde = HVT_PT_BASE | PTE_P | PTE_RW;
		put64(low + HVT_PD_BASE + i * 8, pde);
	}
	for (uint64_t i = 0; i < 512; i++) {
		uint64_t a = i << 12, pte;
		if (a < HVT_BOOT_INFO_BASE)
			pte = 0; /* not present: NULL and the host's tables */
		else if (a < HVT_GUEST_MIN_BASE)
			pte = a | PTE_P; /* boot info, manifest, command line: read-only */
		else
			pte = a | PTE_P | PTE_RW;
		put64(low + HVT_PT_BASE + i * 8, pte);
	}

	memcpy(low + HVT_MFT_GPA, mft, mft_size);
	memcpy(low + HVT_CMDLINE_GPA, cmdline, clen + 1);
	struct hvt_boot_info bi = {
	    .mem_size = m->size,
	    .kernel_end = im->kernel_end,
	    .cpu_cycle_freq = tsc_hz,
	    .cmdline = HVT_CMDLINE_GPA,
	    .mft = HVT_MFT_GPA,
	    .host_features = 0,
	    .guest_features = 0,
	    .net_ring = 0,
	};
	memcpy(low + HVT_BOOT_INFO_BASE, &bi, sizeof(bi));
	return 0;
}

static struct kvm_segment seg(uint16_t sel, uint8_t type, uint8_t l, uint8_t db)
{
	struct kvm_segment s = {
	    .base = 0,
	    .limit = 0xffffffff,
	    .selector = sel,
	    .type = type,
	    .present = 1,
	    .dpl = 0,
	    .db = db,
	    .s = 1,
	    .l = l,
	    .g = 1,
	};
	return s;
}

int hvt_boot_vcpu(int vcpu_fd, uint64_t entry, uint64_t mem_size, struct errbuf *e)
{
	struct kvm_sregs s;
	if (ioctl(vcpu_fd, KVM_GET_SREGS, &s) < 0)
		return err_set(e, "KVM_GET_SREGS: %s", strerror(errno));
	s.cr0 = 0x80010021ull; /* PE, NE, WP, PG */
	s.cr3 = HVT_PML4_BASE;
	s.cr4 = 0x620ull;  /* PAE, OSFXSR, OSXMMEXCPT */
	s.efer = 0x500ull; /* LME, LMA */
	s.cs = seg(HVT_SEL_CODE, 11, 1, 0);
	s.ss = s.ds = s.es = s.fs = s.gs = seg(HVT_SEL_DATA, 3, 0, 1);
	memset(&s.tr, 0, sizeof(s.tr));
	s.tr.type = 11; /* busy 64-bit TSS, base and limit 0 */
	s.tr.present = 1;
	memset(&s.ldt, 0, sizeof(s.ldt));
	s.ldt.unusable = 1;
	s.gdt.base = HVT_GDT_BASE;
	s.gdt.limit = 23;
	s.idt.base = 0;
	s.idt.limit = 0;
	if (ioctl(vcpu_fd, KVM_SET_SREGS, &s) < 0)
		return err_set(e, "KVM_SET_SREGS: %s", strerror(errno));
	struct kvm_regs r;
	memset(&r, 0, sizeof(r));
	r.rip = entry;
	r.rsp = mem_size - 8;
	r.rdi = HVT_BOOT_INFO_BASE;
	r.rflags = 0x2;
	if (ioctl(vcpu_fd, KVM_SET_REGS, &r) < 0)
		return err_set(e, "KVM_SET_REGS: %s", strerror(errno));
	return 0;
}
