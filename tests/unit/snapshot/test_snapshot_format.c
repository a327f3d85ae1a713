/*
 * Unit tests of snapshot/format.c: the snapshot file's reader (snap_parse)
 * over files built here with the writer's helpers: a valid file decodes
 * field by field; every refusal (magic, version, CRCs, truncation at every
 * length, bounds, missing and repeated sections, bad records and extents)
 * names its section; and mutated files (bytes changed, CRCs recomputed so
 * that the checks behind them are reached) never crash it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <linux/kvm.h>

#include <vmmux/vmmux.h>

#include "snapshot/format.h"

#define DATA_OFFSET 0x4000u
#define MEM	    (16u * SNAP_PAGE)

/* What to build, and how to spoil it. */
struct spec {
	unsigned cpus;
	bool irqchip;
	bool skip_vcpu1, skip_end, skip_memory, dup_routes;
	uint32_t regs_len; /* 0: sizeof(struct kvm_regs) */
	uint64_t extent_gpa, extent_len;
	uint32_t version;
	/* a live update's HANDOVER section: its version (0: none), and a
	 * piece size other than all of memory (a hole at the end) */
	uint32_t handover;
	uint64_t ho_piece;
	/* version 2: one parallel VMM (ho_pid its pid: 0 for 4242) and one
	 * in-process VMM's descriptors */
	int32_t ho_pid;
	uint32_t ho_nslots; /* 0: 3 */
	/* version 3: the dispatcher's events (ho_nhost: 0 for 2; ho_type: the
	 * second one's type) */
	uint32_t ho_nhost;
	uint16_t ho_type;
};

/* The dispatcher's events of a version 3 HANDOVER section: event K. */
static struct vmmux_event host_event(uint32_t k)
{
	return (struct vmmux_event){.type = VMMUX_EV_PLATFORM,
				    .flags = 0x1,
				    .size = 4,
				    .src_kind = VMMUX_SRC_VMM,
				    .src_id = 3,
				    .count = 1,
				    .vcpu = VMMUX_NO_VCPU,
				    .key = 0x100 + k,
				    .value = 0x1122334455667788ull + k,
				    .aux = 9,
				    .generation = 77};
}

struct file {
	uint8_t *p;
	size_t len;
	/* where each section's header starts */
	size_t sec_at[32];
	unsigned nsec;
};

static void add_section(struct file *f, uint32_t type, uint32_t index, struct snap_buf *b)
{
	f->sec_at[f->nsec++] = f->len;
	snap_sechdr(f->p + f->len, type, index, b->p, b->len);
	f->len += SNAP_SECHDR_SIZE;
	if (b->len)
		memcpy(f->p + f->len, b->p, b->len);
	f->len += (b->len + 7) & ~(size_t)7;
	snap_buf_free(b);
}

