/*
 * regs.c: the x86 register set as GDB sees it (regs.h): the target
 * description and the translation between KVM's register structures and
 * GDB's register numbers.
 */
#include "regs.h"

#include <stdio.h>
#include <string.h>

enum reg_kind {
	K_GPR,	 /* index into struct kvm_regs as an array of u64 */
	K_SEG,	 /* selector of segment idx: cs ss ds es fs gs */
	K_ST,	 /* x87 ST(idx), 80 bits */
	K_FCTRL, /* x87 control word */
	K_FSTAT,
	K_FTAG, /* full tag word, from FXSAVE's abridged one */
	K_FISEG,
	K_FIOFF,
	K_FOSEG,
	K_FOOFF,
	K_FOP,
	K_XMM, /* XMM idx */
	K_MXCSR,
	K_FSBASE,
	K_GSBASE,
	K_CR, /* CR idx (0, 2, 3, 4) */
	K_EFER,
};

enum reg_feature { F_CORE, F_SSE, F_SEGMENTS, F_SYS, F__COUNT };

struct reg_desc {
	const char *name;
	uint8_t size; /* bytes */
	uint8_t kind, idx, feature;
	const char *type;  /* tdesc type */
	const char *group; /* NULL: the default */
};

/* struct kvm_regs: rax rbx rcx rdx rsi rdi rsp rbp r8..r15 rip rflags */
enum { RAX, RBX, RCX, RDX, RSI, RDI, RSP, RBP, R8, R9, R10, R11, R12, R13, R14, R15, RIP, RFLAGS };

#define GPR(n, i, t)                                                                               \
	{                                                                                          \
		n, 8, K_GPR, i, F_CORE, t, NULL                                                    \
	}
#define GPR32(n, i, t)                                                                             \
	{                                                                                          \
		n, 4, K_GPR, i, F_CORE, t, NULL                                                    \
	}
#define SEG(n, i, sz)                                                                              \
	{                                                                                          \
		n, 4, K_SEG, i, F_CORE, "int32", NULL                                              \
	}
#define X87(sz)                                                                                    \
	{"st0", 10, K_ST, 0, F_CORE, "i387_ext", NULL},                                            \
	    {"st1", 10, K_ST, 1, F_CORE, "i387_ext", NULL},                                        \
	    {"st2", 10, K_ST, 2, F_CORE, "i387_ext", NULL},                                        \
	    {"st3", 10, K_ST, 3, F_CORE, "i387_ext", NULL},                                        \
	    {"st4", 10, K_ST, 4, F_CORE, "i387_ext", NULL},                                        \
	    {"st5", 10, K_ST, 5, F_CORE, "i387_ext", NULL},                                        \
	    {"st6", 10, K_ST, 6, F_CORE, "i387_ext", NULL},                                        \
	    {"st7", 10, K_ST, 7, F_CORE, "i387_ext", NULL},                                        \
	    {"fctrl", 4, K_FCTRL, 0, F_CORE, "int", "float"},                                      \
	    {"fstat", 4, K_FSTAT, 0, F_CORE, "int", "float"},                                      \
	    {"ftag", 4, K_FTAG, 0, F_CORE, "int", "float"},                                        \
	    {"fiseg", 4, K_FISEG, 0, F_CORE, "int", "float"},                                      \
	    {"fioff", 4, K_FIOFF, 0, F_CORE, "int", "float"},                                      \
	    {"foseg", 4, K_FOSEG, 0, F_CORE, "int", "float"},                                      \
	    {"fooff", 4, K_FOOFF, 0, F_CORE, "int", "float"},                                      \
	{                                                                                          \
		"fop", 4, K_FOP, 0, F_CORE, "int", "float"                                         \
	}
#define XMM(n, i)                                                                                  \
	{                                                                                          \
		n, 16, K_XMM, i, F_SSE, "vec128", "sse"                                            \
	}

