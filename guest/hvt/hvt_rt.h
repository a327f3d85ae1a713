/*
 * hvt_rt.h: the runtime of vmmux's Solo5 hvt test guests, on the hvt ABI
 * (include/vmmux/hvt_abi.h) exactly as a Solo5 unikernel uses it: entry with
 * the boot information in RDI, 32-bit OUT hypercalls with the argument
 * struct's address, the ABI and manifest notes, halt to end.
 *
 * A guest defines main(argc, argv) (argv: its command line split at spaces)
 * and its manifest in NAME.json (below); main's return value is the exit
 * status. Port I/O and the rest of guest/rt/rt.h's inline helpers may be
 * used for tests that must misbehave.
 */
#ifndef VMMUX_GUEST_HVT_RT_H
#define VMMUX_GUEST_HVT_RT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <vmmux/hvt_abi.h>

/* The boot information (valid after entry). */
extern const struct hvt_boot_info *hvt_bi;

/* Issue hypercall NR with the argument struct ARG (which must lie below
 * 4 GiB: stack and image do). */
static inline void hvt_call(unsigned nr, volatile void *arg)
{
	__asm__ volatile("outl %0, %1"
			 :
			 : "a"((uint32_t)(uintptr_t)arg), "d"((uint16_t)HVT_HC_PORT(nr))
			 : "memory");
}

/* Raw hypercall with any 32-bit value as the argument's address. */
static inline void hvt_call_raw(unsigned nr, uint32_t gpa)
{
	__asm__ volatile("outl %0, %1" : : "a"(gpa), "d"((uint16_t)HVT_HC_PORT(nr)) : "memory");
}

void hvt_puts(const char *s, size_t len);
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
uint64_t hvt_walltime(void);
uint64_t hvt_tsc(void);
uint64_t hvt_monotonic_ns(void); /* from the TSC and cpu_cycle_freq */
/* poll: returns the ready count; *ready the ready set */
int hvt_poll(uint64_t timeout_ns, uint64_t *ready);
int64_t hvt_block_io(int write, uint64_t handle, uint64_t off, void *buf, uint64_t len);
int64_t hvt_net_write(uint64_t handle, const void *buf, uint64_t len);
int64_t hvt_net_read(uint64_t handle, void *buf, uint64_t *len);
__attribute__((noreturn)) void hvt_halt(int status);
/* halt with COOKIE: NULL, or a trap frame (cr2, ec, rip, cs, rflags, rsp,
 * ss; 8 bytes each) as Solo5's trap handler passes it with status 255 */
__attribute__((noreturn)) void hvt_halt_cookie(int status, const void *cookie);
/* The manifest entry NAME of TYPE (the host's filled-in copy), or -1. */
int hvt_device(const char *name, uint32_t type, const struct hvt_mft_entry **out);

void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
uint64_t hvt_atou(const char *s); /* decimal or 0x hex; stops at the first other char */

int main(int argc, char **argv);

/*
 * The ABI note is in every guest (hvt_rt.c). The manifest note is declared
 * the way Solo5's toolchain declares it: each guest NAME has a manifest
 * NAME.json (Solo5's manifest.json format), from which gen_manifest.py
 * writes NAME_manifest.c, which defines HVT_MFT_ENTRIES and declares the
 * note with HVT_MFT1_NOTE_DEFINE (include/vmmux/hvt_abi.h).
 */

#endif
