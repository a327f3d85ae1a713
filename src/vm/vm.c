/*
 * vm.c: the KVM virtual machine (see vm.h).
 */
#include "vm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util/log.h"

#define CPUID_MAX_ENTRIES 256

static int kvm_check_ext(int fd, int cap)
{
	int r = ioctl(fd, KVM_CHECK_EXTENSION, cap);
	return r < 0 ? 0 : r;
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The piece boundaries: 0, RAM's end, and the edges of every window granted
 * to a parallel VMM; sorted, unique. Returns their count, or 0 when there
 * are more than MAX. */
static size_t memory_bounds(const struct vmmux_config *c, uint64_t *b, size_t max)
{
	size_t n = 0;
	b[n++] = 0;
	b[n++] = c->mem_bytes;
	for (size_t i = 0; i < c->nvmms; i++) {
		const struct vmm_config *v = &c->vmms[i];
		if (v->placement != VMM_PARALLEL || v->memory_all)
			continue;
		for (size_t w = 0; w < v->nwindows; w++) {
			if (n + 2 > max)
				return 0;
			b[n++] = v->windows[w].gpa;
			b[n++] = v->windows[w].gpa + v->windows[w].size;
		}
	}
	qsort(b, n, sizeof(b[0]), u64_cmp);
	size_t u = 0;
	for (size_t i = 0; i < n; i++)
		if (b[i] <= c->mem_bytes && (u == 0 || b[i] != b[u - 1]))
			b[u++] = b[i];
	return u;
}

static int create_piece(struct vm *vm, unsigned slot, uint64_t gpa, uint64_t size, struct errbuf *e)
{
	char name[48];
	snprintf(name, sizeof(name), "vmmux-ram@0x%llx", (unsigned long long)gpa);
	struct gm_piece *p = &vm->mem.pieces[slot];
	p->gpa = gpa;
	p->size = size;
	p->memfd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	vm->mem.npieces = slot + 1;
	if (p->memfd < 0)
		return err_set(e, "guest RAM: memfd_create: %s", strerror(errno));
	if (ftruncate(p->memfd, (off_t)size) < 0)
		return err_set(e, "guest RAM: cannot size a memfd to %llu bytes: %s",
			       (unsigned long long)size, strerror(errno));
	/* A parallel VMM holding the memfd must not be able to resize it. */
	if (fcntl(p->memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
		return err_set(e, "guest RAM: sealing a memfd: %s", strerror(errno));
	void *at = mmap(vm->mem.host + gpa, size, PROT_READ | PROT_WRITE,
			MAP_SHARED | MAP_FIXED | MAP_NORESERVE, p->memfd, 0);
	if (at == MAP_FAILED)
		return err_set(e, "guest RAM: mmap of %llu bytes: %s", (unsigned long long)size,
			       strerror(errno));
	struct kvm_userspace_memory_region region = {
	    .slot = slot,
	    .guest_phys_addr = gpa,
	    .memory_size = size,
	    .userspace_addr = (uint64_t)(uintptr_t)at,
	};
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		return err_set(e, "KVM_SET_USER_MEMORY_REGION (slot %u, %llu bytes at 0x%llx): %s",
			       slot, (unsigned long long)size, (unsigned long long)gpa,
			       strerror(errno));
	vm->slots[vm->nslots++] = (struct vm_slot){.id = slot, .gpa = gpa, .size = size};
	if (slot >= vm->next_slot_id)
		vm->next_slot_id = slot + 1;
	return 0;
}

/* (Re)register slot S of guest RAM with KVM. */
static int set_slot(struct vm *vm, const struct vm_slot *s, struct errbuf *e)
{
	struct kvm_userspace_memory_region region = {
	    .slot = s->id,
	    .flags = s->readonly ? KVM_MEM_READONLY : 0,
	    .guest_phys_addr = s->gpa,
	    .memory_size = s->size,
	    .userspace_addr = (uint64_t)(uintptr_t)(vm->mem.host + s->gpa),
	};
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		return err_set(e,
			       "KVM_SET_USER_MEMORY_REGION (slot %u, %llu bytes at 0x%llx%s): %s",
			       s->id, (unsigned long long)s->size, (unsigned long long)s->gpa,
			       s->readonly ? ", read-only" : "", strerror(errno));
	return 0;
}

int vm_set_readonly(struct vm *vm, uint64_t gpa, uint64_t size, struct errbuf *e)
{
	if (size == 0 || gpa % 4096 || size % 4096 || !gm_range_ok(&vm->mem, gpa, size))
		return err_set(e, "read-only range 0x%llx+0x%llx is not page aligned inside RAM",
			       (unsigned long long)gpa, (unsigned long long)size);
	if (kvm_check_ext(vm->kvm_fd, KVM_CAP_READONLY_MEM) <= 0)
		return err_set(e, "KVM lacks KVM_CAP_READONLY_MEM (read-only guest memory)");
	unsigned i = 0;
	while (i < vm->nslots &&
	       !(vm->slots[i].gpa <= gpa && gpa - vm->slots[i].gpa <= vm->slots[i].size &&
		 size <= vm->slots[i].gpa + vm->slots[i].size - gpa))
		i++;
	if (i == vm->nslots)
		return err_set(e, "read-only range 0x%llx+0x%llx crosses a memory slot",
			       (unsigned long long)gpa, (unsigned long long)size);
	struct vm_slot old = vm->slots[i];
	if (old.readonly)
		return 0;
	struct vm_slot parts[3] = {
	    {.id = old.id, .gpa = old.gpa, .size = gpa - old.gpa},
	    {.id = 0, .gpa = gpa, .size = size, .readonly = true},
	    {.id = 0, .gpa = gpa + size, .size = old.gpa + old.size - gpa - size},
	};
	unsigned need = (parts[0].size == 0) + 1u + (parts[2].size != 0);
	if (vm->nslots + need > VM_SLOTS_MAX)
		return err_set(e, "too many memory slots");
	/* KVM refuses overlapping slots: remove the old one first. */
	struct vm_slot gone = old;
	gone.size = 0;
	if (set_slot(vm, &gone, e) < 0)
		return -1;
	vm->slots[i] = vm->slots[--vm->nslots];
	bool reused = false; /* the first part keeps the old slot's id */
	for (unsigned k = 0; k < 3; k++) {
		if (parts[k].size == 0)
			continue;
		parts[k].id = reused ? vm->next_slot_id++ : old.id;
		reused = true;
		if (set_slot(vm, &parts[k], e) < 0)
			return -1;
		vm->slots[vm->nslots++] = parts[k];
	}
	return 0;
}

static int create_memory(struct vm *vm, const struct vmmux_config *c, struct errbuf *e)
{
	uint64_t bounds[GM_PIECES_MAX + 1];
	size_t nb = memory_bounds(c, bounds, GM_PIECES_MAX + 1);
	if (nb < 2)
		return err_set(e,
			       "guest RAM: the memory windows of the parallel VMMs cut it into "
			       "more than %d pieces (at most %d window edges in all)",
			       GM_PIECES_MAX, GM_PIECES_MAX - 1);
	void *p =
	    mmap(NULL, c->mem_bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return err_set(e, "guest RAM: reserving %llu bytes: %s",
			       (unsigned long long)c->mem_bytes, strerror(errno));
	vm->mem.host = p;
	vm->mem.size = c->mem_bytes;
	for (size_t i = 0; i + 1 < nb; i++)
		if (create_piece(vm, (unsigned)i, bounds[i], bounds[i + 1] - bounds[i], e) < 0)
			return -1;
	vm->mem.memfd = vm->mem.npieces == 1 ? vm->mem.pieces[0].memfd : -1;
	return 0;
}

/* Give each vCPU its own APIC ID in the CPUID leaves that report one. */
static void cpuid_set_apic_id(struct kvm_cpuid2 *cpuid, unsigned index)
{
	for (uint32_t i = 0; i < cpuid->nent; i++) {
		struct kvm_cpuid_entry2 *ent = &cpuid->entries[i];
		switch (ent->function) {
		case 1:
			ent->ebx = (ent->ebx & 0x00ffffffu) | (index << 24);
			break;
		case 0xb:
		case 0x1f:
			ent->edx = index;
			break;
		default:
			break;
		}
	}
}

static int create_vcpu(struct vm *vm, unsigned index, struct errbuf *e)
{
	struct vm_vcpu *v = &vm->vcpus[index];
	v->index = index;
	v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)index);
	if (v->fd < 0)
		return err_set(e, "KVM_CREATE_VCPU %u: %s", index, strerror(errno));
	void *run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (run == MAP_FAILED)
		return err_set(e, "vCPU %u: mmap of kvm_run: %s", index, strerror(errno));
	v->run = run;

	size_t sz = sizeof(struct kvm_cpuid2) + vm->cpuid->nent * sizeof(struct kvm_cpuid_entry2);
	struct kvm_cpuid2 *c = malloc(sz);
	if (c == NULL)
		return err_set(e, "vCPU %u: out of memory", index);
	memcpy(c, vm->cpuid, sz);
	cpuid_set_apic_id(c, index);
	int r = ioctl(v->fd, KVM_SET_CPUID2, c);
	free(c);
	if (r < 0)
		return err_set(e, "vCPU %u: KVM_SET_CPUID2: %s", index, strerror(errno));
	return 0;
}

int vm_create(struct vm *vm, const struct vmmux_config *c, struct errbuf *e)
{
	memset(vm, 0, sizeof(*vm));
	vm->kvm_fd = vm->vm_fd = vm->mem.memfd = -1;

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0)
		return err_set(e, "cannot open /dev/kvm: %s", strerror(errno));
	int api = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (api != KVM_API_VERSION)
		return err_set(e, "/dev/kvm speaks KVM API version %d, vmmux needs %d", api,
			       KVM_API_VERSION);
	/* (KVM_CREATE_VM fails with EINTR when a signal is pending; the run's
	 * signals are blocked here, but a child's SIGCHLD may come) */
	do
		vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	while (vm->vm_fd < 0 && errno == EINTR);
	if (vm->vm_fd < 0)
		return err_set(e, "KVM_CREATE_VM: %s", strerror(errno));
	int sz = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (sz <= 0)
		return err_set(e, "KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
	vm->run_size = (size_t)sz;

	/* Only needed by Intel VMX for real mode; harmless elsewhere. */
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, 0xfffbd000ul) < 0)
		log_debug("KVM_SET_TSS_ADDR: %s (ignored)", strerror(errno));

	if (create_memory(vm, c, e))
		return -1;

	vm->irqchip = c->irqchip;
	if (c->irqchip) {
		if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
			return err_set(e, "KVM_CREATE_IRQCHIP: %s", strerror(errno));
		struct kvm_pit_config pit = {.flags = 0};
		if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
			return err_set(e, "KVM_CREATE_PIT2: %s", strerror(errno));
	}

	if (kvm_check_ext(vm->kvm_fd, KVM_CAP_X86_USER_SPACE_MSR)) {
		struct kvm_enable_cap cap = {
		    .cap = KVM_CAP_X86_USER_SPACE_MSR,
		    .args[0] = KVM_MSR_EXIT_REASON_FILTER | KVM_MSR_EXIT_REASON_UNKNOWN,
		};
		if (ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap) < 0)
			return err_set(e, "KVM_ENABLE_CAP(KVM_CAP_X86_USER_SPACE_MSR): %s",
				       strerror(errno));
		vm->msr_exits = true;
	} else {
		log_warn("KVM lacks KVM_CAP_X86_USER_SPACE_MSR: MSR accesses stay inside KVM");
	}

	vm->cpuid = calloc(1, sizeof(struct kvm_cpuid2) +
				  CPUID_MAX_ENTRIES * sizeof(struct kvm_cpuid_entry2));
	if (vm->cpuid == NULL)
		return err_set(e, "out of memory");
	vm->cpuid->nent = CPUID_MAX_ENTRIES;
	if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, vm->cpuid) < 0)
		return err_set(e, "KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));

	vm->ncpus = c->cpus;
	vm->vcpus = calloc(c->cpus, sizeof(*vm->vcpus));
	if (vm->vcpus == NULL)
		return err_set(e, "out of memory");
	for (unsigned i = 0; i < c->cpus; i++)
		vm->vcpus[i].fd = -1;
	for (unsigned i = 0; i < c->cpus; i++)
		if (create_vcpu(vm, i, e))
			return -1;
	return 0;
}

