/*
 * hvt_abi.h: the Solo5 "hvt" guest ABI, version 2, as vmmux implements it.
 *
 * One self-contained header (C11, <stdint.h> and <stdbool.h> only) shared
 * by the host (src/hvt/, vmms/block/, vmms/net/) and by the project's hvt
 * test guests (guest/hvt/). Every layout below is fixed by the ABI; the
 * _Static_asserts pin sizes and offsets so that a change is a build error.
 *
 * The executable: ELF64 x86-64 ET_EXEC with PT_INTERP "/nonexistent/solo5/"
 * and two notes of owner "Solo5", each in its own PT_NOTE: the ABI note
 * (HVT_NOTE_ABI) and the device manifest (HVT_NOTE_MFT). Segments load at
 * guest-physical = p_vaddr, from HVT_GUEST_MIN_BASE.
 *
 * At entry: 64-bit long mode at CPL0 on identity page tables, RDI = the
 * boot information (struct hvt_boot_info at HVT_BOOT_INFO_BASE), RSP = top
 * of RAM - 8. A hypercall is `outl %eax, %dx` with DX = HVT_HC_PORT(nr) and
 * EAX = the 32-bit guest-physical address of the call's argument struct;
 * the host fills the struct's out fields before the guest resumes.
 */
#ifndef VMMUX_HVT_ABI_H
#define VMMUX_HVT_ABI_H

#include <stdbool.h>
#include <stdint.h>

#define HVT_ABI_TARGET	1u /* abi_target of the ABI note: hvt */
#define HVT_ABI_VERSION 2u

/* Notes: owner name and types ("ABI1", "MFT1" read as little-endian u32). */
#define HVT_NOTE_NAME	   "Solo5"
#define HVT_NOTE_ABI	   0x31494241u
#define HVT_NOTE_MFT	   0x3154464du
#define HVT_INTERP	   "/nonexistent/solo5/"
#define HVT_GUEST_MIN_BASE 0x100000u

/* Guest-physical layout of what the host writes below the image. */
#define HVT_GDT_BASE	   0x1000u
#define HVT_PML4_BASE	   0x2000u
#define HVT_PDPT_BASE	   0x3000u
#define HVT_PD_BASE	   0x4000u /* four page directories: 4 GiB */
#define HVT_PT_BASE	   0x8000u /* 4 KiB pages of the first 2 MiB */
#define HVT_BOOT_INFO_BASE 0x10000u
#define HVT_CMDLINE_SIZE   8192u	/* bytes, NUL included */
#define HVT_MEM_MAX	   (4ull << 30) /* arguments are 32-bit addresses */

/* Selectors of the host's GDT (null, code, data). */
#define HVT_SEL_CODE 0x08u
#define HVT_SEL_DATA 0x10u

/* Hypercall numbers; number 0 is reserved. */
enum hvt_hypercall {
	HVT_HC_WALLTIME = 1,
	HVT_HC_PUTS = 2,
	HVT_HC_POLL = 3,
	HVT_HC_BLOCK_WRITE = 4,
	HVT_HC_BLOCK_READ = 5,
	HVT_HC_NET_WRITE = 6,
	HVT_HC_NET_READ = 7,
	HVT_HC_HALT = 8,
	HVT_HC__MAX
};
#define HVT_HC_PIO_BASE 0x500u
#define HVT_HC_PORT(nr) (HVT_HC_PIO_BASE + (nr))

/* Results of the device calls. */
enum hvt_result {
	HVT_OK = 0,
	HVT_AGAIN = 1,
	HVT_EINVAL = 2,
	HVT_EUNSPEC = 3,
};

/* ---- notes ---------------------------------------------------------- */

/* The descriptor of the ABI note. */
struct hvt_abi1 {
	uint32_t abi_target;  /* HVT_ABI_TARGET */
	uint32_t abi_version; /* HVT_ABI_VERSION */
	uint32_t reserved0;
	uint32_t reserved1;
};

#define HVT_MFT_VERSION	    1u
#define HVT_MFT_MAX_ENTRIES 64u
#define HVT_MFT_NAME_SIZE   68u /* NUL included */

enum hvt_mft_type {
	HVT_MFT_DEV_BLOCK_BASIC = 1,
	HVT_MFT_DEV_NET_BASIC = 2,
	HVT_MFT_RESERVED_FIRST = 1u << 30,
};