static struct file build(const struct spec *s)
{
	struct file f = {.p = calloc(1, DATA_OFFSET + MEM), .len = SNAP_HEADER_SIZE};
	assert_non_null(f.p);
	struct snap_buf b = {0};
	snap_buf_u64(&b, MEM);
	snap_buf_u32(&b, s->cpus);
	snap_buf_u32(&b, s->irqchip ? SNAP_MF_IRQCHIP : 0);
	snap_buf_u32(&b, 3);
	snap_buf_u32(&b, 0);
	snap_buf_str(&b, "/tmp");
	snap_buf_str(&b, "run");
	snap_buf_str(&b, "--kernel");
	snap_buf_str(&b, "guest.elf");
	add_section(&f, SNAP_SEC_MACHINE, 0, &b);
	for (unsigned i = 0; i < s->cpus; i++) {
		if (i == 1 && s->skip_vcpu1)
			continue;
		struct kvm_regs regs;
		memset(&regs, 0, sizeof(regs));
		regs.rip = 0x100000 + i;
		struct kvm_sregs sregs;
		memset(&sregs, 0, sizeof(sregs));
		snap_buf_record(&b, SNAP_VR_REGS, &regs, s->regs_len ? s->regs_len : sizeof(regs));
		snap_buf_record(&b, SNAP_VR_SREGS, &sregs, sizeof(sregs));
		uint8_t msrs[8 + 16] = {1, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 42};
		snap_buf_record(&b, SNAP_VR_MSRS, msrs, sizeof(msrs));
		add_section(&f, SNAP_SEC_VCPU, i, &b);
	}
	if (s->irqchip) {
		struct kvm_irqchip ic[3];
		memset(ic, 0, sizeof(ic));
		snap_buf_bytes(&b, ic, sizeof(ic));
		add_section(&f, SNAP_SEC_IRQCHIP, 0, &b);
		struct kvm_pit_state2 pit;
		memset(&pit, 0, sizeof(pit));
		snap_buf_bytes(&b, &pit, sizeof(pit));
		add_section(&f, SNAP_SEC_PIT, 0, &b);
	}
	for (int k = 0; k < (s->dup_routes ? 2 : 1); k++) {
		snap_buf_u64(&b, 7);
		snap_buf_u32(&b, 2);
		snap_buf_u32(&b, 0);
		snap_buf_str(&b, "io:0x3f8-0x3ff=uart");
		snap_buf_str(&b, "type:hlt=main");
		add_section(&f, SNAP_SEC_ROUTES, 0, &b);
	}
	const char *names[] = {"main", "uart"};
	for (uint32_t id = 0; id < 2; id++) {
		snap_buf_u32(&b, id);
		snap_buf_u32(&b, SNAP_VMM_IN_PROCESS);
		snap_buf_u32(&b, id == 1 ? 1 : 0);
		snap_buf_u32(&b, id == 1 ? 1 : 0);
		snap_buf_str(&b, names[id]);
		snap_buf_str(&b, id == 1 ? "uart16550" : "main");
		snap_buf_str(&b, NULL);
		if (id == 1)
			snap_buf_str(&b, "irq:4");
		snap_buf_u64(&b, id == 1 ? 3 : 0);
		if (id == 1)
			snap_buf_bytes(&b, "abc", 3);
		add_section(&f, SNAP_SEC_VMM, id, &b);
	}
	snap_buf_u32(&b, s->cpus);
	snap_buf_u32(&b, 2);
	for (unsigned i = 0; i < s->cpus; i++) {
		uint8_t h = i == 1;
		snap_buf_bytes(&b, &h, 1);
	}
	add_section(&f, SNAP_SEC_DEVICES, 0, &b);
	if (!s->skip_memory) {
		snap_buf_u64(&b, MEM);
		snap_buf_u64(&b, DATA_OFFSET);
		snap_buf_u64(&b, 1);
		snap_buf_u64(&b, s->extent_len ? s->extent_gpa : SNAP_PAGE);
		snap_buf_u64(&b, s->extent_len ? s->extent_len : 2 * SNAP_PAGE);
		add_section(&f, SNAP_SEC_MEMORY, 0, &b);
	}
	if (s->handover) {
		uint64_t piece = s->ho_piece ? s->ho_piece : MEM / 2;
		snap_buf_u32(&b, s->handover);
		snap_buf_u32(&b, 2);
		snap_buf_u64(&b, 12345);
		snap_buf_u32(&b, 7);
		snap_buf_u32(&b, (uint32_t)-1);
		snap_buf_str(&b, "\"req-1\"");
		snap_buf_u64(&b, 0);
		snap_buf_u64(&b, MEM / 2);
		snap_buf_u32(&b, 20);
		snap_buf_u32(&b, 0);
		snap_buf_u64(&b, MEM / 2);
		snap_buf_u64(&b, piece);
		snap_buf_u32(&b, 21);
		snap_buf_u32(&b, 0);
		if (s->handover >= 2) {
			uint32_t nslots = s->ho_nslots ? s->ho_nslots : 3;
			snap_buf_u32(&b, 1);
			snap_buf_str(&b, "uart");
			snap_buf_u32(&b, nslots);
			snap_buf_u32(&b, 1);					    /* nirqs */
			snap_buf_u32(&b, (uint32_t)(s->ho_pid ? s->ho_pid : 4242)); /* pid */
			for (int32_t fd = 30; fd < 36; fd++) /* pidfd .. stderr */
				snap_buf_u32(&b, (uint32_t)fd);
			snap_buf_u32(&b, (uint32_t)-1);	  /* input */
			snap_buf_u32(&b, 1);		  /* output */
			for (uint64_t k = 1; k <= 8; k++) /* xseq_next .. redelivered */
				snap_buf_u64(&b, 1000 + k);
			snap_buf_u32(&b, 2); /* restarts */
			snap_buf_u32(&b, 1);
			for (uint32_t k = 0; k < nslots; k++)
				snap_buf_u32(&b, 10 + k);
			snap_buf_u32(&b, 4); /* line */
			snap_buf_u32(&b, 3); /* level, wired */
			snap_buf_u32(&b, 40);
			snap_buf_u32(&b, 41);
			snap_buf_u32(&b, 1);
			snap_buf_str(&b, "mon");
			snap_buf_u32(&b, (uint32_t)-1);
			snap_buf_u32(&b, 42);
		}
		if (s->handover >= 3) {
			uint32_t n = s->ho_nhost ? s->ho_nhost : 2;
			snap_buf_u64(&b, 987654321); /* watchdog_at */
			snap_buf_u32(&b, n);
			for (uint32_t k = 0; k < n && k < 2; k++) { /* 2 at most */
				struct vmmux_event ev = host_event(k);
				if (k == 1 && s->ho_type)
					ev.type = s->ho_type;
				snap_buf_event(&b, k == 0 ? 0xffff : 3, &ev);
			}
		}
		add_section(&f, SNAP_SEC_HANDOVER, 0, &b);
	}
	if (!s->skip_end)
		add_section(&f, SNAP_SEC_END, 0, &b);
	assert_true(f.len <= DATA_OFFSET);
	snap_header(f.p, DATA_OFFSET + MEM, 1, f.nsec, "test");
	if (s->version) {
		f.p[8] = (uint8_t)s->version;
		memset(f.p + 36, 0, 4);
		uint32_t crc = snap_crc32(0, f.p, SNAP_HEADER_SIZE);
		memcpy(f.p + 36, &crc, 4);
	}
	f.len = DATA_OFFSET + MEM;
	return f;
}

