/*
 * hvt_dumpcore.c: `vmmux hvt --dumpcore=DIR`, solo5-hvt-debug's core dump
 * of an aborted guest (hvt.h).
 *
 * On an abort (the halt hypercall with status 255, with or without a trap
 * frame as its cookie) or a guest trap that ends the run (an exception or a
 * triple fault), the main VMM writes DIR/core.solo5-hvt.PID (solo5-hvt's
 * name, so that scripts that look for it find it), created exclusively,
 * mode 0600: an ELF64 ET_CORE for EM_X86_64 with two program headers,
 *   PT_NOTE  one NT_PRSTATUS note (owner "CORE"): the vCPU's general
 *            registers, segment selectors and FS/GS bases in the layout of
 *            struct user_regs_struct, as a Linux process core carries them;
 *            when the cookie names a trap frame (struct hvt_trap_regs: cr2,
 *            error code, rip, cs, rflags, rsp, ss, as Solo5's trap handler
 *            lays it out), its rip, cs, rflags, rsp and ss replace the
 *            vCPU's, which are those of the halt hypercall
 *   PT_LOAD  all of guest memory at vaddr = paddr = 0 (the unikernel is
 *            identity mapped), pages of zeros left as holes (a sparse file)
 * so that `gdb UNIKERNEL CORE` shows the registers, the backtrace and the
 * variables at the abort. The dump is written by the vCPU thread before the
 * run ends; an error is reported ("dumpcore: ...") and the status stays the
 * guest's.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/procfs.h>
#include <sys/stat.h>
#include <sys/user.h>
#include <unistd.h>

#include "hvt/hvt.h"
#include "vm/vm.h"
#include "vmm/machine.h"

/* The trap frame a Solo5 guest passes as the halt cookie on a trap. */
struct hvt_trap_regs {
	uint64_t cr2, ec, rip, cs, rflags, rsp, ss;
};

int hvt_dumpcore_open_dir(const char *dir, struct errbuf *e)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, "--dumpcore=%s: cannot open the directory: %s", dir,
			       strerror(errno));
	if (faccessat(fd, ".", W_OK, 0) < 0) {
		int err = errno;
		close(fd);
		return err_set(e, "--dumpcore=%s: the directory is not writable: %s", dir,
			       strerror(err));
	}
	return fd;
}

