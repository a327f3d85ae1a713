#!/bin/sh
# pack-static.sh OUT.a IN.a LD OBJCOPY AR
# Link every object of IN.a into one relocatable object, make its hidden
# symbols local (the library is compiled with -fvisibility=hidden; only
# VMMUX_API symbols stay global), and archive that object as OUT.a. A program
# linked with OUT.a then sees only vmmux_* names: the library's internals
# (log_level, err_set, tp_*, ...) cannot clash with its own.
set -eu
out=$1 in=$2 ld=$3 objcopy=$4 ar=$5
tmp="$out.o"
"$ld" -r --whole-archive "$in" -o "$tmp"
"$objcopy" --localize-hidden "$tmp"
rm -f "$out"
"$ar" rcs "$out" "$tmp"
rm -f "$tmp"