static const struct spec base = {.cpus = 2, .irqchip = true};

static void parses(const struct file *f, struct snap_view *v)
{
	struct errbuf e = {{0}};
	if (snap_parse(f->p, f->len, f->len, v, &e) != 0)
		fail_msg("refused: %s", e.msg);
}

static void refused(const struct file *f, size_t len, const char *what)
{
	struct snap_view v;
	struct errbuf e = {{0}};
	if (snap_parse(f->p, len, len, &v, &e) == 0)
		fail_msg("accepted a file that should be refused (%s)", what);
	if (strstr(e.msg, what) == NULL)
		fail_msg("message '%s' does not say '%s'", e.msg, what);
}

/* The file SPEC builds is refused, saying WHAT. */
static void spec_refused(const struct spec *spec, const char *what)
{
	struct file f = build(spec);
	refused(&f, f.len, what);
	free(f.p);
}

static void test_crc32_is_zlibs(void **state)
{
	(void)state;
	/* the check value of CRC-32/ISO-HDLC, zlib's crc32 */
	assert_int_equal(snap_crc32(0, "123456789", 9), 0xcbf43926u);
	assert_int_equal(snap_crc32(snap_crc32(0, "1234", 4), "56789", 5), 0xcbf43926u);
	assert_int_equal(snap_crc32(0, "", 0), 0);
}

static void test_valid_file_decodes(void **state)
{
	(void)state;
	struct file f = build(&base);
	struct snap_view v;
	parses(&f, &v);
	assert_int_equal(v.version, SNAP_VERSION);
	assert_int_equal(v.mem_size, MEM);
	assert_int_equal(v.cpus, 2);
	assert_int_equal(v.mflags, SNAP_MF_IRQCHIP);
	assert_int_equal(v.argc, 3);
	struct snap_str a = snap_str_at(v.argv, 2);
	assert_int_equal(a.len, 9);
	assert_memory_equal(a.p, "guest.elf", 9);
	assert_int_equal(v.cwd.len, 4);
	assert_string_equal(v.vmmux_version, "test");
	for (unsigned i = 0; i < 2; i++) {
		struct kvm_regs r;
		assert_int_equal(v.vcpu[i].len[SNAP_VR_REGS], sizeof(r));
		memcpy(&r, v.vcpu[i].rec[SNAP_VR_REGS], sizeof(r));
		assert_int_equal(r.rip, 0x100000 + i);
		assert_non_null(v.vcpu[i].rec[SNAP_VR_MSRS]);
		assert_null(v.vcpu[i].rec[SNAP_VR_LAPIC]);
	}
	assert_non_null(v.irqchip);
	assert_non_null(v.pit);
	assert_null(v.clock);
	assert_int_equal(v.generation, 7);
	assert_int_equal(v.nroutes, 2);
	a = snap_str_at(v.routes, 1);
	assert_memory_equal(a.p, "type:hlt=main", a.len);
	assert_int_equal(v.nvmms, 2);
	assert_int_equal(v.vmm[1].name.len, 4);
	assert_true(v.vmm[1].has_state);
	assert_int_equal(v.vmm[1].state_len, 3);
	assert_memory_equal(v.vmm[1].state, "abc", 3);
	assert_int_equal(v.vmm[1].ngrants, 1);
	assert_false(v.vmm[0].has_state);
	assert_int_equal(v.resets, 2);
	assert_int_equal(v.halted[0], 0);
	assert_int_equal(v.halted[1], 1);
	assert_int_equal(v.data_offset, DATA_OFFSET);
	assert_int_equal(v.nextents, 1);
	free(f.p);
}

