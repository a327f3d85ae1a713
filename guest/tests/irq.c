/*
 * irq, irq_level: the UART's interrupt (IRQ 4) through KVM's in-kernel 8259
 * PIC. One source, two guests: irq.elf tests an edge-triggered IRQ 4,
 * irq_level.elf (built with -DIRQ_LEVEL) a level-triggered one.
 *
 * Both program the PIC pair (ICW1..ICW4: vectors 0x20-0x2f, only IRQ 4
 * unmasked; ELCR all edge), install a handler for vector 0x24 (and a
 * counting one for the PIC's other vectors), print what the LAPIC and the
 * IOAPIC say about IRQ 4, and make the 16550 at 0x3f8 raise its interrupt by
 * enabling the THR-empty interrupt (IER bit 1: THR is always empty, so the
 * UART raises IRQ 4 at once). Each phase enables interrupts only while it
 * waits, ends with IER = 0, and prints its counts afterwards (a THR write
 * with THR-empty enabled would raise another interrupt). The handler samples
 * the PIC's ISR and the LAPIC's ISR bit of vector 0x24 on every delivery.
 *
 * irq.elf:
 *   edge   the handler reads IIR (clearing the cause), counts the cause and
 *          sends EOI: exactly one interrupt, cause THR empty;
 *   held   the handler leaves the cause pending (the UART holds its line
 *          high): still exactly one interrupt (one rising edge);
 *   imr    IRQ 4 masked in the PIC's IMR: no interrupt; unmasked: one;
 *   lvt0   the LAPIC software-enabled and LINT0 masked: no interrupt,
 *          though the PIC's IRR has IRQ 4; LINT0 unmasked (and the PIC's
 *          output lowered and raised again through the IMR, so that KVM
 *          looks at it again): one interrupt.
 * irq_level.elf (ELCR bit 4 set: IRQ 4 level-triggered):
 *   level  the handler leaves the cause pending: the PIC delivers it again
 *          after every EOI while the UART holds its line high; at the
 *          LEVEL_N-th delivery the handler clears the cause (IER = 0)
 *          before its EOI: exactly LEVEL_N interrupts, none after;
 *   off    with interrupts disabled the UART raises its line, then the
 *          guest clears the cause (IER = 0), then enables interrupts: no
 *          interrupt (a level-triggered request that went away is gone).
 * Every wait is bounded (a pause loop); every printed line is deterministic.
 *
 * Exit codes: IRQ_OK (0x24) every count as expected; IRQ_NONE (0x25) the
 * first phase saw no interrupt within its bounded wait (no irqchip, IRQ
 * requests routed away from the main VMM, or refused); IRQ_BAD (0x26) a
 * count differs (a line "unexpected: ..." says which).
 */
#include "rt.h"

#define IRQ_OK	 0x24u
#define IRQ_NONE 0x25u
#define IRQ_BAD	 0x26u

/* 8259 PIC pair and its edge/level control registers */
#define PIC1_CMD  0x20u
#define PIC1_DATA 0x21u
#define ELCR1	  0x4d0u
#define PIC_EOI	  0x20u /* OCW2: non-specific EOI */
#define OCW3_IRR  0x0au /* OCW3: the next read of the command port gives IRR */
#define OCW3_ISR  0x0bu /* ... gives ISR */
#define VEC_BASE  0x20u /* master 0x20-0x27, slave 0x28-0x2f */
#define UART_LINE 4u
#define UART_BIT  (1u << UART_LINE)
#define UART_VEC  (VEC_BASE + UART_LINE)
#define IMR_ONLY4 ((uint8_t)~UART_BIT) /* 0xef */

/* 16550 at 0x3f8 */
#define UART_IER 0x3f9u
#define UART_IIR 0x3fau
#define IER_THRI 0x02u
#define IIR_NONE 0x01u /* bit 0: no interrupt pending */
#define IIR_ID	 0x0eu /* bits 1-3: the cause */
#define IIR_THRI 0x02u

