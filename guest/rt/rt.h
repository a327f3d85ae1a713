/*
 * rt.h: the runtime of vmmux's own test guests (freestanding, no libc).
 *
 * Two flavours share this header:
 *   - 64-bit (start64.S, rt.c, rt64.c): an ELF64 or raw long-mode guest
 *     entered as src/vm/cpu_setup.h describes (RSI = vCPU index, RDX = vCPU
 *     count, RSP per vCPU, identity paging). vCPU 0 zeroes .bss while the
 *     others wait; at CPL0 the runtime installs an IDT whose vectors 0-31
 *     report exceptions through the fault-report port and whose vectors
 *     32-255 take the interrupt handlers that rt_irq_set_handler installs;
 *     then every vCPU calls main(cpu, ncpus) and main's return value V ends
 *     the run with exit(V).
 *   - 32-bit multiboot (start32.S, rt.c): entered by a multiboot v1 loader
 *     (EAX = magic, EBX = information structure); calls main(magic, mbi).
 *
 * Everything here is usable at CPL3 with IOPL=3 (port I/O, console, exit)
 * except what needs CPL0: MSRs, HLT, control registers, IDT, interrupts.
 *
 * Platform conventions the guests rely on (vmmux's defaults, QEMU's devices):
 *   0x3f8  16550 UART (THR at +0, LSR at +5, bit 5 = THR empty)
 *   0xf4   exit device: OUT V ends the run with status ((V << 1) | 1) & 0xff
 *   0x4f0  fault report: OUTL with EAX = GPA of a struct vmmux_fault_report
 *          (vmms/fault-report/fault_report.h, shared with the role)
 *   0x500+N  hypercall N: OUTL with EAX = GPA of the argument struct
 *   0x9000 a scratch page that vmmux never writes, not even on reset
 */
#ifndef VMMUX_GUEST_RT_H
#define VMMUX_GUEST_RT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RT_UART_BASE	 0x3f8u
#define RT_EXIT_PORT	 0xf4u
#define RT_FAULT_PORT	 0x4f0u /* VMMUX_FAULT_REPORT_PORT (vmms/fault-report) */
#define RT_HCALL_BASE	 0x500u
#define RT_PERSIST_ADDR	 0x9000u
#define RT_MAX_CPUS	 64u	  /* vCPUs with their own fault-report slot */
#define RT_STACK_PER_CPU 0x10000u /* cpu_setup.h: CPU_STACK_PER_VCPU */

/* Exit codes the runtime itself uses (main's own codes should avoid them). */
#define RT_EXIT_FAULT 0x40u /* | vector: a reported fault that was consumed */

/*
 * The persistent scratch word at guest-physical 0x9000: vmmux never writes
 * that page (RAM starts zeroed), so a guest counts its boots across resets
 * with ++*rt_persist. Only meaningful under vmmux.
 */
extern volatile uint32_t *const rt_persist;

/* ---------------------------------------------------------------------- */
/* Port I/O                                                                 */
/* ---------------------------------------------------------------------- */

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port) : "memory");
}

static inline void outw(uint16_t port, uint16_t v)
{
	__asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port) : "memory");
}

static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port) : "memory");
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port) : "memory");
	return v;
}

static inline uint16_t inw(uint16_t port)
{
	uint16_t v;
	__asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port) : "memory");
	return v;
}

static inline uint32_t inl(uint16_t port)
{
	uint32_t v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port) : "memory");
	return v;
}

/* rep outsb: N bytes from BUF to PORT (one string I/O access). */
static inline void outsb(uint16_t port, const void *buf, size_t n)
{
	__asm__ volatile("cld; rep outsb" : "+S"(buf), "+c"(n) : "d"(port) : "memory");
}

/* rep insb: N bytes from PORT into BUF (one string I/O access). */
static inline void insb(uint16_t port, void *buf, size_t n)
{
	__asm__ volatile("cld; rep insb" : "+D"(buf), "+c"(n) : "d"(port) : "memory");
}

/* ---------------------------------------------------------------------- */
/* MMIO: one access of exactly the given width (volatile, no tearing)       */
/* ---------------------------------------------------------------------- */