void vm_destroy(struct vm *vm)
{
	if (vm->vcpus) {
		for (unsigned i = 0; i < vm->ncpus; i++) {
			if (vm->vcpus[i].run)
				munmap(vm->vcpus[i].run, vm->run_size);
			if (vm->vcpus[i].fd >= 0)
				close(vm->vcpus[i].fd);
		}
		free(vm->vcpus);
		vm->vcpus = NULL;
	}
	free(vm->cpuid);
	vm->cpuid = NULL;
	if (vm->mem.host)
		munmap(vm->mem.host, vm->mem.size);
	vm->mem.host = NULL;
	for (unsigned i = 0; i < vm->mem.npieces; i++)
		if (vm->mem.pieces[i].memfd >= 0)
			close(vm->mem.pieces[i].memfd);
	vm->mem.npieces = 0;
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	vm->mem.memfd = vm->vm_fd = vm->kvm_fd = -1;
}

#define MSR_FILTER_RANGES 16
#define MSR_BITMAP_BYTES  0x600

int vm_set_msr_filter(struct vm *vm, const struct route_table *t, struct errbuf *e)
{
	struct route_range ranges[MSR_FILTER_RANGES];
	int n = route_table_msr_ranges(t, ranges, MSR_FILTER_RANGES, e);
	if (n < 0)
		return -1;
	if (!vm->msr_exits) {
		if (n > 0)
			return err_set(e, "MSR routes need KVM_CAP_X86_USER_SPACE_MSR, which this "
					  "KVM lacks");
		return 0;
	}
	uint8_t(*bitmaps)[MSR_BITMAP_BYTES] = calloc(MSR_FILTER_RANGES, MSR_BITMAP_BYTES);
	if (bitmaps == NULL)
		return err_set(e, "out of memory");
	struct kvm_msr_filter f = {.flags = KVM_MSR_FILTER_DEFAULT_ALLOW};
	for (int i = 0; i < n; i++) {
		uint64_t count = ranges[i].hi - ranges[i].lo + 1;
		if (count > MSR_BITMAP_BYTES * 8) {
			free(bitmaps);
			return err_set(e, "MSR filter range 0x%llx-0x%llx is too wide",
				       (unsigned long long)ranges[i].lo,
				       (unsigned long long)ranges[i].hi);
		}
		/* A set bit allows the access inside KVM; a clear bit exits. */
		memset(bitmaps[i], 0xff, sizeof(bitmaps[i]));
		for (uint64_t k = 0; k < count; k++)
			if (route_lookup_msr(t, (uint32_t)(ranges[i].lo + k)) != ROUTE_NONE)
				bitmaps[i][k / 8] &= (uint8_t) ~(1u << (k % 8));
		f.ranges[i].flags = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE;
		f.ranges[i].base = (uint32_t)ranges[i].lo;
		f.ranges[i].nmsrs = (uint32_t)count;
		f.ranges[i].bitmap = bitmaps[i];
	}
	int r = ioctl(vm->vm_fd, KVM_X86_SET_MSR_FILTER, &f);
	int saved = errno;
	free(bitmaps);
	if (r < 0)
		return err_set(e, "KVM_X86_SET_MSR_FILTER (%d ranges): %s", n, strerror(saved));
	return 0;
}