static void test_magic_version_and_header_crc(void **state)
{
	(void)state;
	struct file f = build(&base);
	f.p[0] = 'X';
	refused(&f, f.len, "header: not a vmmux snapshot");
	free(f.p);

	struct spec s = base;
	s.version = 2;
	spec_refused(&s, "header: snapshot format version 2; this vmmux reads version 1");

	f = build(&base);
	f.p[24] ^= 1; /* the creation time */
	refused(&f, f.len, "header: CRC mismatch");
	free(f.p);

	/* every version from the oldest read to the current one parses (an
	 * older vmmux's file, docs/snapshot.md "Versions"); one below is
	 * refused by name */
	for (uint32_t ver = SNAP_VERSION_MIN; ver <= SNAP_VERSION; ver++) {
		s = base;
		s.version = ver;
		f = build(&s);
		struct snap_view v;
		parses(&f, &v);
		assert_int_equal(v.version, ver);
		free(f.p);
	}
	f = build(&base);
	uint32_t below = SNAP_VERSION_MIN - 1, zero = 0, crc;
	memcpy(f.p + 8, &below, 4);
	memcpy(f.p + 36, &zero, 4);
	crc = snap_crc32(0, f.p, SNAP_HEADER_SIZE);
	memcpy(f.p + 36, &crc, 4);
	char want[96];
	snprintf(want, sizeof(want), "header: snapshot format version %u; this vmmux reads ",
		 below);
	refused(&f, f.len, want);
	free(f.p);
}

static void test_truncated_at_every_length(void **state)
{
	(void)state;
	struct file f = build(&base);
	for (size_t len = 0; len < f.len; len++) {
		/* the prefix as its own allocation: ASan sees a read past it */
		uint8_t *p = malloc(len ? len : 1);
		memcpy(p, f.p, len);
		struct snap_view v;
		struct errbuf e = {{0}};
		if (snap_parse(p, len, len, &v, &e) == 0)
			fail_msg("a file cut at %zu of %zu bytes was accepted", len, f.len);
		if (strstr(e.msg, "truncated") == NULL)
			fail_msg("cut at %zu: '%s' does not say truncated", len, e.msg);
		free(p);
	}
	free(f.p);
}

static void test_corrupted_section_is_named(void **state)
{
	(void)state;
	struct file f = build(&base);
	/* a byte of VCPU 1's payload (section 2) */
	f.p[f.sec_at[2] + SNAP_SECHDR_SIZE + 10] ^= 0x40;
	refused(&f, f.len, "section 2 (VCPU 1): CRC mismatch");
	free(f.p);
	f = build(&base);
	/* the length in the ROUTES section's header */
	f.p[f.sec_at[5] + 8] ^= 1;
	refused(&f, f.len, "section 5: header CRC mismatch");
	free(f.p);
}

static void test_layout_refusals(void **state)
{
	(void)state;
	struct spec s = base;
	s.skip_vcpu1 = true;
	struct file f = build(&s);
	refused(&f, f.len, "section VCPU 1: missing");
	free(f.p);

	s = base;
	s.skip_end = true;
	spec_refused(&s, "section END: missing");

	s = base;
	s.skip_memory = true;
	spec_refused(&s, "section MEMORY: missing");

	s = base;
	s.dup_routes = true;
	spec_refused(&s, "(ROUTES): repeated");

	s = base;
	s.regs_len = sizeof(struct kvm_regs) - 8;
	spec_refused(&s, "(VCPU 0): a record of the wrong size");

	s = base;
	s.extent_gpa = MEM - SNAP_PAGE;
	s.extent_len = 2 * SNAP_PAGE; /* past the end of guest memory */
	spec_refused(&s, "(MEMORY): an extent that is not page-aligned");

	s = base;
	s.extent_gpa = 100; /* not page aligned */
	s.extent_len = SNAP_PAGE;
	spec_refused(&s, "(MEMORY): an extent");

	/* the file shorter than the header says: guest memory cut off */
	f = build(&base);
	struct snap_view v;
	struct errbuf e = {{0}};
	assert_int_equal(snap_parse(f.p, DATA_OFFSET, DATA_OFFSET + MEM - 1, &v, &e), -1);
	assert_non_null(strstr(e.msg, "header: the file is truncated"));
	free(f.p);
}

