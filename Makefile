# locklab: build the kernel and its ISO, boot it, test it.
#
#   make deps   install what is missing (Debian/Ubuntu, as root)
#   make        build/locklab.elf and the hybrid BIOS+UEFI build/locklab.iso
#   make run    boot it in QEMU and stream the KTAP report (SMP, ACCEL, FW, CMDLINE, MACHINE, MEM)
#   make test   host unit tests, then the boot matrix; last line "N passed, N failed"
#   make bench  the benchmark matrix into build/bench/ (BENCH=full|quick, BENCH_REPEAT)

CROSS_COMPILE ?=
ifeq ($(origin CC),default)
CC := $(CROSS_COMPILE)gcc
endif
LD := $(CROSS_COMPILE)ld
NM := $(CROSS_COMPILE)nm
NASM ?= nasm
PYTHON ?= python3
BUILD := build

SMP ?= 4
ACCEL ?= auto
CLOCK ?= real ## guest time: real, or virtual (single-threaded TCG with -icount; docs/clock.md)
FW ?= bios
MACHINE ?= q35
MEM ?=
CMDLINE ?=

# Debug options for the lock code are on for tests; `make bench` turns them off.
LOCK_DEBUG ?= 1

CFLAGS := -std=gnu11 -ffreestanding -nostdlib -mno-red-zone -mgeneral-regs-only \
	-mcmodel=kernel -fno-pic -fno-pie -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer \
	-fno-optimize-sibling-calls -fno-stack-protector \
	-fno-asynchronous-unwind-tables -O2 -g -Wall -Wextra -Werror -Iinclude -Ikernel \
	-MMD -MP
ifeq ($(LOCK_DEBUG),1)
CFLAGS += -DLOCK_DEBUG -DLOCK_STAT
endif
# The lock code's per-CPU tables must cover every CPU the kernel can bring up.
CFLAGS += -DLOCK_MAX_CPUS=256
LDFLAGS := -nostdlib -z max-page-size=0x1000 -z noexecstack --no-warn-rwx-segments
NASMFLAGS := -f elf64 -g

SKIP_SRCS ?=
C_SRCS := $(sort $(filter-out $(addsuffix /%,$(SKIP_SRCS)) $(SKIP_SRCS), \
	$(shell find kernel tests/kernel -name '*.c')))
ASM_SRCS := $(sort $(filter-out $(addsuffix /%,$(SKIP_SRCS)) $(SKIP_SRCS), \
	$(shell find boot kernel -name '*.asm')))
OBJS := $(patsubst %.c,$(BUILD)/%.o,$(C_SRCS)) $(patsubst %.asm,$(BUILD)/%.o,$(ASM_SRCS))

ELF := $(BUILD)/locklab.elf
ISO := $(BUILD)/locklab.iso

.PHONY: all deps run test host-test matrix pxe test-pxe clean format format-check
all: $(ELF) $(ISO)

deps: ## install what is missing (Debian 12/13, Ubuntu 24.04; as root, else prints the commands)
	@scripts/deps.sh

# The clean-root test (as root): minimal Debian 12 and 13 roots from mmdebstrap, the committed
# tree cloned in, then deps, run, test and a run as an unprivileged user (scripts/test-fresh).
.PHONY: test-fresh
test-fresh: ## clean-root test of make deps, run and test in fresh Debian 12 and 13 roots (root)
	@scripts/test-fresh

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/%.o: %.asm
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
pxe: $(PXE)/boot/locklab.elf
$(PXE)/boot/locklab.elf: $(ELF) iso/grub-pxe.cfg
	@rm -rf $(PXE)
	@mkdir -p $(PXE)/boot/grub
	@echo "  PXE     $(PXE)"
	@grub-mknetdir --net-directory=$(PXE) --subdir=boot/grub -d /usr/lib/grub/i386-pc >/dev/null
	@grub-mknetdir --net-directory=$(PXE) --subdir=boot/grub -d /usr/lib/grub/x86_64-efi >/dev/null
	@cp iso/grub-pxe.cfg $(PXE)/boot/grub/grub.cfg
	@cp $(ELF) $@

RUN_ARGS = --smp $(SMP) --accel $(ACCEL) --clock $(CLOCK) --firmware $(FW) --machine $(MACHINE) \
	$(if $(MEM),--memory $(MEM)) $(if $(CMDLINE),--cmdline '$(CMDLINE)')

run: deps
	@$(MAKE) --no-print-directory all
	scripts/run-qemu --iso $(ISO) $(RUN_ARGS) --log $(BUILD)/last.log

test: deps
	@$(MAKE) --no-print-directory all pxe $(BUILD)/host/test_cmdline
	@scripts/test-matrix

test-pxe: deps
	@$(MAKE) --no-print-directory pxe
	@scripts/test-matrix --only 'pxe-*'

# The report of the last `make run` (build/last.log): JSON, cyclictest-format histograms,
# gnuplot PNGs and build/report/index.html (docs/reports.md).
.PHONY: report test-lava
report:
	@scripts/report $(BUILD)/last.log

# The LAVA QEMU job run by a local lava-run and checked against the KTAP (docs/lava.md).
test-lava: deps
	@$(MAKE) --no-print-directory all
	@scripts/lava/test-lava

# The benchmark matrix (docs/bench.md): the kernel without the lock debug options, built in a
# directory of its own, the debug kernel of `make test` (its uncontended figures become a ratio),
# the host pthread and peer benchmarks, then scripts/bench -> build/bench/
# (report.html, report.json, plots).  BENCH=quick is the short version; BENCH_REPEAT, BENCH_SMP,
# BENCH_SCENARIO_SMP, BENCH_BUDGET and BENCH_HOST_THREADS reach scripts/bench from the command
# line through the environment.
BENCH ?= full
BENCH_REPEAT ?=
BENCH_KERNEL = $(BUILD)/bench-kernel
.PHONY: bench
bench: deps
	@$(MAKE) --no-print-directory BUILD=$(BENCH_KERNEL) LOCK_DEBUG=0 all
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory $(LOCKS_PLAIN_BIN) $(LOCKS_PEERS_BIN)
	@scripts/bench --mode $(BENCH) $(if $(BENCH_REPEAT),--repeat $(BENCH_REPEAT)) \
		--accel $(ACCEL) --iso $(BENCH_KERNEL)/locklab.iso --out $(BUILD)/bench \
		--debug-iso $(BUILD)/locklab.iso

host-test: $(BUILD)/host/test_cmdline
	$(PYTHON) -m unittest discover -s tests/host -p 'test_*.py'
	$(BUILD)/host/test_cmdline

$(BUILD)/host/test_cmdline: tests/host/test_cmdline.c kernel/cmdline.c include/cmdline.h
	@mkdir -p $(dir $@)
	@cc -std=gnu11 -Wall -Wextra -Werror -fsanitize=address,undefined -DLOCKLAB_HOST -Iinclude \
		-o $@ tests/host/test_cmdline.c kernel/cmdline.c

FORMAT_SRCS = $(shell find boot kernel include tests -name '*.[ch]')
format:
	clang-format -i $(FORMAT_SRCS)
format-check:
	clang-format --dry-run -Werror $(FORMAT_SRCS)

clean:
	rm -rf $(BUILD)

# The lock primitives built for the host with pthreads, under ThreadSanitizer.
include tests/host/locks/host.mk

-include $(OBJS:.o=.d)