/* Local APIC and IOAPIC (in-kernel with --irqchip) */
#define MSR_APIC_BASE	0x1bu
#define APIC_BASE_EN	(1u << 11)
#define LAPIC_SVR	0xf0u
#define SVR_ENABLE	(1u << 8)
#define LAPIC_ISR	0x100u /* 8 registers 0x10 apart, 32 vectors each */
#define LAPIC_LVT0	0x350u
#define LVT_MASKED	(1u << 16)
#define LVT_MODE_MASK	(7u << 8)
#define LVT_MODE_EXTINT (7u << 8)
#define IOAPIC_BASE	0xfec00000u
#define IOAPIC_REGSEL	0x00u
#define IOAPIC_WIN	0x10u
#define IOAPIC_REDTBL	0x10u /* + 2 * pin: low half of the entry */

/* Bounded waits, in pause-loop iterations (several us each at CPL0 here;
 * an interrupt through an irqfd has come within a few thousand). */
#define WAIT_SPIN   200000u /* for an interrupt that should come */
#define SETTLE_SPIN 20000u  /* for interrupts that should not come */
#define LEVEL_N	    4u	    /* deliveries of the held level interrupt */

enum mode {
	MODE_ACK,	 /* read IIR: clears THR-empty, the line drops */
	MODE_HOLD,	 /* leave the cause pending: the line stays high */
	MODE_HOLD_CLEAR, /* leave it pending; clear it (IER = 0) at LEVEL_N */
};

static volatile enum mode mode;
static volatile uint32_t n_irq;	      /* deliveries of vector 0x24 */
static volatile uint32_t n_thri;      /* ... whose IIR said THR empty */
static volatile uint32_t n_cause;     /* ... another cause */
static volatile uint32_t n_nocause;   /* ... IIR bit 0 set: nothing pending */
static volatile uint32_t n_pic_isr;   /* ... with the PIC's ISR bit 4 set */
static volatile uint32_t n_lapic_isr; /* ... with the LAPIC's ISR bit set */
static volatile uint32_t n_other;     /* other vectors 0x20-0x2f */
static uintptr_t lapic;		      /* LAPIC base, 0 when there is none */

static uint32_t lapic_read(uint32_t reg)
{
	return mmio_read32(lapic + reg);
}

#ifndef IRQ_LEVEL
static void lapic_write(uint32_t reg, uint32_t v)
{
	mmio_write32(lapic + reg, v);
}
#endif

static uint32_t ioapic_read(uint32_t reg)
{
	mmio_write32(IOAPIC_BASE + IOAPIC_REGSEL, reg);
	return mmio_read32(IOAPIC_BASE + IOAPIC_WIN);
}

/* The master PIC's ISR (OCW3), leaving IRR selected for later reads. */
static uint8_t pic_isr(void)
{
	outb(PIC1_CMD, OCW3_ISR);
	uint8_t isr = inb(PIC1_CMD);
	outb(PIC1_CMD, OCW3_IRR);
	return isr;
}

static uint8_t pic_irr(void)
{
	outb(PIC1_CMD, OCW3_IRR);
	return inb(PIC1_CMD);
}

static void uart_irq_handler(unsigned vector)
{
	(void)vector;
	uint32_t n = n_irq + 1;
	n_irq = n;
	if (pic_isr() & UART_BIT)
		n_pic_isr++;
	if (lapic && (lapic_read(LAPIC_ISR + (UART_VEC / 32u) * 0x10u) & (1u << (UART_VEC % 32u))))
		n_lapic_isr++;
	if (mode == MODE_ACK) {
		uint8_t iir = inb(UART_IIR);
		if (iir & IIR_NONE)
			n_nocause++;
		else if ((iir & IIR_ID) == IIR_THRI)
			n_thri++;
		else
			n_cause++;
	} else if (mode == MODE_HOLD_CLEAR && n >= LEVEL_N) {
		outb(UART_IER, 0);
	}
	outb(PIC1_CMD, PIC_EOI);
}

static void other_irq_handler(unsigned vector)
{
	n_other++;
	rt_pic_eoi(VEC_BASE, vector);
}

static void reset_counts(enum mode m)
{
	mode = m;
	n_irq = n_thri = n_cause = n_nocause = n_pic_isr = n_lapic_isr = 0;
}

static void spin(unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		cpu_relax();
}

