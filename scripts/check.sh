#!/bin/sh
# The whole test suite, as `make check` runs it:
#   1. unit tests of the normal build (in parallel)
#   2. integration tests of the normal build (real guests under /dev/kvm,
#      one at a time)
#   3. unit and integration tests of the ASan+UBSan build, once
# Fails when any test fails. KVM tests fail without /dev/kvm unless
# VMMUX_ALLOW_NO_KVM=1. Skips are allowed only for host limits listed in
# docs/host-limits.md; they are counted and listed at the end.
set -eu
build=${1:-build}
asan=${2:-build-asan}
skips="$PWD/$build/host-limit-skips.txt"
: > "$skips"
export VMMUX_SKIP_LOG="$skips"

if [ ! -e /dev/kvm ]; then
	echo "vmmux: *** /dev/kvm is missing: the KVM integration tests cannot run ***" >&2
	if [ "${VMMUX_ALLOW_NO_KVM:-0}" != 1 ]; then
		echo "vmmux: set VMMUX_ALLOW_NO_KVM=1 to run the rest anyway" >&2
	fi
fi

status=0
meson test -C "$build" --suite unit --print-errorlogs --num-processes 2 || status=1
meson test -C "$build" --suite kvm --suite kvm-parallel --suite kvm-spin --print-errorlogs \
	--num-processes 1 || status=1
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	meson test -C "$asan" --suite unit --suite kvm --suite kvm-parallel --print-errorlogs \
	--num-processes 1 \
	--timeout-multiplier 3 || status=1

n=$(grep -c . "$skips" || true)
echo "vmmux: host-limit skips: $n"
[ "$n" -gt 0 ] && sed 's/^/  skipped: /' "$skips"
if [ $status -ne 0 ]; then
	echo "vmmux: make check FAILED" >&2
else
	echo "vmmux: make check passed"
fi
exit $status
