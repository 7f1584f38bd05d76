/*
 * The `lock` suite, part 4: the debug options (LOCK_DEBUG, on in tests).
 * Two demos end the run on purpose with exit code 2 and run only when
 * named: lock.recursion_demo (taking a spinlock twice panics, naming the
 * lock) and lock.spin_timeout_demo (a waiter past lock_spin_timeout_ns
 * names the holder CPU, prints its own backtrace and the holder's, panics).
 */
#include "lock_common.h"

/* A bounded wait for another CPU's step. */
#define STEP_TIMEOUT_NS (2 * NSEC_PER_SEC)

/* ---- Debug options: demos that must end the run with exit code 2. */

static spinlock_t demo_lock __cacheline_aligned;

/*
 * Both demos need LOCK_DEBUG and a fresh demo_lock with its name, which is
 * what the panic messages print; false (the test skipped with
 * skip_reason) when built without LOCK_DEBUG.
 */
static bool demo_begin(const char *skip_reason)
{
#ifndef LOCK_DEBUG
	kt_skip(skip_reason);
	return false;
#else
	(void)skip_reason;
	spin_lock_init(&demo_lock);
	lock_set_name(&demo_lock.rlock.tl, "demo_lock");
	return true;
#endif
}

KTEST(lock, recursion_demo, .flags = KT_MANUAL, .timeout_ms = 5000)
{
	if (!demo_begin("built without LOCK_DEBUG: recursion is not detected"))
		return;
	spin_lock(&demo_lock);
	spin_lock(&demo_lock); /* LOCK_DEBUG panics here, naming the lock */
	spin_unlock(&demo_lock);
	kt_fail(__FILE__, __LINE__, "taking demo_lock twice went unnoticed");
}

static int demo_held;

/* CPU 1 takes the lock and keeps it (interrupts on, so it answers the NMI for its backtrace). */
static __attribute__((noinline)) void spin_timeout_demo_holder(void *arg)
{
	uint64_t end = rdtsc() + ns_to_tsc(3 * lock_spin_timeout_ns);

	(void)arg;
	spin_lock(&demo_lock);
	__atomic_store_n(&demo_held, 1, __ATOMIC_RELEASE);
	while ((int64_t)(rdtsc() - end) < 0)
		cpu_relax();
	spin_unlock(&demo_lock);
}

KTEST(lock, spin_timeout_demo, .flags = KT_MANUAL, .min_cpus = 2, .timeout_ms = 15000)
{
	if (!demo_begin("built without LOCK_DEBUG: no spin-timeout"))
		return;
	demo_held = 0;
	KT_EXPECT_EQ(smp_launch(1, spin_timeout_demo_holder, NULL), 0);
	if (!spin_until(__atomic_load_n(&demo_held, __ATOMIC_ACQUIRE), STEP_TIMEOUT_NS)) {
		kt_fail(__FILE__, __LINE__, "CPU 1 did not take demo_lock");
		return;
	}
	/* Spins past lock_spin_timeout_ns: LOCK_DEBUG names CPU 1, dumps both stacks, panics. */
	spin_lock(&demo_lock);
	spin_unlock(&demo_lock);
	kt_fail(__FILE__, __LINE__, "waited out CPU 1's hold of demo_lock without a spin-timeout");
}
