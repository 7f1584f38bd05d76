/*
 * The `boot` suite: the ground the other suites stand on.  The command
 * line, the memory map, exception recovery, the console's formatting, the
 * symbol table, and the harness itself (a test that must fail).  Two demos
 * run only when named: boot.crash_demo and boot.hang_demo.
 */
#include "cmdline.h"
#include "cpu.h"
#include "ktest.h"
#include "mm.h"
#include "multiboot.h"
#include "symbols.h"
#include "trap.h"
#include "x86.h"

extern int config_errors;

KTEST(boot, cmdline, .timeout_ms = 1000)
{
	/* The command line this kernel booted with; errors were printed at boot. */
	KT_EXPECT_EQ(config_errors, 0);
}

static void count_error(const char *msg, void *ctx)
{
	(void)msg;
	(*(int *)ctx)++;
}

static int parse(const char *s, struct config *cfg)
{
	int reported = 0;
	config_defaults(cfg);
	int errors = cmdline_parse(s, cfg, count_error, &reported);
	if (errors != reported)
		kt_fail(__FILE__, __LINE__, "%d errors returned but %d reported", errors, reported);
	return errors;
}

KTEST(boot, cmdline_parser, .timeout_ms = 1000)
{
	static char longline[CMDLINE_MAX];
	struct config cfg;

	KT_EXPECT_EQ(parse("", &cfg), 0);
	KT_EXPECT_EQ(cfg.seed, DEFAULT_SEED);
	KT_EXPECT_EQ(parse("   ", &cfg), 0);
	KT_EXPECT_EQ(parse("tests=lock.*,tlb.sync_* seed=42 preempt=rt apic=x2apic bench=1 "
	                   "exit=qemu shootdown=lazy host_cpus=2 accel=tcg",
	                   &cfg),
	             0);
	KT_EXPECT_STREQ(cfg.tests, "lock.*,tlb.sync_*");
	KT_EXPECT_EQ(cfg.seed, 42);
	KT_EXPECT_EQ(cfg.preempt, PREEMPT_RT);
	KT_EXPECT_EQ(cfg.apic, APIC_X2APIC);
	KT_EXPECT(cfg.bench);
	KT_EXPECT_EQ(cfg.exit, EXIT_QEMU);
	KT_EXPECT_EQ(cfg.shootdown, SHOOTDOWN_LAZY);
	KT_EXPECT_EQ(cfg.host_cpus, 2);
	KT_EXPECT_EQ(cfg.accel, ACCEL_TCG);

	/* Unknown key, malformed values, missing '=': each one error, rest kept. */
	KT_EXPECT_EQ(parse("bogus=1 seed=7", &cfg), 1);
	KT_EXPECT_EQ(cfg.seed, 7);
	KT_EXPECT_EQ(parse("seed=12x preempt=sometimes bench=2 host_cpus=0", &cfg), 4);
	KT_EXPECT_EQ(cfg.seed, DEFAULT_SEED);
	KT_EXPECT_EQ(parse("seed=99999999999999999999999", &cfg), 1);
	KT_EXPECT_EQ(parse("novalue =x tests=", &cfg), 3);
	KT_EXPECT_EQ(parse("tests=a,,b tests=lock;reboot", &cfg), 2);

	/* A very long option is one error, not an overflow. */
	memset(longline, 'x', sizeof(longline) - 1);
	memcpy(longline, "tests=", 6);
	KT_EXPECT_EQ(parse(longline, &cfg), 1);
	KT_EXPECT_EQ(cfg.tests[0], '\0');
}

struct glob_errors {
	int n;
	char first[32];
};

static void note_glob(const char *glob, const char *why, void *ctx)
{
	struct glob_errors *e = ctx;
	(void)why;
	if (e->n++ == 0)
		snprintf(e->first, sizeof(e->first), "%s", glob);
}

/* The harness's check that each tests= glob selects something (a typo is an error). */
KTEST(boot, cmdline_selection, .timeout_ms = 1000)
{
	struct glob_errors e = {0};

	KT_EXPECT_EQ(ktest_check_globs("boot.*,boot.crash_demo,lock.*", false, note_glob, &e), 0);
	KT_EXPECT_EQ(e.n, 0);
	/* No such suite; a demo by glob, not by name; a measurement without bench=1. */
	KT_EXPECT_EQ(ktest_check_globs("boot.*,nomatch.*,boot.crash*,lock.bench_uncontended", false,
	                               note_glob, &e),
	             3);
	KT_EXPECT_EQ(e.n, 3);
	KT_EXPECT_STREQ(e.first, "nomatch.*");
	KT_EXPECT_EQ(ktest_check_globs("lock.bench_uncontended", true, NULL, NULL), 0);
	KT_EXPECT_EQ(ktest_check_globs("boot.cmdlin", false, NULL, NULL), 1);
}

KTEST(boot, multiboot, .timeout_ms = 1000)
{
	KT_EXPECT_EQ(boot_info.errors, 0);
	KT_EXPECT(boot_info.mmap_count > 0);
	KT_EXPECT(boot_info.rsdp != NULL);
	if (boot_info.loader)
		kprintf("  # loader: %s\n", boot_info.loader);
}

