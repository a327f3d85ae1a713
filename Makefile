# vmmux: top-level wrapper around Meson/Ninja.
#
#   make demo    install what is missing, build, run the built-in demo
#   make check   install what is missing, build (normal and ASan+UBSan),
#                run every test
#   make build   build only (build/)
#   make format  clang-format the sources in place
#   make bench   install what is missing, build, run the benchmarks and write
#                bench/RESULTS.md (ROUNDS=N rounds, default 5; QUICK=1 for a
#                shorter run)
#
# Debian packages are installed with apt-get when missing (run as root on a
# fresh Debian 12 machine). Set VMMUX_NO_APT=1 to skip that step.

BUILD      ?= build
BUILD_ASAN ?= build-asan
MESON      ?= meson
NINJA      ?= ninja

# What building and testing need from Debian.
DEB_BUILD := gcc libc6-dev binutils make meson ninja-build pkg-config \
	libjansson-dev liburcu-dev libseccomp-dev libcmocka-dev python3
DEB_CHECK := $(DEB_BUILD) qemu-system-x86 iproute2 gdb

.PHONY: all build build-asan demo check unit deps deps-check format clean bench

all: build

deps:
	@./scripts/install-deps.sh $(DEB_BUILD)

deps-check:
	@./scripts/install-deps.sh $(DEB_CHECK)

$(BUILD)/build.ninja:
	$(MESON) setup $(BUILD) --buildtype=debugoptimized

$(BUILD_ASAN)/build.ninja:
	$(MESON) setup $(BUILD_ASAN) --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false

build: deps $(BUILD)/build.ninja
	$(NINJA) -C $(BUILD)

build-asan: deps $(BUILD_ASAN)/build.ninja
	$(NINJA) -C $(BUILD_ASAN)

demo: build
	./$(BUILD)/vmmux run --config configs/demo.json --kernel $(BUILD)/guest/demo.elf --stats

# The whole test suite: unit and integration tests on the normal build, then
# the same on the sanitizer build. KVM tests run one at a time.
check: deps-check
	$(MAKE) --no-print-directory build build-asan
	./scripts/check.sh $(BUILD) $(BUILD_ASAN)

# Benchmarks (bench/README.md): the programs under bench/, assembled into
# bench/RESULTS.md by bench/run.py; QEMU is one of the comparisons.
ROUNDS ?= $(if $(QUICK),3,5)
QUICK  ?=
bench: deps-check
	$(MAKE) --no-print-directory build
	python3 bench/run.py --build $(BUILD) --rounds $(ROUNDS) $(if $(QUICK),--quick)

unit: build
	$(MESON) test -C $(BUILD) --suite unit --print-errorlogs

format:
	git ls-files '*.c' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(BUILD_ASAN)