/* A live update's HANDOVER section: decoded; another version refused by
 * name; pieces that do not cover memory refused; absent from a snapshot. */
static void test_handover(void **state)
{
	(void)state;
	struct snap_view v;
	struct file f = build(&base);
	memset(&v, 0, sizeof(v));
	parses(&f, &v);
	assert_false(v.handover);
	free(f.p);

	struct spec s = base;
	s.handover = SNAP_HANDOVER_VERSION;
	f = build(&s);
	memset(&v, 0, sizeof(v));
	parses(&f, &v);
	assert_true(v.handover);
	assert_int_equal(v.ho_npieces, 2);
	assert_int_equal(v.ho_pause_ns, 12345);
	assert_int_equal(v.ho_api_fd, 7);
	assert_int_equal(v.ho_client_fd, -1);
	assert_int_equal(v.ho_reply_id.len, 7);
	assert_memory_equal(v.ho_reply_id.p, "\"req-1\"", 7);
	free(f.p);

	/* version 1 (a state without parallel VMMs) is still read */
	s.handover = 1;
	f = build(&s);
	memset(&v, 0, sizeof(v));
	parses(&f, &v);
	assert_true(v.handover);
	assert_int_equal(v.ho_version, 1);
	assert_int_equal(v.ho_npvmm, 0);
	assert_int_equal(v.ho_nio, 0);
	free(f.p);

	/* version 2: the parallel VMMs and the in-process VMMs' descriptors */
	s.handover = 2;
	f = build(&s);
	memset(&v, 0, sizeof(v));
	parses(&f, &v);
	assert_int_equal(v.ho_version, 2);
	assert_int_equal(v.ho_npvmm, 1);
	const struct snap_ho_pvmm *m = &v.ho_pvmm[0];
	assert_int_equal(m->name.len, 4);
	assert_memory_equal(m->name.p, "uart", 4);
	assert_int_equal(m->pid, 4242);
	assert_int_equal(m->nslots, 3);
	assert_int_equal(m->fd[0], 30);
	assert_int_equal(m->fd[5], 35);
	assert_int_equal(m->fd[6], -1);
	assert_int_equal(m->fd[7], 1);
	assert_int_equal(m->xseq_next, 1001);
	assert_int_equal(m->redelivered, 1008);
	assert_int_equal(m->restarts, 2);
	assert_int_equal(m->recent_restarts, 1);
	assert_int_equal(m->nirqs, 1);
	assert_int_equal(m->seq[8], 12); /* slot 2's number, little-endian */
	assert_int_equal(m->irqs[0], 4);
	assert_int_equal(v.ho_nio, 1);
	assert_int_equal(v.ho_io[0].name.len, 3);
	assert_int_equal(v.ho_io[0].in_fd, -1);
	assert_int_equal(v.ho_io[0].out_fd, 42);
	free(f.p);

	/* version 3: the dispatcher's events, each 48 bytes, decoded back */
	s.handover = 3;
	f = build(&s);
	memset(&v, 0, sizeof(v));
	parses(&f, &v);
	assert_int_equal(v.ho_version, 3);
	assert_int_equal(v.ho_npvmm, 1);
	assert_int_equal(v.ho_nhost, 2);
	assert_int_equal(v.ho_watchdog_at, 987654321);
	for (uint32_t k = 0; k < 2; k++) {
		struct vmmux_event ev, want = host_event(k);
		uint16_t src;
		snap_event_decode(v.ho_host + k * SNAP_HO_EVENT_SIZE, &src, &ev);
		assert_int_equal(src, k == 0 ? 0xffff : 3);
		assert_memory_equal(&ev, &want, sizeof(ev));
	}
	free(f.p);
	struct snap_buf one = {0};
	struct vmmux_event ev0 = host_event(0);
	snap_buf_event(&one, 1, &ev0);
	assert_int_equal(one.len, SNAP_HO_EVENT_SIZE);
	snap_buf_free(&one);
	s.ho_type = VMMUX_EV__COUNT;
	spec_refused(&s, "(HANDOVER): a dispatcher's event of an unknown type");
	s.ho_type = 0;
	s.ho_nhost = SNAP_HO_HOSTQ_MAX + 1;
	spec_refused(&s, "(HANDOVER): a count of the dispatcher's events out of bounds");
	s.ho_nhost = 3; /* more than the section holds */
	spec_refused(&s, "(HANDOVER)");
	s.ho_nhost = 0;
	s.handover = 2;

	s.ho_pid = -5;
	spec_refused(&s, "(HANDOVER): parallel VMM 0: a process id that is not positive");
	s.ho_pid = 0;
	s.ho_nslots = SNAP_HO_SLOTS_MAX + 1;
	spec_refused(&s, "(HANDOVER): parallel VMM 0: a slot or IRQ line count out of bounds");
	s.ho_nslots = 0;

	s.handover = SNAP_HANDOVER_VERSION + 1;
	spec_refused(&s,
		     "(HANDOVER): live-update state version 4; this vmmux reads versions 1 to 3");

	/* every version from the oldest read to the current one parses */
	for (uint32_t ver = SNAP_HANDOVER_VERSION_MIN; ver <= SNAP_HANDOVER_VERSION; ver++) {
		s.handover = ver;
		f = build(&s);
		memset(&v, 0, sizeof(v));
		parses(&f, &v);
		assert_int_equal(v.ho_version, ver);
		free(f.p);
	}
	if (SNAP_HANDOVER_VERSION_MIN > 1) {
		s.handover = SNAP_HANDOVER_VERSION_MIN - 1;
		f = build(&s);
		refused(&f, f.len, "(HANDOVER): live-update state version ");
		free(f.p);
	}

	s.handover = SNAP_HANDOVER_VERSION;
	s.ho_piece = MEM / 2 - SNAP_PAGE;
	spec_refused(&s, "(HANDOVER): guest RAM pieces that do not cover memory");
}

