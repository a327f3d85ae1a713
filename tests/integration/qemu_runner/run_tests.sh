#!/bin/sh
# run_tests.sh: a test runner written the way hypervisor test suites write
# theirs. It knows nothing of vmmux: it takes the emulator from $QEMU (the
# default: qemu-system-x86_64 on the PATH), the accelerator from $ACCEL
# (default kvm), the kernels' directory from
# $KERNEL_DIR, and a list of tests, one a line (# starts a comment):
#
#   NAME KERNEL SMP MEM [APPEND...]
#
# Each kernel is booted as such suites boot theirs (-kernel, -append, -smp,
# -m, the isa-debug-exit device at 0xf4, COM1 on stdio, no display) with a
# timeout; for each test it prints
#
#   TEST NAME
#   <the kernel's serial output>
#   STATUS N      the emulator's exit status
#   PASS NAME | FAIL NAME (status N, want WANT)
#
# A test passes when the status is the one isa-debug-exit gives for the
# value in $WANT_<NAME> (default 0x10: status 33). The runner's own status
# is the number of failed tests.
#
# Usage: QEMU=... KERNEL_DIR=... run_tests.sh TESTLIST
set -u
QEMU=${QEMU:-qemu-system-x86_64}
KERNEL_DIR=${KERNEL_DIR:-.}
TIMEOUT=${TIMEOUT:-90}
ACCEL=${ACCEL:-kvm}
list=${1:?usage: run_tests.sh TESTLIST}

# The exit status isa-debug-exit gives for a write of $1.
debug_exit_status() {
	echo $(( (($1 << 1) | 1) & 255 ))
}

run_one() {
	name=$1 kernel=$2 smp=$3 mem=$4
	shift 4
	echo "TEST $name"
	if [ $# -gt 0 ]; then
		timeout "$TIMEOUT" "$QEMU" -accel "$ACCEL" -nodefaults -display none -serial stdio \
			-device isa-debug-exit,iobase=0xf4,iosize=4 \
			-smp "$smp" -m "$mem" -kernel "$KERNEL_DIR/$kernel" -append "$*" \
			</dev/null 2>/dev/null
	else
		timeout "$TIMEOUT" "$QEMU" -accel "$ACCEL" -nodefaults -display none -serial stdio \
			-device isa-debug-exit,iobase=0xf4,iosize=4 \
			-smp "$smp" -m "$mem" -kernel "$KERNEL_DIR/$kernel" \
			</dev/null 2>/dev/null
	fi
	status=$?
	echo "STATUS $status"
	eval want_v=\${WANT_$name:-0x10}
	want=$(debug_exit_status "$want_v")
	if [ "$status" -eq "$want" ]; then
		echo "PASS $name"
		return 0
	fi
	echo "FAIL $name (status $status, want $want)"
	return 1
}

failed=0
while read -r line; do
	case $line in
	'' | '#'*) continue ;;
	esac
	# shellcheck disable=SC2086 # the fields are words
	set -- $line
	run_one "$@" || failed=$((failed + 1))
done <"$list"
exit $failed