/* Spin until N_IRQ reaches WANT or WAIT_SPIN iterations passed. */
static void wait_for(uint32_t want)
{
	for (unsigned i = 0; i < WAIT_SPIN && n_irq < want; i++)
		cpu_relax();
}

/* Enable THR-empty with interrupts on, wait for WANT deliveries, then for
 * any extra ones; leaves IER = 0 and interrupts off. */
static void run_phase(uint32_t want)
{
	irq_enable();
	outb(UART_IER, IER_THRI);
	wait_for(want);
	spin(SETTLE_SPIN);
	outb(UART_IER, 0);
	irq_disable();
}

/* Check one count: print a line naming it when it is not WANT. */
static bool expect(const char *what, uint32_t got, uint32_t want)
{
	if (got == want)
		return true;
	printf("unexpected: %s %u, expected %u\n", what, got, want);
	return false;
}

/* The PIC's and the interrupt controllers' state; false without a PIC. */
static bool probe(void)
{
	uint8_t imr = inb(PIC1_DATA);
	if (imr != IMR_ONLY4) {
		printf("pic: none (imr reads 0x%02x)\n", imr);
		return false;
	}
	printf("pic: vectors 0x%x-0x%x, imr 0x%02x\n", VEC_BASE, VEC_BASE + 15u, imr);
	uint64_t base = 0;
	if (rdmsr_safe(MSR_APIC_BASE, &base) == 0 && (base & APIC_BASE_EN))
		lapic = (uintptr_t)(base & 0xfffff000u);
	if (lapic) {
		uint32_t lvt0 = lapic_read(LAPIC_LVT0);
		printf("lapic: base 0x%lx, svr 0x%x, lvt0 0x%x (%s, %s)\n", (unsigned long)lapic,
		       lapic_read(LAPIC_SVR), lvt0,
		       (lvt0 & LVT_MODE_MASK) == LVT_MODE_EXTINT ? "extint" : "not extint",
		       lvt0 & LVT_MASKED ? "masked" : "unmasked");
	} else {
		printf("lapic: disabled (apic base msr 0x%lx)\n", (unsigned long)base);
	}
	uint32_t rte = ioapic_read(IOAPIC_REDTBL + 2u * UART_LINE);
	printf("ioapic: pin %u entry 0x%x (%s)\n", UART_LINE, rte,
	       rte & LVT_MASKED ? "masked" : "unmasked");
	return true;
}

static void no_interrupt(void)
{
	puts("irq: no interrupt within the bounded wait\n");
}