int vm_vcpu_guest_debug(struct vm *vm, unsigned index, const struct vmmux_config *c, bool step_over,
			struct errbuf *e)
{
	struct kvm_guest_debug dbg = {.control = 0};
	const struct vm_debug *d = vm->dbg != NULL && vm->dbg->on ? vm->dbg : NULL;
	bool step = c->single_step || step_over || (d != NULL && d->step[index]);
	if (c->single_step || c->nbreakpoints || c->sw_breakpoints || step_over || d != NULL)
		dbg.control = KVM_GUESTDBG_ENABLE;
	if (step)
		dbg.control |= KVM_GUESTDBG_SINGLESTEP;
	if (c->sw_breakpoints)
		dbg.control |= KVM_GUESTDBG_USE_SW_BP;
	if (d != NULL && (d->dr7 & 0xff) && !step_over) {
		dbg.control |= KVM_GUESTDBG_USE_HW_BP;
		for (size_t i = 0; i < 4; i++)
			dbg.arch.debugreg[i] = d->dr[i];
		dbg.arch.debugreg[7] = d->dr7;
	} else if (c->nbreakpoints && !step_over) {
		dbg.control |= KVM_GUESTDBG_USE_HW_BP;
		uint64_t dr7 = 0;
		for (size_t i = 0; i < c->nbreakpoints && i < 4; i++) {
			dbg.arch.debugreg[i] = c->breakpoints[i];
			dr7 |= 1ull << (i * 2); /* Ln: local enable; RW=00 execute, LEN=00 */
		}
		dbg.arch.debugreg[7] = dr7;
	}
	if (ioctl(vm->vcpus[index].fd, KVM_SET_GUEST_DEBUG, &dbg) < 0)
		return err_set(e, "vCPU %u: KVM_SET_GUEST_DEBUG: %s", index, strerror(errno));
	return 0;
}