static inline uint8_t mmio_read8(uintptr_t a)
{
	return *(volatile uint8_t *)a;
}
static inline uint16_t mmio_read16(uintptr_t a)
{
	return *(volatile uint16_t *)a;
}
static inline uint32_t mmio_read32(uintptr_t a)
{
	return *(volatile uint32_t *)a;
}
static inline void mmio_write8(uintptr_t a, uint8_t v)
{
	*(volatile uint8_t *)a = v;
}
static inline void mmio_write16(uintptr_t a, uint16_t v)
{
	*(volatile uint16_t *)a = v;
}
static inline void mmio_write32(uintptr_t a, uint32_t v)
{
	*(volatile uint32_t *)a = v;
}
#ifdef __x86_64__
static inline uint64_t mmio_read64(uintptr_t a)
{
	return *(volatile uint64_t *)a;
}
static inline void mmio_write64(uintptr_t a, uint64_t v)
{
	*(volatile uint64_t *)a = v;
}
#endif

/* ---------------------------------------------------------------------- */
/* CPU                                                                      */
/* ---------------------------------------------------------------------- */

static inline void cpu_relax(void)
{
	__asm__ volatile("pause" : : : "memory");
}

static inline void cli(void)
{
	__asm__ volatile("cli" : : : "memory");
}

/* HLT (CPL0 only; at CPL3 it raises #GP). */
static inline void hlt(void)
{
	__asm__ volatile("hlt" : : : "memory");
}

/* STI: enable maskable interrupts (CPL0; at CPL3 with IOPL=3 too, but the
 * runtime installs no IDT there). The CPU takes a pending interrupt only
 * after the instruction that follows STI. */
static inline void sti(void)
{
	__asm__ volatile("sti" : : : "memory");
}

/* Interrupts on/off (RFLAGS.IF), under the names the interrupt API uses. */
static inline void irq_enable(void)
{
	sti();
}

static inline void irq_disable(void)
{
	cli();
}

/* True when maskable interrupts are enabled (RFLAGS.IF). */
static inline bool irq_enabled(void)
{
	uint64_t fl;
	__asm__ volatile("pushf; pop %0" : "=r"(fl) : : "memory");
	return (fl & 0x200u) != 0;
}

/*
 * STI; HLT (CPL0): enable interrupts and halt until one arrives, with no
 * window between the two (STI's interrupt shadow covers the HLT), so an
 * interrupt already pending wakes the HLT instead of being taken before it.
 * Returns with interrupts enabled, after the handler ran. Needs an
 * interrupt source (vmmux --irqchip): without one vmmux treats the HLT as a
 * HLT event (a stopped vCPU unless a route sends it to a VMM).
 */
static inline void irq_enable_and_hlt(void)
{
	__asm__ volatile("sti; hlt" : : : "memory");
}

/* The current privilege level (CS & 3). */
static inline unsigned cpl(void)
{
	uint16_t cs;
	__asm__ volatile("mov %%cs, %0" : "=r"(cs));
	return cs & 3u;
}

/* Atomically add V to *P; returns the old value. */
static inline uint32_t atomic_fetch_add32(volatile uint32_t *p, uint32_t v)
{
	__asm__ volatile("lock xaddl %0, %1" : "+r"(v), "+m"(*p) : : "memory");
	return v;
}

static inline uint32_t atomic_load32(const volatile uint32_t *p)
{
	return *p; /* aligned 32-bit loads are atomic on x86 */
}

#ifdef __x86_64__
/* RDMSR / WRMSR (CPL0). A #GP here is a fault: reported, then exit(0x4d). */
static inline uint64_t rdmsr(uint32_t msr)
{
	uint32_t lo, hi;
	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr) : "memory");
	return (uint64_t)hi << 32 | lo;
}

static inline void wrmsr(uint32_t msr, uint64_t v)
{
	__asm__ volatile("wrmsr"
			 :
			 : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32))
			 : "memory");
}

