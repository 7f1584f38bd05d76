# Host tests of kernel/lock/: the same lock sources built with -DLOCKLAB_HOST
# against pthreads, run under ThreadSanitizer.
#
# Include from the top-level Makefile (paths are relative to the repository
# root), or run standalone from the root:
#     make -f tests/host/locks/host.mk host-locks         # tests, ~15 s
#     make -f tests/host/locks/host.mk host-locks-bench   # benchmark
#     make -f tests/host/locks/host.mk host-locks-kcheck  # freestanding compile check
#     make -f tests/host/locks/host.mk host-locks-peers   # beside Concurrency Kit and glibc
#
# Knobs: LOCKS_CC (host compiler, default gcc), LOCKS_ARGS (e.g. --threads=8),
# LOCKS_BENCH_ARGS (e.g. --threads=8 --ms=300), LOCKS_PEERS_ARGS (e.g. --reps=21).

LOCKS_STANDALONE := $(if $(filter %tests/host/locks/host.mk,$(firstword $(MAKEFILE_LIST))),1,)
LOCKS_PREV_GOAL := $(.DEFAULT_GOAL)

LOCKS_DIR       := kernel/lock
LOCKS_TDIR      := tests/host/locks
LOCKS_OUT       := build/host/locks
LOCKS_CC        ?= gcc
LOCKS_ARGS      ?=
LOCKS_BENCH_ARGS ?=

LOCKS_SRCS      := $(wildcard $(LOCKS_DIR)/*.c)
LOCKS_HDRS      := $(wildcard $(LOCKS_DIR)/*.h)
# Every torture*.c: a file of tests registers them itself (HOST_TEST, torture.h).
LOCKS_TEST_SRCS := $(sort $(wildcard $(LOCKS_TDIR)/torture*.c))
LOCKS_TEST_HDRS := $(LOCKS_TDIR)/torture.h

LOCKS_CFLAGS    := -std=gnu11 -Wall -Wextra -Werror -g -pthread -DLOCKLAB_HOST \
                   -I$(LOCKS_DIR) -rdynamic
# gcc warns that TSan does not model atomic_thread_fence (seqlock uses one;
# the data it orders is accessed atomically, so no false report follows).
LOCKS_NO_WTSAN  := $(shell $(LOCKS_CC) -Werror -Wno-tsan -fsanitize=thread -E -x c /dev/null \
                   >/dev/null 2>&1 && echo -Wno-tsan)
LOCKS_TSAN_FLAGS  := $(LOCKS_CFLAGS) -O1 -fsanitize=thread -DLOCK_DEBUG -DLOCK_STAT $(LOCKS_NO_WTSAN)
LOCKS_PLAIN_FLAGS := $(LOCKS_CFLAGS) -O2

LOCKS_TSAN_BIN  := $(LOCKS_OUT)/tsan/locktorture
LOCKS_PLAIN_BIN := $(LOCKS_OUT)/plain/locktorture
# The peer benchmark (peers.c): the same lock sources beside Concurrency Kit (libck-dev) and glibc.
LOCKS_PEERS_BIN := $(LOCKS_OUT)/plain/peers
LOCKS_PEERS_SRCS := $(LOCKS_TDIR)/peers.c $(LOCKS_TDIR)/peers_ops.c $(LOCKS_TDIR)/peers.h
LOCKS_PEERS_ARGS ?=

# Kernel-side check: every lock file with the kernel's freestanding flags.
LOCKS_KFLAGS    := -ffreestanding -nostdlib -mno-red-zone -mgeneral-regs-only \
                   -mcmodel=kernel -fno-pic -std=gnu11 -Wall -Wextra -Werror -O2
LOCKS_KCCS      := gcc $(shell command -v clang >/dev/null 2>&1 && echo clang)
LOCKS_KVARIANTS := nodebug debug
LOCKS_KFLAGS_nodebug :=
LOCKS_KFLAGS_debug   := -DLOCK_DEBUG -DLOCK_STAT
LOCKS_KOBJS     := $(foreach cc,$(LOCKS_KCCS),$(foreach v,$(LOCKS_KVARIANTS),\
                   $(patsubst $(LOCKS_DIR)/%.c,$(LOCKS_OUT)/kcheck/$(cc)-$(v)/%.o,$(LOCKS_SRCS))))

.PHONY: host-locks host-locks-bench host-locks-kcheck host-locks-clean host-locks-peers

host-locks: host-locks-kcheck $(LOCKS_TSAN_BIN) $(LOCKS_PLAIN_BIN)
	TSAN_OPTIONS="halt_on_error=1 exitcode=66 $$TSAN_OPTIONS" \
		$(LOCKS_TSAN_BIN) --plain=$(LOCKS_PLAIN_BIN) $(LOCKS_ARGS)

host-locks-bench: $(LOCKS_PLAIN_BIN)
	$(LOCKS_PLAIN_BIN) --bench $(LOCKS_BENCH_ARGS) | tee $(LOCKS_OUT)/bench.txt

host-locks-peers: $(LOCKS_PEERS_BIN)
	$(LOCKS_PEERS_BIN) $(LOCKS_PEERS_ARGS) | tee $(LOCKS_OUT)/peers.txt

host-locks-kcheck: $(LOCKS_KOBJS)
	@echo "kernel/lock: freestanding build ok with: $(LOCKS_KCCS)"

$(LOCKS_TSAN_BIN): $(LOCKS_SRCS) $(LOCKS_HDRS) $(LOCKS_TEST_SRCS) $(LOCKS_TEST_HDRS)
	@mkdir -p $(@D)
	$(LOCKS_CC) $(LOCKS_TSAN_FLAGS) -o $@ $(LOCKS_SRCS) $(LOCKS_TEST_SRCS)

$(LOCKS_PLAIN_BIN): $(LOCKS_SRCS) $(LOCKS_HDRS) $(LOCKS_TEST_SRCS) $(LOCKS_TEST_HDRS)
	@mkdir -p $(@D)
	$(LOCKS_CC) $(LOCKS_PLAIN_FLAGS) -o $@ $(LOCKS_SRCS) $(LOCKS_TEST_SRCS)

$(LOCKS_PEERS_BIN): $(LOCKS_SRCS) $(LOCKS_HDRS) $(LOCKS_PEERS_SRCS)
	@mkdir -p $(@D)
	$(LOCKS_CC) $(LOCKS_PLAIN_FLAGS) -o $@ $(LOCKS_SRCS) $(filter %.c,$(LOCKS_PEERS_SRCS)) -lck

define LOCKS_KRULE
$(LOCKS_OUT)/kcheck/$(1)-$(2)/%.o: $(LOCKS_DIR)/%.c $(LOCKS_HDRS)
	@mkdir -p $$(@D)
	@echo "  KCHECK $(1) $(2) $$<"
	@$(1) $(LOCKS_KFLAGS) $(LOCKS_KFLAGS_$(2)) -c $$< -o $$@
endef
$(foreach cc,$(LOCKS_KCCS),$(foreach v,$(LOCKS_KVARIANTS),$(eval $(call LOCKS_KRULE,$(cc),$(v)))))

host-locks-clean:
	rm -rf $(LOCKS_OUT)

# Standalone, host-locks is the default goal; included, leave the includer's alone.
ifeq ($(LOCKS_STANDALONE),1)
.DEFAULT_GOAL := host-locks
else
.DEFAULT_GOAL := $(LOCKS_PREV_GOAL)
endif
