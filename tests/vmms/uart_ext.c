/*
 * uart_ext: the 16550A UART role as a separate program, built against the
 * VMM library like a third party's: "a new program version" of the console
 * VMM, which the hot-swap test swaps in for the built-in one.
 */
#include <vmmux/vmm.h>

#include "../../vmms/roles.h"

int main(void)
{
	return vmmux_vmm_main(&vmmux_role_uart16550);
}