static const struct reg_desc regs64[] = {
    GPR("rax", RAX, "int64"),
    GPR("rbx", RBX, "int64"),
    GPR("rcx", RCX, "int64"),
    GPR("rdx", RDX, "int64"),
    GPR("rsi", RSI, "int64"),
    GPR("rdi", RDI, "int64"),
    GPR("rbp", RBP, "data_ptr"),
    GPR("rsp", RSP, "data_ptr"),
    GPR("r8", R8, "int64"),
    GPR("r9", R9, "int64"),
    GPR("r10", R10, "int64"),
    GPR("r11", R11, "int64"),
    GPR("r12", R12, "int64"),
    GPR("r13", R13, "int64"),
    GPR("r14", R14, "int64"),
    GPR("r15", R15, "int64"),
    GPR("rip", RIP, "code_ptr"),
    {"eflags", 4, K_GPR, RFLAGS, F_CORE, "int32", NULL},
    SEG("cs", 0, 4),
    SEG("ss", 1, 4),
    SEG("ds", 2, 4),
    SEG("es", 3, 4),
    SEG("fs", 4, 4),
    SEG("gs", 5, 4),
    X87(0),
    XMM("xmm0", 0),
    XMM("xmm1", 1),
    XMM("xmm2", 2),
    XMM("xmm3", 3),
    XMM("xmm4", 4),
    XMM("xmm5", 5),
    XMM("xmm6", 6),
    XMM("xmm7", 7),
    XMM("xmm8", 8),
    XMM("xmm9", 9),
    XMM("xmm10", 10),
    XMM("xmm11", 11),
    XMM("xmm12", 12),
    XMM("xmm13", 13),
    XMM("xmm14", 14),
    XMM("xmm15", 15),
    {"mxcsr", 4, K_MXCSR, 0, F_SSE, "int", "vector"},
    {"fs_base", 8, K_FSBASE, 0, F_SEGMENTS, "int", NULL},
    {"gs_base", 8, K_GSBASE, 0, F_SEGMENTS, "int", NULL},
    {"cr0", 8, K_CR, 0, F_SYS, "int", "system"},
    {"cr2", 8, K_CR, 2, F_SYS, "int", "system"},
    {"cr3", 8, K_CR, 3, F_SYS, "int", "system"},
    {"cr4", 8, K_CR, 4, F_SYS, "int", "system"},
    {"efer", 8, K_EFER, 0, F_SYS, "int", "system"},
};

static const struct reg_desc regs32[] = {
    GPR32("eax", RAX, "int32"),
    GPR32("ecx", RCX, "int32"),
    GPR32("edx", RDX, "int32"),
    GPR32("ebx", RBX, "int32"),
    GPR32("esp", RSP, "data_ptr"),
    GPR32("ebp", RBP, "data_ptr"),
    GPR32("esi", RSI, "int32"),
    GPR32("edi", RDI, "int32"),
    GPR32("eip", RIP, "code_ptr"),
    {"eflags", 4, K_GPR, RFLAGS, F_CORE, "int32", NULL},
    SEG("cs", 0, 4),
    SEG("ss", 1, 4),
    SEG("ds", 2, 4),
    SEG("es", 3, 4),
    SEG("fs", 4, 4),
    SEG("gs", 5, 4),
    X87(0),
    XMM("xmm0", 0),
    XMM("xmm1", 1),
    XMM("xmm2", 2),
    XMM("xmm3", 3),
    XMM("xmm4", 4),
    XMM("xmm5", 5),
    XMM("xmm6", 6),
    XMM("xmm7", 7),
    {"mxcsr", 4, K_MXCSR, 0, F_SSE, "int", "vector"},
    {"cr0", 4, K_CR, 0, F_SYS, "int", "system"},
    {"cr2", 4, K_CR, 2, F_SYS, "int", "system"},
    {"cr3", 4, K_CR, 3, F_SYS, "int", "system"},
    {"cr4", 4, K_CR, 4, F_SYS, "int", "system"},
    {"efer", 8, K_EFER, 0, F_SYS, "int", "system"},
};