/*
 * RDMSR / WRMSR that survive a #GP (CPL0 only): 0 and *val on success, -1
 * when the instruction raised #GP (the exception is then not reported: the
 * #GP handler finds the faulting RIP in the runtime's exception table and
 * resumes at its recovery address).
 */
int rdmsr_safe(uint32_t msr, uint64_t *val);
int wrmsr_safe(uint32_t msr, uint64_t val);

/*
 * Report a breakpoint (#BP, vector 3) that the guest raises itself, without
 * executing INT3: the very report the #BP stub sends (error code 0, RIP =
 * this call's return address, CR2 0), and it returns when a VMM consumed it,
 * as after an int3. For hosts where INT3 cannot run: KVM's instruction
 * emulator does not implement INT n in protected or long mode, so on a host
 * that emulates guest CPL0 code (PVM) an int3 at CPL0 ends the run with
 * KVM_EXIT_INTERNAL_ERROR instead of reaching the IDT. CPL0 or CPL3.
 */
void rt_report_breakpoint(void);

/* Index of the calling vCPU (from its stack, see rt64.c); CPL0 or CPL3. */
unsigned rt_cpu_index(void);

/*
 * Interrupt handlers (CPL0 only).
 *
 * rt_irq_set_handler makes FN the handler of VECTOR (32-255) in the IDT
 * that every vCPU shares; FN NULL removes it. Returns 0, or -1 for a vector
 * below 32 (exceptions stay the runtime's), above 255, or at CPL3. A vector
 * without a handler has a not-present gate: an interrupt there raises #NP
 * (vector 11, error code VECTOR * 8 + 2), reported like any fault.
 *
 * FN(vector) runs on the interrupted vCPU's stack with interrupts disabled
 * (an interrupt gate), the interrupted code's general registers saved and
 * restored around it; when it returns the runtime executes IRETQ, which
 * restores RFLAGS.IF. The handler acknowledges its interrupt controller
 * itself (for example outb(0x20, 0x20), a non-specific EOI to the 8259
 * PIC). It must not use SSE (guests are built with -mgeneral-regs-only).
 */
typedef void (*rt_irq_handler_fn)(unsigned vector);
int rt_irq_set_handler(unsigned vector, rt_irq_handler_fn fn);

/*
 * The 8259 PIC pair (CPL0, I/O ports 0x20-0x21, 0xa0-0xa1, ELCR 0x4d0-0x4d1):
 * rt_pic_init programs both (ICW1-ICW4: vectors BASE to BASE + 15, the
 * slave cascaded on IRQ 2, 8086 mode), masks the master's lines by
 * MASTER_IMR and every slave line, and makes every line edge-triggered
 * (ELCR 0). rt_pic_eoi sends a non-specific EOI for VECTOR of a PIC
 * initialised with BASE: to the slave too when the vector is one of its.
 */
void rt_pic_init(unsigned base, uint8_t master_imr);
void rt_pic_eoi(unsigned base, unsigned vector);
#endif

/* ---------------------------------------------------------------------- */
/* Console (16550 at 0x3f8, polled) and exit                                */
/* ---------------------------------------------------------------------- */

void putc(char c);
void puts(const char *s); /* no newline added */

/*
 * A small printf: %d %i %u %x %X %s %c %p %%, with the length modifiers l
 * and ll, a '0' flag and a field width (e.g. %08x, %016lx). Returns the
 * number of characters written.
 */
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int vprintf(const char *fmt, va_list ap);

/* End the run: outb(0xf4, V), then stop this vCPU (never returns). */
__attribute__((noreturn)) void exit(unsigned v);

/* Stop this vCPU without ending the run (for secondary vCPUs): spins. */
__attribute__((noreturn)) void park(void);

/*
 * The guest's own entry, called by the runtime on every vCPU; its return
 * value V ends the run with exit(V). A 64-bit guest with several vCPUs lets
 * the secondary ones park() instead of returning.
 */
#ifdef __x86_64__
int main(unsigned cpu, unsigned ncpus);
#else
struct multiboot_info;
int main(uint32_t magic, const struct multiboot_info *mbi);
#endif

/* freestanding gcc may emit calls to these */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

#endif
