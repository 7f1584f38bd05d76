# locklab: build the kernel and its ISO, boot it, test it.
#
#   make help   every target and variable, with its default: the text after `##` below
#   make deps   install what is missing (Debian/Ubuntu, as root)
#   make        build/locklab.elf and the hybrid BIOS+UEFI build/locklab.iso
#   make run    boot it in QEMU: a per-test view on a terminal, the KTAP console otherwise
#   make test   host unit tests, then the boot matrix; last line "N passed, N failed"
#   make bench  the benchmark matrix into build/bench/ (BENCH=full|quick, BENCH_REPEAT)
#
# A target's one-line description follows `##` on its line; so does a user variable's, as
# `VAR ?= default ## description`.  Make keeps the blanks before a comment in the value: values
# that must have none are stripped below.

CROSS_COMPILE ?= ## prefix of the cross toolchain (e.g. x86_64-linux-gnu-)
override CROSS_COMPILE := $(strip $(CROSS_COMPILE))
ifeq ($(origin CC),default)
CC := $(CROSS_COMPILE)gcc
endif
LD := $(CROSS_COMPILE)ld
NM := $(CROSS_COMPILE)nm
NASM ?= nasm ## the assembler
PYTHON ?= python3 ## the host scripts' Python
BUILD := build ## build directory (e.g. BUILD=build/me beside others' builds)
override BUILD := $(strip $(BUILD))

SMP ?= 4 ## make run: vCPUs
ACCEL ?= auto ## make run, bench: auto (KVM only where hardware-backed), kvm or tcg
CLOCK ?= real ## make run, bench, compare: guest time, real or virtual (TCG with -icount; docs/clock.md)
FW ?= bios ## make run: firmware, bios or uefi
MACHINE ?= q35 ## make run: QEMU machine, q35 or pc
MEM ?= ## make run: guest RAM in MB (default 512, at least 32 per vCPU)
CMDLINE ?= ## make run: kernel options, e.g. CMDLINE='tests=lock.* seed=7' (docs/CONTRACT.md)
VERBOSE ?= ## make run: 1 streams the raw serial console on a terminal too

# Debug options for the lock code are on for tests; `make bench` turns them off.
LOCK_DEBUG ?= 1 ## 1: lock debug and statistics compiled in (tests); 0: without (bench)
override LOCK_DEBUG := $(strip $(LOCK_DEBUG))

CFLAGS := -std=gnu11 -ffreestanding -nostdlib -mno-red-zone -mgeneral-regs-only \
	-mcmodel=kernel -fno-pic -fno-pie -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer \
	-fno-optimize-sibling-calls -fno-stack-protector \
	-fno-asynchronous-unwind-tables -O2 -g -Wall -Wextra -Werror -Iinclude -Ikernel \
	-MMD -MP