static const struct reg_desc *table(bool long_mode, size_t *n)
{
	if (long_mode) {
		*n = sizeof(regs64) / sizeof(regs64[0]);
		return regs64;
	}
	*n = sizeof(regs32) / sizeof(regs32[0]);
	return regs32;
}

size_t gdb_reg_count(bool long_mode)
{
	size_t n;
	table(long_mode, &n);
	return n;
}

static const char *const feature_names[F__COUNT] = {"org.gnu.gdb.i386.core", "org.gnu.gdb.i386.sse",
						    "org.gnu.gdb.i386.segments",
						    "org.vmmux.x86.sys"};

/* The 128-bit vector type of the SSE feature, as GDB's own descriptions
 * define it (the GDB manual, "i386 Features"). */
static const char vec128_types[] = "<vector id=\"v4f\" type=\"ieee_single\" count=\"4\"/>"
				   "<vector id=\"v2d\" type=\"ieee_double\" count=\"2\"/>"
				   "<vector id=\"v16i8\" type=\"int8\" count=\"16\"/>"
				   "<vector id=\"v8i16\" type=\"int16\" count=\"8\"/>"
				   "<vector id=\"v4i32\" type=\"int32\" count=\"4\"/>"
				   "<vector id=\"v2i64\" type=\"int64\" count=\"2\"/>"
				   "<union id=\"vec128\">"
				   "<field name=\"v4_float\" type=\"v4f\"/>"
				   "<field name=\"v2_double\" type=\"v2d\"/>"
				   "<field name=\"v16_int8\" type=\"v16i8\"/>"
				   "<field name=\"v8_int16\" type=\"v8i16\"/>"
				   "<field name=\"v4_int32\" type=\"v4i32\"/>"
				   "<field name=\"v2_int64\" type=\"v2i64\"/>"
				   "<field name=\"uint128\" type=\"uint128\"/>"
				   "</union>";

long gdb_target_xml(bool long_mode, char *out, size_t cap)
{
	size_t n, used = 0;
	const struct reg_desc *t = table(long_mode, &n);
	int w;

#define OUT(...)                                                                                   \
	do {                                                                                       \
		w = snprintf(out + used, cap - used, __VA_ARGS__);                                 \
		if (w < 0 || (size_t)w >= cap - used)                                              \
			return -1;                                                                 \
		used += (size_t)w;                                                                 \
	} while (0)

	OUT("<?xml version=\"1.0\"?><!DOCTYPE target SYSTEM \"gdb-target.dtd\">"
	    "<target version=\"1.0\"><architecture>%s</architecture>",
	    long_mode ? "i386:x86-64" : "i386");
	for (unsigned f = 0; f < F__COUNT; f++) {
		/* GDB's i386 (not Linux) architecture has no fs_base/gs_base */
		if (f == F_SEGMENTS && !long_mode)
			continue;
		OUT("<feature name=\"%s\">", feature_names[f]);
		if (f == F_SSE)
			OUT("%s", vec128_types);
		for (size_t i = 0; i < n; i++) {
			if (t[i].feature != f)
				continue;
			OUT("<reg name=\"%s\" bitsize=\"%u\" type=\"%s\" regnum=\"%zu\"", t[i].name,
			    t[i].size == 10 ? 80u : t[i].size * 8u, t[i].type, i);
			if (t[i].group)
				OUT(" group=\"%s\"", t[i].group);
			OUT("/>");
		}
		OUT("</feature>");
	}
	OUT("</target>");
#undef OUT
	return (long)used;
}

static struct kvm_segment *seg(struct kvm_sregs *s, unsigned i)
{
	struct kvm_segment *segs[6] = {&s->cs, &s->ss, &s->ds, &s->es, &s->fs, &s->gs};
	return segs[i];
}

static uint16_t full_tag(const struct kvm_fpu *f)
{
	uint16_t t = 0;
	for (unsigned i = 0; i < 8; i++)
		if (!(f->ftwx & (1u << i)))
			t |= (uint16_t)(3u << (2 * i)); /* empty */
	return t;
}

