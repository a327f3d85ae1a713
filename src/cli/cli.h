/*
 * cli.h: the command line: `vmmux run|routes|roles|help`, --help, --version.
 */
#ifndef VMMUX_CLI_CLI_H
#define VMMUX_CLI_CLI_H

#include "config/config.h"
#include "util/err.h"

/* Parse ARGV, run the command, return the process exit status. */
int cli_main(int argc, char **argv);

/* cli_parse_run's return when -h/--help was given. */
#define CLI_HELP 1

/*
 * Parse the options of `vmmux run` (also those of `vmmux routes`) into C,
 * which the caller has set up with config_init (and possibly changed, e.g.
 * from the environment). ARGV[0] is the command name; options start at
 * ARGV[1]. A --config FILE is loaded first, wherever it is; the other options
 * then apply in order and override the file (--route, --vmm and --break
 * append to the file's lists). --config may be given once. Does not call
 * config_finish.
 *
 * Returns 0; CLI_HELP when -h/--help was given (C then holds nothing of the
 * command line); or -1 with a message that names the option and quotes the
 * value ("--mem: '12X': unknown size suffix 'X' (use K, M, G or T)"); C may
 * then hold part of the options and is released with config_free.
 * Uses getopt_long (resets optind; permutes ARGV's pointers).
 */
int cli_parse_run(int argc, char **argv, struct vmmux_config *c, struct errbuf *e);

#endif