ifeq ($(LOCK_DEBUG),1)
CFLAGS += -DLOCK_DEBUG -DLOCK_STAT
endif
# A known slowdown for proving comparisons (make test-compare, docs/bench.md): TYPE:NS makes
# the registered lock type TYPE wait NS ns more in every acquire (kernel/lock_slowdown.c).
# A malformed value or a name no lock file registers stops the build.
LOCK_SLOWDOWN ?= ## TYPE:NS, e.g. ticket:200: that lock type's acquire waits NS ns more (tests only)
override LOCK_SLOWDOWN := $(strip $(LOCK_SLOWDOWN))
ifneq ($(LOCK_SLOWDOWN),)
SLOWDOWN_TYPE := $(word 1,$(subst :, ,$(LOCK_SLOWDOWN)))
SLOWDOWN_NS := $(word 2,$(subst :, ,$(LOCK_SLOWDOWN)))
ifeq ($(shell echo '$(LOCK_SLOWDOWN)' | grep -Ex '[a-z0-9_]+:[0-9]{1,9}'),)
$(error LOCK_SLOWDOWN=$(LOCK_SLOWDOWN): expected TYPE:NS, e.g. ticket:200 (NS in ns, 0..999999999))
endif
ifeq ($(shell grep -lE '\.name *= *"$(SLOWDOWN_TYPE)"' kernel/lock/*.c),)
$(error LOCK_SLOWDOWN=$(LOCK_SLOWDOWN): no lock type "$(SLOWDOWN_TYPE)" in kernel/lock/ (docs/locks.md lists them))
endif
CFLAGS += -DLOCK_SLOWDOWN -DLOCK_SLOWDOWN_TYPE='"$(SLOWDOWN_TYPE)"' -DLOCK_SLOWDOWN_NS=$(SLOWDOWN_NS)ULL
endif
# The options above change every object: BUILD/options records them and is rewritten when they
# change, so switching one in the same BUILD rebuilds instead of linking stale objects.
BUILD_OPTIONS := LOCK_DEBUG=$(LOCK_DEBUG) LOCK_SLOWDOWN=$(LOCK_SLOWDOWN)
ifneq ($(shell cat $(BUILD)/options 2>/dev/null),$(BUILD_OPTIONS))
$(shell mkdir -p $(BUILD) && echo '$(BUILD_OPTIONS)' > $(BUILD)/options)
endif
# The lock code's per-CPU tables must cover every CPU the kernel can bring up.
CFLAGS += -DLOCK_MAX_CPUS=256
LDFLAGS := -nostdlib -z max-page-size=0x1000 -z noexecstack --no-warn-rwx-segments
NASMFLAGS := -f elf64 -g

SKIP_SRCS ?= ## sources or directories left out of the kernel build
C_SRCS := $(sort $(filter-out $(addsuffix /%,$(SKIP_SRCS)) $(SKIP_SRCS), \
	$(shell find kernel tests/kernel -name '*.c')))
ASM_SRCS := $(sort $(filter-out $(addsuffix /%,$(SKIP_SRCS)) $(SKIP_SRCS), \
	$(shell find boot kernel -name '*.asm')))
OBJS := $(patsubst %.c,$(BUILD)/%.o,$(C_SRCS)) $(patsubst %.asm,$(BUILD)/%.o,$(ASM_SRCS))

ELF := $(BUILD)/locklab.elf
ISO := $(BUILD)/locklab.iso

.PHONY: all deps run test host-test matrix pxe test-pxe clean format format-check help
all: $(ELF) $(ISO) ## build the kernel and the hybrid BIOS+UEFI ISO (the default target)

# `make help`: the `##` texts of every makefile read, targets first, then variables with their
# defaults, so the list cannot drift from the Makefile.
help: ## this list
	@echo 'Targets:'
	@awk '/^[A-Za-z0-9_.-]+:.*## / { d = substr($$0, index($$0, "## ") + 3); \
		split($$0, t, ":"); printf "  %-18s %s\n", t[1], d }' $(MAKEFILE_LIST)
	@echo 'Variables (make VAR=value), with their defaults:'
	@awk '/^[A-Z_]+ *[:?]?= *[^#]*## / { i = index($$0, "## "); d = substr($$0, i + 3); \
		v = substr($$0, 1, i - 1); n = v; sub(/ *[:?]?=.*/, "", n); \
		sub(/^[^=]*= */, "", v); sub(/ +$$/, "", v); \
		printf "  %-18s %s\n", n "=" v, d }' $(MAKEFILE_LIST)

deps: ## install what is missing (Debian 12/13, Ubuntu 24.04; as root, else prints the commands)
	@scripts/deps.sh

# The clean-root test (as root): minimal Debian 12 and 13 roots from mmdebstrap, the committed
# tree cloned in, then deps, run, test and a run as an unprivileged user (scripts/test-fresh).
.PHONY: test-fresh
test-fresh: ## clean-root test of make deps, run and test in fresh Debian 12 and 13 roots (root)
	@scripts/test-fresh

$(BUILD)/%.o: %.c $(BUILD)/options
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/%.o: %.asm $(BUILD)/options
	@mkdir -p $(dir $@)
	@echo "  NASM    $<"
	@$(NASM) $(NASMFLAGS) $< -o $@