int vm_set_guest_debug(struct vm *vm, const struct vmmux_config *c, struct errbuf *e)
{
	if (!c->single_step && c->nbreakpoints == 0 && !c->sw_breakpoints)
		return 0;
	for (unsigned i = 0; i < vm->ncpus; i++)
		if (vm_vcpu_guest_debug(vm, i, c, false, e) < 0)
			return -1;
	return 0;
}

int vm_irq_line(struct vm *vm, uint32_t line, int level)
{
	if (!vm->irqchip)
		return -1;
	struct kvm_irq_level irq = {.irq = line, .level = level ? 1 : 0};
	return ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq);
}

static void dump_seg(const char *name, const struct kvm_segment *s)
{
	fprintf(stderr, "  %-3s sel=%04x base=%016llx limit=%08x type=%x dpl=%u p=%u l=%u db=%u\n",
		name, s->selector, (unsigned long long)s->base, s->limit, s->type, s->dpl,
		s->present, s->l, s->db);
}

void vm_dump_vcpu(struct vm *vm, unsigned index)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	int fd = vm->vcpus[index].fd;
	if (ioctl(fd, KVM_GET_REGS, &r) < 0 || ioctl(fd, KVM_GET_SREGS, &s) < 0) {
		fprintf(stderr, "vmmux: vCPU %u: cannot read registers: %s\n", index,
			strerror(errno));
		return;
	}
	fprintf(stderr,
		"vmmux: vCPU %u registers:\n"
		"  rip=%016llx rflags=%016llx\n"
		"  rax=%016llx rbx=%016llx rcx=%016llx rdx=%016llx\n"
		"  rsi=%016llx rdi=%016llx rsp=%016llx rbp=%016llx\n"
		"  r8 =%016llx r9 =%016llx r10=%016llx r11=%016llx\n"
		"  r12=%016llx r13=%016llx r14=%016llx r15=%016llx\n"
		"  cr0=%016llx cr2=%016llx cr3=%016llx cr4=%016llx efer=%016llx\n",
		index, r.rip, r.rflags, r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rsp, r.rbp,
		r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, s.cr0, s.cr2, s.cr3, s.cr4,
		s.efer);
	dump_seg("cs", &s.cs);
	dump_seg("ss", &s.ss);
	dump_seg("ds", &s.ds);
	dump_seg("tr", &s.tr);
	fprintf(stderr, "  gdt base=%016llx limit=%04x idt base=%016llx limit=%04x\n",
		(unsigned long long)s.gdt.base, s.gdt.limit, (unsigned long long)s.idt.base,
		s.idt.limit);
}