static uint8_t abridged_tag(uint32_t full)
{
	uint8_t t = 0;
	for (unsigned i = 0; i < 8; i++)
		if (((full >> (2 * i)) & 3) != 3)
			t |= (uint8_t)(1u << i);
	return t;
}

/* The value of register D into BUF (D->size bytes, little-endian); false
 * when it is not available (FPU state the host does not give). */
static bool get_one(const struct reg_desc *d, const struct debug_regs *r, uint8_t *buf)
{
	uint64_t v = 0;
	const uint64_t *gpr = (const uint64_t *)&r->regs;
	const struct kvm_fpu *f = &r->fpu;

	switch (d->kind) {
	case K_GPR:
		v = gpr[d->idx];
		break;
	case K_SEG:
		v = seg((struct kvm_sregs *)&r->sregs, d->idx)->selector;
		break;
	case K_FSBASE:
		v = r->sregs.fs.base;
		break;
	case K_GSBASE:
		v = r->sregs.gs.base;
		break;
	case K_CR:
		v = d->idx == 0	  ? r->sregs.cr0
		    : d->idx == 2 ? r->sregs.cr2
		    : d->idx == 3 ? r->sregs.cr3
				  : r->sregs.cr4;
		break;
	case K_EFER:
		v = r->sregs.efer;
		break;
	default:
		if (!r->have_fpu)
			return false;
		switch (d->kind) {
		case K_ST:
			memcpy(buf, f->fpr[d->idx], 10);
			return true;
		case K_XMM:
			memcpy(buf, f->xmm[d->idx], 16);
			return true;
		case K_FCTRL:
			v = f->fcw;
			break;
		case K_FSTAT:
			v = f->fsw;
			break;
		case K_FTAG:
			v = full_tag(f);
			break;
		case K_FISEG:
		case K_FOSEG:
			v = 0; /* FXSAVE's 64-bit layout keeps no selectors */
			break;
		case K_FIOFF:
			v = f->last_ip;
			break;
		case K_FOOFF:
			v = f->last_dp;
			break;
		case K_FOP:
			v = f->last_opcode;
			break;
		case K_MXCSR:
			v = f->mxcsr;
			break;
		}
	}
	for (unsigned i = 0; i < d->size && i < 8; i++)
		buf[i] = (uint8_t)(v >> (8 * i));
	return true;
}

/* Store BUF (D->size bytes) into register D; -1 when not writable here. */
static int set_one(const struct reg_desc *d, struct debug_regs *r, const uint8_t *buf)
{
	uint64_t v = 0;
	uint64_t *gpr = (uint64_t *)&r->regs;
	struct kvm_fpu *f = &r->fpu;

	if (d->kind != K_ST && d->kind != K_XMM)
		for (unsigned i = 0; i < d->size && i < 8; i++)
			v |= (uint64_t)buf[i] << (8 * i);
	switch (d->kind) {
	case K_GPR:
		if (d->size == 4) /* 32-bit view: the upper half is kept */
			gpr[d->idx] = (gpr[d->idx] & ~0xffffffffull) | v;
		else
			gpr[d->idx] = v;
		return 0;
	case K_SEG:
		/* Only the selector: the descriptor cache stays as it is. */
		seg(&r->sregs, d->idx)->selector = (uint16_t)v;
		return 0;
	case K_FSBASE:
		r->sregs.fs.base = v;
		return 0;
	case K_GSBASE:
		r->sregs.gs.base = v;
		return 0;
	case K_CR:
		if (d->idx == 0)
			r->sregs.cr0 = v;
		else if (d->idx == 2)
			r->sregs.cr2 = v;
		else if (d->idx == 3)
			r->sregs.cr3 = v;
		else
			r->sregs.cr4 = v;
		return 0;
	case K_EFER:
		r->sregs.efer = v;
		return 0;
	default:
		break;
	}
	if (!r->have_fpu)
		return -2;
	switch (d->kind) {
	case K_ST:
		memcpy(f->fpr[d->idx], buf, 10);
		break;
	case K_XMM:
		memcpy(f->xmm[d->idx], buf, 16);
		break;
	case K_FCTRL:
		f->fcw = (uint16_t)v;
		break;
	case K_FSTAT:
		f->fsw = (uint16_t)v;
		break;
	case K_FTAG:
		f->ftwx = abridged_tag((uint32_t)v);
		break;
	case K_FIOFF:
		f->last_ip = v;
		break;
	case K_FOOFF:
		f->last_dp = v;
		break;
	case K_FOP:
		f->last_opcode = (uint16_t)v;
		break;
	case K_MXCSR:
		f->mxcsr = (uint32_t)v;
		break;
	default: /* fiseg, foseg: not kept */
		break;
	}
	return 0;
}

