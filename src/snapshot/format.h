/*
 * format.h: the snapshot file format (docs/snapshot.md, byte by byte).
 *
 * A snapshot file is a 64-byte header, a sequence of sections (each a
 * 24-byte section header, its payload, zero padding to 8 bytes), an END
 * section, zero padding to the next 4 KiB boundary, and then guest memory:
 * mem_size bytes at data_offset, byte gpa of RAM at data_offset + gpa,
 * written only where a page is not zero (every other page is a hole of the
 * sparse file, reads as zero, and lseek(SEEK_DATA) skips it). Restore maps
 * that region MAP_PRIVATE, so memory the guest never touches is never read.
 *
 * Every integer is little-endian. Every section's payload is covered by a
 * CRC-32 (IEEE 802.3, zlib's crc32) in its header, and the section header
 * itself by another; the file header by a third. Guest memory is not
 * checksummed (checking it would read all of it): the MEMORY section's
 * extent list and sizes are.
 *
 * The writer (snap_buf_*, snap_section_*) builds sections in memory; the
 * reader (snap_parse) is a pure function over a buffer: it checks the
 * header, the version, every section's bounds, CRC and layout, and decodes
 * the sections into a struct snap_view that points into the buffer. It
 * never reads guest memory and never trusts a length it has not checked,
 * so it is a fuzzing target (its only input is the buffer).
 */
#ifndef VMMUX_SNAPSHOT_FORMAT_H
#define VMMUX_SNAPSHOT_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define SNAP_MAGIC "VMMUXSNP" /* 8 bytes, no NUL */
/*
 * Versions (docs/snapshot.md "Versions"). The reader takes every format
 * version from SNAP_VERSION_MIN to SNAP_VERSION (the one the writer
 * writes), and every HANDOVER version from SNAP_HANDOVER_VERSION_MIN to
 * SNAP_HANDOVER_VERSION: a snapshot or live-update state that an older
 * vmmux wrote is accepted by a newer one. Raising a _MIN drops a promise:
 * its fixtures (tests/fixtures/) go with it, and docs/snapshot.md says so.
 * Any other version is refused, naming the section and the versions read.
 */
#define SNAP_VERSION	      1u
#define SNAP_VERSION_MIN      1u
#define SNAP_HEADER_SIZE      64u
#define SNAP_SECHDR_SIZE      24u
#define SNAP_PAGE	      4096u
#define SNAP_SECTIONS_MAX     512u
#define SNAP_VCPUS_MAX	      64u
#define SNAP_VMMS_MAX	      64u
#define SNAP_ARGS_MAX	      1024u
#define SNAP_ROUTES_MAX	      4096u
#define SNAP_STRING_MAX	      4096u
#define SNAP_EXTENTS_MAX      (1u << 22)
#define SNAP_MEM_MAX	      (1ull << 40)
#define SNAP_VCPU_RECORDS_MAX 32u

/* Section types (the u32 "type" of a section header). */
enum snap_section_type {
	SNAP_SEC_MACHINE = 1, /* the machine and the command line of the run */
	SNAP_SEC_VCPU = 2,    /* one per vCPU (index = the vCPU): records below */
	SNAP_SEC_IRQCHIP = 3, /* PIC master, PIC slave, IOAPIC: 3 struct kvm_irqchip */
	SNAP_SEC_PIT = 4,     /* struct kvm_pit_state2 */
	SNAP_SEC_CLOCK = 5,   /* struct kvm_clock_data */
	SNAP_SEC_ROUTES = 6,  /* the live route set and its table generation */
	SNAP_SEC_VMM = 7,     /* one per VMM (index = its id) */
	SNAP_SEC_DEVICES = 8, /* the machine's own guest-visible state */
	SNAP_SEC_MEMORY = 9,  /* guest memory: its size, where it is, its extents */
	SNAP_SEC_END = 10,    /* the last section, empty */
	/* A live update's state only (src/snapshot/update.h): the descriptors
	 * the new program inherits, after MEMORY and before END. */
	SNAP_SEC_HANDOVER = 11,
};

