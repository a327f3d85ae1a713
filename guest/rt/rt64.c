/*
 * rt64.c: the 64-bit-only part of the guest runtime: the IDT (exceptions
 * 0-31, interrupt handlers for vectors 32-255), the exception handler that
 * reports through the fault-report port, the exception table behind
 * rdmsr_safe/wrmsr_safe, and the vCPU index.
 *
 * Exception handling, at CPL0 only (at CPL3 the runtime leaves the IDT
 * alone):
 *   - #GP whose RIP is in the exception table: resume at the recovery
 *     address, report nothing (as Linux's exception tables do);
 *   - anything else: fill this vCPU's struct vmmux_fault_report (vector,
 *     error code, the RIP the CPU pushed: after the instruction for a trap,
 *     CR2 for #PF) and execute OUTL with EAX = its address to port 0x4f0. A VMM that does not
 * consume the report ends the run there. If the OUT returns, a trap (#DB, #BP, #OF) resumes the
 * guest after the trapping instruction, and a fault ends the run with exit(0x40 | vector).
 *
 * rt_report_breakpoint sends the report of a #BP without the CPU raising
 * one, for hosts that cannot execute INT3 at CPL0 (see rt.h).
 *
 * Interrupts (CPL0): the IDT has 256 gates; those of vectors 32-255 are not
 * present until rt_irq_set_handler installs a handler, so an interrupt on a
 * vector without one raises #NP (reported like any fault). The stubs of
 * vectors 32-255 (start64.S) share the exceptions' common part, and
 * rt_exception calls the installed handler for them.
 */
#include "rt.h"

#include "fault_report.h" /* vmms/fault-report: the report layout */

_Static_assert(RT_FAULT_PORT == VMMUX_FAULT_REPORT_PORT, "fault-report port");

/* The register frame that the stubs in start64.S build (lowest address
 * first): the pushed GPRs, the stub's vector and error code, then what the
 * CPU pushed. */
struct rt_frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
	uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vector, error;
	uint64_t rip, cs, rflags, rsp, ss;
};

struct rt_extable_entry {
	uint64_t fault;	  /* RIP of an instruction that may raise #GP */
	uint64_t recover; /* where to resume when it does */
};

struct idt_gate {
	uint16_t off_lo;
	uint16_t sel;
	uint8_t ist;
	uint8_t type; /* 0x8e: present, DPL 0, 64-bit interrupt gate */
	uint16_t off_mid;
	uint32_t off_hi;
	uint32_t zero;
};

struct __attribute__((packed)) idt_ptr {
	uint16_t limit;
	uint64_t base;
};

#define RT_EXC_VECTORS	  32   /* exceptions: gates filled at boot */
#define RT_VECTORS	  256  /* the IDT's size */
#define RT_IRQ_STUB_SIZE  16   /* start64.S: the stubs of vectors 32-255 */
#define RT_GATE_INTERRUPT 0x8e /* present, DPL 0, 64-bit interrupt gate */

/* start64.S and the linker script */
extern const uint64_t rt_isr_table[RT_EXC_VECTORS];
extern const char rt_irq_stubs[];
extern const struct rt_extable_entry __start_rt_extable[], __stop_rt_extable[];
extern uint64_t rt_ram_top;

static struct idt_gate rt_idt[RT_VECTORS] __attribute__((aligned(16)));
static rt_irq_handler_fn volatile rt_irq_handlers[RT_VECTORS];
static uint16_t rt_code_sel; /* CS of the IDT's gates, set at boot */
static struct vmmux_fault_report rt_reports[RT_MAX_CPUS] __attribute__((aligned(64)));

unsigned rt_cpu_index(void)
{
	uint64_t rsp;
	__asm__ volatile("mov %%rsp, %0" : "=r"(rsp));
	/* vCPU i starts at RSP = top - i * 64 KiB - 8 (cpu_setup.h) and its
	 * stack lies in (top - (i + 1) * 64 KiB, top - i * 64 KiB]. */
	if (rsp >= rt_ram_top)
		return RT_MAX_CPUS - 1;
	uint64_t i = (rt_ram_top - 1 - rsp) / RT_STACK_PER_CPU;
	return i < RT_MAX_CPUS ? (unsigned)i : RT_MAX_CPUS - 1;
}

/* Called by vCPU 0 once .bss is zero, before the other vCPUs go on. */
void rt_init_boot(void)
{
	if (cpl() != 0)
		return;
	uint16_t cs;
	__asm__ volatile("mov %%cs, %0" : "=r"(cs));
	rt_code_sel = cs;
	/* Gates 32-255 stay zero (not present) until a handler is installed. */
	for (unsigned v = 0; v < RT_EXC_VECTORS; v++) {
		uint64_t a = rt_isr_table[v];
		rt_idt[v] = (struct idt_gate){
		    .off_lo = (uint16_t)a,
		    .sel = cs,
		    .type = RT_GATE_INTERRUPT,
		    .off_mid = (uint16_t)(a >> 16),
		    .off_hi = (uint32_t)(a >> 32),
		};
	}
}