KTEST(boot, memory_map, .timeout_ms = 1000)
{
	uint64_t usable = 0;
	uint64_t kstart = virt_to_phys(_kernel_start), kend = virt_to_phys(_kernel_end);
	bool kernel_inside = false;

	for (int i = 0; i < boot_info.mmap_count; i++) {
		const struct mmap_entry *e = &boot_info.mmap[i];
		KT_EXPECT(e->length > 0);
		KT_EXPECT(e->base + e->length > e->base); /* no wrap-around */
		if (e->type != MMAP_USABLE)
			continue;
		usable += e->length;
		if (e->base <= kstart && kend <= e->base + e->length)
			kernel_inside = true;
		/* Usable regions must not overlap each other. */
		for (int j = i + 1; j < boot_info.mmap_count; j++) {
			const struct mmap_entry *f = &boot_info.mmap[j];
			if (f->type == MMAP_USABLE)
				KT_EXPECT(e->base + e->length <= f->base ||
				          f->base + f->length <= e->base);
		}
	}
	kprintf("  # usable memory: %lu MiB in %d entries\n", usable >> 20, boot_info.mmap_count);
	KT_EXPECT(usable >= (32ull << 20));
	KT_EXPECT(kernel_inside);

	/* The early allocator hands out zeroed memory outside the kernel image. */
	uint8_t *p = early_alloc(PAGE_SIZE, PAGE_SIZE);
	uint64_t pa = virt_to_phys(p);
	KT_EXPECT(pa % PAGE_SIZE == 0);
	KT_EXPECT(pa >= kend || pa + PAGE_SIZE <= kstart);
	KT_EXPECT_EQ(p[0] | p[PAGE_SIZE - 1], 0);
}

KTEST(boot, exception_ud, .timeout_ms = 1000)
{
	struct fault_catch fc;

	fault_catch_begin(&fc);
	if (kernel_setjmp(&fc.jb) == 0)
		__asm__ volatile("ud2");
	fault_catch_end();
	KT_EXPECT_EQ(fc.vector, VEC_UD);
}

KTEST(boot, exception_pf, .timeout_ms = 1000)
{
	/* Above the direct map's early 4 GiB and below the kernel: unmapped. */
	volatile uint64_t *bad = (volatile uint64_t *)(PHYS_MAP_BASE + (1ull << 39) + 0x1238);
	struct fault_catch fc;

	fault_catch_begin(&fc);
	if (kernel_setjmp(&fc.jb) == 0)
		(void)*bad;
	fault_catch_end();
	KT_EXPECT_EQ(fc.vector, VEC_PF);
	KT_EXPECT_EQ(fc.cr2, (uint64_t)bad);
	KT_EXPECT_EQ(fc.error & 0x7, 0); /* not present, read, kernel */

	fault_catch_begin(&fc);
	if (kernel_setjmp(&fc.jb) == 0)
		*bad = 1;
	fault_catch_end();
	KT_EXPECT_EQ(fc.vector, VEC_PF);
	KT_EXPECT_EQ(fc.error & 0x7, 2); /* not present, write, kernel */
}

KTEST(boot, kprintf_formats, .timeout_ms = 1000)
{
	char buf[64];

	snprintf(buf, sizeof(buf), "%d|%5d|%-5d|%05d", -42, 42, 42, -42);
	KT_EXPECT_STREQ(buf, "-42|   42|42   |-0042");
	snprintf(buf, sizeof(buf), "%x|%X|%#lx|%08lx", 255u, 255u, 0x1000ul, 0xabcul);
	KT_EXPECT_STREQ(buf, "ff|FF|0x1000|00000abc");
	snprintf(buf, sizeof(buf), "%llu|%lld|%zu", 18446744073709551615ull,
	         -9223372036854775807ll - 1, (size_t)7);
	KT_EXPECT_STREQ(buf, "18446744073709551615|-9223372036854775808|7");
	snprintf(buf, sizeof(buf), "%s|%.2s|%6s|%-3s|%c|%%", "abc", "abc", "ab", "a", 'z');
	KT_EXPECT_STREQ(buf, "abc|ab|    ab|a  |z|%");
	/* Truncation keeps the terminator and returns the full length. */
	KT_EXPECT_EQ(snprintf(buf, 4, "%s", "abcdef"), 6);
	KT_EXPECT_STREQ(buf, "abc");
}

/* A function with a known name for the symbol-table test. */
__attribute__((noinline)) void kmain_symbol_probe(void)
{
	barrier();
}

KTEST(boot, symbols, .timeout_ms = 1000)
{
	uint64_t off = ~0ull;
	const char *name = ksym_lookup((uint64_t)kmain_symbol_probe + 1, &off);

	KT_EXPECT(ksyms_count > 10);
	KT_EXPECT(name != NULL);
	if (name) {
		KT_EXPECT_STREQ(name, "kmain_symbol_probe");
		KT_EXPECT_EQ(off, 1);
	}
	KT_EXPECT(ksym_lookup(0x1000, NULL) == NULL);
}

KTEST(boot, harness_xfail, .timeout_ms = 1000, .flags = KT_XFAIL,
      .reason = "a failing assertion is reported as not ok")
{
	KT_EXPECT_EQ(1 + 1, 3);
}

static __attribute__((noinline)) void crash_demo_fault(volatile uint64_t *p)
{
	*p = 0xdead;
	barrier();
}

KTEST(boot, crash_demo, .timeout_ms = 1000, .flags = KT_MANUAL)
{
	crash_demo_fault((volatile uint64_t *)(PHYS_MAP_BASE + (1ull << 39)));
	kt_fail(__FILE__, __LINE__, "the crash did not happen");
}

KTEST(boot, hang_demo, .timeout_ms = 500, .flags = KT_MANUAL)
{
	/* Interrupts on, so only the runner's timeout can end this. */
	for (;;)
		cpu_relax();
}
