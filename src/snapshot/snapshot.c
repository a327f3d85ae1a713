/*
 * snapshot.c: storing the machine in a file and resuming it (snapshot.h,
 * docs/snapshot.md).
 */
#include "snapshot/snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/kvm.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "event/event.h"
#include "route/router.h"
#include "snapshot/format.h"
#include "snapshot/update.h"
#include "stats/stats.h"
#include "transport/transport.h"
#include "util/log.h"
#include "vm/ioregion.h"
#include "vm/vm.h"
#include "vmm/machine.h"
#include "vmm/parallel.h"
#include "vmm/vmm.h"

#define STATE_MAX     (1u << 20) /* a role's saved state */
#define PAUSE_NS      5000000000ull
#define SNAP_MSRS_MAX 1024u

/* ---------------------------------------------------------------------- */
/* The command line of the run                                              */
/* ---------------------------------------------------------------------- */

static struct {
	int argc;
	char **argv;
	char *cwd;
} cmdline;

void snapshot_set_command_line(int argc, char **argv)
{
	cmdline.argv = calloc((size_t)argc + 1, sizeof(char *));
	if (cmdline.argv == NULL)
		return;
	for (int i = 0; i < argc; i++)
		if ((cmdline.argv[i] = strdup(argv[i])) == NULL)
			return;
	cmdline.argc = argc;
	cmdline.cwd = getcwd(NULL, 0);
}

/* ---------------------------------------------------------------------- */
/* KVM state: what this host's KVM can save                                 */
/* ---------------------------------------------------------------------- */

/* The MSRs to save: KVM_GET_MSR_INDEX_LIST, less those KVM_GET_MSRS does
 * not read back (found on the first vCPU). */
static struct {
	bool probed;
	uint32_t n;
	uint32_t index[SNAP_MSRS_MAX];
	int xsave_size; /* 0: no XSAVE (FPU record instead) */
	bool xsave2, sregs2, xcrs;
} K;

/* An ioctl that this KVM does not implement: the record is left out. */
static bool unsupported(int err)
{
	return err == EINVAL || err == ENOTTY || err == EOPNOTSUPP || err == ENOSYS;
}

/* Said once per run and ioctl (the names below, a fixed set). */
static void note_unsupported(const char *what, int err)
{
	static const char *const names[] = {"KVM_GET_SREGS2",	 "KVM_GET_XSAVE",
					    "KVM_GET_XCRS",	 "KVM_GET_MP_STATE",
					    "KVM_GET_DEBUGREGS", "KVM_GET_CLOCK"};
	static _Atomic uint32_t said;
	uint32_t bit = 0;
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(names[i], what) == 0)
			bit = 1u << i;
	if (bit == 0 || !(atomic_fetch_or(&said, bit) & bit))
		log_info("snapshot: %s is not supported by this KVM (%s): its state is not "
			 "saved",
			 what, strerror(err));
}

static int probe(struct vm *vm, struct errbuf *e)
{
	if (K.probed)
		return 0;
	int r = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	if (r > 0) {
		K.xsave2 = true;
		K.xsave_size = r < 4096 ? 4096 : r;
	} else if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE) > 0) {
		K.xsave_size = 4096;
	}
	K.sregs2 = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SREGS2) > 0;
	K.xcrs = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0;

	struct kvm_msr_list *l = calloc(1, sizeof(*l) + SNAP_MSRS_MAX * sizeof(uint32_t));
	if (l == NULL)
		return err_set(e, "out of memory");
	l->nmsrs = SNAP_MSRS_MAX;
	if (ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, l) < 0) {
		int err = errno;
		free(l);
		return err_set(e, "KVM_GET_MSR_INDEX_LIST: %s", strerror(err));
	}
	K.n = l->nmsrs;
	memcpy(K.index, l->indices, K.n * sizeof(uint32_t));
	free(l);
	K.probed = true;
	log_debug("snapshot: KVM reports %u saveable MSRs; XSAVE %d bytes%s, SREGS2 %s, XCRS %s",
		  K.n, K.xsave_size, K.xsave2 ? " (XSAVE2)" : "", K.sregs2 ? "yes" : "no",
		  K.xcrs ? "yes" : "no");
	return 0;
}

/* Read the MSRs of K into a kvm_msrs buffer; an MSR that KVM_GET_MSRS
 * does not read is dropped from K (for every later vCPU too). */
static struct kvm_msrs *read_msrs(int fd, unsigned cpu, struct errbuf *e)
{
	struct kvm_msrs *m = calloc(1, sizeof(*m) + SNAP_MSRS_MAX * sizeof(struct kvm_msr_entry));
	if (m == NULL) {
		err_set(e, "out of memory");
		return NULL;
	}
	for (;;) {
		m->nmsrs = K.n;
		for (uint32_t i = 0; i < K.n; i++)
			m->entries[i] = (struct kvm_msr_entry){.index = K.index[i]};
		int r = ioctl(fd, KVM_GET_MSRS, m);
		if (r < 0) {
			err_set(e, "vCPU %u: KVM_GET_MSRS: %s", cpu, strerror(errno));
			free(m);
			return NULL;
		}
		if ((uint32_t)r >= K.n)
			return m;
		log_debug("snapshot: MSR 0x%x is listed as saveable but KVM_GET_MSRS does not read "
			  "it: left out",
			  K.index[r]);
		memmove(&K.index[r], &K.index[r + 1], (K.n - (uint32_t)r - 1) * sizeof(uint32_t));
		K.n--;
	}
}