static const char hexd[] = "0123456789abcdef";

long gdb_regs_encode(bool long_mode, const struct debug_regs *r, char *out, size_t cap)
{
	size_t n, used = 0;
	table(long_mode, &n);
	for (size_t i = 0; i < n; i++) {
		long w = gdb_reg_encode(long_mode, i, r, out + used, cap - used);
		if (w < 0)
			return -1;
		used += (size_t)w;
	}
	return (long)used;
}

long gdb_reg_encode(bool long_mode, size_t regno, const struct debug_regs *r, char *out, size_t cap)
{
	size_t n;
	const struct reg_desc *t = table(long_mode, &n);
	uint8_t buf[16];
	if (regno >= n)
		return -1;
	const struct reg_desc *d = &t[regno];
	if ((size_t)d->size * 2 > cap)
		return -1;
	if (!get_one(d, r, buf)) {
		memset(out, 'x', (size_t)d->size * 2);
	} else {
		for (unsigned i = 0; i < d->size; i++) {
			out[2 * i] = hexd[buf[i] >> 4];
			out[2 * i + 1] = hexd[buf[i] & 15];
		}
	}
	return (long)d->size * 2;
}

static int hexbyte(const char *s, uint8_t *b)
{
	int v = 0;
	for (int i = 0; i < 2; i++) {
		char c = s[i];
		int d = c >= '0' && c <= '9'   ? c - '0'
			: c >= 'a' && c <= 'f' ? c - 'a' + 10
			: c >= 'A' && c <= 'F' ? c - 'A' + 10
					       : -1;
		if (d < 0)
			return -1;
		v = v * 16 + d;
	}
	*b = (uint8_t)v;
	return 0;
}

int gdb_reg_decode(bool long_mode, size_t regno, struct debug_regs *r, const char *hex, size_t len)
{
	size_t n;
	const struct reg_desc *t = table(long_mode, &n);
	uint8_t buf[16];
	if (regno >= n)
		return -1;
	const struct reg_desc *d = &t[regno];
	if (len != (size_t)d->size * 2)
		return -1;
	if (hex[0] == 'x') /* unavailable: left as it is */
		return 0;
	for (unsigned i = 0; i < d->size; i++)
		if (hexbyte(hex + 2 * i, &buf[i]) < 0)
			return -1;
	return set_one(d, r, buf);
}

int gdb_regs_decode(bool long_mode, struct debug_regs *r, const char *hex, size_t len)
{
	size_t n, used = 0;
	const struct reg_desc *t = table(long_mode, &n);
	for (size_t i = 0; i < n && used < len; i++) {
		size_t w = (size_t)t[i].size * 2;
		if (used + w > len)
			return -1;
		/* A register this host does not give is skipped. */
		if (gdb_reg_decode(long_mode, i, r, hex + used, w) == -1)
			return -1;
		used += w;
	}
	return 0;
}

const char *gdb_reg_name(bool long_mode, size_t regno)
{
	size_t n;
	const struct reg_desc *t = table(long_mode, &n);
	return regno < n ? t[regno].name : NULL;
}