# Two-pass link: the first pass gives the addresses for the symbol table,
# the second links it in.  .text comes first in linker.ld, so it cannot move;
# the check below proves it.
$(BUILD)/ksyms.o $(BUILD)/ksyms0.o: $(BUILD)/%.o: $(BUILD)/%.c
	@$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/ksyms0.c: scripts/gensyms.py
	@mkdir -p $(BUILD)
	@$(PYTHON) scripts/gensyms.py < /dev/null > $@

$(BUILD)/locklab.pass1.elf: $(OBJS) $(BUILD)/ksyms0.o linker.ld
	@echo "  LD      $@"
	@$(LD) $(LDFLAGS) -T linker.ld -o $@ $(OBJS) $(BUILD)/ksyms0.o

$(BUILD)/ksyms.c: $(BUILD)/locklab.pass1.elf scripts/gensyms.py
	@$(NM) -n $< | $(PYTHON) scripts/gensyms.py > $@

$(ELF): $(OBJS) $(BUILD)/ksyms.o linker.ld
	@echo "  LD      $@"
	@$(LD) $(LDFLAGS) -T linker.ld -o $@ $(OBJS) $(BUILD)/ksyms.o
	@$(NM) -n $@ | grep -i ' t ' > $(BUILD)/text2.syms
	@$(NM) -n $(BUILD)/locklab.pass1.elf | grep -i ' t ' > $(BUILD)/text1.syms
	@cmp -s $(BUILD)/text1.syms $(BUILD)/text2.syms || \
		{ echo "error: .text moved between link passes; backtraces would lie"; rm -f $@; exit 1; }

$(ISO): $(ELF) iso/grub.cfg
	@rm -rf $(BUILD)/isodir
	@mkdir -p $(BUILD)/isodir/boot/grub
	@cp $(ELF) $(BUILD)/isodir/boot/locklab.elf
	@cp iso/grub.cfg $(BUILD)/isodir/boot/grub/grub.cfg
	@echo "  ISO     $@"
	@grub-mkrescue -o $@ $(BUILD)/isodir 2> $(BUILD)/grub-mkrescue.log || \
		{ cat $(BUILD)/grub-mkrescue.log; exit 1; }

# Network boot tree: GRUB's netboot images for BIOS (core.0) and UEFI
# (core.efi), its config and the kernel, ready for a TFTP server.
PXE := $(BUILD)/pxe
pxe: $(PXE)/boot/locklab.elf ## TFTP tree in build/pxe/ (BIOS and UEFI GRUB netboot)
$(PXE)/boot/locklab.elf: $(ELF) iso/grub-pxe.cfg
	@rm -rf $(PXE)
	@mkdir -p $(PXE)/boot/grub
	@echo "  PXE     $(PXE)"
	@grub-mknetdir --net-directory=$(PXE) --subdir=boot/grub -d /usr/lib/grub/i386-pc >/dev/null
	@grub-mknetdir --net-directory=$(PXE) --subdir=boot/grub -d /usr/lib/grub/x86_64-efi >/dev/null
	@cp iso/grub-pxe.cfg $(PXE)/boot/grub/grub.cfg
	@cp $(ELF) $@

RUN_ARGS = --smp $(SMP) --accel $(ACCEL) --clock $(CLOCK) --firmware $(FW) --machine $(MACHINE) \
	$(if $(strip $(MEM)),--memory $(MEM)) $(if $(strip $(CMDLINE)),--cmdline '$(CMDLINE)') \
	$(if $(filter 1,$(VERBOSE)),--verbose)

# On a terminal the runner shows one line per test and a summary (VERBOSE=1: the console);
# piped or under CI it streams the KTAP console.  The log is build/last.log either way.
run: deps ## build, boot in QEMU and report (SMP, ACCEL, CLOCK, FW, MACHINE, MEM, CMDLINE, VERBOSE)
	@$(MAKE) --no-print-directory all
	scripts/run-qemu --iso $(ISO) $(RUN_ARGS) --log $(BUILD)/last.log