/* One manifest entry: 104 bytes. The guest uses its index as the handle. */
struct hvt_mft_entry {
	char name[HVT_MFT_NAME_SIZE];
	uint32_t type; /* enum hvt_mft_type */
	union {
		struct {
			uint64_t capacity; /* bytes */
			uint16_t block_size;
		} block_basic;
		struct {
			uint8_t mac[6];
			uint16_t mtu;
		} net_basic;
	} u;
	uint64_t hostfd; /* the host's handle; never used by vmmux's guests */
	bool attached;	 /* false in the file; the host sets it */
	uint8_t pad[7];
};

/* The manifest: the descriptor of the MFT1 note, and its copy in guest RAM. */
struct hvt_mft {
	uint32_t version; /* HVT_MFT_VERSION */
	uint32_t entries; /* 1..HVT_MFT_MAX_ENTRIES; e[0] is the reserved-first */
	struct hvt_mft_entry e[];
};

/* ---- boot information ------------------------------------------------ */

struct hvt_boot_info {
	uint64_t mem_size;	 /* bytes of guest RAM */
	uint64_t kernel_end;	 /* end of the image, page aligned */
	uint64_t cpu_cycle_freq; /* TSC frequency in Hz */
	uint64_t cmdline;	 /* GPA of the NUL-terminated command line */
	uint64_t mft;		 /* GPA of the manifest copy */
	uint32_t host_features;	 /* 0: plain hypercalls */
	uint32_t guest_features;
	uint64_t net_ring; /* 0: no shared rings */
};

/* ---- hypercall argument structs --------------------------------------- */

struct hvt_hc_walltime {
	uint64_t nsecs; /* out: CLOCK_REALTIME in ns */
};

struct hvt_hc_puts {
	uint64_t data; /* GPA */
	uint64_t len;
};

struct hvt_hc_poll {
	uint64_t timeout_nsecs; /* in */
	uint64_t ready_set;	/* out: bit i = manifest entry i readable */
	int64_t ret;		/* out: number of bits set */
};

struct hvt_hc_block_io {
	uint64_t handle; /* manifest index */
	uint64_t offset; /* bytes */
	uint64_t data;	 /* GPA */
	uint64_t len;
	int64_t ret; /* out: enum hvt_result */
};

struct hvt_hc_net_write {
	uint64_t handle;
	uint64_t data; /* GPA */
	uint64_t len;
	int64_t ret; /* out */
};

struct hvt_hc_net_read {
	uint64_t handle;
	uint64_t data; /* GPA */
	uint64_t len;  /* in: buffer size; out: frame length */
	int64_t ret;   /* out */
};

struct hvt_hc_halt {
	uint64_t cookie; /* 0, or the GPA of a trap frame */
	int64_t exit_status;
};

/* The size and offsets the ABI fixes. */
_Static_assert(sizeof(struct hvt_abi1) == 16, "hvt_abi1");
_Static_assert(sizeof(struct hvt_mft_entry) == 104, "hvt_mft_entry");
_Static_assert(__builtin_offsetof(struct hvt_mft_entry, type) == 68, "mft type");
_Static_assert(__builtin_offsetof(struct hvt_mft_entry, u) == 72, "mft u");
_Static_assert(__builtin_offsetof(struct hvt_mft_entry, hostfd) == 88, "mft hostfd");
_Static_assert(__builtin_offsetof(struct hvt_mft_entry, attached) == 96, "mft attached");
_Static_assert(sizeof(struct hvt_mft) == 8, "hvt_mft");
_Static_assert(sizeof(struct hvt_boot_info) == 56, "hvt_boot_info");
_Static_assert(__builtin_offsetof(struct hvt_boot_info, host_features) == 40, "bi features");
_Static_assert(__builtin_offsetof(struct hvt_boot_info, net_ring) == 48, "bi net_ring");
_Static_assert(sizeof(struct hvt_hc_poll) == 24, "poll");
_Static_assert(sizeof(struct hvt_hc_block_io) == 40, "block io");
_Static_assert(sizeof(struct hvt_hc_net_read) == 32, "net read");
_Static_assert(sizeof(struct hvt_hc_halt) == 16, "halt");

/* Bytes of a manifest note descriptor with N entries. */
#define HVT_MFT_SIZE(n) (sizeof(struct hvt_mft) + (uint64_t)(n) * sizeof(struct hvt_mft_entry))

#endif /* VMMUX_HVT_ABI_H */
