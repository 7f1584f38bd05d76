/*
 * Host unit test for the kernel command-line parser (kernel/cmdline.c,
 * compiled unchanged with -DLOCKLAB_HOST), under ASan and UBSan: hostile
 * strings must give errors, never overflows.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmdline.h"

static int failures;

#define CHECK(cond)                                                                              \
	do {                                                                                     \
		if (!(cond)) {                                                                   \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			failures++;                                                              \
		}                                                                                \
	} while (0)

static void count(const char *msg, void *ctx)
{
	(void)msg;
	(*(int *)ctx)++;
}

static int parse(const char *s, struct config *cfg)
{
	int reported = 0;
	config_defaults(cfg);
	int errors = cmdline_parse(s, cfg, count, &reported);
	CHECK(errors == reported);
	return errors;
}

int main(void)
{
	struct config cfg;

	CHECK(parse(NULL, &cfg) == 0);
	CHECK(parse("", &cfg) == 0 && cfg.seed == DEFAULT_SEED && cfg.preempt == PREEMPT_FULL);
	CHECK(parse("tests=boot.* seed=1 preempt=none", &cfg) == 0);
	CHECK(strcmp(cfg.tests, "boot.*") == 0 && cfg.seed == 1 && cfg.preempt == PREEMPT_NONE);
	CHECK(parse("seed=1 seed=2", &cfg) == 0 && cfg.seed == 2); /* later wins */
	CHECK(parse("bogus=1", &cfg) == 1);
	CHECK(parse("=1 novalue seed= seed=-1 seed=0x10", &cfg) == 5);
	CHECK(parse("apic=X2APIC exit=poweroff shootdown=eager accel=qemu", &cfg) == 4);
	CHECK(parse("", &cfg) == 0 && cfg.clock == CLOCK_REAL);
	CHECK(parse("clock=virtual", &cfg) == 0 && cfg.clock == CLOCK_VIRTUAL);
	CHECK(parse("clock=icount clock=Virtual", &cfg) == 2 && cfg.clock == CLOCK_REAL);
	CHECK(parse("host_cpus=65537 host_cpus=0 host_cpus=65536", &cfg) == 2);
	CHECK(cfg.host_cpus == 65536);
	CHECK(parse("seed=18446744073709551615", &cfg) == 0 && cfg.seed == UINT64_MAX);
	CHECK(parse("seed=18446744073709551616", &cfg) == 1);
	CHECK(parse("tests=a,b,,c", &cfg) == 1 && cfg.tests[0] == '\0');
	CHECK(parse("tests=a$b", &cfg) == 1);
	CHECK(parse("\t tests=lock.*\n bench=1\r", &cfg) == 0 && cfg.bench);

	/* Long inputs: one long token, many tokens, a tests= at the limit. */
	size_t n = 1 << 20;
	char *big = malloc(n + 1);
	memset(big, 'a', n);
	big[n] = '\0';
	CHECK(parse(big, &cfg) == 1);
	for (size_t i = 0; i + 8 <= n; i += 8)
		memcpy(big + i, "seed=12 ", 8);
	CHECK(parse(big, &cfg) == 0 && cfg.seed == 12);
	memset(big, 'x', n);
	memcpy(big, "tests=", 6);
	big[6 + TESTS_MAX] = '\0'; /* one character more than fits */
	CHECK(parse(big, &cfg) == 1);
	big[6 + TESTS_MAX - 1] = '\0';
	CHECK(parse(big, &cfg) == 0 && strlen(cfg.tests) == TESTS_MAX - 1);
	free(big);

	/* Random bytes never crash the parser. */
	srand(1);
	char junk[512];
	for (int round = 0; round < 20000; round++) {
		size_t len = (size_t)(rand() % (int)sizeof(junk));
		for (size_t i = 0; i < len; i++)
			junk[i] = (char)(1 + rand() % 255);
		junk[len] = '\0';
		parse(junk, &cfg);
	}

	printf("test_cmdline: %s (%d failures)\n", failures ? "FAIL" : "ok", failures);
	return failures ? 1 : 0;
}
