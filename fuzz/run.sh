#!/bin/sh
# fuzz/run.sh: run the libFuzzer harnesses of a fuzz build (fuzz/meson.build).
#
#   fuzz/run.sh BUILD check        replay fuzz/corpus/<harness>/ (the seeds,
#                                  what `make fuzz` kept, and every crash-*
#                                  regression input), then fuzz each harness
#                                  for FUZZ_CHECK_SECONDS (default 1) without
#                                  touching the committed corpus
#   fuzz/run.sh BUILD fuzz         fuzz each harness for FUZZ_SECONDS (default
#                                  300) and merge what it found that adds
#                                  coverage into fuzz/corpus/<harness>/
#   fuzz/run.sh BUILD minimize     shrink fuzz/corpus/<harness>/ to a smallest
#                                  set with the same coverage (libFuzzer's
#                                  merge into an empty directory); seed-* and
#                                  crash-* entries always stay
#
# FUZZ_HARNESSES="fuzz_route fuzz_api" limits the run to those. Each run's
# libFuzzer log is BUILD/fuzz-logs/<harness>.log; its last lines (executions,
# cov: edges and ft: features, corpus) are printed per harness. A crash,
# leak, UBSan report, timeout (FUZZ_TIMEOUT s for one input, default 25: this
# machine stalls for seconds under load, a hang does not end) or
# out-of-memory fails the harness: libFuzzer saves the input as
# BUILD/fuzz-artifacts/<harness>-crash-... (reproduce with
# `BUILD/fuzz/<harness> FILE`; VMMUX_FUZZ_LOG=debug shows vmmux's log).
# Such an input, once fixed, is committed as fuzz/corpus/<harness>/crash-WHAT
# so that every check replays it. Exit status 1 when any harness failed.
set -u
build=${1:?usage: fuzz/run.sh BUILD check|fuzz}
mode=${2:?usage: fuzz/run.sh BUILD check|fuzz}
src=$(cd "$(dirname "$0")" && pwd)
all="fuzz_loader fuzz_initrd fuzz_hvt_elf fuzz_route fuzz_config fuzz_cli fuzz_gdb_rsp fuzz_api fuzz_api_socket fuzz_transport fuzz_roles fuzz_snapshot"
harnesses=${FUZZ_HARNESSES:-$all}
case $mode in
check) seconds=${FUZZ_CHECK_SECONDS:-1} ;;
fuzz) seconds=${FUZZ_SECONDS:-300} ;;
minimize) seconds=0 ;;
*)
	echo "fuzz/run.sh: unknown mode '$mode' (check or fuzz)" >&2
	exit 2
	;;
esac
logs="$build/fuzz-logs"
arts="$build/fuzz-artifacts"
mkdir -p "$logs" "$arts"
# The sanitizers: no recovery (UBSan aborts), leaks checked.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
status=0
for h in $harnesses; do
	bin="$build/fuzz/$h"
	corpus="$src/corpus/$h"
	if [ ! -x "$bin" ]; then
		echo "fuzz: $bin is missing (ninja -C $build fuzz)" >&2
		status=1
		continue
	fi
	mkdir -p "$corpus"
	new=$(mktemp -d "${TMPDIR:-/tmp}/vmmux-fuzz-$h.XXXXXX")
	if [ "$mode" = minimize ]; then
		before=$(ls "$corpus" | wc -l)
		if "$bin" -merge=1 -timeout="${FUZZ_TIMEOUT:-25}" -rss_limit_mb=2560 "$new" \
			"$corpus" >"$logs/$h.minimize.log" 2>&1; then
			# the kept entries are named by their SHA-1; the named ones
			# stay whatever the merge chose, and are not kept twice
			named=$(for f in "$corpus"/seed-* "$corpus"/crash-*; do
				[ -e "$f" ] && sha1sum <"$f" | cut -c1-40
			done)
			find "$corpus" -type f ! -name 'seed-*' ! -name 'crash-*' -delete
			for f in "$new"/*; do
				[ -e "$f" ] || continue
				echo "$named" | grep -qx "$(basename "$f")" || cp "$f" "$corpus/"
			done
			echo "fuzz: $h: corpus $before -> $(ls "$corpus" | wc -l) entries"
		else
			echo "fuzz: $h: minimize failed: see $logs/$h.minimize.log"
			status=1
		fi
		rm -rf "$new"
		continue
	fi
	# New inputs go to the first directory (a scratch one); the committed
	# corpus is read, replayed first, and not written.
	"$bin" -max_total_time="$seconds" -timeout="${FUZZ_TIMEOUT:-25}" -rss_limit_mb=2560 \
		-print_final_stats=1 -artifact_prefix="$arts/$h-" "$new" "$corpus" \
		>"$logs/$h.log" 2>&1
	rc=$?
	stats=$(grep -E '^#[0-9]+[[:space:]]+(DONE|INITED)' "$logs/$h.log" | tail -1)
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$h.log")
	if [ $rc -ne 0 ]; then
		echo "fuzz: $h FAILED (exit $rc): see $logs/$h.log"
		grep -E 'ERROR:|runtime error|SUMMARY|Test unit written' "$logs/$h.log" | head -5 |
			sed 's/^/  /'
		status=1
	else
		echo "fuzz: $h ok: ${execs:-?} executions in ${seconds} s; $stats"
	fi
	if [ "$mode" = fuzz ] && [ $rc -eq 0 ]; then
		# keep what adds coverage to the committed corpus
		before=$(ls "$corpus" | wc -l)
		"$bin" -merge=1 -timeout="${FUZZ_TIMEOUT:-25}" -rss_limit_mb=2560 "$corpus" "$new" \
			>"$logs/$h.merge.log" 2>&1 || {
			echo "fuzz: $h: merge failed: see $logs/$h.merge.log"
			status=1
		}
		echo "fuzz: $h: corpus $before -> $(ls "$corpus" | wc -l) entries"
	fi
	rm -rf "$new"
done
exit $status
