/*
 * The in-kernel test harness.  Tests register themselves in the `ktests`
 * linker section; the harness selects them by the `tests=` globs and prints
 * KTAP.  Inside a test, report through the KT_* macros below.
 */
#ifndef LOCKLAB_KTEST_H
#define LOCKLAB_KTEST_H

#include "kernel.h"

enum {
	KT_XFAIL = 1 << 0,  /* must fail: proves the check can fail */
	KT_MANUAL = 1 << 1, /* runs only when named exactly (demos) */
	KT_BENCH = 1 << 2,  /* a measurement: runs only with bench=1 */
};

#define KTEST_DEFAULT_TIMEOUT_MS 10000

struct ktest {
	const char *suite;
	const char *name;
	void (*fn)(void);
	int min_cpus;        /* 0 means 1 */
	uint32_t timeout_ms; /* 0 means KTEST_DEFAULT_TIMEOUT_MS */
	unsigned flags;
	const char *reason; /* for KT_XFAIL: what the failure proves */
	const char *file;   /* tests run in source order: file, then line */
	int line;
};

#define KTEST(suite_, name_, ...)                                                                \
	static void kt_##suite_##_##name_(void);                                                 \
	static const struct ktest kt_desc_##suite_##_##name_                                     \
	    __attribute__((used, section("ktests"), aligned(8))) = {.suite = #suite_,            \
	                                                            .name = #name_,              \
	                                                            .fn = kt_##suite_##_##name_, \
	                                                            .file = __FILE__,            \
	                                                            .line = __LINE__,            \
	                                                            __VA_ARGS__};                \
	static void kt_##suite_##_##name_(void)

/* Run the selected tests and leave the kernel; never returns. */
__noreturn void ktest_run_all(void);
/* Count the `tests=` globs that select no test here, reporting each through err. */
typedef void (*ktest_glob_error_fn)(const char *glob, const char *why, void *ctx);
int ktest_check_globs(const char *tests, bool bench, ktest_glob_error_fn err, void *ctx);

void kt_fail(const char *file, int line, const char *fmt, ...) __printf(3, 4);
void kt_skip(const char *reason);
bool kt_failed(void);

#define KT_EXPECT(cond)                                                    \
	do {                                                               \
		if (!(cond))                                               \
			kt_fail(__FILE__, __LINE__, "expected %s", #cond); \
	} while (0)

#define KT_EXPECT_EQ(a, b)                                                                         \
	do {                                                                                       \
		long long _a = (long long)(a), _b = (long long)(b);                                \
		if (_a != _b)                                                                      \
			kt_fail(__FILE__, __LINE__, "expected %s == %s, got %lld != %lld", #a, #b, \
			        _a, _b);                                                           \
	} while (0)

#define KT_EXPECT_LE(a, b)                                                                        \
	do {                                                                                      \
		long long _a = (long long)(a), _b = (long long)(b);                               \
		if (_a > _b)                                                                      \
			kt_fail(__FILE__, __LINE__, "expected %s <= %s, got %lld > %lld", #a, #b, \
			        _a, _b);                                                          \
	} while (0)

#define KT_EXPECT_STREQ(a, b)                                                                      \
	do {                                                                                       \
		const char *_a = (a), *_b = (b);                                                   \
		if (strcmp(_a, _b) != 0)                                                           \
			kt_fail(__FILE__, __LINE__, "expected %s == %s, got \"%s\" != \"%s\"", #a, \
			        #b, _a, _b);                                                       \
	} while (0)

/* Figures: `# metric:` lines (contract). */
void kt_metric(const char *path, long long value, const char *unit, const char *extra);

#endif
