/*
 * The kernel command line: space-separated key=value options (the table in
 * docs/CONTRACT.md).  Every bad option is reported and skipped; the run
 * goes on with defaults, and the harness turns the errors into a `not ok`
 * for boot.cmdline.  This file uses no kernel services so the host unit
 * tests compile it as it is.
 */
#include "cmdline.h"

#ifdef LOCKLAB_HOST
#include <stdio.h>
#include <string.h>
#else
#include "kernel.h"
#endif

#define TOKEN_MAX 1100 /* longest key=value: tests= plus its globs */

struct config config;

void config_defaults(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->seed = DEFAULT_SEED;
	cfg->preempt = PREEMPT_FULL;
	cfg->apic = APIC_AUTO;
	cfg->exit = EXIT_HALT;
	cfg->shootdown = SHOOTDOWN_SYNC;
}

static const char *const preempt_names[] = {"none", "voluntary", "full", "rt"};
static const char *const apic_names[] = {"auto", "xapic", "x2apic"};
static const char *const exit_names[] = {"halt", "qemu", "reboot"};
static const char *const shootdown_names[] = {"sync", "lazy"};
static const char *const accel_names[] = {"unknown", "kvm", "tcg", "hw"};
static const char *const clock_names[] = {"real", "virtual"};
static const char *const bool_names[] = {"0", "1"};

const char *preempt_name(enum preempt_model m)
{
	return preempt_names[m];
}

const char *accel_name(enum accel_kind a)
{
	return accel_names[a];
}

const char *clock_name(enum clock_kind c)
{
	return clock_names[c];
}

static void report(cmdline_error_fn err, void *ctx, const char *fmt, const char *a, const char *b)
{
	char msg[256];
	snprintf(msg, sizeof(msg), fmt, a, b);
	if (err)
		err(msg, ctx);
}

/* Index of value in names[], or -1. */
static int lookup(const char *value, const char *const *names, int n)
{
	for (int i = 0; i < n; i++)
		if (strcmp(value, names[i]) == 0)
			return i;
	return -1;
}

/* Decimal only, no sign, no overflow past max. */
static bool parse_decimal(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		uint64_t d = (uint64_t)(*s - '0');
		if (v > (max - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

/* Globs: letters, digits and . _ - * ? separated by commas; no empty ones. */
static bool valid_tests(const char *s)
{
	bool empty_item = true;
	for (; *s; s++) {
		char c = *s;
		if (c == ',') {
			if (empty_item)
				return false;
			empty_item = true;
			continue;
		}
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		          (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' || c == '*' ||
		          c == '?';
		if (!ok)
			return false;
		empty_item = false;
	}
	return !empty_item;
}

#define ENUM_OPTION(key_, field_, names_, type_)                                          \
	if (strcmp(key, key_) == 0) {                                                     \
		int i = lookup(value, names_, (int)(sizeof(names_) / sizeof(names_[0]))); \
		if (i < 0)                                                                \
			goto bad_value;                                                   \
		cfg->field_ = (type_)i;                                                   \
		return 0;                                                                 \
	}

static int apply(struct config *cfg, const char *key, const char *value, cmdline_error_fn err,
                 void *ctx)
{
	uint64_t n;

	ENUM_OPTION("preempt", preempt, preempt_names, enum preempt_model)
	ENUM_OPTION("apic", apic, apic_names, enum apic_mode_opt)
	ENUM_OPTION("exit", exit, exit_names, enum exit_mode)
	ENUM_OPTION("shootdown", shootdown, shootdown_names, enum shootdown_mode)
	ENUM_OPTION("accel", accel, accel_names, enum accel_kind)
	ENUM_OPTION("clock", clock, clock_names, enum clock_kind)
	ENUM_OPTION("bench", bench, bool_names, bool)
	if (strcmp(key, "tests") == 0) {
		if (strlen(value) >= TESTS_MAX || !valid_tests(value))
			goto bad_value;
		strcpy(cfg->tests, value);
		return 0;
	}
	if (strcmp(key, "console") == 0) {
		/* The ports themselves are checked when the kernel sets them up. */
		if (!*value || strlen(value) >= CONSOLE_SPEC_MAX)
			goto bad_value;
		strcpy(cfg->console, value);
		return 0;
	}
	if (strcmp(key, "screen_hold") == 0) {
		if (!parse_decimal(value, 600, &n))
			goto bad_value;
		cfg->screen_hold = (int)n;
		return 0;
	}
	if (strcmp(key, "seed") == 0) {
		if (!parse_decimal(value, UINT64_MAX, &n))
			goto bad_value;
		cfg->seed = n;
		return 0;
	}
	if (strcmp(key, "host_cpus") == 0) {
		if (!parse_decimal(value, 65536, &n) || n == 0)
			goto bad_value;
		cfg->host_cpus = (int)n;
		return 0;
	}
	report(err, ctx, "unknown option '%s'%s", key, "");
	return 1;
bad_value:
	report(err, ctx, "bad value '%s' for option '%s'", value, key);
	return 1;
}

int cmdline_parse(const char *s, struct config *cfg, cmdline_error_fn err, void *ctx)
{
	char token[TOKEN_MAX + 1];
	int errors = 0;

	if (!s)
		return 0;
	while (*s) {
		while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
			s++;
		if (!*s)
			break;
		size_t len = 0;
		const char *start = s;
		while (*s && *s != ' ' && *s != '\t' && *s != '\n' && *s != '\r') {
			if (len < TOKEN_MAX)
				token[len] = *s;
			len++;
			s++;
		}
		if (len > TOKEN_MAX) {
			char head[24];
			snprintf(head, sizeof(head), "%.16s...", start);
			report(err, ctx, "option '%s' is too long (over %s characters)", head,
			       "1100");
			errors++;
			continue;
		}
		token[len] = '\0';
		char *eq = strchr(token, '=');
		if (!eq || eq == token) {
			report(err, ctx, "malformed option '%s' (expected key=value)%s", token, "");
			errors++;
			continue;
		}
		*eq = '\0';
		errors += apply(cfg, token, eq + 1, err, ctx);
	}
	return errors;
}