#ifndef IRQ_LEVEL
/* irq.elf: edge-triggered IRQ 4 */
static unsigned test(void)
{
	/* edge: the handler reads IIR */
	reset_counts(MODE_ACK);
	run_phase(1);
	printf("edge: %u interrupt(s): thr-empty %u, other cause %u, no cause %u; pic isr %u, "
	       "lapic isr %u\n",
	       n_irq, n_thri, n_cause, n_nocause, n_pic_isr, n_lapic_isr);
	if (n_irq == 0) {
		no_interrupt();
		return IRQ_NONE;
	}
	bool ok = expect("edge interrupts", n_irq, 1) & expect("edge thr-empty", n_thri, 1) &
		  expect("edge pic isr", n_pic_isr, n_irq) &
		  expect("edge lapic isr", n_lapic_isr, 0);

	/* held: the cause left pending, the line high */
	reset_counts(MODE_HOLD);
	run_phase(1);
	printf("held: %u interrupt(s) while the line stayed high\n", n_irq);
	ok &= expect("held interrupts", n_irq, 1);

	/* imr: IRQ 4 masked in the PIC, then unmasked */
	reset_counts(MODE_ACK);
	outb(PIC1_DATA, 0xff);
	irq_enable();
	outb(UART_IER, IER_THRI);
	spin(SETTLE_SPIN);
	uint32_t masked = n_irq;
	outb(PIC1_DATA, IMR_ONLY4);
	wait_for(masked + 1);
	spin(SETTLE_SPIN);
	outb(UART_IER, 0);
	irq_disable();
	printf("imr: masked %u interrupt(s), unmasked %u\n", masked, n_irq - masked);
	ok &= expect("imr masked", masked, 0) & expect("imr unmasked", n_irq - masked, 1);

	/* lvt0: LINT0 masked in the LAPIC, then unmasked. KVM forces the mask
	 * bit into LVT writes while the LAPIC is software-disabled (SVR bit 8
	 * clear, its reset state), so the LAPIC is enabled first. */
	if (lapic) {
		uint32_t lvt0 = lapic_read(LAPIC_LVT0);
		lapic_write(LAPIC_SVR, lapic_read(LAPIC_SVR) | SVR_ENABLE);
		reset_counts(MODE_ACK);
		lapic_write(LAPIC_LVT0, lvt0 | LVT_MASKED);
		irq_enable();
		outb(UART_IER, IER_THRI);
		spin(SETTLE_SPIN);
		masked = n_irq;
		unsigned irr4 = (pic_irr() & UART_BIT) != 0;
		lapic_write(LAPIC_LVT0, lvt0);
		uint32_t now = lapic_read(LAPIC_LVT0);
		outb(PIC1_DATA, 0xff); /* the PIC's output drops and rises again */
		outb(PIC1_DATA, IMR_ONLY4);
		wait_for(masked + 1);
		spin(SETTLE_SPIN);
		outb(UART_IER, 0);
		irq_disable();
		printf(
		    "lvt0: masked %u interrupt(s) with irr bit 4 = %u; unmasked (lvt0 0x%x) %u\n",
		    masked, irr4, now, n_irq - masked);
		ok &= expect("lvt0 masked", masked, 0) & expect("lvt0 irr bit 4", irr4, 1) &
		      expect("lvt0 unmasked", n_irq - masked, 1);
	}
	return ok ? IRQ_OK : IRQ_BAD;
}
#else
/* irq_level.elf: level-triggered IRQ 4 */
static unsigned test(void)
{
	outb(ELCR1, UART_BIT);
	uint8_t elcr = inb(ELCR1);
	printf("elcr: 0x%02x\n", elcr);

	/* level: the cause left pending until the LEVEL_N-th delivery */
	reset_counts(MODE_HOLD_CLEAR);
	run_phase(LEVEL_N);
	printf("level: %u interrupt(s), the cause cleared at the %uth; pic isr %u, lapic isr %u\n",
	       n_irq, LEVEL_N, n_pic_isr, n_lapic_isr);
	if (n_irq == 0) {
		no_interrupt();
		return IRQ_NONE;
	}
	bool ok = expect("elcr", elcr, UART_BIT) & expect("level interrupts", n_irq, LEVEL_N) &
		  expect("level pic isr", n_pic_isr, n_irq) &
		  expect("level lapic isr", n_lapic_isr, 0);

	/* off: the line rises and falls while interrupts are disabled */
	reset_counts(MODE_ACK);
	outb(UART_IER, IER_THRI);
	spin(SETTLE_SPIN);
	unsigned irr4 = (pic_irr() & UART_BIT) != 0;
	outb(UART_IER, 0);
	spin(SETTLE_SPIN);
	irq_enable();
	spin(SETTLE_SPIN);
	irq_disable();
	printf("off: irr bit 4 = %u while raised; %u interrupt(s) after the cause was cleared "
	       "(no cause %u)\n",
	       irr4, n_irq, n_nocause);
	ok &= expect("off irr bit 4", irr4, 1) & expect("off interrupts", n_irq, 0);
	outb(ELCR1, 0);
	return ok ? IRQ_OK : IRQ_BAD;
}
#endif

int main(unsigned cpu, unsigned ncpus)
{
	(void)ncpus;
	if (cpu != 0)
		park();
	for (unsigned v = VEC_BASE; v < VEC_BASE + 16u; v++)
		rt_irq_set_handler(v, v == UART_VEC ? uart_irq_handler : other_irq_handler);
	rt_pic_init(VEC_BASE, IMR_ONLY4); /* only IRQ 4 */
	probe();
	unsigned r = test();
	if (r == IRQ_NONE)
		return (int)r;
	if (!expect("other vectors", n_other, 0))
		r = IRQ_BAD;
	puts(r == IRQ_OK ? "irq: ok\n" : "irq: FAIL\n");
	return (int)r;
}
