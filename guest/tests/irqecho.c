/*
 * irqecho: the UART's receive interrupt (IRQ 4, edge-triggered) through
 * KVM's in-kernel 8259 PIC (vmmux --irqchip), for the interrupts of a
 * live update.
 *
 * Programs the PIC pair (vectors 0x20-0x2f, only IRQ 4 unmasked, every
 * line edge-triggered), prints "ready\n", enables the 16550's received-
 * data interrupt (IER bit 0) and halts with interrupts enabled (STI; HLT).
 * The handler reads every byte the UART holds (while LSR bit 0) and writes
 * it back to THR, then sends EOI. The UART raises its interrupt output
 * when its receive buffer stops being empty, and only then, so on an
 * edge-triggered line each empty-to-non-empty transition is one edge and
 * nothing else brings the guest back: an edge lost anywhere leaves the
 * guest halted for good with input waiting, and its echo stops.
 *
 * A 'q' (not echoed) ends the run: it prints "\nirqecho: N bytes\n" and
 * exits with code 0. Interrupts on other vectors are counted and printed
 * ("irqecho: N other interrupts\n") when there were any.
 */
#include "rt.h"

#define VEC_BASE  0x20u
#define UART_LINE 4u
#define UART_VEC  (VEC_BASE + UART_LINE)

#define COM1	0x3f8u
#define RBR	(COM1 + 0)
#define THR	(COM1 + 0)
#define IER	(COM1 + 1)
#define LSR	(COM1 + 5)
#define IER_RDI 0x01u
#define LSR_DR	0x01u

static volatile uint32_t n_bytes, n_other;
static volatile bool quit;

static void rx_handler(unsigned vector)
{
	(void)vector;
	while (inb(LSR) & LSR_DR) {
		uint8_t c = inb(RBR);
		if (c == 'q') {
			quit = true;
		} else {
			n_bytes++;
			outb(THR, c);
		}
	}
	rt_pic_eoi(VEC_BASE, UART_VEC);
}

static void other_handler(unsigned vector)
{
	n_other++;
	rt_pic_eoi(VEC_BASE, vector);
}

int main(unsigned cpu, unsigned ncpus)
{
	(void)ncpus;
	if (cpu != 0)
		park();
	for (unsigned v = VEC_BASE; v < VEC_BASE + 16u; v++)
		rt_irq_set_handler(v, v == UART_VEC ? rx_handler : other_handler);
	rt_pic_init(VEC_BASE, (uint8_t) ~(1u << UART_LINE)); /* only IRQ 4 */
	puts("ready\n");
	outb(IER, IER_RDI);
	while (!quit)
		irq_enable_and_hlt();
	irq_disable();
	outb(IER, 0);
	printf("\nirqecho: %u bytes\n", n_bytes);
	if (n_other)
		printf("irqecho: %u other interrupts\n", n_other);
	return 0;
}
