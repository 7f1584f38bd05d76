/*
 * KVM's paravirtual interfaces (kernel/apic/kvm.c, kvmclock.c, steal.c):
 * detection, the PV kick, the TSC rate from kvmclock, steal time and the
 * "vCPU preempted" flag.  Everything answers "not offered" off KVM, so
 * callers need no KVM test of their own.
 */
#ifndef LOCKLAB_KVM_H
#define LOCKLAB_KVM_H

#include "types.h"

/* KVM feature bits, CPUID 0x40000001 EAX. */
#define KVM_FEATURE_CLOCKSOURCE 0
#define KVM_FEATURE_CLOCKSOURCE2 3
#define KVM_FEATURE_STEAL_TIME 5
#define KVM_FEATURE_PV_UNHALT 7

/* Running on KVM (its CPUID signature); the feature bits, 0 when not. */
bool kvm_detected(void);
uint32_t kvm_features(void);
static inline bool kvm_has(int feature)
{
	return kvm_features() & (1u << feature);
}

/*
 * Boot CPU, once the kernel page tables are up and before the APs start:
 * choose how kicks travel (hypercall or IPI) and register its steal-time
 * area.  Each AP registers its own with kvm_cpu_init().
 */
void kvm_pv_init(void);
void kvm_cpu_init(void);

/*
 * Every kick of arch_kick_cpu() passes here: true when the KVM_HC_KICK_CPU
 * hypercall took it, false when the caller must send the IPI.  Both are
 * counted, per sending CPU.
 */
bool kvm_kick_cpu(uint32_t apic_id);
struct kick_stats {
	uint64_t hypercall; /* kicks the host delivered (KVM_HC_KICK_CPU) */
	uint64_t ipi;       /* kicks sent as a VEC_KICK IPI */
};
void kick_stats_get(struct kick_stats *out);
/* How kicks travel: "hypercall (vmcall)", "IPI" ... */
const char *kick_method(void);

/* TSC frequency from the kvmclock (pvclock) scale; 0 when not offered. */
uint64_t kvmclock_tsc_hz(void);

/* Steal time: registered on every CPU (KVM_FEATURE_STEAL_TIME). */
bool steal_time_enabled(void);
/* Time the host kept `cpu`'s vCPU from running while it was runnable, in ns. */
uint64_t steal_time_ns(int cpu);
/* The sum over online CPUs. */
uint64_t steal_time_total_ns(void);
/* The steal area's flag: the host has `cpu`'s vCPU preempted right now. */
bool kvm_vcpu_is_preempted(int cpu);

/*
 * Provenance tags for a figure printed in `unit` (the metric lines of
 * docs/CONTRACT.md): " tsc=guessed" on a time figure when the TSC rate was
 * guessed, " steal_ns=N" (steal of all CPUs since the current test began)
 * under steal time; always " clock=real|virtual" last (the clock= option).
 * figure_test_begin() marks a test's start.
 */
void figure_tags(char *buf, size_t size, const char *unit);
void figure_test_begin(void);

#endif