test: deps ## host unit tests, then the boot matrix (tests/matrix.txt); "N passed, N failed" last
	@$(MAKE) --no-print-directory all pxe $(BUILD)/host/test_cmdline
	@scripts/test-matrix

test-pxe: deps ## boot the PXE tree in QEMU over its built-in TFTP (BIOS and UEFI)
	@$(MAKE) --no-print-directory pxe
	@scripts/test-matrix --only 'pxe-*'

# Functional KVM leg (docs/kvm.md): 2 vCPUs, once per CPU vendor; a SKIP line without /dev/kvm.
.PHONY: test-kvm
test-kvm: deps ## functional KVM leg on /dev/kvm: time source, PV kick by hypercall, both vendors
	@$(MAKE) --no-print-directory all
	@scripts/test-kvm --iso $(ISO) --logdir $(BUILD)

# The report of the last `make run` (build/last.log): JSON, cyclictest-format histograms,
# gnuplot PNGs and build/report/index.html (docs/reports.md).
.PHONY: report test-lava
report: ## the last make run's log as JSON, histograms, PNG plots, HTML in build/report/
	@scripts/report $(BUILD)/last.log

# The LAVA QEMU job run by a local lava-run and checked against the KTAP (docs/lava.md).
test-lava: deps ## the LAVA QEMU job under a local lava-run, every KTAP result checked
	@$(MAKE) --no-print-directory all
	@scripts/lava/test-lava

# The benchmark matrix (docs/bench.md): the kernel without the lock debug options, built in a
# directory of its own, the debug kernel of `make test` (its uncontended figures become a ratio),
# the host pthread and peer benchmarks, then scripts/bench -> build/bench/
# (report.html, report.json, plots).  BENCH=quick is the short version; BENCH_REPEAT, BENCH_SMP,
# BENCH_SCENARIO_SMP, BENCH_BUDGET and BENCH_HOST_THREADS reach scripts/bench from the command
# line through the environment.
BENCH ?= full ## make bench: full or quick
BENCH_REPEAT ?= ## make bench: boots per leg (default: the mode's)
BENCH_KERNEL = $(BUILD)/bench-kernel
.PHONY: bench
bench: deps ## the benchmark matrix into build/bench/ (report.html, report.json, plots)
	@$(MAKE) --no-print-directory BUILD=$(BENCH_KERNEL) LOCK_DEBUG=0 all
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory $(LOCKS_PLAIN_BIN) $(LOCKS_PEERS_BIN)
	@scripts/bench --mode $(BENCH) $(if $(BENCH_REPEAT),--repeat $(BENCH_REPEAT)) \
		--accel $(ACCEL) --clock $(CLOCK) --iso $(BENCH_KERNEL)/locklab.iso --out $(BUILD)/bench \
		--debug-iso $(BUILD)/locklab.iso

