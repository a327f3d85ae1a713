/*
 * hvt.h: the host of the Solo5 hvt guest ABI (include/vmmux/hvt_abi.h).
 *
 * vmmux runs an hvt unikernel on its ordinary machine: the image is loaded
 * as an ELF64 at its p_vaddrs, and the machine's boot hook (machine.h,
 * installed by hvt_core.c) lays down the hvt boot state (GDT, page tables,
 * boot information, manifest, command line, registers, read-only code) at
 * boot and at every reset. The main VMM (VMM 0) handles the hypercalls that
 * belong to the machine (walltime, poll, halt) and every exit that an hvt
 * guest must not make, through its extension table (vmm/main_vmm.h). The
 * device hypercalls are routed like any event: puts to the console VMM
 * (role "hvt-console"), block read/write to a block VMM ("hvt-block",
 * vmms/block/) and net read/write to a net VMM ("hvt-net", vmms/net/), one
 * per device, in-process or parallel.
 *
 * Pieces:
 *   hvt_elf.c    hvt_image_parse: the executable and its notes (untrusted)
 *   hvt_boot.c   hvt_boot_write / hvt_boot_vcpu: the boot state
 *   hvt_setup.c  a config's hvt section -> devices opened -> VMMs and
 *                routes; `vmmux hvt` and `vmmux run --config`
 *   hvt_core.c   the main VMM's part: boot hook, walltime/poll/halt, faults
 *   hvt_console.c the "hvt-console" role
 */
#ifndef VMMUX_HVT_HVT_H
#define VMMUX_HVT_HVT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "vm/guest_mem.h"
#include <vmmux/hvt_abi.h>
#include <vmmux/vmmux.h>

#define HVT_SEGS_MAX 16

/* A page-aligned guest-physical range [lo, hi). */
struct hvt_range {
	uint64_t lo, hi;
};

/* What hvt_image_parse finds in an executable. */
struct hvt_image {
	uint64_t entry;
	uint64_t kernel_end; /* highest p_vaddr + p_memsz, page aligned up */
	unsigned nro;
	struct hvt_range ro[HVT_SEGS_MAX]; /* loaded segments without PF_W */
	struct hvt_mft *mft;		   /* malloc'd copy of the MFT1 descriptor */
	size_t mft_size;
};

/*
 * Parse and validate IMG (LEN bytes, from file NAME) as an hvt executable
 * for MEM_SIZE bytes of guest RAM: ELF64 LE ET_EXEC EM_X86_64; PT_LOAD
 * segments page aligned, from HVT_GUEST_MIN_BASE, ascending, not
 * overlapping, inside the file and RAM (every sum overflow checked), never
 * writable and executable (empty segments are skipped); the entry in an
 * executable segment; exactly one ABI1 note (target hvt, version 2) and one
 * MFT1 note (version 1, 1..64 entries, exact size, e[0] reserved-first,
 * NUL-terminated unique names, known types, not attached), each note inside
 * its PT_NOTE. Returns 0 and fills *out (release with hvt_image_free), or
 * -1 with "NAME: problem" in e. Never reads outside IMG.
 */
int hvt_image_parse(const char *name, const uint8_t *img, size_t len, uint64_t mem_size,
		    struct hvt_image *out, struct errbuf *e);
void hvt_image_free(struct hvt_image *im);

/* Index of the manifest entry NAME of TYPE, or -1. */
int hvt_mft_find(const struct hvt_mft *m, const char *name, uint32_t type);

/* Where the boot information, manifest copy and command line go. */
#define HVT_MFT_GPA	(HVT_BOOT_INFO_BASE + 0x40u)
#define HVT_CMDLINE_GPA (HVT_MFT_GPA + 0x2000u)
/*
 * The memory the host writes for the guest and the guest may pass to a
 * hypercall (the boot information, the manifest copy, the command line;
 * read-only in the guest's page tables): [HVT_BOOT_INFO_BASE,
 * HVT_HOST_AREA_END), granted read-only to the console, block and net VMMs
 * besides the guest's own memory from HVT_GUEST_MIN_BASE.
 */
#define HVT_HOST_AREA_END ((HVT_CMDLINE_GPA + HVT_CMDLINE_SIZE + 0xfffu) & ~0xfffu)
_Static_assert(HVT_MFT_GPA + HVT_MFT_SIZE(HVT_MFT_MAX_ENTRIES) <= HVT_CMDLINE_GPA,
	       "the manifest copy fits below the command line");