void rt_pic_init(unsigned base, uint8_t master_imr)
{
	outb(0x20, 0x11); /* ICW1: cascade, ICW4 follows (edge: ELCR decides) */
	outb(0xa0, 0x11);
	outb(0x21, (uint8_t)base); /* ICW2: vector base */
	outb(0xa1, (uint8_t)(base + 8u));
	outb(0x21, 0x04); /* ICW3: slave on IRQ 2 */
	outb(0xa1, 0x02); /* ... its cascade identity */
	outb(0x21, 0x01); /* ICW4: 8086 mode, normal EOI */
	outb(0xa1, 0x01);
	outb(0x21, master_imr); /* OCW1 */
	outb(0xa1, 0xff);
	outb(0x4d0, 0); /* every line edge-triggered */
	outb(0x4d1, 0);
}

void rt_pic_eoi(unsigned base, unsigned vector)
{
	if (vector >= base + 8u)
		outb(0xa0, 0x20);
	outb(0x20, 0x20);
}

int rt_irq_set_handler(unsigned vector, rt_irq_handler_fn fn)
{
	if (vector < RT_EXC_VECTORS || vector >= RT_VECTORS || cpl() != 0)
		return -1;
	volatile struct idt_gate *g = &rt_idt[vector];
	if (fn == NULL) {
		/* Gate first: no interrupt reaches the vector once it is gone. */
		g->type = 0;
		rt_irq_handlers[vector] = NULL;
		return 0;
	}
	/* Handler first, then the gate's fields, present bit last. */
	rt_irq_handlers[vector] = fn;
	uint64_t a = (uint64_t)(uintptr_t)rt_irq_stubs +
		     (uint64_t)(vector - RT_EXC_VECTORS) * RT_IRQ_STUB_SIZE;
	g->type = 0;
	g->off_lo = (uint16_t)a;
	g->sel = rt_code_sel;
	g->ist = 0;
	g->off_mid = (uint16_t)(a >> 16);
	g->off_hi = (uint32_t)(a >> 32);
	g->zero = 0;
	__asm__ volatile("" : : : "memory");
	g->type = RT_GATE_INTERRUPT;
	return 0;
}

/* Called by every vCPU before main. */
void rt_init_cpu(void)
{
	if (cpl() != 0)
		return;
	struct idt_ptr p = {.limit = sizeof(rt_idt) - 1, .base = (uintptr_t)rt_idt};
	__asm__ volatile("lidt %0" : : "m"(p) : "memory");
}

static uint64_t read_cr2(void)
{
	uint64_t v;
	__asm__ volatile("mov %%cr2, %0" : "=r"(v));
	return v;
}

static bool is_trap(uint64_t vector)
{
	return vector == 1 || vector == 3 || vector == 4;
}

/* Send one report through the fault-report port; returns if it was consumed. */
static void report(uint32_t vector, uint64_t error, uint64_t rip, uint64_t cr2)
{
	struct vmmux_fault_report *r = &rt_reports[rt_cpu_index()];
	r->vector = vector;
	r->reserved = 0;
	r->error_code = error;
	r->rip = rip;
	r->cr2 = cr2;
	outl(RT_FAULT_PORT, (uint32_t)(uintptr_t)r);
}

__attribute__((noinline)) void rt_report_breakpoint(void)
{
	report(3, 0, (uint64_t)(uintptr_t)__builtin_return_address(0), 0);
}

/* Called by the common stub; returning resumes at f->rip. */
void rt_exception(struct rt_frame *f)
{
	if (f->vector >= RT_EXC_VECTORS) {
		/* An interrupt: its gate is present only with a handler; one
		 * removed meanwhile makes this a spurious interrupt, ignored. */
		rt_irq_handler_fn fn = rt_irq_handlers[f->vector & (RT_VECTORS - 1)];
		if (fn != NULL)
			fn((unsigned)f->vector);
		return;
	}
	if (f->vector == 13) {
		for (const struct rt_extable_entry *e = __start_rt_extable; e < __stop_rt_extable;
		     e++) {
			if (e->fault == f->rip) {
				f->rip = e->recover;
				return;
			}
		}
	}
	report((uint32_t)f->vector, f->error, f->rip, f->vector == 14 ? read_cr2() : 0);
	/* The report was consumed. */
	if (is_trap(f->vector))
		return;
	exit(RT_EXIT_FAULT | (unsigned)f->vector);
}

int rdmsr_safe(uint32_t msr, uint64_t *val)
{
	uint32_t lo, hi;
	int err = 0;
	__asm__ volatile("1:\trdmsr\n\t"
			 "jmp 3f\n"
			 "2:\tmovl $-1, %[err]\n\t"
			 "xorl %%eax, %%eax\n\t"
			 "xorl %%edx, %%edx\n"
			 "3:\n\t"
			 ".pushsection rt_extable, \"a\"\n\t"
			 ".balign 8\n\t"
			 ".quad 1b, 2b\n\t"
			 ".popsection"
			 : "=a"(lo), "=d"(hi), [err] "+r"(err)
			 : "c"(msr)
			 : "memory");
	*val = (uint64_t)hi << 32 | lo;
	return err;
}

int wrmsr_safe(uint32_t msr, uint64_t val)
{
	int err = 0;
	__asm__ volatile("1:\twrmsr\n\t"
			 "jmp 3f\n"
			 "2:\tmovl $-1, %[err]\n"
			 "3:\n\t"
			 ".pushsection rt_extable, \"a\"\n\t"
			 ".balign 8\n\t"
			 ".quad 1b, 2b\n\t"
			 ".popsection"
			 : [err] "+r"(err)
			 : "c"(msr), "a"((uint32_t)val), "d"((uint32_t)(val >> 32))
			 : "memory");
	return err;
}