/* Change bytes of a section's payload and recompute its CRCs, so that the
 * decoding behind them sees the change: refused or accepted, never a crash
 * or a read outside the buffer (run under ASan). */
static void test_mutations_never_crash(void **state)
{
	(void)state;
	struct file ref = build(&base);
	uint32_t seed = 12345;
	unsigned accepted = 0, total = 0;
	for (unsigned round = 0; round < 4000; round++) {
		struct file f = ref;
		f.p = malloc(ref.len);
		memcpy(f.p, ref.p, ref.len);
		seed = seed * 1103515245u + 12345u;
		unsigned k = (seed >> 8) % ref.nsec;
		size_t at = ref.sec_at[k];
		uint64_t slen;
		memcpy(&slen, f.p + at + 8, 8);
		for (unsigned m = 0; m < 1 + (seed >> 24) % 4; m++) {
			seed = seed * 1103515245u + 12345u;
			size_t off = at + 8 + (seed >> 4) % (16 + (slen ? slen : 1));
			if (off < ref.len)
				f.p[off] = (uint8_t)(seed >> 16);
		}
		memcpy(&slen, f.p + at + 8, 8);
		if (slen <= ref.len - at - SNAP_SECHDR_SIZE) {
			uint32_t crc = snap_crc32(0, f.p + at + SNAP_SECHDR_SIZE, (size_t)slen);
			memcpy(f.p + at + 4, &crc, 4);
		}
		uint32_t hcrc = snap_crc32(0, f.p + at, 20);
		memcpy(f.p + at + 20, &hcrc, 4);
		struct snap_view v;
		struct errbuf e = {{0}};
		accepted += snap_parse(f.p, f.len, f.len, &v, &e) == 0;
		total++;
		free(f.p);
	}
	assert_true(accepted < total);
	free(ref.p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_crc32_is_zlibs),
	    cmocka_unit_test(test_valid_file_decodes),
	    cmocka_unit_test(test_magic_version_and_header_crc),
	    cmocka_unit_test(test_truncated_at_every_length),
	    cmocka_unit_test(test_corrupted_section_is_named),
	    cmocka_unit_test(test_layout_refusals),
	    cmocka_unit_test(test_handover),
	    cmocka_unit_test(test_mutations_never_crash),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
