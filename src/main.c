/* vmmux: a VMM whose privileged events are routed to several VMMs. */
#include "cli/cli.h"

int main(int argc, char **argv)
{
	return cli_main(argc, argv);
}
