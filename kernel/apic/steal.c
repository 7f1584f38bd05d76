/*
 * KVM steal time: how long the host kept each vCPU from running although it
 * was runnable, and whether it does so right now.
 *
 * With KVM_FEATURE_STEAL_TIME each vCPU registers a 64-byte record by
 * writing its physical address to MSR_KVM_STEAL_TIME.  The host updates it
 * whenever it puts the vCPU back on a CPU: `steal` grows by the time the
 * vCPU waited on the host's run queue, `version` is odd during the update
 * (a sequence count, so a reader retries a torn read); and when it takes
 * a runnable vCPU off its CPU it sets `preempted`, cleared again when the
 * vCPU runs.  A halted vCPU is not "preempted": it gave its CPU away.
 *
 * Lock and scheduler figures measured under a hypervisor are only as good
 * as the CPU time the vCPUs really got, so every figure of such a run
 * carries the steal time of the test that produced it (figure_tags), and
 * the PV locks read `preempted` to stop spinning on a holder that cannot
 * run (arch_vcpu_is_preempted).
 */
#include "cmdline.h"
#include "kernel.h"
#include "kvm.h"
#include "mm.h"
#include "smp.h"
#include "time.h"
#include "x86.h"

#define MSR_KVM_STEAL_TIME 0x4b564d03
#define KVM_MSR_ENABLED 1ull
#define KVM_VCPU_PREEMPTED 0x1
/* A torn read is retried; the host's update is short, this bounds a broken one. */
#define READ_TRIES 1000

struct kvm_steal_time {
	uint64_t steal; /* ns */
	uint32_t version;
	uint32_t flags;
	uint8_t preempted;
	uint8_t pad8[3];
	uint32_t pad[11];
};

/* 64-byte aligned: the MSR's low 6 bits are flags. */
static struct kvm_steal_time steal_area[MAX_CPUS] __attribute__((aligned(64)));
static bool registered[MAX_CPUS];
static bool enabled; /* the boot CPU's is registered */
static uint64_t test_start_steal;

_Static_assert(sizeof(struct kvm_steal_time) == 64, "KVM's steal-time record is 64 bytes");

void kvm_cpu_init(void)
{
	int cpu = smp_processor_id();

	if (!kvm_has(KVM_FEATURE_STEAL_TIME))
		return;
	wrmsr(MSR_KVM_STEAL_TIME, virt_to_phys(&steal_area[cpu]) | KVM_MSR_ENABLED);
	__atomic_store_n(&registered[cpu], true, __ATOMIC_RELEASE);
	if (cpu == 0) {
		enabled = true;
		kprintf("# kvm: steal time registered (MSR_KVM_STEAL_TIME); figures carry "
		        "steal_ns=\n");
	}
}

bool steal_time_enabled(void)
{
	return enabled;
}

uint64_t steal_time_ns(int cpu)
{
	const struct kvm_steal_time *st = &steal_area[cpu];
	uint64_t steal = 0;

	if (cpu < 0 || cpu >= MAX_CPUS || !__atomic_load_n(&registered[cpu], __ATOMIC_ACQUIRE))
		return 0;
	for (int i = 0; i < READ_TRIES; i++) {
		uint32_t v = __atomic_load_n(&st->version, __ATOMIC_ACQUIRE);
		steal = __atomic_load_n(&st->steal, __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (!(v & 1) && __atomic_load_n(&st->version, __ATOMIC_RELAXED) == v)
			break;
		cpu_relax();
	}
	return steal;
}

uint64_t steal_time_total_ns(void)
{
	uint64_t sum = 0;
	int cpu;

	for_each_online_cpu(cpu)
		sum += steal_time_ns(cpu);
	return sum;
}

bool kvm_vcpu_is_preempted(int cpu)
{
	if (cpu < 0 || cpu >= MAX_CPUS || !__atomic_load_n(&registered[cpu], __ATOMIC_RELAXED))
		return false;
	return __atomic_load_n(&steal_area[cpu].preempted, __ATOMIC_RELAXED) & KVM_VCPU_PREEMPTED;
}

/*
 * The strong definition behind the lock code's hook, declared in
 * lock/arch_kernel.h (weak default in arch_kernel.c: false).
 */
bool arch_vcpu_is_preempted(int cpu)
{
	return kvm_vcpu_is_preempted(cpu);
}

void figure_test_begin(void)
{
	if (enabled)
		test_start_steal = steal_time_total_ns();
}

/* Units that are (or derive from) a duration: ns, us, ms, s, ops/ms, ppm, MHz ... */
static bool unit_is_time(const char *unit)
{
	static const char *const timed[] = {"ns", "us", "ms", "/s", "ppm", "Hz", "hz"};

	if (strcmp(unit, "s") == 0)
		return true;
	for (const char *p = unit; *p; p++)
		for (size_t i = 0; i < ARRAY_SIZE(timed); i++)
			if (strncmp(p, timed[i], strlen(timed[i])) == 0)
				return true;
	return false;
}

void figure_tags(char *buf, size_t size, const char *unit)
{
	size_t used = 0;

	buf[0] = '\0';
	if (tsc_guessed && unit && unit_is_time(unit))
		used += (size_t)snprintf(buf, size, " tsc=guessed");
	if (enabled && used < size)
		used += (size_t)snprintf(buf + used, size - used, " steal_ns=%lu",
		                         steal_time_total_ns() - test_start_steal);
	/* Every figure: real and virtual time (docs/clock.md) measure different things. */
	if (used < size)
		snprintf(buf + used, size - used, " clock=%s", clock_name(config.clock));
}
