/*
 * regs.h: the x86 register set the gdbstub role shows GDB, for a vCPU in
 * long mode (GDB's i386:x86-64) or not (i386), and its target description
 * (qXfer:features:read:target.xml).
 *
 * Register numbers, in order: the core set GDB's i386 and amd64
 * architectures expect (general registers, rip/eip, eflags, the six segment
 * selectors, st0-st7 and the x87 control registers), the SSE set
 * (xmm0-xmm7, or xmm0-xmm15 in long mode, and mxcsr), fs_base and gs_base
 * (long mode only: GDB's plain i386 has none), then cr0, cr2, cr3, cr4 and
 * efer. The x87 and SSE registers come from
 * KVM_GET_FPU; where the host does not give it they read as unavailable
 * ('x' digits) and writes to them fail. A write to a segment register
 * changes its selector only (the descriptor cache is kept); a write to the
 * 32-bit view of a general register keeps its upper half.
 */
#ifndef VMMUX_VMMS_GDBSTUB_REGS_H
#define VMMUX_VMMS_GDBSTUB_REGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/debug.h"

/* Number of registers in the set. */
size_t gdb_reg_count(bool long_mode);
/* The name of register REGNO, or NULL past the end. */
const char *gdb_reg_name(bool long_mode, size_t regno);

/* Write the target description into OUT (CAP bytes, NUL-terminated);
 * returns its length, or -1 when it does not fit. */
long gdb_target_xml(bool long_mode, char *out, size_t cap);

/* Every register of R as hex (a 'g' reply) into OUT; returns the number of
 * characters written (no NUL), or -1 when CAP is too small. */
long gdb_regs_encode(bool long_mode, const struct debug_regs *r, char *out, size_t cap);
/* One register (a 'p' reply); -1 when REGNO is out of range or CAP small. */
long gdb_reg_encode(bool long_mode, size_t regno, const struct debug_regs *r, char *out,
		    size_t cap);

/*
 * Store register REGNO from LEN hex digits (a 'P' packet), which must be its
 * size. Returns 0, -1 on a bad number, size or digit, -2 when the register is
 * one this host does not give (FPU state without KVM_GET_FPU).
 */
int gdb_reg_decode(bool long_mode, size_t regno, struct debug_regs *r, const char *hex, size_t len);
/* Every register from a 'G' packet (a shorter packet sets the first ones);
 * registers this host does not give are skipped. 0, or -1 on bad input. */
int gdb_regs_decode(bool long_mode, struct debug_regs *r, const char *hex, size_t len);

#endif