/* The HANDOVER section's own version (its first u32): a vmmux reads the
 * versions from SNAP_HANDOVER_VERSION_MIN to its own, and writes the oldest
 * one that holds the state (version 1 when there is no parallel VMM).
 * Payload, version 1: u32 version, u32 npieces, u64 pause_ns
 * (CLOCK_MONOTONIC of the pause in the old program), i32 api_fd, i32
 * client_fd (-1: none), str reply_id (the update request's id, JSON text),
 * then npieces x {u64 gpa, u64 size, i32 memfd, u32 0}: guest RAM, not in
 * the data region. Version 2 adds, after the pieces, u32 npvmm and npvmm
 * parallel VMMs whose processes run on (src/vmm/parallel.h, struct
 * pvmm_handover), each: str name (1 to 31 bytes), u32 nslots (1 to
 * SNAP_HO_SLOTS_MAX), u32 nirqs (<= SNAP_HO_IRQS_MAX), i32 pid (> 0), 8 x
 * i32 descriptors (pidfd, set-up socket, region memfd, doorbell eventfd,
 * async eventfd, stderr pipe, input, output; -1: none; the first 5 required),
 * u64 xseq_next, u64 async_tail, u64 generation, u64 window_start_ns, u64
 * up_since_ns, u64 backoff_ns, u64 maybe_duplicated, u64 redelivered, u32
 * restarts, u32 recent_restarts, nslots x u32 (each slot's request number),
 * nirqs x {u32 line (< 256), u32 flags (bit 0 level, bit 1 wired), i32
 * irqfd, i32 resamplefd}; then u32 nio and nio in-process VMMs'
 * descriptors, each: str name (1 to 31 bytes), i32 input, i32 output (-1:
 * none). Version 3 adds, after those, u64 watchdog_at (when the run's
 * watchdog expires, CLOCK_MONOTONIC ns: the new program keeps it; 0: none
 * to come) and u32 nhost and nhost events the dispatcher had not taken
 * from its queue (src/vmm/machine.h machine_host_queue_copy), each 48
 * bytes: u16 src (the VMM that raised
 * it, or 0xffff: the host), u16 type (< VMMUX_EV__COUNT), u16 flags, u8
 * size, u8 src_kind, u16 src_id, u16 vcpu, u32 count, u64 key, u64 value,
 * u64 aux, u64 generation. */
#define SNAP_HANDOVER_VERSION	  3u
#define SNAP_HANDOVER_VERSION_MIN 1u
#define SNAP_HO_PVMMS_MAX	  64u
#define SNAP_HO_SLOTS_MAX	  66u /* = TP_SLOTS_MAX */
#define SNAP_HO_IRQS_MAX	  8u  /* = HS_IRQS_MAX */
#define SNAP_HO_FDS		  8u
#define SNAP_HO_HOSTQ_MAX	  256u /* = the dispatcher's queue */
#define SNAP_HO_EVENT_SIZE	  48u

/* Records of a VCPU section: {u32 kind, u32 len, payload, pad to 8}. */
enum snap_vcpu_record {
	SNAP_VR_REGS = 1,      /* struct kvm_regs */
	SNAP_VR_SREGS = 2,     /* struct kvm_sregs */
	SNAP_VR_SREGS2 = 3,    /* struct kvm_sregs2 (instead of SREGS) */
	SNAP_VR_FPU = 4,       /* struct kvm_fpu (when KVM has no XSAVE) */
	SNAP_VR_XSAVE = 5,     /* the XSAVE area, 4096 bytes or more (KVM_GET_XSAVE2) */
	SNAP_VR_XCRS = 6,      /* struct kvm_xcrs */
	SNAP_VR_MSRS = 7,      /* u32 n, u32 0, n x {u32 index, u32 0, u64 data} */
	SNAP_VR_LAPIC = 8,     /* struct kvm_lapic_state */
	SNAP_VR_EVENTS = 9,    /* struct kvm_vcpu_events */
	SNAP_VR_MP_STATE = 10, /* struct kvm_mp_state */
	SNAP_VR_DEBUGREGS = 11 /* struct kvm_debugregs */
};

/* MACHINE flags. */
#define SNAP_MF_IRQCHIP 0x1u
#define SNAP_MF_HVT	0x2u

/* VMM placement, as stored. */
#define SNAP_VMM_IN_PROCESS 0u
#define SNAP_VMM_PARALLEL   1u

/* CRC-32 (IEEE, reflected, as zlib's crc32(crc, buf, len)). */
uint32_t snap_crc32(uint32_t crc, const void *buf, size_t len);

/* A growing buffer for building a section's payload; a failed allocation
 * sets oom and makes every later call a no-op. */
struct snap_buf {
	uint8_t *p;
	size_t len, cap;
	bool oom;
};
void snap_buf_u16(struct snap_buf *b, uint16_t v);
void snap_buf_u32(struct snap_buf *b, uint32_t v);
void snap_buf_u64(struct snap_buf *b, uint64_t v);
void snap_buf_bytes(struct snap_buf *b, const void *p, size_t n);
/* u32 length, then the bytes (no NUL); NULL is stored as length 0. */
void snap_buf_str(struct snap_buf *b, const char *s);
/* An event of the dispatcher's queue, SNAP_HO_EVENT_SIZE bytes (HANDOVER
 * version 3): SRC (the VMM that raised it, or 0xffff) and EV without its
 * data pointer. snap_event_decode reads one back (EV's data NULL). */
struct vmmux_event;
void snap_buf_event(struct snap_buf *b, uint16_t src, const struct vmmux_event *ev);
void snap_event_decode(const uint8_t *p, uint16_t *src, struct vmmux_event *ev);
/* Zero bytes up to a multiple of 8. */
void snap_buf_pad8(struct snap_buf *b);
/* A VCPU record: kind, length, payload, padding. */
void snap_buf_record(struct snap_buf *b, uint32_t kind, const void *p, size_t n);
void snap_buf_free(struct snap_buf *b);

