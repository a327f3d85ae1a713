/*
 * format.c: the snapshot file format (format.h, docs/snapshot.md).
 */
#include "snapshot/format.h"

#include <linux/kvm.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include <vmmux/vmmux.h>

/* ---------------------------------------------------------------------- */
/* CRC-32                                                                   */
/* ---------------------------------------------------------------------- */

static uint32_t crc_table[256];
static bool crc_ready;

static void crc_init(void)
{
	for (uint32_t n = 0; n < 256; n++) {
		uint32_t c = n;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
		crc_table[n] = c;
	}
	__atomic_store_n(&crc_ready, true, __ATOMIC_RELEASE);
}

uint32_t snap_crc32(uint32_t crc, const void *buf, size_t len)
{
	if (!__atomic_load_n(&crc_ready, __ATOMIC_ACQUIRE))
		crc_init(); /* idempotent: every thread computes the same table */
	const uint8_t *p = buf;
	crc = ~crc;
	while (len--)
		crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

/* ---------------------------------------------------------------------- */
/* Little-endian access                                                     */
/* ---------------------------------------------------------------------- */

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
	return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static void wr32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void wr64(uint8_t *p, uint64_t v)
{
	wr32(p, (uint32_t)v);
	wr32(p + 4, (uint32_t)(v >> 32));
}

/* ---------------------------------------------------------------------- */
/* Writing                                                                  */
/* ---------------------------------------------------------------------- */

static bool grow(struct snap_buf *b, size_t n)
{
	if (b->oom)
		return false;
	if (b->len + n <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + n)
		cap *= 2;
	uint8_t *p = realloc(b->p, cap);
	if (p == NULL) {
		b->oom = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

void snap_buf_bytes(struct snap_buf *b, const void *p, size_t n)
{
	if (n == 0 || !grow(b, n))
		return;
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

void snap_buf_u16(struct snap_buf *b, uint16_t v)
{
	uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
	snap_buf_bytes(b, x, 2);
}

void snap_buf_u32(struct snap_buf *b, uint32_t v)
{
	uint8_t x[4];
	wr32(x, v);
	snap_buf_bytes(b, x, 4);
}

void snap_buf_u64(struct snap_buf *b, uint64_t v)
{
	uint8_t x[8];
	wr64(x, v);
	snap_buf_bytes(b, x, 8);
}

void snap_buf_str(struct snap_buf *b, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	snap_buf_u32(b, (uint32_t)n);
	snap_buf_bytes(b, s, n);
}

void snap_buf_event(struct snap_buf *b, uint16_t src, const struct vmmux_event *ev)
{
	snap_buf_u16(b, src);
	snap_buf_u16(b, ev->type);
	snap_buf_u16(b, ev->flags);
	snap_buf_bytes(b, &ev->size, 1);
	snap_buf_bytes(b, &ev->src_kind, 1);
	snap_buf_u16(b, ev->src_id);
	snap_buf_u16(b, ev->vcpu);
	snap_buf_u32(b, ev->count);
	snap_buf_u64(b, ev->key);
	snap_buf_u64(b, ev->value);
	snap_buf_u64(b, ev->aux);
	snap_buf_u64(b, ev->generation);
}

void snap_event_decode(const uint8_t *p, uint16_t *src, struct vmmux_event *ev)
{
	memset(ev, 0, sizeof(*ev));
	*src = rd16(p);
	ev->type = rd16(p + 2);
	ev->flags = rd16(p + 4);
	ev->size = p[6];
	ev->src_kind = p[7];
	ev->src_id = rd16(p + 8);
	ev->vcpu = rd16(p + 10);
	ev->count = rd32(p + 12);
	ev->key = rd64(p + 16);
	ev->value = rd64(p + 24);
	ev->aux = rd64(p + 32);
	ev->generation = rd64(p + 40);
}

void snap_buf_pad8(struct snap_buf *b)
{
	static const uint8_t zero[8];
	if (b->len % 8)
		snap_buf_bytes(b, zero, 8 - b->len % 8);
}

void snap_buf_record(struct snap_buf *b, uint32_t kind, const void *p, size_t n)
{
	snap_buf_u32(b, kind);
	snap_buf_u32(b, (uint32_t)n);
	snap_buf_bytes(b, p, n);
	snap_buf_pad8(b);
}

void snap_buf_free(struct snap_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

void snap_sechdr(uint8_t out[SNAP_SECHDR_SIZE], uint32_t type, uint32_t index, const void *payload,
		 uint64_t len)
{
	memset(out, 0, SNAP_SECHDR_SIZE);
	wr32(out, type);
	wr32(out + 4, snap_crc32(0, payload, (size_t)len));
	wr64(out + 8, len);
	wr32(out + 16, index);
	wr32(out + 20, snap_crc32(0, out, 20));
}

void snap_header(uint8_t out[SNAP_HEADER_SIZE], uint64_t file_size, uint64_t created_ns,
		 uint32_t nsections, const char *version_text)
{
	memset(out, 0, SNAP_HEADER_SIZE);
	memcpy(out, SNAP_MAGIC, 8);
	wr32(out + 8, SNAP_VERSION);
	wr32(out + 12, SNAP_HEADER_SIZE);
	wr64(out + 16, file_size);
	wr64(out + 24, created_ns);
	wr32(out + 32, nsections);
	size_t n = version_text ? strlen(version_text) : 0;
	memcpy(out + 40, version_text, n > 23 ? 23 : n);
	wr32(out + 36, snap_crc32(0, out, SNAP_HEADER_SIZE));
}

/* ---------------------------------------------------------------------- */
/* Reading                                                                  */
/* ---------------------------------------------------------------------- */

const char *snap_section_name(uint32_t type)
{
	static const char *const names[] = {
	    [SNAP_SEC_MACHINE] = "MACHINE",   [SNAP_SEC_VCPU] = "VCPU",
	    [SNAP_SEC_IRQCHIP] = "IRQCHIP",   [SNAP_SEC_PIT] = "PIT",
	    [SNAP_SEC_CLOCK] = "CLOCK",	      [SNAP_SEC_ROUTES] = "ROUTES",
	    [SNAP_SEC_VMM] = "VMM",	      [SNAP_SEC_DEVICES] = "DEVICES",
	    [SNAP_SEC_MEMORY] = "MEMORY",     [SNAP_SEC_END] = "END",
	    [SNAP_SEC_HANDOVER] = "HANDOVER",
	};
	return type < sizeof(names) / sizeof(names[0]) && names[type] ? names[type] : "unknown";
}

/* A cursor over one section's payload. */
struct cur {
	const uint8_t *p;
	uint64_t len, at;
	bool bad;
};

static bool need(struct cur *c, uint64_t n)
{
	if (c->bad || n > c->len - c->at) {
		c->bad = true;
		return false;
	}
	return true;
}

static uint32_t get32(struct cur *c)
{
	if (!need(c, 4))
		return 0;
	uint32_t v = rd32(c->p + c->at);
	c->at += 4;
	return v;
}

static uint64_t get64(struct cur *c)
{
	if (!need(c, 8))
		return 0;
	uint64_t v = rd64(c->p + c->at);
	c->at += 8;
	return v;
}

static const uint8_t *get_bytes(struct cur *c, uint64_t n)
{
	if (!need(c, n))
		return NULL;
	const uint8_t *p = c->p + c->at;
	c->at += n;
	return p;
}

static struct snap_str get_str(struct cur *c)
{
	struct snap_str s = {NULL, 0};
	uint32_t n = get32(c);
	if (n > SNAP_STRING_MAX) {
		c->bad = true;
		return s;
	}
	const uint8_t *p = get_bytes(c, n);
	if (p != NULL) {
		s.p = (const char *)p;
		s.len = n;
		if (memchr(p, '\0', n) != NULL)
			c->bad = true; /* stored strings have no NUL inside */
	}
	return s;
}

/* N strings in a row: checked, the start returned. */
static const uint8_t *get_strs(struct cur *c, uint32_t n)
{
	const uint8_t *start = c->p + c->at;
	for (uint32_t i = 0; i < n && !c->bad; i++)
		get_str(c);
	return c->bad ? NULL : start;
}

struct snap_str snap_str_at(const uint8_t *p, uint32_t i)
{
	for (;;) {
		uint32_t n = rd32(p);
		if (i-- == 0)
			return (struct snap_str){(const char *)p + 4, n};
		p += 4 + (uint64_t)n;
	}
}

static int bad(struct errbuf *e, unsigned k, uint32_t type, uint32_t index, const char *what)
{
	if (type == SNAP_SEC_VCPU || type == SNAP_SEC_VMM)
		return err_set(e, "section %u (%s %u): %s", k, snap_section_name(type), index,
			       what);
	return err_set(e, "section %u (%s): %s", k, snap_section_name(type), what);
}

static size_t vcpu_record_size(uint32_t kind)
{
	switch (kind) {
	case SNAP_VR_REGS:
		return sizeof(struct kvm_regs);
	case SNAP_VR_SREGS:
		return sizeof(struct kvm_sregs);
	case SNAP_VR_SREGS2:
		return sizeof(struct kvm_sregs2);
	case SNAP_VR_FPU:
		return sizeof(struct kvm_fpu);
	case SNAP_VR_XCRS:
		return sizeof(struct kvm_xcrs);
	case SNAP_VR_LAPIC:
		return sizeof(struct kvm_lapic_state);
	case SNAP_VR_EVENTS:
		return sizeof(struct kvm_vcpu_events);
	case SNAP_VR_MP_STATE:
		return sizeof(struct kvm_mp_state);
	case SNAP_VR_DEBUGREGS:
		return sizeof(struct kvm_debugregs);
	default:
		return 0; /* XSAVE, MSRS: variable */
	}
}

static const char *parse_vcpu(struct cur *c, struct snap_vcpu *out)
{
	while (c->at < c->len) {
		uint32_t kind = get32(c), n = get32(c);
		const uint8_t *p = get_bytes(c, n);
		if (c->bad)
			return "a record runs past the section's end";
		if (kind == 0 || kind >= SNAP_VCPU_RECORDS_MAX || kind > SNAP_VR_DEBUGREGS)
			return "a record of an unknown kind";
		if (out->rec[kind] != NULL)
			return "a record kind repeated";
		size_t want = vcpu_record_size(kind);
		if (want != 0 && n != want)
			return "a record of the wrong size for this host's KVM structures";
		if (kind == SNAP_VR_XSAVE && (n < 4096 || n > (1u << 20) || n % 4))
			return "an XSAVE record of a bad size";
		if (kind == SNAP_VR_MSRS) {
			if (n < 8 || (n - 8) % 16 || rd32(p) != (n - 8) / 16)
				return "an MSR record whose count does not match its size";
		}
		out->rec[kind] = p;
		out->len[kind] = n;
		if (n % 8 && !get_bytes(c, 8 - n % 8))
			return "a record's padding runs past the section's end";
	}
	if (out->rec[SNAP_VR_REGS] == NULL ||
	    (out->rec[SNAP_VR_SREGS] == NULL && out->rec[SNAP_VR_SREGS2] == NULL))
		return "no registers (REGS and SREGS or SREGS2 records)";
	if (out->rec[SNAP_VR_SREGS] != NULL && out->rec[SNAP_VR_SREGS2] != NULL)
		return "both SREGS and SREGS2 records";
	return NULL;
}

/* "version 1 only" or "versions 1 to 3": the versions this vmmux reads. */
static const char *versions_read(char *buf, size_t n, uint32_t min, uint32_t max)
{
	if (min == max)
		snprintf(buf, n, "version %u only", max);
	else
		snprintf(buf, n, "versions %u to %u", min, max);
	return buf;
}

/* One parallel VMM of a HANDOVER section (format.h). */
static const char *parse_ho_pvmm(struct cur *c, struct snap_ho_pvmm *m)
{
	m->name = get_str(c);
	m->nslots = get32(c);
	m->nirqs = get32(c);
	m->pid = (int32_t)get32(c);
	for (unsigned k = 0; k < SNAP_HO_FDS; k++)
		m->fd[k] = (int32_t)get32(c);
	m->xseq_next = get64(c);
	m->async_tail = get64(c);
	m->generation = get64(c);
	m->window_start_ns = get64(c);
	m->up_since_ns = get64(c);
	m->backoff_ns = get64(c);
	m->maybe_duplicated = get64(c);
	m->redelivered = get64(c);
	m->restarts = get32(c);
	m->recent_restarts = get32(c);
	if (c->bad)
		return NULL;
	if (m->name.len == 0 || m->name.len >= 32)
		return "a name of 0 or more than 31 bytes";
	if (m->nslots == 0 || m->nslots > SNAP_HO_SLOTS_MAX || m->nirqs > SNAP_HO_IRQS_MAX)
		return "a slot or IRQ line count out of bounds";
	if (m->pid <= 0)
		return "a process id that is not positive";
	for (unsigned k = 0; k < SNAP_HO_FDS; k++)
		if (m->fd[k] < (k < 5 ? 0 : -1))
			return "a descriptor out of range";
	m->seq = get_bytes(c, (uint64_t)m->nslots * 4);
	m->irqs = get_bytes(c, (uint64_t)m->nirqs * 16);
	for (uint32_t i = 0; m->irqs != NULL && i < m->nirqs; i++) {
		const uint8_t *q = m->irqs + 16 * i;
		if (rd32(q) > 255 || rd32(q + 4) > 3 || (int32_t)rd32(q + 8) < -1 ||
		    (int32_t)rd32(q + 12) < -1)
			return "an IRQ line out of range";
	}
	return NULL;
}

/* HANDOVER (format.h): the version first, so that another version is
 * refused by name whatever follows it. */
static const char *parse_handover(struct cur *c, struct snap_view *v)
{
	static _Thread_local char why[128];
	uint32_t version = get32(c);
	if (!c->bad && (version < SNAP_HANDOVER_VERSION_MIN || version > SNAP_HANDOVER_VERSION)) {
		char r[48];
		snprintf(
		    why, sizeof(why), "live-update state version %u; this vmmux reads %s", version,
		    versions_read(r, sizeof(r), SNAP_HANDOVER_VERSION_MIN, SNAP_HANDOVER_VERSION));
		return why;
	}
	v->ho_version = version;
	v->ho_npieces = get32(c);
	v->ho_pause_ns = get64(c);
	v->ho_api_fd = (int32_t)get32(c);
	v->ho_client_fd = (int32_t)get32(c);
	v->ho_reply_id = get_str(c);
	if (c->bad)
		return NULL;
	if (v->ho_npieces == 0 || v->ho_npieces > 64)
		return "a guest RAM piece count out of bounds (1 to 64)";
	if (v->ho_api_fd < -1 || v->ho_client_fd < -1)
		return "a descriptor number below -1";
	v->ho_pieces = get_bytes(c, (uint64_t)v->ho_npieces * 24);
	uint64_t end = 0;
	for (uint32_t i = 0; v->ho_pieces && i < v->ho_npieces; i++) {
		uint64_t g = rd64(v->ho_pieces + 24 * i), n = rd64(v->ho_pieces + 24 * i + 8);
		int32_t fd = (int32_t)rd32(v->ho_pieces + 24 * i + 16);
		if (g != end || n == 0 || n % SNAP_PAGE || n > v->mem_size - g || fd < 0)
			return "guest RAM pieces that do not cover memory in order, or a "
			       "negative descriptor";
		end = g + n;
	}
	if (v->ho_pieces && end != v->mem_size)
		return "guest RAM pieces that do not cover memory in order, or a negative "
		       "descriptor";
	v->ho_npvmm = 0;
	if (version >= 2) {
		uint32_t n = get32(c);
		if (!c->bad && n > SNAP_HO_PVMMS_MAX)
			return "a parallel VMM count out of bounds";
		for (uint32_t i = 0; i < n && !c->bad; i++) {
			const char *w = parse_ho_pvmm(c, &v->ho_pvmm[i]);
			if (w != NULL) {
				snprintf(why, sizeof(why), "parallel VMM %u: %s", i, w);
				return why;
			}
		}
		uint32_t nio = get32(c);
		if (!c->bad && nio > SNAP_HO_PVMMS_MAX)
			return "an in-process VMM count out of bounds";
		for (uint32_t i = 0; i < nio && !c->bad; i++) {
			v->ho_io[i].name = get_str(c);
			v->ho_io[i].in_fd = (int32_t)get32(c);
			v->ho_io[i].out_fd = (int32_t)get32(c);
			if (!c->bad && (v->ho_io[i].name.len == 0 || v->ho_io[i].name.len >= 32 ||
					v->ho_io[i].in_fd < -1 || v->ho_io[i].out_fd < -1))
				return "an in-process VMM's name or descriptors out of range";
		}
		if (c->bad)
			return NULL;
		v->ho_npvmm = n;
		v->ho_nio = nio;
	}
	v->ho_nhost = 0;
	v->ho_host = NULL;
	v->ho_watchdog_at = 0;
	if (version >= 3) {
		v->ho_watchdog_at = get64(c);
		uint32_t n = get32(c);
		if (!c->bad && n > SNAP_HO_HOSTQ_MAX)
			return "a count of the dispatcher's events out of bounds";
		const uint8_t *q = get_bytes(c, (uint64_t)n * SNAP_HO_EVENT_SIZE);
		if (c->bad)
			return NULL;
		for (uint32_t i = 0; i < n; i++)
			if (rd16(q + SNAP_HO_EVENT_SIZE * i + 2) >= VMMUX_EV__COUNT)
				return "a dispatcher's event of an unknown type";
		v->ho_nhost = n;
		v->ho_host = n ? q : NULL;
	}
	v->handover = true;
	return NULL;
}

static const char *parse_machine(struct cur *c, struct snap_view *v)
{
	v->mem_size = get64(c);
	v->cpus = get32(c);
	v->mflags = get32(c);
	v->argc = get32(c);
	get32(c);
	v->cwd = get_str(c);
	if (c->bad)
		return "truncated";
	if (v->cpus == 0 || v->cpus > SNAP_VCPUS_MAX)
		return "a vCPU count out of bounds";
	if (v->mem_size == 0 || v->mem_size % SNAP_PAGE || v->mem_size > SNAP_MEM_MAX)
		return "a memory size that is not a non-zero multiple of 4 KiB";
	if (v->argc > SNAP_ARGS_MAX)
		return "too many command-line arguments";
	v->argv = get_strs(c, v->argc);
	if (c->bad)
		return "a command-line argument runs past the section's end";
	return NULL;
}

static const char *parse_routes(struct cur *c, struct snap_view *v)
{
	v->generation = get64(c);
	v->nroutes = get32(c);
	get32(c);
	if (c->bad)
		return "truncated";
	if (v->nroutes > SNAP_ROUTES_MAX)
		return "too many routes";
	v->routes = get_strs(c, v->nroutes);
	return c->bad ? "a route runs past the section's end" : NULL;
}

static const char *parse_vmm(struct cur *c, struct snap_vmm *m, uint32_t index)
{
	m->id = get32(c);
	m->placement = get32(c);
	uint32_t flags = get32(c);
	m->ngrants = get32(c);
	m->name = get_str(c);
	m->role = get_str(c);
	m->program = get_str(c);
	if (c->bad)
		return "truncated";
	if (m->id != index)
		return "its id differs from the section's index";
	if (m->placement > SNAP_VMM_PARALLEL)
		return "an unknown placement";
	if (flags & ~1u)
		return "unknown flags";
	if (m->name.len == 0 || m->name.len >= 64)
		return "a VMM name that is empty or too long";
	if (m->role.len >= 64)
		return "a role name that is too long";
	if (m->ngrants > 64)
		return "too many grants";
	m->grants = get_strs(c, m->ngrants);
	m->state_len = get64(c);
	m->has_state = flags & 1u;
	m->state = get_bytes(c, m->state_len);
	if (c->bad)
		return "its grants or state run past the section's end";
	if (!m->has_state && m->state_len != 0)
		return "a state without the state flag";
	return NULL;
}

int snap_parse(const uint8_t *buf, size_t len, uint64_t file_len, struct snap_view *v,
	       struct errbuf *e)
{
	memset(v, 0, sizeof(*v));
	if (len < SNAP_HEADER_SIZE)
		return err_set(e,
			       "header: the file is truncated (%zu bytes, less than the %u-byte "
			       "header)",
			       len, SNAP_HEADER_SIZE);
	if (memcmp(buf, SNAP_MAGIC, 8) != 0)
		return err_set(e, "header: not a vmmux snapshot (bad magic)");
	v->version = rd32(buf + 8);
	if (v->version < SNAP_VERSION_MIN || v->version > SNAP_VERSION) {
		char r[48];
		return err_set(e, "header: snapshot format version %u; this vmmux reads %s",
			       v->version,
			       versions_read(r, sizeof(r), SNAP_VERSION_MIN, SNAP_VERSION));
	}
	uint8_t h[SNAP_HEADER_SIZE];
	memcpy(h, buf, SNAP_HEADER_SIZE);
	memset(h + 36, 0, 4);
	if (snap_crc32(0, h, SNAP_HEADER_SIZE) != rd32(buf + 36))
		return err_set(e, "header: CRC mismatch (the file is corrupted)");
	if (rd32(buf + 12) != SNAP_HEADER_SIZE)
		return err_set(e, "header: a header size of %u bytes (expected %u)", rd32(buf + 12),
			       SNAP_HEADER_SIZE);
	v->file_size = rd64(buf + 16);
	v->created_ns = rd64(buf + 24);
	uint32_t nsec = rd32(buf + 32);
	memcpy(v->vmmux_version, buf + 40, 23);
	v->vmmux_version[23] = '\0';
	if (file_len < v->file_size)
		return err_set(e,
			       "header: the file is truncated (%llu bytes of the %llu the header "
			       "gives)",
			       (unsigned long long)file_len, (unsigned long long)v->file_size);
	if (nsec < 3 || nsec > SNAP_SECTIONS_MAX)
		return err_set(e, "header: a section count of %u (out of bounds)", nsec);

	uint64_t at = SNAP_HEADER_SIZE;
	uint32_t seen = 0; /* bit per singleton section type */
	bool end = false;
	for (unsigned k = 0; k < nsec; k++) {
		if (end)
			return err_set(e, "section %u: after the END section", k);
		if (len - at < SNAP_SECHDR_SIZE)
			return err_set(
			    e, "section %u: the file is truncated (no room for its header)", k);
		const uint8_t *sh = buf + at;
		uint32_t type = rd32(sh), crc = rd32(sh + 4), index = rd32(sh + 16);
		uint64_t slen = rd64(sh + 8);
		if (snap_crc32(0, sh, 20) != rd32(sh + 20))
			return err_set(e, "section %u: header CRC mismatch (the file is corrupted)",
				       k);
		at += SNAP_SECHDR_SIZE;
		if (slen > len - at)
			return bad(e, k, type, index,
				   "the file is truncated (the section runs past "
				   "its end)");
		const uint8_t *p = buf + at;
		if (snap_crc32(0, p, (size_t)slen) != crc)
			return bad(e, k, type, index, "CRC mismatch (the file is corrupted)");
		uint64_t padded = (slen + 7) & ~7ull;
		if (padded > len - at)
			return bad(e, k, type, index, "the file is truncated (in its padding)");
		at += padded;
		struct cur c = {.p = p, .len = slen};
		const char *why = NULL;
		if (k == 0 && type != SNAP_SEC_MACHINE)
			return bad(e, k, type, index, "the first section must be MACHINE");
		switch (type) {
		case SNAP_SEC_MACHINE:
		case SNAP_SEC_IRQCHIP:
		case SNAP_SEC_PIT:
		case SNAP_SEC_CLOCK:
		case SNAP_SEC_ROUTES:
		case SNAP_SEC_DEVICES:
		case SNAP_SEC_MEMORY:
		case SNAP_SEC_HANDOVER:
			if (seen & (1u << type))
				return bad(e, k, type, index, "repeated");
			seen |= 1u << type;
			break;
		default:
			break;
		}
		switch (type) {
		case SNAP_SEC_MACHINE:
			why = parse_machine(&c, v);
			break;
		case SNAP_SEC_VCPU:
			if (index >= v->cpus)
				why = "a vCPU index beyond the machine's vCPU count";
			else if (v->vcpu[index].rec[SNAP_VR_REGS] != NULL)
				why = "repeated";
			else
				why = parse_vcpu(&c, &v->vcpu[index]);
			break;
		case SNAP_SEC_IRQCHIP:
			v->irqchip = get_bytes(&c, 3 * sizeof(struct kvm_irqchip));
			break;
		case SNAP_SEC_PIT:
			v->pit = get_bytes(&c, sizeof(struct kvm_pit_state2));
			break;
		case SNAP_SEC_CLOCK:
			v->clock = get_bytes(&c, sizeof(struct kvm_clock_data));
			break;
		case SNAP_SEC_ROUTES:
			why = parse_routes(&c, v);
			break;
		case SNAP_SEC_VMM:
			if (v->nvmms >= SNAP_VMMS_MAX)
				why = "too many VMM sections";
			else if (index != v->nvmms)
				why = "VMM sections out of order (ids 0, 1, 2...)";
			else if ((why = parse_vmm(&c, &v->vmm[v->nvmms], index)) == NULL)
				v->nvmms++;
			break;
		case SNAP_SEC_DEVICES: {
			uint32_t n = get32(&c);
			v->resets = get32(&c);
			if (!c.bad && n != v->cpus)
				why = "its vCPU count differs from the MACHINE section's";
			else
				v->halted = get_bytes(&c, n);
			for (uint32_t i = 0; !why && v->halted && i < n; i++)
				if (v->halted[i] > 1)
					why = "a halted flag that is neither 0 nor 1";
			break;
		}
		case SNAP_SEC_MEMORY: {
			uint64_t size = get64(&c);
			v->data_offset = get64(&c);
			v->nextents = get64(&c);
			if (c.bad)
				break;
			if (size != v->mem_size)
				why = "its size differs from the MACHINE section's";
			else if (v->data_offset % SNAP_PAGE || v->data_offset < at ||
				 v->data_offset > v->file_size ||
				 v->file_size - v->data_offset != v->mem_size)
				why = "guest memory is not where the file's size says (a "
				      "page-aligned "
				      "region at its end)";
			else if (v->nextents > SNAP_EXTENTS_MAX || v->nextents * 16 != c.len - c.at)
				why = "an extent count that does not match its size";
			else
				v->extents = get_bytes(&c, v->nextents * 16);
			uint64_t prev_end = 0;
			for (uint64_t i = 0; !why && v->extents && i < v->nextents; i++) {
				uint64_t g = rd64(v->extents + 16 * i),
					 n = rd64(v->extents + 16 * i + 8);
				if (g % SNAP_PAGE || n % SNAP_PAGE || n == 0 || g < prev_end ||
				    g > v->mem_size || n > v->mem_size - g)
					why =
					    "an extent that is not page-aligned, sorted and inside "
					    "guest memory";
				prev_end = g + n;
			}
			break;
		}
		case SNAP_SEC_HANDOVER:
			why = parse_handover(&c, v);
			break;
		case SNAP_SEC_END:
			end = true;
			break;
		default:
			why = "an unknown section type";
			break;
		}
		if (why == NULL && c.bad)
			why = "truncated (its payload is shorter than its contents)";
		if (why == NULL && c.at != c.len && type != SNAP_SEC_VCPU)
			why = "bytes left over after its contents";
		if (why != NULL)
			return bad(e, k, type, index, why);
	}
	if (!end)
		return err_set(e, "section END: missing (the file is truncated or corrupted)");
	static const uint32_t required[] = {SNAP_SEC_ROUTES, SNAP_SEC_DEVICES, SNAP_SEC_MEMORY};
	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
		if (!(seen & (1u << required[i])))
			return err_set(e, "section %s: missing", snap_section_name(required[i]));
	for (uint32_t i = 0; i < v->cpus; i++)
		if (v->vcpu[i].rec[SNAP_VR_REGS] == NULL)
			return err_set(e, "section VCPU %u: missing", i);
	if ((v->mflags & SNAP_MF_IRQCHIP) && (!v->irqchip || !v->pit))
		return err_set(e, "section %s: missing (the machine has the in-kernel irqchip)",
			       v->irqchip ? "PIT" : "IRQCHIP");
	if (v->nvmms == 0 || v->vmm[0].id != 0)
		return err_set(e, "section VMM 0: missing (the main VMM)");
	if (at > v->data_offset)
		return err_set(e, "section MEMORY: guest memory overlaps the sections");
	return 0;
}
