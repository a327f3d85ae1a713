/*
 * qemu.h: the QEMU-compatible front end: `vmmux qemu ARGS...`, and vmmux
 * started under the name qemu-system-x86_64 (argv[0]'s base name).
 *
 * ARGS are qemu-system-x86_64's options (docs/guests.md, "Coming from
 * QEMU"); each accepted one is translated into `vmmux run` options (the
 * translation, with VMMUX_QEMU_SHOW=1 in the environment, is printed on
 * stderr as one "vmmux run ..." line before the run) and the guest is run
 * as `vmmux run` runs it, on QEMU's pc machine. Any other option is
 * refused with one line that names it.
 *
 * Exit status as QEMU's: the guest's isa-debug-exit status ((V << 1) | 1),
 * 0 at power-off (and at a triple fault with -no-reboot), 1 on every error
 * (bad option, image refused, host failure).
 */
#ifndef VMMUX_CLI_QEMU_H
#define VMMUX_CLI_QEMU_H

#include <stdbool.h>
#include <stdio.h>

/* The program names under which vmmux is the QEMU front end. */
bool qemu_is_name(const char *argv0);

/* The front end's -help text (also `vmmux help qemu`). */
void qemu_help(FILE *f);

/* Run QEMU's command line ARGV[1..ARGC-1]; ARGV[0] names the program in
 * messages ("qemu-system-x86_64: -foo: ..."). Returns the exit status. */
int qemu_main(int argc, char **argv);

#endif
