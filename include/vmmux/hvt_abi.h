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

/*
 * A Solo5 note is declared in C, one object per note in a section of its
 * own (".note.solo5.abi", ".note.solo5.manifest"), each section in its own
 * PT_NOTE: the 12-byte ELF note header and the owner name "Solo5" padded to
 * 8 bytes (struct hvt_note_hdr, 20 bytes), then the descriptor. The
 * descriptor is a C struct, so the compiler places it at its natural
 * alignment from the start of the note: struct hvt_abi1 (4-aligned) right
 * after the 20 bytes; struct hvt_mft (8-aligned: its entries hold 64-bit
 * fields) after 4 bytes of padding, at offset 24, and those 4 bytes belong
 * to the descriptor: n_descsz = 4 + 8 + 104 * entries (116 for one entry).
 * n_descsz is sizeof(the note) - sizeof(struct hvt_note_hdr), so the
 * compiler, not the declarer, fixes it. A reader finds a descriptor's
 * struct at the start of the note plus the header rounded up to the
 * struct's alignment (HVT_ABI1_DESC_PAD, HVT_MFT1_DESC_PAD).
 */
struct hvt_note_hdr {
	uint32_t n_namesz; /* sizeof(HVT_NOTE_NAME): 6 */
	uint32_t n_descsz; /* padding + the struct */
	uint32_t n_type;   /* HVT_NOTE_ABI or HVT_NOTE_MFT */
	char n_name[(sizeof(HVT_NOTE_NAME) + 3) & ~3u];
};

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

/*
 * HVT_MFT_ENTRIES: defined (to the number of entries) before this header is
 * included by the C file that declares a manifest (guest/hvt/gen_manifest.py
 * writes one per guest); otherwise e[] is a flexible array (the host, and
 * the manifest copy a guest reads).
 */
#ifndef HVT_MFT_ENTRIES
#define HVT_MFT_ENTRIES
#endif

/* The manifest: the descriptor of the MFT1 note (after its padding), and
 * its copy in guest RAM. */
struct hvt_mft {
	uint32_t version; /* HVT_MFT_VERSION */
	uint32_t entries; /* 1..HVT_MFT_MAX_ENTRIES; e[0] is the reserved-first */
	struct hvt_mft_entry e[HVT_MFT_ENTRIES];
};

/* The two notes as objects. */
struct hvt_abi1_note {
	struct hvt_note_hdr h;
	struct hvt_abi1 abi;
};
struct hvt_mft1_note {
	struct hvt_note_hdr h;
	struct hvt_mft m;
};

/* Padding at the start of each descriptor: the header rounded up to the
 * struct's alignment, less the header. */
#define HVT_NOTE_DESC_PAD(align)                                                                   \
	((sizeof(struct hvt_note_hdr) + (align)-1) / (align) * (align) -                           \
	 sizeof(struct hvt_note_hdr))
#define HVT_ABI1_DESC_PAD HVT_NOTE_DESC_PAD(_Alignof(struct hvt_abi1))
#define HVT_MFT1_DESC_PAD HVT_NOTE_DESC_PAD(_Alignof(struct hvt_mft))

/*
 * Declare a note in the file that defines it (a guest): NAME is the
 * object's name, the arguments its descriptor struct's initializer.
 * aligned(4) as Solo5's toolchain writes it: the object keeps its type's
 * larger alignment (8 for the manifest), and the section takes it.
 */
#define HVT_ABI1_NOTE_DEFINE(NAME, ...)                                                            \
	__attribute__((section(".note.solo5.abi"), used, aligned(4)))                              \
	const struct hvt_abi1_note NAME = {                                                        \
	    .h = {.n_namesz = sizeof(HVT_NOTE_NAME),                                               \
		  .n_descsz = sizeof(struct hvt_abi1_note) - sizeof(struct hvt_note_hdr),          \
		  .n_type = HVT_NOTE_ABI,                                                          \
		  .n_name = HVT_NOTE_NAME},                                                        \
	    .abi = __VA_ARGS__}
#define HVT_MFT1_NOTE_DEFINE(NAME, ...)                                                            \
	__attribute__((section(".note.solo5.manifest"), used, aligned(4)))                         \
	const struct hvt_mft1_note NAME = {                                                        \
	    .h = {.n_namesz = sizeof(HVT_NOTE_NAME),                                               \
		  .n_descsz = sizeof(struct hvt_mft1_note) - sizeof(struct hvt_note_hdr),          \
		  .n_type = HVT_NOTE_MFT,                                                          \
		  .n_name = HVT_NOTE_NAME},                                                        \
	    .m = __VA_ARGS__}

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
_Static_assert(sizeof(struct hvt_note_hdr) == 20, "hvt_note_hdr");
_Static_assert(HVT_ABI1_DESC_PAD == 0 && __builtin_offsetof(struct hvt_abi1_note, abi) == 20,
	       "abi1 note");
_Static_assert(_Alignof(struct hvt_mft) == 8, "hvt_mft alignment");
_Static_assert(HVT_MFT1_DESC_PAD == 4 && __builtin_offsetof(struct hvt_mft1_note, m) == 24,
	       "mft1 note");
_Static_assert(sizeof(struct hvt_boot_info) == 56, "hvt_boot_info");
_Static_assert(__builtin_offsetof(struct hvt_boot_info, host_features) == 40, "bi features");
_Static_assert(__builtin_offsetof(struct hvt_boot_info, net_ring) == 48, "bi net_ring");
_Static_assert(sizeof(struct hvt_hc_poll) == 24, "poll");
_Static_assert(sizeof(struct hvt_hc_block_io) == 40, "block io");
_Static_assert(sizeof(struct hvt_hc_net_read) == 32, "net read");
_Static_assert(sizeof(struct hvt_hc_halt) == 16, "halt");

/* Bytes of the manifest (struct hvt_mft) with N entries, and n_descsz of
 * its note (the padding included). */
#define HVT_MFT_SIZE(n)                                                                            \
	(__builtin_offsetof(struct hvt_mft, e) + (uint64_t)(n) * sizeof(struct hvt_mft_entry))
#define HVT_MFT1_DESCSZ(n) (HVT_MFT1_DESC_PAD + HVT_MFT_SIZE(n))
/* The largest n_descsz of each note. */
#define HVT_ABI1_DESCSZ	    (HVT_ABI1_DESC_PAD + sizeof(struct hvt_abi1))
#define HVT_MFT1_DESCSZ_MAX HVT_MFT1_DESCSZ(HVT_MFT_MAX_ENTRIES)

#endif /* VMMUX_HVT_ABI_H */