/* One vCPU's state as the records of its section. */
static int capture_vcpu(struct vm *vm, unsigned i, struct snap_buf *b, struct errbuf *e)
{
	int fd = vm->vcpus[i].fd;
	struct kvm_regs regs;
	if (ioctl(fd, KVM_GET_REGS, &regs) < 0)
		return err_set(e, "vCPU %u: KVM_GET_REGS: %s", i, strerror(errno));
	snap_buf_record(b, SNAP_VR_REGS, &regs, sizeof(regs));
	bool have_sregs = false;
	if (K.sregs2) {
		struct kvm_sregs2 s2;
		if (ioctl(fd, KVM_GET_SREGS2, &s2) == 0) {
			snap_buf_record(b, SNAP_VR_SREGS2, &s2, sizeof(s2));
			have_sregs = true;
		} else if (unsupported(errno)) {
			note_unsupported("KVM_GET_SREGS2", errno);
			K.sregs2 = false;
		} else {
			return err_set(e, "vCPU %u: KVM_GET_SREGS2: %s", i, strerror(errno));
		}
	}
	if (!have_sregs) {
		struct kvm_sregs s;
		if (ioctl(fd, KVM_GET_SREGS, &s) < 0)
			return err_set(e, "vCPU %u: KVM_GET_SREGS: %s", i, strerror(errno));
		snap_buf_record(b, SNAP_VR_SREGS, &s, sizeof(s));
	}
	if (K.xsave_size > 0) {
		void *x = calloc(1, (size_t)K.xsave_size);
		if (x == NULL)
			return err_set(e, "out of memory");
		int r = ioctl(fd, K.xsave2 ? KVM_GET_XSAVE2 : KVM_GET_XSAVE, x);
		if (r == 0)
			snap_buf_record(b, SNAP_VR_XSAVE, x, (size_t)K.xsave_size);
		int err = errno;
		free(x);
		if (r < 0) {
			if (!unsupported(err))
				return err_set(e, "vCPU %u: KVM_GET_XSAVE: %s", i, strerror(err));
			note_unsupported("KVM_GET_XSAVE", err);
			K.xsave_size = 0;
		}
	}
	if (K.xsave_size == 0) {
		struct kvm_fpu f;
		if (ioctl(fd, KVM_GET_FPU, &f) < 0)
			return err_set(e, "vCPU %u: KVM_GET_FPU: %s", i, strerror(errno));
		snap_buf_record(b, SNAP_VR_FPU, &f, sizeof(f));
	}
	if (K.xcrs) {
		struct kvm_xcrs x;
		if (ioctl(fd, KVM_GET_XCRS, &x) == 0)
			snap_buf_record(b, SNAP_VR_XCRS, &x, sizeof(x));
		else if (unsupported(errno))
			note_unsupported("KVM_GET_XCRS", errno), K.xcrs = false;
		else
			return err_set(e, "vCPU %u: KVM_GET_XCRS: %s", i, strerror(errno));
	}
	struct kvm_msrs *m = read_msrs(fd, i, e);
	if (m == NULL)
		return -1;
	snap_buf_record(b, SNAP_VR_MSRS, m, sizeof(*m) + m->nmsrs * sizeof(m->entries[0]));
	free(m);
	if (vm->irqchip) {
		struct kvm_lapic_state l;
		if (ioctl(fd, KVM_GET_LAPIC, &l) < 0)
			return err_set(e, "vCPU %u: KVM_GET_LAPIC: %s", i, strerror(errno));
		snap_buf_record(b, SNAP_VR_LAPIC, &l, sizeof(l));
	}
	struct kvm_vcpu_events ev;
	if (ioctl(fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
		return err_set(e, "vCPU %u: KVM_GET_VCPU_EVENTS: %s", i, strerror(errno));
	snap_buf_record(b, SNAP_VR_EVENTS, &ev, sizeof(ev));
	struct kvm_mp_state mp;
	if (ioctl(fd, KVM_GET_MP_STATE, &mp) == 0)
		snap_buf_record(b, SNAP_VR_MP_STATE, &mp, sizeof(mp));
	else if (unsupported(errno))
		note_unsupported("KVM_GET_MP_STATE", errno);
	else
		return err_set(e, "vCPU %u: KVM_GET_MP_STATE: %s", i, strerror(errno));
	struct kvm_debugregs d;
	if (ioctl(fd, KVM_GET_DEBUGREGS, &d) == 0)
		snap_buf_record(b, SNAP_VR_DEBUGREGS, &d, sizeof(d));
	else if (unsupported(errno))
		note_unsupported("KVM_GET_DEBUGREGS", errno);
	else
		return err_set(e, "vCPU %u: KVM_GET_DEBUGREGS: %s", i, strerror(errno));
	return b->oom ? err_set(e, "out of memory") : 0;
}

/* Set one vCPU from its records, in the order KVM needs: special registers
 * (CR0/CR4/EFER: what the rest is read in), FPU/XSAVE and XCRs, general
 * registers, the LAPIC (before the MSRs: TSC_DEADLINE needs it), MSRs (the
 * TSC among them: the guest's TSC goes on from the saved value), MP state,
 * pending events, debug registers. */
static int apply_vcpu(struct vm *vm, unsigned i, const struct snap_vcpu *s, struct errbuf *e)
{
	int fd = vm->vcpus[i].fd;
	if (s->rec[SNAP_VR_SREGS2] != NULL) {
		struct kvm_sregs2 s2;
		memcpy(&s2, s->rec[SNAP_VR_SREGS2], sizeof(s2));
		if (ioctl(fd, KVM_SET_SREGS2, &s2) < 0)
			return err_set(e, "section VCPU %u: KVM_SET_SREGS2: %s", i,
				       strerror(errno));
	} else {
		struct kvm_sregs sr;
		memcpy(&sr, s->rec[SNAP_VR_SREGS], sizeof(sr));
		if (ioctl(fd, KVM_SET_SREGS, &sr) < 0)
			return err_set(e, "section VCPU %u: KVM_SET_SREGS: %s", i, strerror(errno));
	}
	if (s->rec[SNAP_VR_XSAVE] != NULL) {
		uint32_t n = s->len[SNAP_VR_XSAVE];
		int have = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
		if (n > 4096 && (have <= 0 || (uint32_t)have < n))
			return err_set(
			    e,
			    "section VCPU %u: an XSAVE area of %u bytes, larger than this "
			    "host's (%d)",
			    i, n, have > 0 ? have : 4096);
		void *x = calloc(1, have > 4096 ? (size_t)have : 4096);
		if (x == NULL)
			return err_set(e, "out of memory");
		memcpy(x, s->rec[SNAP_VR_XSAVE], n);
		int r = ioctl(fd, KVM_SET_XSAVE, x);
		int err = errno;
		free(x);
		if (r < 0)
			return err_set(e, "section VCPU %u: KVM_SET_XSAVE: %s", i, strerror(err));
	} else if (s->rec[SNAP_VR_FPU] != NULL) {
		struct kvm_fpu f;
		memcpy(&f, s->rec[SNAP_VR_FPU], sizeof(f));
		if (ioctl(fd, KVM_SET_FPU, &f) < 0)
			return err_set(e, "section VCPU %u: KVM_SET_FPU: %s", i, strerror(errno));
	}
	if (s->rec[SNAP_VR_XCRS] != NULL) {
		struct kvm_xcrs x;
		memcpy(&x, s->rec[SNAP_VR_XCRS], sizeof(x));
		if (ioctl(fd, KVM_SET_XCRS, &x) < 0)
			return err_set(e, "section VCPU %u: KVM_SET_XCRS: %s", i, strerror(errno));
	}
	struct kvm_regs regs;
	memcpy(&regs, s->rec[SNAP_VR_REGS], sizeof(regs));
	if (ioctl(fd, KVM_SET_REGS, &regs) < 0)
		return err_set(e, "section VCPU %u: KVM_SET_REGS: %s", i, strerror(errno));
	if (s->rec[SNAP_VR_LAPIC] != NULL) {
		if (!vm->irqchip)
			return err_set(e,
				       "section VCPU %u: a LAPIC state, but the machine has no "
				       "in-kernel irqchip",
				       i);
		struct kvm_lapic_state l;
		memcpy(&l, s->rec[SNAP_VR_LAPIC], sizeof(l));
		if (ioctl(fd, KVM_SET_LAPIC, &l) < 0)
			return err_set(e, "section VCPU %u: KVM_SET_LAPIC: %s", i, strerror(errno));
	}
	if (s->rec[SNAP_VR_MSRS] != NULL) {
		uint32_t n = s->len[SNAP_VR_MSRS];
		struct kvm_msrs *m = malloc(n);
		if (m == NULL)
			return err_set(e, "out of memory");
		memcpy(m, s->rec[SNAP_VR_MSRS], n);
		uint32_t total = m->nmsrs, done = 0;
		struct kvm_msrs *rest = malloc(n);
		if (rest == NULL) {
			free(m);
			return err_set(e, "out of memory");
		}
		/* KVM_SET_MSRS stops at the first MSR it refuses: that one is
		 * logged and skipped, the rest set. */
		while (done < total) {
			rest->nmsrs = total - done;
			rest->pad = 0;
			memcpy(rest->entries, &m->entries[done],
			       rest->nmsrs * sizeof(m->entries[0]));
			int r = ioctl(fd, KVM_SET_MSRS, rest);
			if (r < 0) {
				int err = errno;
				free(m);
				free(rest);
				return err_set(e, "section VCPU %u: KVM_SET_MSRS: %s", i,
					       strerror(err));
			}
			done += (uint32_t)r;
			if (done < total) {
				log_info("restore: vCPU %u: KVM refuses MSR 0x%x: not restored", i,
					 m->entries[done].index);
				done++;
			}
		}
		free(rest);
		free(m);
	}
	if (s->rec[SNAP_VR_MP_STATE] != NULL) {
		struct kvm_mp_state mp;
		memcpy(&mp, s->rec[SNAP_VR_MP_STATE], sizeof(mp));
		if (ioctl(fd, KVM_SET_MP_STATE, &mp) < 0)
			return err_set(e, "section VCPU %u: KVM_SET_MP_STATE: %s", i,
				       strerror(errno));
	}
	if (s->rec[SNAP_VR_EVENTS] != NULL) {
		struct kvm_vcpu_events ev;
		memcpy(&ev, s->rec[SNAP_VR_EVENTS], sizeof(ev));
		/* the flags every KVM takes (a payload or triple fault needs a
		 * capability this run has not enabled) */
		ev.flags &= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SHADOW |
			    KVM_VCPUEVENT_VALID_SMM;
		if (ioctl(fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
			return err_set(e, "section VCPU %u: KVM_SET_VCPU_EVENTS: %s", i,
				       strerror(errno));
	}
	if (s->rec[SNAP_VR_DEBUGREGS] != NULL) {
		struct kvm_debugregs d;
		memcpy(&d, s->rec[SNAP_VR_DEBUGREGS], sizeof(d));
		if (ioctl(fd, KVM_SET_DEBUGREGS, &d) < 0)
			return err_set(e, "section VCPU %u: KVM_SET_DEBUGREGS: %s", i,
				       strerror(errno));
	}
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Guest memory                                                             */
/* ---------------------------------------------------------------------- */

/* Set while snapshot_write_handover writes a live update's state. */
static const struct snapshot_handover *handover;

/* What restore mapped: the file a restored run's private pieces come from
 * (its untouched pages are that file's), or -1. */
static struct {
	int fd;
	uint64_t data_offset;
} source = {.fd = -1};

struct extents {
	uint64_t *v; /* pairs gpa, len */
	uint64_t n, cap;
	bool oom;
};

static void extent_add(struct extents *x, uint64_t gpa, uint64_t len)
{
	if (x->n > 0 && x->v[2 * x->n - 2] + x->v[2 * x->n - 1] == gpa) {
		x->v[2 * x->n - 1] += len;
		return;
	}
	if (x->n == x->cap) {
		uint64_t cap = x->cap ? x->cap * 2 : 256;
		uint64_t *v = realloc(x->v, cap * 2 * sizeof(uint64_t));
		if (v == NULL) {
			x->oom = true;
			return;
		}
		x->v = v;
		x->cap = cap;
	}
	x->v[2 * x->n] = gpa;
	x->v[2 * x->n + 1] = len;
	x->n++;
}

static bool page_zero(const uint8_t *p)
{
	const uint64_t *q = (const uint64_t *)(const void *)p;
	uint64_t acc = 0;
	for (unsigned i = 0; i < SNAP_PAGE / 8; i++)
		acc |= q[i];
	return acc == 0;
}

/* Mark in CAND the pages of [0, size) that FD holds data for at
 * [base, base + size) (SEEK_DATA/SEEK_HOLE). */
static void mark_data(int fd, uint64_t base, uint64_t size, uint8_t *cand)
{
	off_t at = (off_t)base, end = (off_t)(base + size);
	while (at < end) {
		off_t d = lseek(fd, at, SEEK_DATA);
		if (d < 0 || d >= end)
			return;
		off_t h = lseek(fd, d, SEEK_HOLE);
		if (h < 0 || h > end)
			h = end;
		for (uint64_t p = ((uint64_t)d - base) / SNAP_PAGE;
		     p < ((uint64_t)h - base + SNAP_PAGE - 1) / SNAP_PAGE; p++)
			cand[p] = 1;
		at = h;
	}
}

/* The extents of guest memory that are not zero, page by page, looking
 * only at pages that can hold data: those a memfd piece has allocated;
 * for a piece mapped from the file a run was restored from, those that
 * file holds and those the guest has touched since (resident). */
static int scan_memory(const struct guest_mem *m, struct extents *x, struct errbuf *e)
{
	for (unsigned k = 0; k < m->npieces; k++) {
		const struct gm_piece *pc = &m->pieces[k];
		uint64_t npages = pc->size / SNAP_PAGE;
		uint8_t *cand = calloc(npages ? npages : 1, 1);
		if (cand == NULL)
			return err_set(e, "out of memory");
		if (pc->memfd >= 0) {
			mark_data(pc->memfd, 0, pc->size, cand);
		} else {
			if (mincore(m->host + pc->gpa, pc->size, cand) < 0) {
				free(cand);
				return err_set(e, "guest memory: mincore: %s", strerror(errno));
			}
			for (uint64_t p = 0; p < npages; p++)
				cand[p] &= 1;
			if (source.fd >= 0)
				mark_data(source.fd, source.data_offset + pc->gpa, pc->size, cand);
		}
		for (uint64_t p = 0; p < npages; p++) {
			uint64_t gpa = pc->gpa + p * SNAP_PAGE;
			if (cand[p] && !page_zero(m->host + gpa))
				extent_add(x, gpa, SNAP_PAGE);
		}
		free(cand);
		if (x->oom)
			return err_set(e, "out of memory");
	}
	return 0;
}

static int write_all(int fd, const void *p, size_t n, uint64_t off, struct errbuf *e);

int snapshot_memory_to_memfds(struct guest_mem *m, struct errbuf *e)
{
	for (unsigned k = 0; k < m->npieces; k++) {
		struct gm_piece *pc = &m->pieces[k];
		if (pc->memfd >= 0)
			continue;
		uint64_t npages = pc->size / SNAP_PAGE;
		uint8_t *cand = calloc(npages ? npages : 1, 1);
		int fd = memfd_create("vmmux-guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
		if (cand == NULL || fd < 0 || ftruncate(fd, (off_t)pc->size) < 0 ||
		    mincore(m->host + pc->gpa, pc->size, cand) < 0) {
			err_set(e, "guest RAM at 0x%llx: a memfd for it: %s",
				(unsigned long long)pc->gpa,
				cand ? strerror(errno) : "out of memory");
			free(cand);
			if (fd >= 0)
				close(fd);
			return -1;
		}
		/* the pages that can hold data, as a snapshot finds them */
		for (uint64_t p = 0; p < npages; p++)
			cand[p] &= 1;
		if (source.fd >= 0)
			mark_data(source.fd, source.data_offset + pc->gpa, pc->size, cand);
		for (uint64_t p = 0; p < npages; p++) {
			const uint8_t *at = m->host + pc->gpa + p * SNAP_PAGE;
			if (cand[p] && !page_zero(at) &&
			    write_all(fd, at, SNAP_PAGE, p * SNAP_PAGE, e) < 0) {
				free(cand);
				close(fd);
				return err_prefix(e, "guest RAM at 0x%llx",
						  (unsigned long long)pc->gpa);
			}
		}
		free(cand);
		void *map = mmap(m->host + pc->gpa, pc->size, PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_FIXED | MAP_NORESERVE, fd, 0);
		if (map == MAP_FAILED) {
			/* MAP_FIXED failed: the old mapping is still there */
			close(fd);
			return err_set(e, "guest RAM at 0x%llx: mapping its memfd: %s",
				       (unsigned long long)pc->gpa, strerror(errno));
		}
		(void)fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
		pc->memfd = fd;
	}
	m->memfd = m->npieces == 1 ? m->pieces[0].memfd : -1;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Writing a snapshot                                                       */
/* ---------------------------------------------------------------------- */

struct section {
	uint32_t type, index;
	struct snap_buf b;
};

struct sections {
	struct section *s;
	size_t n, cap;
};

static struct snap_buf *section_new(struct sections *l, uint32_t type, uint32_t index)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 32;
		struct section *s = realloc(l->s, cap * sizeof(*s));
		if (s == NULL)
			return NULL;
		l->s = s;
		l->cap = cap;
	}
	l->s[l->n] = (struct section){.type = type, .index = index};
	return &l->s[l->n++].b;
}

static void sections_free(struct sections *l)
{
	for (size_t i = 0; i < l->n; i++)
		snap_buf_free(&l->s[i].b);
	free(l->s);
}

static const char *role_name(const struct vmm *v)
{
	if (v->role != NULL)
		return v->role->name;
	return v->id == VMM_ID_MAIN ? "main" : "external";
}

static int build_vmm(struct snap_buf *b, struct vmm *v, uint8_t *state, struct errbuf *e)
{
	long len = -1;
	if (v->placement == VMM_PARALLEL) {
		len = pvmm_state_save(v, state, STATE_MAX);
		if (len < 0)
			return err_set(e, "vmm '%s': its saved state cannot be read: %s", v->name,
				       strerror(errno));
	} else if (v->role != NULL && v->role->save != NULL) {
		pthread_mutex_lock(&v->lock);
		len = v->role->save(&v->ctx, state, STATE_MAX);
		pthread_mutex_unlock(&v->lock);
		if (len < 0)
			return err_set(e, "vmm '%s': its role '%s' failed to save its state",
				       v->name, v->role->name);
	}
	snap_buf_u32(b, v->id);
	snap_buf_u32(b, v->placement == VMM_PARALLEL ? SNAP_VMM_PARALLEL : SNAP_VMM_IN_PROCESS);
	snap_buf_u32(b, len >= 0 ? 1u : 0u);
	snap_buf_u32(b, (uint32_t)v->cfg.ngrants);
	snap_buf_str(b, v->name);
	snap_buf_str(b, role_name(v));
	snap_buf_str(b, v->cfg.program);
	for (size_t g = 0; g < v->cfg.ngrants; g++)
		snap_buf_str(b, v->cfg.grants[g]);
	snap_buf_u64(b, len > 0 ? (uint64_t)len : 0);
	if (len > 0)
		snap_buf_bytes(b, state, (size_t)len);
	return 0;
}

/* HANDOVER, version 2: the parallel VMMs (format.h). */
static void build_ho_pvmms(struct snap_buf *b, const struct snapshot_handover *h)
{
	snap_buf_u32(b, h->npvmm);
	for (unsigned i = 0; i < h->npvmm; i++) {
		const struct pvmm_handover *p = &h->pvmm[i];
		snap_buf_str(b, p->name);
		snap_buf_u32(b, p->tp.nslots);
		snap_buf_u32(b, p->nirqs);
		snap_buf_u32(b, (uint32_t)p->pid);
		const int fd[SNAP_HO_FDS] = {p->pidfd,	   p->sock,  p->memfd, p->vmm_efd,
					     p->async_efd, p->errfd, p->in_fd, p->out_fd};
		for (unsigned k = 0; k < SNAP_HO_FDS; k++)
			snap_buf_u32(b, (uint32_t)fd[k]);
		snap_buf_u64(b, p->tp.xseq_next);
		snap_buf_u64(b, p->tp.async_tail);
		snap_buf_u64(b, p->generation);
		snap_buf_u64(b, p->window_start_ns);
		snap_buf_u64(b, p->up_since_ns);
		snap_buf_u64(b, p->backoff_ns);
		snap_buf_u64(b, p->maybe_duplicated);
		snap_buf_u64(b, p->redelivered);
		snap_buf_u32(b, p->restarts);
		snap_buf_u32(b, p->recent_restarts);
		for (unsigned k = 0; k < p->tp.nslots; k++)
			snap_buf_u32(b, p->tp.seq[k]);
		for (unsigned k = 0; k < p->nirqs; k++) {
			snap_buf_u32(b, p->irqs[k].line);
			snap_buf_u32(b,
				     (p->irqs[k].level ? 1u : 0u) | (p->irqs[k].wired ? 2u : 0u));
			snap_buf_u32(b, (uint32_t)p->irqfd[k]);
			snap_buf_u32(b, (uint32_t)p->resamplefd[k]);
		}
	}
	snap_buf_u32(b, h->nio);
	for (unsigned i = 0; i < h->nio; i++) {
		snap_buf_str(b, h->io[i].name);
		snap_buf_u32(b, (uint32_t)h->io[i].in_fd);
		snap_buf_u32(b, (uint32_t)h->io[i].out_fd);
	}
}

static int build_sections(struct sections *l, const struct extents *x, struct errbuf *e)
{
	struct vm *vm = machine_vm();
	const struct vmmux_config *c = machine_config();
	struct snap_buf *b = section_new(l, SNAP_SEC_MACHINE, 0);
	if (b == NULL)
		return err_set(e, "out of memory");
	snap_buf_u64(b, vm->mem.size);
	snap_buf_u32(b, vm->ncpus);
	snap_buf_u32(b, (vm->irqchip ? SNAP_MF_IRQCHIP : 0) | (c->hvt.on ? SNAP_MF_HVT : 0));
	snap_buf_u32(b, (uint32_t)cmdline.argc);
	snap_buf_u32(b, 0);
	snap_buf_str(b, cmdline.cwd);
	for (int i = 0; i < cmdline.argc; i++)
		snap_buf_str(b, cmdline.argv[i]);

	for (unsigned i = 0; i < vm->ncpus; i++) {
		if ((b = section_new(l, SNAP_SEC_VCPU, i)) == NULL)
			return err_set(e, "out of memory");
		if (capture_vcpu(vm, i, b, e) < 0)
			return -1;
	}
	if (vm->irqchip) {
		if ((b = section_new(l, SNAP_SEC_IRQCHIP, 0)) == NULL)
			return err_set(e, "out of memory");
		for (unsigned chip = 0; chip < 3; chip++) {
			struct kvm_irqchip ic = {.chip_id = chip};
			if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &ic) < 0)
				return err_set(e, "KVM_GET_IRQCHIP %u: %s", chip, strerror(errno));
			snap_buf_bytes(b, &ic, sizeof(ic));
		}
		struct kvm_pit_state2 pit;
		if (ioctl(vm->vm_fd, KVM_GET_PIT2, &pit) < 0)
			return err_set(e, "KVM_GET_PIT2: %s", strerror(errno));
		if ((b = section_new(l, SNAP_SEC_PIT, 0)) == NULL)
			return err_set(e, "out of memory");
		snap_buf_bytes(b, &pit, sizeof(pit));
	}
	struct kvm_clock_data clk;
	memset(&clk, 0, sizeof(clk));
	if (ioctl(vm->vm_fd, KVM_GET_CLOCK, &clk) == 0) {
		if ((b = section_new(l, SNAP_SEC_CLOCK, 0)) == NULL)
			return err_set(e, "out of memory");
		snap_buf_bytes(b, &clk, sizeof(clk));
	} else if (unsupported(errno)) {
		note_unsupported("KVM_GET_CLOCK", errno);
	} else {
		return err_set(e, "KVM_GET_CLOCK: %s", strerror(errno));
	}

	/* The live route set (the implicit routes are the table's own). */
	const struct route_table *t = router_current();
	if ((b = section_new(l, SNAP_SEC_ROUTES, 0)) == NULL)
		return err_set(e, "out of memory");
	uint32_t nr = 0;
	for (size_t i = 0; i < t->nroutes; i++)
		nr += !(t->routes[i].flags & ROUTE_FLAG_IMPLICIT);
	snap_buf_u64(b, t->generation);
	snap_buf_u32(b, nr);
	snap_buf_u32(b, 0);
	for (size_t i = 0; i < t->nroutes; i++)
		if (!(t->routes[i].flags & ROUTE_FLAG_IMPLICIT))
			snap_buf_str(b, t->routes[i].spec.text);

	uint8_t *state = malloc(STATE_MAX);
	if (state == NULL)
		return err_set(e, "out of memory");
	uint32_t nv = 0;
	for (size_t id = 0; id < vmm_count(); id++) {
		struct vmm *v = vmm_get((uint16_t)id);
		if (v == NULL)
			continue;
		if ((b = section_new(l, SNAP_SEC_VMM, nv++)) == NULL ||
		    build_vmm(b, v, state, e) < 0) {
			free(state);
			return b == NULL ? err_set(e, "out of memory") : -1;
		}
	}
	free(state);

	if ((b = section_new(l, SNAP_SEC_DEVICES, 0)) == NULL)
		return err_set(e, "out of memory");
	snap_buf_u32(b, vm->ncpus);
	snap_buf_u32(b, machine_resets());
	for (unsigned i = 0; i < vm->ncpus; i++) {
		uint8_t h = machine_vcpu_parked(i) ? 1 : 0;
		snap_buf_bytes(b, &h, 1);
	}
	/* MEMORY: its data_offset is filled in once every size is known */
	if ((b = section_new(l, SNAP_SEC_MEMORY, 0)) == NULL)
		return err_set(e, "out of memory");
	snap_buf_u64(b, vm->mem.size);
	snap_buf_u64(b, 0);
	snap_buf_u64(b, x->n);
	snap_buf_bytes(b, x->v, x->n * 16);
	if (handover != NULL) { /* a live update's state: RAM by descriptor */
		const struct snapshot_handover *h = handover;
		if ((b = section_new(l, SNAP_SEC_HANDOVER, 0)) == NULL)
			return err_set(e, "out of memory");
		/* the oldest version that holds the state: one without parallel
		 * VMMs stays readable by a vmmux of version 1, one without events
		 * waiting for the dispatcher by a vmmux of version 2 */
		uint32_t version = h->nhost || h->watchdog ? 3u : h->npvmm || h->nio ? 2u : 1u;
		snap_buf_u32(b, version);
		snap_buf_u32(b, h->npieces);
		snap_buf_u64(b, h->pause_ns);
		snap_buf_u32(b, (uint32_t)h->api_fd);
		snap_buf_u32(b, (uint32_t)h->client_fd);
		snap_buf_str(b, h->reply_id);
		for (unsigned k = 0; k < h->npieces; k++) {
			snap_buf_u64(b, h->pieces[k].gpa);
			snap_buf_u64(b, h->pieces[k].size);
			snap_buf_u32(b, (uint32_t)h->pieces[k].fd);
			snap_buf_u32(b, 0);
		}
		if (version >= 2)
			build_ho_pvmms(b, h);
		if (version >= 3) {
			snap_buf_u64(b, h->watchdog_at);
			snap_buf_u32(b, h->nhost);
			for (unsigned k = 0; k < h->nhost; k++)
				snap_buf_event(b, h->host_src[k], &h->host[k]);
		}
	}
	if (section_new(l, SNAP_SEC_END, 0) == NULL)
		return err_set(e, "out of memory");
	for (size_t i = 0; i < l->n; i++)
		if (l->s[i].b.oom)
			return err_set(e, "out of memory");
	return 0;
}

static int write_all(int fd, const void *p, size_t n, uint64_t off, struct errbuf *e)
{
	const uint8_t *q = p;
	while (n > 0) {
		ssize_t w = pwrite(fd, q, n > (1u << 30) ? (1u << 30) : n, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return err_set(e, "write at offset %llu: %s", (unsigned long long)off,
				       w < 0 ? strerror(errno) : "no progress");
		q += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

int snapshot_write_fd(int fd, struct snapshot_result *r, struct errbuf *e)
{
	uint64_t t0 = tp_now_ns();
	struct vm *vm = machine_vm();
	if (cmdline.argc == 0)
		return err_set(e, "this run was not started by `vmmux run`: a snapshot needs its "
				  "command line to be restored");
	if (probe(vm, e) < 0)
		return -1;
	struct extents x = {0};
	struct sections l = {0};
	uint8_t *meta = NULL;
	int rc = -1;
	if ((handover == NULL && scan_memory(&vm->mem, &x, e) < 0) || build_sections(&l, &x, e) < 0)
		goto out;
	uint64_t meta_len = SNAP_HEADER_SIZE;
	for (size_t i = 0; i < l.n; i++)
		meta_len += SNAP_SECHDR_SIZE + ((l.s[i].b.len + 7) & ~(size_t)7);
	uint64_t data_offset = (meta_len + SNAP_PAGE - 1) & ~(uint64_t)(SNAP_PAGE - 1);
	uint64_t file_size = data_offset + vm->mem.size;
	meta = calloc(1, data_offset);
	if (meta == NULL) {
		err_set(e, "out of memory");
		goto out;
	}
	uint64_t at = SNAP_HEADER_SIZE;
	for (size_t i = 0; i < l.n; i++) {
		struct section *s = &l.s[i];
		if (s->type == SNAP_SEC_MEMORY) {
			for (int k = 0; k < 8; k++)
				s->b.p[8 + k] = (uint8_t)(data_offset >> (8 * k));
		}
		snap_sechdr(meta + at, s->type, s->index, s->b.p, s->b.len);
		at += SNAP_SECHDR_SIZE;
		if (s->b.len)
			memcpy(meta + at, s->b.p, s->b.len);
		at += (s->b.len + 7) & ~(size_t)7;
	}
	struct timespec rt;
	clock_gettime(CLOCK_REALTIME, &rt);
	snap_header(meta, file_size, (uint64_t)rt.tv_sec * 1000000000ull + (uint64_t)rt.tv_nsec,
		    (uint32_t)l.n, VMMUX_VERSION);
	if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)file_size) < 0) {
		err_set(e, "cannot size the file to %llu bytes: %s", (unsigned long long)file_size,
			strerror(errno));
		goto out;
	}
	if (write_all(fd, meta, data_offset, 0, e) < 0)
		goto out;
	uint64_t data = 0;
	for (uint64_t i = 0; i < x.n; i++) {
		uint64_t gpa = x.v[2 * i], len = x.v[2 * i + 1];
		if (write_all(fd, vm->mem.host + gpa, len, data_offset + gpa, e) < 0)
			goto out;
		data += len;
	}
	if (r != NULL) {
		r->file_bytes = file_size;
		r->data_bytes = data;
		r->sections = (uint32_t)l.n;
		r->write_ns = tp_now_ns() - t0;
	}
	rc = 0;
out:
	free(meta);
	free(x.v);
	sections_free(&l);
	return rc;
}

int snapshot_write_handover(int fd, const struct snapshot_handover *h, struct snapshot_result *r,
			    struct errbuf *e)
{
	handover = h;
	int rc = snapshot_write_fd(fd, r, e);
	handover = NULL;
	return rc;
}

int snapshot_take(const char *path, bool stop, struct snapshot_result *r, struct errbuf *e)
{
	memset(r, 0, sizeof(*r));
	if (path == NULL || path[0] == '\0')
		return err_set(e, "the snapshot's path is empty");
	/* Written beside PATH, then renamed over it: a run restored from PATH
	 * maps it, and a failed snapshot leaves PATH as it was. */
	size_t n = strlen(path) + 16;
	char *tmp = malloc(n);
	if (tmp == NULL)
		return err_set(e, "out of memory");
	snprintf(tmp, n, "%s.tmp.XXXXXX", path);
	int fd = mkstemp(tmp);
	if (fd < 0) {
		err_set(e, "%s: cannot create a file beside it: %s", path, strerror(errno));
		free(tmp);
		return -1;
	}
	uint64_t t0 = tp_now_ns();
	int rc = machine_pause(PAUSE_NS, e);
	if (rc == 0) {
		rc = snapshot_write_fd(fd, r, e);
		if (rc < 0)
			err_prefix(e, "%s", path);
		if (rc == 0 && fchmod(fd, 0600) < 0)
			rc = err_set(e, "%s: fchmod: %s", path, strerror(errno));
		if (rc == 0 && rename(tmp, path) < 0)
			rc = err_set(e, "%s: cannot rename %s over it: %s", path, tmp,
				     strerror(errno));
		if (rc == 0 && stop)
			machine_stop(EXIT_POWEROFF,
				     "snapshot written to %s; the run stops (--stop)", path);
		r->pause_ns = tp_now_ns() - t0;
		machine_resume();
	}
	close(fd);
	if (rc < 0)
		unlink(tmp);
	free(tmp);
	if (rc == 0)
		log_info("snapshot: %s: %llu bytes (%llu of guest memory written), vCPUs paused "
			 "%llu us",
			 path, (unsigned long long)r->file_bytes, (unsigned long long)r->data_bytes,
			 (unsigned long long)(r->pause_ns / 1000));
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Restore                                                                  */
/* ---------------------------------------------------------------------- */

static struct {
	bool on;
	uint64_t t0;
	int fd;
	const uint8_t *map; /* the whole file, read-only */
	uint64_t map_len;
	struct snap_view v;
	int argc;
	char **argv;
	char *cwd;
	const struct vmmux_config *cfg;
} R = {.fd = -1};

static char *str_dup(struct snap_str s)
{
	char *p = malloc((size_t)s.len + 1);
	if (p != NULL) {
		memcpy(p, s.p, s.len);
		p[s.len] = '\0';
	}
	return p;
}

static bool str_eq(struct snap_str s, const char *c)
{
	return c != NULL && strlen(c) == s.len && memcmp(s.p, c, s.len) == 0;
}

bool snapshot_restoring(void)
{
	return R.on;
}

/* Does this host take the machine? vCPUs and memory within vmmux's and
 * KVM's limits, every VMM program there. */
static int check_host(const struct snap_view *v, struct errbuf *e)
{
	if (v->mem_size > MEM_MAX || v->mem_size < MEM_MIN)
		return err_set(e,
			       "section MACHINE: %llu bytes of guest memory, outside what vmmux "
			       "allows (%llu to %llu)",
			       (unsigned long long)v->mem_size, (unsigned long long)MEM_MIN,
			       (unsigned long long)MEM_MAX);
	if (v->cpus > CPUS_MAX)
		return err_set(e, "section MACHINE: %u vCPUs, more than vmmux allows (%d)", v->cpus,
			       CPUS_MAX);
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm >= 0) {
		int max = ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
		if (max <= 0)
			max = ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
		close(kvm);
		if (max > 0 && v->cpus > (uint32_t)max)
			return err_set(e,
				       "section MACHINE: %u vCPUs, more than this host's KVM "
				       "allows (%d)",
				       v->cpus, max);
	}
	for (uint32_t i = 0; i < v->nvmms; i++) {
		const struct snap_vmm *m = &v->vmm[i];
		if (m->program.len == 0)
			continue;
		char *prog = str_dup(m->program);
		if (prog == NULL)
			return err_set(e, "out of memory");
		int ok = access(prog, X_OK);
		int err = errno;
		int rc = ok == 0 ? 0
				 : err_set(e,
					   "section VMM %u ('%.*s'): its program %s is missing on "
					   "this host or not executable (%s)",
					   i, (int)m->name.len, m->name.p, prog, strerror(err));
		free(prog);
		if (rc < 0)
			return -1;
	}
	return 0;
}

int snapshot_restore_open(const char *path, int *argc, char ***argv, const char **cwd,
			  struct errbuf *e)
{
	uint64_t t0 = tp_now_ns();
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, "%s: %s", path, strerror(errno));
	int rc = snapshot_restore_open_fd(fd, path, argc, argv, cwd, e);
	R.t0 = t0;
	return rc;
}

int snapshot_restore_open_fd(int fd, const char *path, int *argc, char ***argv, const char **cwd,
			     struct errbuf *e)
{
	R.t0 = tp_now_ns();
	R.fd = fd;
	struct stat st;
	if (fstat(R.fd, &st) < 0 || !S_ISREG(st.st_mode))
		return err_set(e, "%s: not a regular file", path);
	R.map_len = (uint64_t)st.st_size;
	if (R.map_len == 0)
		return err_set(e, "%s: header: the file is truncated (it is empty)", path);
	void *p = mmap(NULL, R.map_len, PROT_READ, MAP_PRIVATE, R.fd, 0);
	if (p == MAP_FAILED)
		return err_set(e, "%s: mmap: %s", path, strerror(errno));
	R.map = p;
	if (snap_parse(R.map, R.map_len, R.map_len, &R.v, e) < 0)
		return err_prefix(e, "%s", path);
	R.cwd = str_dup(R.v.cwd);
	if (R.cwd == NULL)
		return err_set(e, "out of memory");
	if (R.v.cwd.len == 0 || chdir(R.cwd) < 0)
		return err_set(e,
			       "%s: section MACHINE: the run's working directory '%s' is not "
			       "there on this host",
			       path, R.cwd);
	if (check_host(&R.v, e) < 0)
		return err_prefix(e, "%s", path);
	if (R.v.argc == 0)
		return err_set(e, "%s: section MACHINE: no command line", path);
	R.argv = calloc((size_t)R.v.argc + 1, sizeof(char *));
	if (R.argv == NULL)
		return err_set(e, "out of memory");
	for (uint32_t i = 0; i < R.v.argc; i++)
		if ((R.argv[i] = str_dup(snap_str_at(R.v.argv, i))) == NULL)
			return err_set(e, "out of memory");
	R.argc = (int)R.v.argc;
	*argc = R.argc;
	*argv = R.argv;
	*cwd = R.cwd;
	R.on = true;
	return 0;
}

/* FD is open (an inherited descriptor): made close-on-exec, but for the
 * standard streams, which every program keeps across its execve (a VMM's
 * input=stdin is descriptor 0: made close-on-exec, a second update would
 * lose it). */
static int claim(int fd)
{
	if (fd < 0 || fcntl(fd, F_GETFD) < 0) {
		if (fd < 0)
			errno = EBADF;
		return -1;
	}
	return fd <= STDERR_FILENO ? 0 : fcntl(fd, F_SETFD, FD_CLOEXEC);
}

int snapshot_restore_claim_fds(struct errbuf *e)
{
	const struct snap_view *v = &R.v;
	if (!R.on || !v->handover)
		return 0;
	for (uint32_t k = 0; k < v->ho_npieces; k++) {
		int32_t fd;
		memcpy(&fd, v->ho_pieces + 24 * k + 16, 4);
		if (claim(fd) < 0)
			return err_set(e, "section HANDOVER: piece %u: descriptor %d: %s", k, fd,
				       strerror(errno));
	}
	if (v->ho_api_fd >= 0 && claim(v->ho_api_fd) < 0)
		return err_set(e, "section HANDOVER: the control socket: descriptor %d: %s",
			       v->ho_api_fd, strerror(errno));
	if (v->ho_client_fd >= 0 && claim(v->ho_client_fd) < 0)
		return err_set(e, "section HANDOVER: the asking client: descriptor %d: %s",
			       v->ho_client_fd, strerror(errno));
	/* version 2: the parallel VMMs' descriptors and IRQ lines, the
	 * in-process VMMs' input and output */
	for (uint32_t i = 0; i < v->ho_npvmm; i++) {
		const struct snap_ho_pvmm *m = &v->ho_pvmm[i];
		for (unsigned k = 0; k < SNAP_HO_FDS; k++)
			if (m->fd[k] >= 0 && claim(m->fd[k]) < 0)
				return err_set(
				    e,
				    "section HANDOVER: parallel VMM '%.*s': descriptor %d: "
				    "%s",
				    (int)m->name.len, m->name.p, m->fd[k], strerror(errno));
		for (uint32_t k = 0; m->irqs != NULL && k < m->nirqs; k++)
			for (unsigned j = 0; j < 2; j++) {
				int32_t fd;
				memcpy(&fd, m->irqs + 16 * k + 8 + 4 * j, 4);
				if (fd >= 0 && claim(fd) < 0)
					return err_set(e,
						       "section HANDOVER: parallel VMM '%.*s': IRQ "
						       "descriptor %d: %s",
						       (int)m->name.len, m->name.p, fd,
						       strerror(errno));
			}
	}
	for (uint32_t i = 0; i < v->ho_nio; i++)
		for (unsigned j = 0; j < 2; j++) {
			int32_t fd = j ? v->ho_io[i].out_fd : v->ho_io[i].in_fd;
			if (fd >= 0 && claim(fd) < 0)
				return err_set(
				    e, "section HANDOVER: VMM '%.*s': its %s: descriptor %d: %s",
				    (int)v->ho_io[i].name.len, v->ho_io[i].name.p,
				    j ? "output" : "input", fd, strerror(errno));
		}
	return 0;
}

/* A live update's parallel VMMs: each a parallel VMM of the configuration
 * the new program runs, its region of as many slots as this machine uses
 * (its vCPUs, the host's, the compiled routes'). */
static int check_handover_pvmms(const struct vmmux_config *c, struct errbuf *e)
{
	const struct snap_view *v = &R.v;
	for (uint32_t i = 0; v->handover && i < v->ho_npvmm; i++) {
		const struct snap_ho_pvmm *m = &v->ho_pvmm[i];
		const struct vmm_config *vc = NULL;
		for (size_t k = 0; k < c->nvmms && vc == NULL; k++)
			if (str_eq(m->name, c->vmms[k].name))
				vc = &c->vmms[k];
		if (vc == NULL || (vc->placement != VMM_PARALLEL && vc->program == NULL))
			return err_set(
			    e,
			    "section HANDOVER: parallel VMM %u ('%.*s') is not a parallel "
			    "VMM of the run's configuration",
			    i, (int)m->name.len, m->name.p);
		if (m->nslots != c->cpus + 2)
			return err_set(e,
				       "section HANDOVER: parallel VMM %u ('%.*s'): a region of %u "
				       "request slots, this machine uses %u",
				       i, (int)m->name.len, m->name.p, m->nslots, c->cpus + 2);
	}
	return 0;
}

int snapshot_restore_check(const struct vmmux_config *c, struct errbuf *e)
{
	const struct snap_view *v = &R.v;
	R.cfg = c;
	if (c->mem_bytes != v->mem_size)
		return err_set(e,
			       "section MACHINE: the snapshot has %llu bytes of guest memory, the "
			       "configuration %llu",
			       (unsigned long long)v->mem_size, (unsigned long long)c->mem_bytes);
	if (c->cpus != v->cpus)
		return err_set(e,
			       "section MACHINE: the snapshot has %u vCPUs, the configuration %u",
			       v->cpus, c->cpus);
	if (c->irqchip != ((v->mflags & SNAP_MF_IRQCHIP) != 0))
		return err_set(e,
			       "section MACHINE: the snapshot was taken %s the in-kernel irqchip",
			       c->irqchip ? "without" : "with");
	for (uint32_t i = 1; i < v->nvmms; i++) {
		const struct snap_vmm *m = &v->vmm[i];
		const struct vmm_config *vc = NULL;
		for (size_t k = 0; k < c->nvmms && vc == NULL; k++)
			if (str_eq(m->name, c->vmms[k].name))
				vc = &c->vmms[k];
		if (vc == NULL)
			return err_set(e,
				       "section VMM %u ('%.*s'): no VMM of that name in the run's "
				       "configuration (one added at run time is not restored)",
				       i, (int)m->name.len, m->name.p);
		bool ext = vc->program != NULL;
		if (ext ? !str_eq(m->program, vc->program)
			: !str_eq(m->role, vc->role) || m->program.len != 0)
			return err_set(e,
				       "section VMM %u ('%.*s'): role '%.*s' in the snapshot, '%s' "
				       "in the configuration (swapped at run time?)",
				       i, (int)m->name.len, m->name.p, (int)m->role.len, m->role.p,
				       ext ? vc->program : vc->role);
	}
	return check_handover_pvmms(c, e);
}

int snapshot_restore_routes(struct route_spec **specs, size_t *n, uint64_t *generation,
			    struct errbuf *e)
{
	const struct snap_view *v = &R.v;
	struct route_spec *s = calloc(v->nroutes ? v->nroutes : 1, sizeof(*s));
	if (s == NULL)
		return err_set(e, "out of memory");
	for (uint32_t i = 0; i < v->nroutes; i++) {
		struct snap_str t = snap_str_at(v->routes, i);
		char *text = str_dup(t);
		int rc = text ? route_spec_parse(text, &s[i], e) : err_set(e, "out of memory");
		free(text);
		if (rc < 0) {
			free(s);
			return err_prefix(e, "section ROUTES: route %u", i);
		}
	}
	*specs = s;
	*n = v->nroutes;
	*generation = v->generation;
	log_info("restore: the routing table of generation %llu (%u routes)",
		 (unsigned long long)v->generation, v->nroutes);
	return 0;
}

/* A piece of RAM that a parallel VMM of the run maps (its memfd is shared):
 * its pages are copied in; every other piece is mapped from the file. */
static bool piece_shared(const struct gm_piece *pc)
{
	const struct vmmux_config *c = R.cfg;
	for (size_t i = 0; c != NULL && i < c->nvmms; i++) {
		const struct vmm_config *v = &c->vmms[i];
		if (v->placement != VMM_PARALLEL && v->program == NULL)
			continue;
		if (v->memory_all)
			return true;
		for (size_t w = 0; w < v->nwindows; w++)
			if (pc->gpa < v->windows[w].gpa + v->windows[w].size &&
			    v->windows[w].gpa < pc->gpa + pc->size)
				return true;
	}
	return false;
}

/* A live update: every piece is mapped from the memfd the old program
 * handed over (MAP_SHARED, nothing copied), which replaces the piece's own. */
static int adopt_memory(struct vm *vm, struct errbuf *e)
{
	const struct snap_view *v = &R.v;
	struct guest_mem *m = &vm->mem;
	if (v->ho_npieces != m->npieces)
		return err_set(e,
			       "section HANDOVER: %u pieces of guest RAM handed over, this "
			       "machine has %u",
			       v->ho_npieces, m->npieces);
	for (unsigned k = 0; k < m->npieces; k++) {
		struct gm_piece *pc = &m->pieces[k];
		const uint8_t *p = v->ho_pieces + 24 * k;
		uint64_t gpa, size;
		int32_t fd;
		memcpy(&gpa, p, 8);
		memcpy(&size, p + 8, 8);
		memcpy(&fd, p + 16, 4);
		struct stat st;
		if (gpa != pc->gpa || size != pc->size)
			return err_set(e,
				       "section HANDOVER: piece %u is [0x%llx, +0x%llx), this "
				       "machine's [0x%llx, +0x%llx)",
				       k, (unsigned long long)gpa, (unsigned long long)size,
				       (unsigned long long)pc->gpa, (unsigned long long)pc->size);
		if (fstat(fd, &st) < 0)
			return err_set(e, "section HANDOVER: piece %u: descriptor %d: %s", k, fd,
				       strerror(errno));
		if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != size)
			return err_set(e,
				       "section HANDOVER: piece %u: descriptor %d is not guest "
				       "RAM of 0x%llx bytes",
				       k, fd, (unsigned long long)size);
		void *at = mmap(m->host + gpa, size, PROT_READ | PROT_WRITE,
				MAP_SHARED | MAP_FIXED | MAP_NORESERVE, fd, 0);
		if (at == MAP_FAILED)
			return err_set(e, "section HANDOVER: mapping guest RAM at 0x%llx: %s",
				       (unsigned long long)gpa, strerror(errno));
		(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
		if (pc->memfd >= 0 && pc->memfd != fd)
			close(pc->memfd);
		pc->memfd = fd;
	}
	m->memfd = m->npieces == 1 ? m->pieces[0].memfd : -1;
	return 0;
}

static int restore_memory(struct vm *vm, struct errbuf *e)
{
	const struct snap_view *v = &R.v;
	struct guest_mem *m = &vm->mem;
	uint64_t copied = 0, mapped = 0;
	if (v->handover)
		return adopt_memory(vm, e);
	for (unsigned k = 0; k < m->npieces; k++) {
		struct gm_piece *pc = &m->pieces[k];
		if (piece_shared(pc)) {
			/* cleared (the loader wrote the image there), then the
			 * pages the file holds copied in */
			if (fallocate(pc->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
				      (off_t)pc->size) < 0)
				return err_set(e,
					       "section MEMORY: clearing guest RAM at 0x%llx: %s",
					       (unsigned long long)pc->gpa, strerror(errno));
			for (uint64_t i = 0; i < v->nextents; i++) {
				uint64_t g, n;
				memcpy(&g, v->extents + 16 * i, 8);
				memcpy(&n, v->extents + 16 * i + 8, 8);
				uint64_t lo = g > pc->gpa ? g : pc->gpa;
				uint64_t hi =
				    g + n < pc->gpa + pc->size ? g + n : pc->gpa + pc->size;
				if (lo >= hi)
					continue;
				memcpy(m->host + lo, R.map + v->data_offset + lo, hi - lo);
				copied += hi - lo;
			}
			continue;
		}
		void *at = mmap(m->host + pc->gpa, pc->size, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, R.fd,
				(off_t)(v->data_offset + pc->gpa));
		if (at == MAP_FAILED)
			return err_set(e,
				       "section MEMORY: mapping guest RAM at 0x%llx from the file: "
				       "%s",
				       (unsigned long long)pc->gpa, strerror(errno));
		/* the memfd no longer backs this piece: nobody may hand it out */
		close(pc->memfd);
		pc->memfd = -1;
		mapped += pc->size;
	}
	m->memfd = m->npieces == 1 ? m->pieces[0].memfd : -1;
	source.fd = R.fd;
	source.data_offset = v->data_offset;
	log_debug("restore: guest memory: %llu bytes mapped from the file, %llu bytes copied "
		  "(shared with parallel VMMs)",
		  (unsigned long long)mapped, (unsigned long long)copied);
	return 0;
}

int snapshot_restore_machine(struct vm *vm, bool *halted, struct errbuf *e)
{
	const struct snap_view *v = &R.v;
	if (vm->ncpus != v->cpus || vm->mem.size != v->mem_size)
		return err_set(e, "section MACHINE: does not match the machine built");
	if (restore_memory(vm, e) < 0)
		return -1;
	if (v->clock != NULL) {
		struct kvm_clock_data clk;
		memcpy(&clk, v->clock, sizeof(clk));
		/* the clock goes on from the saved value: the time the machine
		 * spent stored does not pass for the guest */
		clk.flags = 0;
		if (ioctl(vm->vm_fd, KVM_SET_CLOCK, &clk) < 0 && !unsupported(errno))
			return err_set(e, "section CLOCK: KVM_SET_CLOCK: %s", strerror(errno));
	}
	if (vm->irqchip) {
		for (unsigned chip = 0; chip < 3; chip++) {
			struct kvm_irqchip ic;
			memcpy(&ic, v->irqchip + chip * sizeof(ic), sizeof(ic));
			if (ic.chip_id != chip)
				return err_set(e, "section IRQCHIP: chip %u has id %u", chip,
					       ic.chip_id);
			if (ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &ic) < 0)
				return err_set(e, "section IRQCHIP: KVM_SET_IRQCHIP %u: %s", chip,
					       strerror(errno));
		}
		struct kvm_pit_state2 pit;
		memcpy(&pit, v->pit, sizeof(pit));
		if (ioctl(vm->vm_fd, KVM_SET_PIT2, &pit) < 0)
			return err_set(e, "section PIT: KVM_SET_PIT2: %s", strerror(errno));
	}
	for (unsigned i = 0; i < vm->ncpus; i++) {
		if (apply_vcpu(vm, i, &v->vcpu[i], e) < 0)
			return -1;
		halted[i] = v->halted[i] != 0;
	}
	return 0;
}

int snapshot_restore_vmms(struct errbuf *e)
{
	const struct snap_view *v = &R.v;
	for (uint32_t i = 1; i < v->nvmms; i++) {
		const struct snap_vmm *m = &v->vmm[i];
		if (!m->has_state || m->state_len == 0)
			continue;
		char name[VMMUX_NAME_MAX];
		snprintf(name, sizeof(name), "%.*s", (int)m->name.len, m->name.p);
		struct vmm *vm = vmm_get(vmm_lookup(name));
		if (vm == NULL)
			return err_set(e, "section VMM %u ('%s'): not in the registry", i, name);
		if (vm->placement == VMM_PARALLEL) {
			if (pvmm_adopted(vm))
				continue; /* its process kept its state (live update) */
			if (pvmm_state_restore(vm, m->state, (size_t)m->state_len, e) < 0)
				return err_prefix(e, "section VMM %u ('%s')", i, name);
			continue;
		}
		if (vm->role == NULL || vm->role->restore == NULL)
			return err_set(e, "section VMM %u ('%s'): its role takes no state", i,
				       name);
		pthread_mutex_lock(&vm->lock);
		int rc = vm->role->restore(&vm->ctx, m->state, (size_t)m->state_len);
		pthread_mutex_unlock(&vm->lock);
		if (rc < 0)
			return err_set(
			    e,
			    "section VMM %u ('%s'): role '%s' refused the state (another "
			    "version of its state?)",
			    i, name, vm->role->name);
	}
	return 0;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int snapshot_restore_pvmms(struct errbuf *e)
{
	const struct snap_view *v = &R.v;
	if (!R.on || !v->handover)
		return 0;
	struct vmm_io_handover io[SNAP_HO_PVMMS_MAX];
	for (uint32_t i = 0; i < v->ho_nio; i++) {
		snprintf(io[i].name, sizeof(io[i].name), "%.*s", (int)v->ho_io[i].name.len,
			 v->ho_io[i].name.p);
		io[i].in_fd = v->ho_io[i].in_fd;
		io[i].out_fd = v->ho_io[i].out_fd;
	}
	if (vmm_io_adopt_set(io, v->ho_nio) < 0)
		return err_set(e, "out of memory");
	if (v->ho_npvmm == 0)
		return 0;
	struct pvmm_handover *h = calloc(v->ho_npvmm, sizeof(*h));
	if (h == NULL)
		return err_set(e, "out of memory");
	for (uint32_t i = 0; i < v->ho_npvmm; i++) {
		const struct snap_ho_pvmm *m = &v->ho_pvmm[i];
		struct pvmm_handover *p = &h[i];
		snprintf(p->name, sizeof(p->name), "%.*s", (int)m->name.len, m->name.p);
		bool known = false;
		for (uint32_t k = 1; k < v->nvmms && !known; k++)
			known = v->vmm[k].placement == SNAP_VMM_PARALLEL &&
				v->vmm[k].name.len == m->name.len &&
				memcmp(v->vmm[k].name.p, m->name.p, m->name.len) == 0;
		if (!known) {
			err_set(e,
				"section HANDOVER: parallel VMM %u ('%s') is not a parallel VMM of "
				"the VMM sections",
				i, p->name);
			free(h);
			return -1;
		}
		p->pid = m->pid;
		p->pidfd = m->fd[0];
		p->sock = m->fd[1];
		p->memfd = m->fd[2];
		p->vmm_efd = m->fd[3];
		p->async_efd = m->fd[4];
		p->errfd = m->fd[5];
		p->in_fd = m->fd[6];
		p->out_fd = m->fd[7];
		p->tp.nslots = m->nslots;
		p->tp.xseq_next = m->xseq_next;
		p->tp.async_tail = m->async_tail;
		for (uint32_t k = 0; k < m->nslots; k++)
			p->tp.seq[k] = le32(m->seq + 4 * k);
		p->generation = m->generation;
		p->window_start_ns = m->window_start_ns;
		p->up_since_ns = m->up_since_ns;
		p->backoff_ns = m->backoff_ns;
		p->maybe_duplicated = m->maybe_duplicated;
		p->redelivered = m->redelivered;
		p->restarts = m->restarts;
		p->recent_restarts = m->recent_restarts;
		p->nirqs = m->nirqs;
		for (uint32_t k = 0; k < m->nirqs; k++) {
			const uint8_t *q = m->irqs + 16 * k;
			p->irqs[k].line = le32(q);
			p->irqs[k].level = le32(q + 4) & 1u;
			p->irqs[k].wired = (le32(q + 4) >> 1) & 1u;
			p->irqfd[k] = (int32_t)le32(q + 8);
			p->resamplefd[k] = (int32_t)le32(q + 12);
		}
	}
	int rc = pvmm_adopt_set(h, v->ho_npvmm, e);
	free(h);
	return rc;
}

bool snapshot_restore_handover(const struct snap_view **v)
{
	*v = &R.v;
	return R.on && R.v.handover;
}

bool snapshot_restore_watchdog(uint64_t *at)
{
	if (!R.on || !R.v.handover || R.v.ho_version < 3)
		return false;
	*at = R.v.ho_watchdog_at;
	return true;
}

unsigned snapshot_restore_host_queue(void)
{
	const struct snap_view *v = &R.v;
	if (!R.on || !v->handover)
		return 0;
	for (uint32_t i = 0; i < v->ho_nhost; i++) {
		struct vmmux_event ev;
		uint16_t src;
		snap_event_decode(v->ho_host + (size_t)i * SNAP_HO_EVENT_SIZE, &src, &ev);
		if (src != VMM_ID_NONE && vmm_get(src) == NULL) {
			char desc[256];
			log_error("live update: %s, raised by VMM %u, which this program does not "
				  "have: dropped",
				  event_describe(&ev, desc, sizeof(desc)), (unsigned)src);
			continue;
		}
		machine_post_raised(src, &ev);
	}
	if (v->ho_nhost)
		log_info("live update: %u event(s) the old program's dispatcher had queued, queued "
			 "again",
			 v->ho_nhost);
	return v->ho_nhost;
}

void snapshot_restore_done(void)
{
	if (!R.on)
		return;
	if (R.v.handover) {
		update_resumed(&R.v);
		return;
	}
	log_info("restore: the vCPUs start %llu us after the snapshot was opened",
		 (unsigned long long)((tp_now_ns() - R.t0) / 1000));
}

void snapshot_restore_close(void)
{
	if (R.map != NULL)
		munmap((void *)R.map, R.map_len);
	R.map = NULL;
	/* R.fd stays open: a later snapshot looks for the pages this file
	 * holds (scan_memory); the mapping of guest memory keeps the file. */
	if (R.argv != NULL)
		for (int i = 0; i < R.argc; i++)
			free(R.argv[i]);
	free(R.argv);
	free(R.cwd);
	R.argv = NULL;
	R.cwd = NULL;
	R.on = false;
}