/* Fill the 24-byte section header OUT for a payload of LEN bytes. */
void snap_sechdr(uint8_t out[SNAP_SECHDR_SIZE], uint32_t type, uint32_t index, const void *payload,
		 uint64_t len);
/* Fill the 64-byte file header OUT. VERSION_TEXT: vmmux's version, cut to 23
 * bytes. */
void snap_header(uint8_t out[SNAP_HEADER_SIZE], uint64_t file_size, uint64_t created_ns,
		 uint32_t nsections, const char *version_text);

/* A length-prefixed string inside the buffer (not NUL-terminated). */
struct snap_str {
	const char *p;
	uint32_t len;
};

/* A parallel VMM of a HANDOVER section, as stored (checked by snap_parse). */
struct snap_ho_pvmm {
	struct snap_str name;
	uint32_t nslots, nirqs;
	int32_t pid;
	int32_t fd[SNAP_HO_FDS];
	uint64_t xseq_next, async_tail, generation, window_start_ns, up_since_ns, backoff_ns,
	    maybe_duplicated, redelivered;
	uint32_t restarts, recent_restarts;
	const uint8_t *seq;  /* nslots x u32 */
	const uint8_t *irqs; /* nirqs x {u32 line, u32 flags, i32 irqfd, i32 resamplefd} */
};

/* A decoded VMM section. */
struct snap_vmm {
	uint32_t id, placement;
	struct snap_str name, role, program;
	uint32_t ngrants;
	const uint8_t *grants; /* ngrants strings, as stored */
	const uint8_t *state;  /* its role's saved state, state_len bytes */
	uint64_t state_len;
	bool has_state; /* the role saved a state (0 bytes included) */
};

/* A decoded VCPU section: each record found (NULL: absent). */
struct snap_vcpu {
	const uint8_t *rec[SNAP_VCPU_RECORDS_MAX];
	uint32_t len[SNAP_VCPU_RECORDS_MAX];
};

struct snap_view {
	uint32_t version;
	uint64_t file_size, created_ns;
	char vmmux_version[24];
	/* MACHINE */
	uint64_t mem_size;
	uint32_t cpus, mflags;
	struct snap_str cwd;
	uint32_t argc;
	const uint8_t *argv; /* argc strings, as stored (snap_str_at) */
	/* VCPU */
	struct snap_vcpu vcpu[SNAP_VCPUS_MAX];
	/* IRQCHIP, PIT, CLOCK (NULL: absent; their sizes are checked) */
	const uint8_t *irqchip, *pit, *clock;
	/* ROUTES */
	uint64_t generation;
	uint32_t nroutes;
	const uint8_t *routes; /* nroutes strings */
	/* VMM */
	uint32_t nvmms;
	struct snap_vmm vmm[SNAP_VMMS_MAX];
	/* DEVICES */
	uint32_t resets;
	const uint8_t *halted; /* cpus bytes, 0 or 1 */
	/* MEMORY */
	uint64_t data_offset;
	uint64_t nextents;
	const uint8_t *extents; /* nextents x {u64 gpa, u64 len} */
	/* HANDOVER (a live update's state; absent from a snapshot file) */
	bool handover;
	uint32_t ho_version; /* its own version, within the range read */
	uint32_t ho_npieces;
	uint64_t ho_pause_ns;
	int32_t ho_api_fd, ho_client_fd;
	struct snap_str ho_reply_id;
	const uint8_t *ho_pieces; /* ho_npieces x {u64 gpa, u64 size, i32 fd, u32 0} */
	uint32_t ho_npvmm;	  /* version 2: the parallel VMMs handed over */
	struct snap_ho_pvmm ho_pvmm[SNAP_HO_PVMMS_MAX];
	uint64_t ho_watchdog_at; /* version 3: the watchdog's expiry, or 0 */
	uint32_t ho_nhost;	 /* version 3: events of the dispatcher's queue */
	const uint8_t *ho_host;	 /* ... ho_nhost x SNAP_HO_EVENT_SIZE bytes, checked */
	uint32_t ho_nio;	 /* version 2: in-process VMMs' input and output */
	struct {
		struct snap_str name;
		int32_t in_fd, out_fd;
	} ho_io[SNAP_HO_PVMMS_MAX];
};

/*
 * Check and decode the snapshot in BUF (LEN bytes: the whole file, or at
 * least up to data_offset when FILE_LEN gives the file's length; guest
 * memory itself is never read). 0, or -1 with a message naming the section
 * ("section 3 (VCPU 1): ...") and the reason: not a vmmux snapshot (magic),
 * another format version, a truncated file, a CRC mismatch, a length or
 * count out of bounds, a section missing, repeated or out of order.
 */
int snap_parse(const uint8_t *buf, size_t len, uint64_t file_len, struct snap_view *v,
	       struct errbuf *e);

/* The I-th string of a list of N strings at P (as checked by snap_parse). */
struct snap_str snap_str_at(const uint8_t *p, uint32_t i);

/* The name of a section type, for messages. */
const char *snap_section_name(uint32_t type);

#endif
