#!/bin/sh
# The whole test suite, as `make check` runs it, on three builds: BUILD
# (normal), ASAN (AddressSanitizer + UBSan) and TSAN (ThreadSanitizer), and
# the libFuzzer harnesses of FUZZ (fuzz/, clang):
#
#   1. the unit tests of the normal and ASan+UBSan builds, and those of the
#      TSan build that start threads or processes (suite unit-threads: the
#      transport, the router and statistics, the load policies, the
#      sandbox and the self filters; TSan finds nothing in the others,
#      single-threaded parsers it would only slow down tenfold) (cmocka, no
#      KVM; the transport's tests bound the time a call takes, so a suite
#      runs alone)
#   2. the integration tests of the normal build, suites kvm (every
#      module), kvm-parallel (the modules whose run differs with parallel
#      VMMs) and kvm-spin, one at a time and with nothing else running: the
#      run whose timing is the machine's own
#   3. the integration tests of the ASan+UBSan build, suite sanitize: the
#      modules that feed vmmux untrusted or malformed input (images,
#      configs, command lines, unikernels, hostile VMM programs, control
#      requests, the debugger's packets) and the main delivery paths, with
#      parallel VMMs too where that reaches other code
#      (tests/integration/meson.build lists them). The comparisons with
#      QEMU, the group policies and the supervision tests are left to the
#      normal and TSan trees: under ASan they cost minutes and reach no code
#      the kept modules do not.
#   4. the control plane: the meson suite control-plane of the normal build
#      (tests/chaos/chaos.py's short fixed-seed run and
#      tests/integration/test_control_plane.py, one regression test per known
#      way to freeze vmmux or lose an event; its kick test runs the TSan
#      build's vmmux, VMMUX_TSAN), and the supervision and live
#      integration tests of the TSan build (30 kills in the supervision
#      kill test, not 100: TSan is ten times slower; the group policies' shared
#      counters are TSan's in unit_policy and unit_stats, step 1). VMMUX_CHECK_CONTROL_PLANE=0
#      leaves them out (for a quick local run only: CI runs them).
#   5. the fuzz harnesses (fuzz/run.sh BUILD check): each replays its
#      committed corpus fuzz/corpus/<harness>/ (seeds, kept inputs and the
#      crash-* inputs of every bug fuzzing found), then fuzzes for
#      FUZZ_CHECK_SECONDS (1) without writing the corpus. About 25 s
#      for the twelve harnesses. Skipped (and said) when FUZZ is not given.
#
# The comparisons with QEMU (their time is QEMU's emulation) and the
# snapshot and live-update modules (they compare outputs and time nothing)
# may run two at a time in the normal build's step; every other
# integration test runs alone (is_parallel: false in
# tests/integration/meson.build).
# No two suites run at the same time: the KVM integration tests share the
# machine's two cores with the guests' vCPUs and the parallel VMMs, and the
# transport's unit tests bound how late a call may return; a second suite
# beside them would slow the very deliveries they time. TSan runs with
# tests/tsan.supp, which names only liburcu's own code (see the file for
# why; the router tells TSan what liburcu's grace periods guarantee).
#
# What the steps cost here (2 cores, quiet; the script prints each step's
# time at the end; CI on a fresh clone, 2026-12-08): the unit tests 38 s, the
# normal build's integration tests 274 s, ASan's 96 s, the control plane
# 86 s (the chaos short run 25 s, the regression tests 60 s), TSan's
# supervision and live tests 57 s, the fuzz harnesses 29 s: 580 s in all,
# within the 10 minutes the suite should take, with little to spare: a
# module that adds time should take it from somewhere.
#
# Fails when any test fails. KVM tests fail without /dev/kvm unless
# VMMUX_ALLOW_NO_KVM=1. Skips are allowed only for host limits listed in
# docs/host-limits.md; they are counted and listed at the end. The time each
# step took is printed at the end.
set -eu
build=${1:-build}
asan=${2:-build-asan}
tsan=${3:-build-tsan}
fuzz=${4:-}
control_plane=${VMMUX_CHECK_CONTROL_PLANE:-1}
skips="$PWD/$build/host-limit-skips.txt"
: > "$skips"
export VMMUX_SKIP_LOG="$skips"

if [ ! -e /dev/kvm ]; then
	echo "vmmux: *** /dev/kvm is missing: the KVM integration tests cannot run ***" >&2
	if [ "${VMMUX_ALLOW_NO_KVM:-0}" != 1 ]; then
		echo "vmmux: set VMMUX_ALLOW_NO_KVM=1 to run the rest anyway" >&2
	fi
fi

asan_env() {
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 "$@"
}
tsan_env() {
	TSAN_OPTIONS="suppressions=$PWD/tests/tsan.supp:history_size=4:second_deadlock_stack=1" "$@"
}

status=0
times=""
step_start=0
begin() {
	step_start=$(date +%s)
	echo "vmmux: === $1"
}
end() {
	times="$times
  $1: $(($(date +%s) - step_start)) s"
}

# 1. unit tests of the three builds (TSan: those that start threads)
begin "unit tests (normal, ASan+UBSan; TSan: unit-threads)"
meson test -C "$build" --suite unit --print-errorlogs --num-processes 2 || status=1
asan_env meson test -C "$asan" --suite unit --print-errorlogs --num-processes 2 \
	--timeout-multiplier 3 || status=1
tsan_env meson test -C "$tsan" --suite unit-threads --print-errorlogs --num-processes 2 \
	--timeout-multiplier 5 || status=1
end "unit tests"

# 2. the normal build's integration tests, alone
begin "integration tests, normal build"
meson test -C "$build" --suite kvm --suite kvm-parallel --suite kvm-spin --print-errorlogs \
	--num-processes 2 || status=1
end "integration, normal"

# 3. the ASan+UBSan build's integration tests
begin "integration tests, ASan+UBSan build"
asan_env meson test -C "$asan" --suite sanitize --print-errorlogs --num-processes 1 \
	--timeout-multiplier 3 || status=1
end "integration, ASan+UBSan"

# 4. the control plane
if [ "$control_plane" = 1 ]; then
	begin "control plane: chaos short run and regression tests, normal build"
	VMMUX_TSAN="$PWD/$tsan/vmmux" meson test -C "$build" --suite control-plane \
		--print-errorlogs --num-processes 1 || status=1
	end "control plane, normal"
	begin "supervision and live integration tests, TSan build"
	tsan_env env VMMUX_TEST_KILLS=30 meson test -C "$tsan" --suite kvm --print-errorlogs \
		--num-processes 1 --timeout-multiplier 5 test_supervision test_live || status=1
	end "integration, TSan"
else
	echo "vmmux: *** control-plane checks skipped (VMMUX_CHECK_CONTROL_PLANE=0) ***"
fi

# 5. the fuzz harnesses
if [ -n "$fuzz" ]; then
	begin "fuzz harnesses: corpus replay and ${FUZZ_CHECK_SECONDS:-1} s of fuzzing each"
	./fuzz/run.sh "$fuzz" check || status=1
	end "fuzz"
else
	echo "vmmux: *** fuzz harnesses skipped (no fuzz build given) ***"
fi

echo "vmmux: time per step:$times"
n=$(grep -c . "$skips" || true)
echo "vmmux: host-limit skips: $n"
[ "$n" -gt 0 ] && sed 's/^/  skipped: /' "$skips"
if [ $status -ne 0 ]; then
	echo "vmmux: make check FAILED" >&2
else
	echo "vmmux: make check passed"
fi
exit $status