/* Write LEN bytes at OFF. */
static int put(int fd, const void *buf, size_t len, off_t off)
{
	const uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

static bool page_is_zero(const uint8_t *p)
{
	static const uint8_t zero[4096];
	return memcmp(p, zero, sizeof(zero)) == 0;
}

void hvt_dumpcore(unsigned vcpu, uint64_t cookie, const char *why)
{
	struct hvt_host *h = &hvt_host;
	struct vm *vm = machine_vm();
	if (!h->dumpcore_on || h->dumpcore_dir_fd < 0 || vcpu >= vm->ncpus)
		return;
	int dir = h->dumpcore_dir_fd;
	h->dumpcore_dir_fd = -1; /* one dump per run */
	h->dumpcore_on = false;
	char name[64];
	snprintf(name, sizeof(name), "core.solo5-hvt.%d", (int)getpid());
	int fd = openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, S_IRUSR | S_IWUSR);
	close(dir);
	if (fd < 0) {
		fprintf(stderr, "vmmux hvt: dumpcore: %s/%s: %s\n", h->dumpcore_dir, name,
			strerror(errno));
		return;
	}
	fprintf(stderr, "vmmux hvt: dumpcore (%s): dumping guest core to: %s/%s\n", why,
		h->dumpcore_dir, name);

	/* the registers */
	struct kvm_regs r;
	struct kvm_sregs s;
	prstatus_t pr;
	memset(&pr, 0, sizeof(pr));
	struct user_regs_struct *u = (struct user_regs_struct *)&pr.pr_reg;
	_Static_assert(sizeof(pr.pr_reg) == sizeof(*u), "pr_reg is user_regs_struct");
	if (ioctl(vm->vcpus[vcpu].fd, KVM_GET_REGS, &r) < 0 ||
	    ioctl(vm->vcpus[vcpu].fd, KVM_GET_SREGS, &s) < 0) {
		fprintf(stderr, "vmmux hvt: dumpcore: reading the vCPU's registers: %s\n",
			strerror(errno));
		close(fd);
		return;
	}
	*u = (struct user_regs_struct){
	    .r15 = r.r15,
	    .r14 = r.r14,
	    .r13 = r.r13,
	    .r12 = r.r12,
	    .rbp = r.rbp,
	    .rbx = r.rbx,
	    .r11 = r.r11,
	    .r10 = r.r10,
	    .r9 = r.r9,
	    .r8 = r.r8,
	    .rax = r.rax,
	    .rcx = r.rcx,
	    .rdx = r.rdx,
	    .rsi = r.rsi,
	    .rdi = r.rdi,
	    .orig_rax = ~0ull,
	    .rip = r.rip,
	    .cs = s.cs.selector,
	    .eflags = r.rflags,
	    .rsp = r.rsp,
	    .ss = s.ss.selector,
	    .fs_base = s.fs.base,
	    .gs_base = s.gs.base,
	    .ds = s.ds.selector,
	    .es = s.es.selector,
	    .fs = s.fs.selector,
	    .gs = s.gs.selector,
	};
	struct hvt_trap_regs *t = cookie ? gm_ptr(&vm->mem, cookie, sizeof(*t)) : NULL;
	if (t != NULL) {
		u->rip = t->rip;
		u->cs = t->cs;
		u->eflags = t->rflags;
		u->rsp = t->rsp;
		u->ss = t->ss;
	} else if (cookie) {
		fprintf(stderr,
			"vmmux hvt: dumpcore: the trap frame at 0x%llx is outside guest memory; "
			"the halt's registers are dumped\n",
			(unsigned long long)cookie);
	}

	/* headers, note, then memory from a page boundary */
	struct {
		Elf64_Ehdr eh;
		Elf64_Phdr note, load;
		Elf64_Nhdr nh;
		char name[8];
	} hd;
	memset(&hd, 0, sizeof(hd));
	memcpy(hd.eh.e_ident, ELFMAG, SELFMAG);
	hd.eh.e_ident[EI_CLASS] = ELFCLASS64;
	hd.eh.e_ident[EI_DATA] = ELFDATA2LSB;
	hd.eh.e_ident[EI_VERSION] = EV_CURRENT;
	hd.eh.e_ident[EI_OSABI] = ELFOSABI_NONE;
	hd.eh.e_type = ET_CORE;
	hd.eh.e_machine = EM_X86_64;
	hd.eh.e_version = EV_CURRENT;
	hd.eh.e_phoff = offsetof(__typeof__(hd), note);
	hd.eh.e_ehsize = sizeof(Elf64_Ehdr);
	hd.eh.e_phentsize = sizeof(Elf64_Phdr);
	hd.eh.e_phnum = 2;
	uint64_t note_off = offsetof(__typeof__(hd), nh);
	uint64_t note_size = sizeof(hd.nh) + sizeof(hd.name) + sizeof(pr);
	uint64_t mem_off = (note_off + note_size + 4095) & ~4095ull;
	hd.note = (Elf64_Phdr){
	    .p_type = PT_NOTE, .p_offset = note_off, .p_filesz = note_size, .p_align = 4};
	hd.load = (Elf64_Phdr){.p_type = PT_LOAD,
			       .p_flags = PF_R | PF_W | PF_X,
			       .p_offset = mem_off,
			       .p_filesz = vm->mem.size,
			       .p_memsz = vm->mem.size,
			       .p_align = 4096};
	hd.nh = (Elf64_Nhdr){.n_namesz = 5, .n_descsz = sizeof(pr), .n_type = NT_PRSTATUS};
	memcpy(hd.name, "CORE", 5);
	int rc = put(fd, &hd, sizeof(hd), 0);
	if (rc == 0)
		rc = put(fd, &pr, sizeof(pr), (off_t)(note_off + sizeof(hd.nh) + sizeof(hd.name)));
	size_t dumped = 0, pages = vm->mem.size / 4096;
	for (size_t pg = 0; rc == 0 && pg < pages; pg++) {
		const uint8_t *p = vm->mem.host + pg * 4096;
		if (page_is_zero(p))
			continue;
		rc = put(fd, p, 4096, (off_t)(mem_off + pg * 4096));
		dumped++;
	}
	if (rc == 0 && ftruncate(fd, (off_t)(mem_off + vm->mem.size)) < 0)
		rc = -1;
	if (rc < 0)
		fprintf(stderr, "vmmux hvt: dumpcore: writing %s: %s (the file is incomplete)\n",
			name, strerror(errno));
	else
		fprintf(stderr, "vmmux hvt: dumpcore: dumped %zu pages of total %zu pages\n",
			dumped, pages);
	close(fd);
}
