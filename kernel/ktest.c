/*
 * The test harness: selects the registered tests by the `tests=` globs and
 * runs them on the boot CPU, printing KTAP version 1 (one nested level per
 * suite, indented two spaces), then the totals, the end marker and the exit.
 *
 * Before each test it prints `# running: <path> timeout_ms=<n>` so the
 * host runner knows what is running and how long to wait before calling it
 * a hang.  Deliberate-failure tests (KT_XFAIL) pass by failing and are
 * reported with KTAP's XFAIL directive; demos (KT_MANUAL) run only when
 * named exactly; measurements (KT_BENCH) only with bench=1.
 *
 * A `tests=` glob that selects nothing is a config error, never a quiet
 * `1..0` and a pass: a typo would otherwise look like a green run.  Any
 * config error (these or the command line's) also runs boot.cmdline,
 * whatever `tests=` says, so the run reports `not ok` and exits 1.
 */
#include "ktest.h"
#include "cmdline.h"
#include "console.h"
#include "cpu.h"
#include "kvm.h"
#include "x86.h"

extern const struct ktest __start_ktests[], __stop_ktests[];
extern int config_errors; /* kernel/main.c: the command line's, plus ours */

static const char *const suite_order[] = {"boot", "smp", "lock", "tlb", "sched", "bench"};

struct totals {
	int pass, fail, skip;
};

static struct {
	const struct ktest *test;
	bool failed;
	const char *skip_reason;
} current;

static bool path_matches(const struct ktest *t, const char *pattern)
{
	char path[128];
	snprintf(path, sizeof(path), "%s.%s", t->suite, t->name);
	if (t->flags & KT_MANUAL)
		return strcmp(pattern, path) == 0;
	return glob_match(pattern, path);
}

/* Copy the next comma-separated glob of *p into pattern; false at the end. */
static bool next_glob(const char **p, char pattern[TESTS_MAX])
{
	size_t n = 0;

	if (!**p)
		return false;
	while ((*p)[n] && (*p)[n] != ',' && n < TESTS_MAX - 1)
		n++;
	memcpy(pattern, *p, n);
	pattern[n] = '\0';
	*p += n;
	if (**p == ',')
		(*p)++;
	return true;
}

static bool is_cmdline_test(const struct ktest *t)
{
	return strcmp(t->suite, "boot") == 0 && strcmp(t->name, "cmdline") == 0;
}

static bool selected(const struct ktest *t)
{
	const char *p = config.tests;
	char pattern[TESTS_MAX];

	if (config_errors && is_cmdline_test(t))
		return true; /* it reports the errors */
	if ((t->flags & KT_BENCH) && !config.bench)
		return false;
	if (!*p)
		return !(t->flags & KT_MANUAL);
	while (next_glob(&p, pattern))
		if (path_matches(t, pattern))
			return true;
	return false;
}

int ktest_check_globs(const char *tests, bool bench, ktest_glob_error_fn err, void *ctx)
{
	char pattern[TESTS_MAX];
	int bad = 0;

	while (next_glob(&tests, pattern)) {
		int named = 0, runnable = 0, demos = 0;
		for (const struct ktest *t = __start_ktests; t < __stop_ktests; t++) {
			char path[128];
			snprintf(path, sizeof(path), "%s.%s", t->suite, t->name);
			if (!path_matches(t, pattern)) {
				demos += glob_match(pattern, path); /* KT_MANUAL */
				continue;
			}
			named++;
			if (bench || !(t->flags & KT_BENCH))
				runnable++;
		}
		if (runnable)
			continue;
		bad++;
		if (err)
			err(pattern,
			    named   ? "names only measurements, which run with bench=1"
			    : demos ? "matches only demos, which run when named exactly"
			            : "matches no test",
			    ctx);
	}
	return bad;
}

static void glob_error(const char *glob, const char *why, void *ctx)
{
	(void)ctx;
	kprintf("# config error: tests: '%s' %s\n", glob, why);
}

/* Before the plan: every glob must select a test, the selection must not be empty. */
static void check_selection(void)
{
	config_errors += ktest_check_globs(config.tests, config.bench, glob_error, NULL);
	bool any = false;
	for (const struct ktest *t = __start_ktests; t < __stop_ktests && !any; t++)
		any = selected(t);
	if (!any) {
		kprintf("# config error: tests: the selection '%s' is empty\n", config.tests);
		config_errors++;
	}
}

static int count_selected(const char *suite)
{
	int n = 0;
	for (const struct ktest *t = __start_ktests; t < __stop_ktests; t++)
		if ((!suite || strcmp(t->suite, suite) == 0) && selected(t))
			n++;
	return n;
}

/* Suites in contract order, then any others in link order, each once. */
static int list_suites(const char **out, int max)
{
	int n = 0;
	for (size_t i = 0; i < ARRAY_SIZE(suite_order) && n < max; i++)
		if (count_selected(suite_order[i]))
			out[n++] = suite_order[i];
	for (const struct ktest *t = __start_ktests; t < __stop_ktests && n < max; t++) {
		bool seen = false;
		for (int i = 0; i < n; i++)
			seen |= strcmp(out[i], t->suite) == 0;
		if (!seen && count_selected(t->suite))
			out[n++] = t->suite;
	}
	return n;
}