/*
 * Write the hvt boot state into M for image IM: GDT (null, code, data),
 * page tables (below 0x10000 not present, 0x10000-0xFFFFF read-only, the
 * rest read-write; 4 GiB identity), the boot information, the manifest MFT
 * (the filled-in copy, MFT_SIZE bytes) and CMDLINE (at most
 * HVT_CMDLINE_SIZE - 1 characters). TSC_HZ is the guest's cycle frequency.
 * Returns 0 or -1 with a message.
 */
int hvt_boot_write(struct guest_mem *m, const struct hvt_image *im, const struct hvt_mft *mft,
		   size_t mft_size, const char *cmdline, uint64_t tsc_hz, struct errbuf *e);

/* Set vCPU VCPU_FD's registers for entry at ENTRY with MEM_SIZE of RAM:
 * long mode, CR0/CR3/CR4/EFER, segments and GDTR as the ABI says,
 * RIP = entry, RSP = mem_size - 8, RDI = the boot information. */
int hvt_boot_vcpu(int vcpu_fd, uint64_t entry, uint64_t mem_size, struct errbuf *e);

/* ---- the run's hvt state (hvt_setup.c), read by hvt_core.c ------------ */

#define HVT_DEVS_MAX HVT_MFT_MAX_ENTRIES

struct hvt_host {
	bool active; /* set up for this process's run */
	struct hvt_image image;
	struct hvt_mft *mft; /* the filled-in manifest copy */
	size_t mft_size;
	char *cmdline;
	uint64_t mem_size;
	/* readiness of each net device: an eventfd its net VMM sets while a
	 * frame waits; -1 for other entries */
	unsigned nnet;
	int net_ready_fd[HVT_DEVS_MAX];
	unsigned net_index[HVT_DEVS_MAX];
	/* --dumpcore=DIR: the directory, open until the one dump (hvt_dumpcore) */
	bool dumpcore_on;
	int dumpcore_dir_fd;
	const char *dumpcore_dir;
	/* the run's outcome */
	_Atomic bool halted;  /* the guest halted (its status below) */
	_Atomic int status;   /* the guest's exit status */
	_Atomic bool faulted; /* the run ended on an hvt error (status 1) */
};

extern struct hvt_host hvt_host;

/*
 * Install the main VMM's part of the run (hvt_core.c): the machine's boot
 * hook and the main VMM's extension. -1 when another guest kind holds the
 * main VMM. hvt_core_remove undoes it after machine_run.
 */
int hvt_core_install(void);
void hvt_core_remove(void);

/*
 * End the run because of the guest (a bad pointer, a write to its code, a
 * port access that is not a hypercall ...): logs "vmmux hvt: MESSAGE" and
 * stops the machine with status 1, as solo5-hvt exits 1.
 */
void hvt_fault(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * --dumpcore=DIR (hvt_dumpcore.c): open DIR for the dump, checked writable
 * (the descriptor, or -1 with a message naming the option). hvt_dumpcore
 * writes DIR/core.solo5-hvt.PID, an ELF core of the guest (NT_PRSTATUS of
 * vCPU VCPU, with the trap frame at guest-physical COOKIE when it is not 0;
 * all of guest memory as one PT_LOAD at 0), once per run, when
 * hvt_host.dumpcore_on; WHY names the cause in its message. Runs on the
 * vCPU thread (it reads the vCPU's registers).
 */
int hvt_dumpcore_open_dir(const char *dir, struct errbuf *e);
void hvt_dumpcore(unsigned vcpu, uint64_t cookie, const char *why);

/* `vmmux hvt ARGS`: returns the exit status (see docs/guests.md). */
int hvt_command(int argc, char **argv);

struct vmmux_config;
/*
 * Run the Solo5 hvt guest that C describes (C->hvt.on, loaded but not
 * finished: this adds the hvt VMMs and default routes, then finishes it).
 * PARALLEL is the placement of the block and net VMMs that the config does
 * not place itself. Messages name C->hvt.source's JSON paths, or `vmmux
 * hvt`'s options when it is NULL. Returns solo5-hvt's exit status: the
 * guest's own, or 1 for any error (printed on stderr).
 */
int hvt_run_config(struct vmmux_config *c, bool parallel);

/*
 * The set-up of hvt_run_config without the run, for `vmmux routes`: checks
 * the unikernel, its manifest and its devices (opening them, then closing
 * them again) and adds the hvt VMMs and default routes to C, finished.
 * 0, or -1 with the error printed on stderr.
 */
int hvt_prepare_config(struct vmmux_config *c, bool parallel);

/* Usage text of `vmmux hvt`. */
extern const char hvt_usage[];

#endif