# A/B comparison (docs/bench.md, "Comparing two builds"): BASE is exported with git archive
# into build/compare/base-src (the work tree and its index are not touched; the export is
# replaced each time, its objects are reused while BASE stays the same), the bench kernels of
# BASE (A) and of the work tree (B) are built (LOCK_DEBUG=0), and scripts/bench runs their legs
# interleaved in one session and compares B against A into build/compare/.  scripts/bench
# exits 0, 1 (a guarded figure worse) or 2 (bad input); make reports 1 as "Error 1" and exits 2.
BASE ?= ## make compare: the git ref (commit, branch, tag) to compare the work tree against
GUARD ?= ## make compare: figure-id globs whose "worse" fails it (default: the headline figures)
COMPARE_SLOWDOWN ?= ticket:200 ## make test-compare: the known slowdown, TYPE:NS
COMPARE_DIR = $(BUILD)/compare
BASE_COMMIT = $(shell git rev-parse --verify --quiet '$(strip $(BASE))^{commit}')
.PHONY: compare test-compare
compare: deps ## A/B: BASE=<git ref> against the work tree, interleaved, into build/compare/
	@if [ -z '$(strip $(BASE))' ]; then \
		echo 'make compare: BASE=<git ref> is required, e.g. BASE=HEAD~1' >&2; exit 2; fi
	@if [ -z '$(BASE_COMMIT)' ]; then \
		echo 'make compare: BASE=$(strip $(BASE)): no such commit in this repository' >&2; \
		exit 2; fi
	@rm -rf $(COMPARE_DIR)/base-src && mkdir -p $(COMPARE_DIR)/base-src
	@git archive --format=tar $(BASE_COMMIT) | tar -x -C $(COMPARE_DIR)/base-src
	@echo "  BASE    $(strip $(BASE)) = $(BASE_COMMIT) in $(COMPARE_DIR)/base-src"
	@$(MAKE) --no-print-directory -C $(COMPARE_DIR)/base-src \
		BUILD=$(abspath $(COMPARE_DIR))/base-kernel LOCK_DEBUG=0 all
	@$(MAKE) --no-print-directory BUILD=$(COMPARE_DIR)/head-kernel LOCK_DEBUG=0 all
	@scripts/bench --compare-run $(COMPARE_DIR)/base-kernel/locklab.iso \
		$(COMPARE_DIR)/head-kernel/locklab.iso --names base,head \
		--commits "$$(git rev-parse --short $(BASE_COMMIT)),$$(git describe --always --dirty)" \
		--mode $(BENCH) $(if $(BENCH_REPEAT),--repeat $(BENCH_REPEAT)) --clock $(CLOCK) \
		--accel $(ACCEL) $(foreach g,$(GUARD),--guard '$(g)') --out $(COMPARE_DIR)

# The comparison proven both ways (scripts/test-compare): the bench kernel against itself
# (A/A) and against the same tree built with LOCK_SLOWDOWN=$(COMPARE_SLOWDOWN), interleaved.
# Virtual time unless CLOCK is given: then two boots of one kernel read the same figures.
TEST_COMPARE_CLOCK = $(if $(filter command line environment,$(origin CLOCK)),$(CLOCK),virtual)
test-compare: deps ## prove make compare: A/A shows no change, a LOCK_SLOWDOWN build is worse
	@$(MAKE) --no-print-directory BUILD=$(COMPARE_DIR)/head-kernel LOCK_DEBUG=0 all
	@$(MAKE) --no-print-directory BUILD=$(COMPARE_DIR)/slow-kernel LOCK_DEBUG=0 \
		LOCK_SLOWDOWN=$(strip $(COMPARE_SLOWDOWN)) all
	@scripts/test-compare --iso $(COMPARE_DIR)/head-kernel/locklab.iso \
		--slow-iso $(COMPARE_DIR)/slow-kernel/locklab.iso --slowdown $(strip $(COMPARE_SLOWDOWN)) \
		--clock $(TEST_COMPARE_CLOCK) --accel $(ACCEL) \
		$(if $(BENCH_REPEAT),--repeat $(BENCH_REPEAT)) --out $(COMPARE_DIR)/test

host-test: $(BUILD)/host/test_cmdline ## the host unit tests only (Python and the cmdline parser)
	$(PYTHON) -m unittest discover -s tests/host -p 'test_*.py'
	$(BUILD)/host/test_cmdline

$(BUILD)/host/test_cmdline: tests/host/test_cmdline.c kernel/cmdline.c include/cmdline.h
	@mkdir -p $(dir $@)
	@cc -std=gnu11 -Wall -Wextra -Werror -fsanitize=address,undefined -DLOCKLAB_HOST -Iinclude \
		-o $@ tests/host/test_cmdline.c kernel/cmdline.c

FORMAT_SRCS = $(shell find boot kernel include tests -name '*.[ch]')
format: ## clang-format the C sources in place
	clang-format -i $(FORMAT_SRCS)
format-check: ## check the C sources' format (make test does)
	clang-format --dry-run -Werror $(FORMAT_SRCS)

clean: ## remove the build directory (BUILD)
	rm -rf $(BUILD)

# The lock primitives built for the host with pthreads, under ThreadSanitizer.
include tests/host/locks/host.mk

-include $(OBJS:.o=.d)
