/*
 * cli.h: the command line: `vmmux run|routes|roles|help`, --help, --version.
 */
#ifndef VMMUX_CLI_CLI_H
#define VMMUX_CLI_CLI_H

/* Parse ARGV, run the command, return the process exit status. */
int cli_main(int argc, char **argv);

#endif
