# vmmux: top-level wrapper around Meson/Ninja.
#
#   make demo    install what is missing, build, run the built-in demo
#   make check   install what is missing, build (normal, ASan+UBSan,
#                ThreadSanitizer and the fuzz harnesses), run every test and
#                the fuzz corpus (scripts/check.sh)
#   make chaos   install what is missing, build, run the chaos harness's long
#                seed set (tests/chaos/chaos.py; CHAOS_SEEDS, CHAOS_DURATION)
#   make build   build only (build/)
#   make format  clang-format the sources in place
#   make mutate  break the code on purpose, one mutation of tests/mutations.txt
#                at a time, in a scratch copy (build-mutate/), and check that
#                the tests named for each catch it (scripts/mutate.py; ONLY="ID
#                or AREA ..." for some of them)
#   make bench   install what is missing, build, run the benchmarks and write
#                bench/RESULTS.md (ROUNDS=N rounds, default 5; QUICK=1 for a
#                shorter run)
#   make fuzz    install what is missing, build the libFuzzer harnesses of
#                fuzz/ (build-fuzz/, clang), run each for FUZZ_SECONDS
#                (default 300) and merge the new inputs that add coverage
#                into fuzz/corpus/ (fuzz/run.sh; FUZZ_HARNESSES="fuzz_route
#                ..." for some of them)
#
# Debian packages are installed with apt-get when missing (run as root on a
# fresh Debian 12 machine). Set VMMUX_NO_APT=1 to skip that step.

BUILD      ?= build
BUILD_ASAN ?= build-asan
BUILD_TSAN ?= build-tsan
BUILD_FUZZ ?= build-fuzz
MESON      ?= meson
NINJA      ?= ninja

# What building and testing need from Debian.
DEB_BUILD := gcc libc6-dev binutils make meson ninja-build pkg-config \
	libjansson-dev liburcu-dev libseccomp-dev libcmocka-dev python3
# The fuzz tree (fuzz/): clang with its libFuzzer and sanitizer runtimes.
DEB_FUZZ := clang-14 libclang-rt-14-dev
DEB_CHECK := $(DEB_BUILD) qemu-system-x86 iproute2 gdb libtsan2 $(DEB_FUZZ)

.PHONY: all build build-asan build-tsan build-fuzz demo check chaos fixtures unit deps deps-check deps-fuzz \
	format clean bench mutate fuzz

all: build

deps:
	@./scripts/install-deps.sh $(DEB_BUILD)

deps-check:
	@./scripts/install-deps.sh $(DEB_CHECK)

deps-fuzz:
	@./scripts/install-deps.sh $(DEB_BUILD) $(DEB_FUZZ)

$(BUILD)/build.ninja:
	$(MESON) setup $(BUILD) --buildtype=debugoptimized

$(BUILD_ASAN)/build.ninja:
	$(MESON) setup $(BUILD_ASAN) --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false

build: deps $(BUILD)/build.ninja
	$(NINJA) -C $(BUILD)

build-asan: deps $(BUILD_ASAN)/build.ninja
	$(NINJA) -C $(BUILD_ASAN)

# ThreadSanitizer (gcc's libtsan): the unit tests and the supervision, live
# and group integration tests run on it (scripts/check.sh), with the
# suppressions of tests/tsan.supp.
$(BUILD_TSAN)/build.ninja:
	$(MESON) setup $(BUILD_TSAN) --buildtype=debugoptimized -Db_sanitize=thread -Db_lundef=false

build-tsan: deps $(BUILD_TSAN)/build.ninja
	$(NINJA) -C $(BUILD_TSAN)

# The libFuzzer harnesses (fuzz/meson.build): clang, ASan+UBSan+libFuzzer;
# only the harnesses are built (the alias target fuzz).
$(BUILD_FUZZ)/build.ninja:
	CC=clang-14 $(MESON) setup $(BUILD_FUZZ) --buildtype=debugoptimized -Dfuzz=true -Dtests=false

build-fuzz: deps-fuzz $(BUILD_FUZZ)/build.ninja
	$(NINJA) -C $(BUILD_FUZZ) fuzz

# Each harness for FUZZ_SECONDS, keeping what adds coverage (fuzz/run.sh).
FUZZ_SECONDS   ?= 300
FUZZ_HARNESSES ?=
fuzz: build-fuzz
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_HARNESSES="$(FUZZ_HARNESSES)" ./fuzz/run.sh $(BUILD_FUZZ) fuzz

demo: build
	./$(BUILD)/vmmux run --config configs/demo.json --kernel $(BUILD)/guest/demo.elf --stats

# The whole test suite: unit and integration tests on the normal build, then
# on the sanitizer builds (scripts/check.sh says which). KVM tests run one at
# a time.
check: deps-check
	$(MAKE) --no-print-directory build build-asan build-tsan build-fuzz
	./scripts/check.sh $(BUILD) $(BUILD_ASAN) $(BUILD_TSAN) $(BUILD_FUZZ)

# The chaos harness (tests/chaos/chaos.py) over a long seed set: kills,
# stops, route changes, swaps, restarts, stop/start and SMIs against a
# guest's numbered streams. A run disrupts each of its 10 parallel VMMs at
# most 12 times a minute (vmmux gives a VMM up after 20 restarts a minute):
# about 90-100 kills and 10-15 stops per run whether it lasts 30 s or 60 s,
# so the defaults (12 runs of 30 s, about 7 minutes here) make at least
# 1000 kills and 100 stops. Exit status 1 unless
# nothing was lost, duplicated (built-in roles) or reordered, the control
# socket answered within 100 ms p99 and SIGTERM was obeyed within 1 s in
# every run. CHAOS_JSON=FILE keeps every run's figures.
CHAOS_SEEDS    ?= 1-12
CHAOS_DURATION ?= 30
CHAOS_JSON     ?=
chaos: deps-check
	$(MAKE) --no-print-directory build
	python3 tests/chaos/chaos.py --build $(BUILD) --seeds $(CHAOS_SEEDS) \
		--duration $(CHAOS_DURATION) $(if $(CHAOS_JSON),--json $(CHAOS_JSON))

# Benchmarks (bench/README.md): the programs under bench/, assembled into
# bench/RESULTS.md by bench/run.py; QEMU is one of the comparisons.
ROUNDS ?= $(if $(QUICK),3,5)
QUICK  ?=
bench: deps-check
	$(MAKE) --no-print-directory build
	python3 bench/run.py --build $(BUILD) --rounds $(ROUNDS) $(if $(QUICK),--quick)

# Mutation testing (scripts/mutate.py): fails unless every mutation of
# tests/mutations.txt is caught by its tests.
ONLY ?=
mutate: deps-check
	python3 scripts/mutate.py $(if $(ONLY),--only $(ONLY))

# Compatibility fixtures of a new snapshot or HANDOVER version (never a
# rewrite of committed ones: tests/fixtures/README.md).
fixtures: build
	python3 tests/fixtures/generate.py --build $(BUILD)

unit: build
	$(MESON) test -C $(BUILD) --suite unit --print-errorlogs

format:
	git ls-files '*.c' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_TSAN) $(BUILD_FUZZ) build-mutate
