/* Kernel command-line options (the contract's table). */
#ifndef LOCKLAB_CMDLINE_H
#define LOCKLAB_CMDLINE_H

#include "types.h"

enum preempt_model { PREEMPT_NONE, PREEMPT_VOLUNTARY, PREEMPT_FULL, PREEMPT_RT };
enum apic_mode_opt { APIC_AUTO, APIC_XAPIC, APIC_X2APIC };
enum exit_mode { EXIT_HALT, EXIT_QEMU, EXIT_REBOOT };
enum shootdown_mode { SHOOTDOWN_SYNC, SHOOTDOWN_LAZY };
enum accel_kind { ACCEL_UNKNOWN, ACCEL_KVM, ACCEL_TCG, ACCEL_HW };
/* What guest time follows: the host's clock, or QEMU's instruction count (docs/clock.md). */
enum clock_kind { CLOCK_REAL, CLOCK_VIRTUAL };

#define CMDLINE_MAX 4096
#define TESTS_MAX 1024
#define CONSOLE_SPEC_MAX 128
#define DEFAULT_SEED 20261126u

struct config {
	char tests[TESTS_MAX]; /* comma-separated globs; empty means all */
	/* console= as given (kernel/console/select.c reads it) and screen_hold= seconds */
	char console[CONSOLE_SPEC_MAX];
	int screen_hold;
	uint64_t seed;
	enum preempt_model preempt;
	enum apic_mode_opt apic;
	bool bench;
	enum exit_mode exit;
	enum shootdown_mode shootdown;
	int host_cpus; /* 0: unknown */
	enum accel_kind accel;
	enum clock_kind clock;
};

extern struct config config;

typedef void (*cmdline_error_fn)(const char *msg, void *ctx);

void config_defaults(struct config *cfg);
/*
 * Parse space-separated key=value options into cfg, later keys overriding
 * earlier ones.  Each bad option is reported through err and skipped.
 * Returns the number of errors.  Pure: no kernel services, so host tests
 * build it too.
 */
int cmdline_parse(const char *s, struct config *cfg, cmdline_error_fn err, void *ctx);

const char *preempt_name(enum preempt_model m);
const char *accel_name(enum accel_kind a);
const char *clock_name(enum clock_kind c);

#endif