void kt_fail(const char *file, int line, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	kprintf("  # %s:%d: %s\n", file, line, msg);
	current.failed = true;
}

void kt_skip(const char *reason)
{
	current.skip_reason = reason;
}

bool kt_failed(void)
{
	return current.failed;
}

void kt_metric(const char *path, long long value, const char *unit, const char *extra)
{
	char tags[64]; /* tsc=guessed, steal_ns= (kvm.h) */

	figure_tags(tags, sizeof(tags), unit);
	kprintf("# metric: %s %lld %s%s%s%s\n", path, value, unit, extra && *extra ? " " : "",
	        extra ? extra : "", tags);
}

static void run_one(const struct ktest *t, int index, struct totals *tot)
{
	char skip[64];

	current.test = t;
	current.failed = false;
	current.skip_reason = NULL;
	if (num_online_cpus() < (t->min_cpus ? t->min_cpus : 1)) {
		snprintf(skip, sizeof(skip), "needs %d CPUs, %d online", t->min_cpus,
		         num_online_cpus());
		current.skip_reason = skip;
	} else {
		kprintf("  # running: %s.%s timeout_ms=%u\n", t->suite, t->name,
		        t->timeout_ms ? t->timeout_ms : KTEST_DEFAULT_TIMEOUT_MS);
		figure_test_begin();
		t->fn();
	}

	if (current.skip_reason) {
		kprintf("  ok %d %s # SKIP %s\n", index, t->name, current.skip_reason);
		tot->skip++;
	} else if (t->flags & KT_XFAIL) {
		if (current.failed) {
			kprintf("  ok %d %s # XFAIL %s\n", index, t->name,
			        t->reason ? t->reason : "expected failure");
			tot->pass++;
		} else {
			kprintf(
			    "  # the deliberate failure did not happen: this check cannot fail\n");
			kprintf("  not ok %d %s\n", index, t->name);
			tot->fail++;
		}
	} else if (current.failed) {
		kprintf("  not ok %d %s\n", index, t->name);
		tot->fail++;
	} else {
		kprintf("  ok %d %s\n", index, t->name);
		tot->pass++;
	}
	current.test = NULL;
}

/* Compilers emit a file's statics in any order; run them as written. */
static bool runs_before(const struct ktest *a, const struct ktest *b)
{
	int c = strcmp(a->file, b->file);
	return c < 0 || (c == 0 && a->line < b->line);
}

#define MAX_SUITE_TESTS 256

static bool run_suite(const char *suite, int index, struct totals *all)
{
	static const struct ktest *order[MAX_SUITE_TESTS];
	struct totals tot = {0};
	int n = 0;

	for (const struct ktest *t = __start_ktests; t < __stop_ktests; t++) {
		if (strcmp(t->suite, suite) != 0 || !selected(t) || n == MAX_SUITE_TESTS)
			continue;
		int i = n++;
		for (; i > 0 && runs_before(t, order[i - 1]); i--)
			order[i] = order[i - 1];
		order[i] = t;
	}
	kprintf("  KTAP version 1\n  # Subtest: %s\n  1..%d\n", suite, n);
	for (int i = 0; i < n; i++)
		run_one(order[i], i + 1, &tot);
	kprintf("  # %s: pass:%d fail:%d skip:%d total:%d\n", suite, tot.pass, tot.fail, tot.skip,
	        tot.pass + tot.fail + tot.skip);
	bool ok = tot.fail == 0;
	if (ok && tot.pass == 0)
		kprintf("%s %d %s # SKIP every test skipped\n", "ok", index, suite);
	else
		kprintf("%s %d %s\n", ok ? "ok" : "not ok", index, suite);
	all->pass += tot.pass;
	all->fail += tot.fail;
	all->skip += tot.skip;
	return ok;
}

__noreturn void ktest_bail_out(const char *why)
{
	kprintf("Bail out! %s\n", why);
	kprintf("# locklab: end verdict=bail\n");
	kexit(2);
}

__noreturn void ktest_run_all(void)
{
	const char *suites[32];
	struct totals all = {0};

	check_selection();
	int n = list_suites(suites, ARRAY_SIZE(suites));

	kprintf("1..%d\n", n);
	for (int i = 0; i < n; i++)
		run_suite(suites[i], i + 1, &all);
	kprintf("# Totals: pass:%d fail:%d skip:%d total:%d\n", all.pass, all.fail, all.skip,
	        all.pass + all.fail + all.skip);
	kprintf("# locklab: end verdict=%s\n", all.fail ? "fail" : "pass");
	kexit(all.fail ? 1 : 0);
}

/* The debug-exit device: QEMU exits with (code << 1) | 1. */
#define ISA_DEBUG_EXIT_PORT 0xf4

__noreturn void kexit(int code)
{
	console_hold(); /* the verdict stays on the screen for screen_hold= seconds */
	smp_stop_others();
	__asm__ volatile("cli");
	switch (config.exit) {
	case EXIT_QEMU:
		outl(ISA_DEBUG_EXIT_PORT, (uint32_t)code);
		break;
	case EXIT_REBOOT:
		outb(0x64, 0xfe); /* keyboard controller reset line */
		__asm__ volatile("lidt %0; int3" : : "m"((uint64_t[2]){0, 0})); /* triple fault */
		break;
	case EXIT_HALT:
		break;
	}
	for (;;)
		halt();
}
