/*
 * The TSC rate from kvmclock.
 *
 * KVM publishes, per vCPU, a pvclock record in guest memory: system time =
 * base + ((tsc - tsc_timestamp) << tsc_shift) * tsc_to_system_mul >> 32 (a
 * negative shift shifts right).  The scale is the host's own statement of
 * the guest TSC's rate, so the rate follows from it exactly, with no
 * reference clock to time against: hz = 10^9 * 2^32 / mul, shifted back by
 * tsc_shift.  Under a slow or busy hypervisor a calibration against the PIT
 * or the PM timer may not even complete (each port read is an exit); this
 * does not depend on how fast anything runs.
 *
 * The record is registered only to read the scale, then switched off again:
 * the kernel's clock stays the raw TSC.
 */
#include "kernel.h"
#include "kvm.h"
#include "mm.h"
#include "time.h"
#include "x86.h"

#define MSR_KVM_SYSTEM_TIME 0x12
#define MSR_KVM_SYSTEM_TIME_NEW 0x4b564d01
#define KVM_MSR_ENABLED 1ull
/* The host fills the record on the next entry; a few tries cover a slow one. */
#define FILL_TRIES 1000000

struct pvclock_vcpu_time_info {
	uint32_t version; /* odd while the host updates it */
	uint32_t pad0;
	uint64_t tsc_timestamp;
	uint64_t system_time;
	uint32_t tsc_to_system_mul;
	int8_t tsc_shift;
	uint8_t flags;
	uint8_t pad[2];
};

/* Must not cross a page: 32 bytes at a 64-byte boundary do not. */
static struct pvclock_vcpu_time_info pvclock __attribute__((aligned(64)));

uint64_t kvmclock_tsc_hz(void)
{
	uint32_t msr, version, mul = 0;
	int8_t shift = 0;

	if (kvm_has(KVM_FEATURE_CLOCKSOURCE2))
		msr = MSR_KVM_SYSTEM_TIME_NEW;
	else if (kvm_has(KVM_FEATURE_CLOCKSOURCE))
		msr = MSR_KVM_SYSTEM_TIME;
	else
		return 0;
	__atomic_store_n(&pvclock.version, 0, __ATOMIC_RELAXED);
	/* A kernel-image address: valid before and after mm_init. */
	wrmsr(msr, virt_to_phys(&pvclock) | KVM_MSR_ENABLED);
	for (int i = 0; i < FILL_TRIES; i++) {
		version = __atomic_load_n(&pvclock.version, __ATOMIC_ACQUIRE);
		if (version == 0 || (version & 1)) {
			cpu_relax();
			continue;
		}
		mul = __atomic_load_n(&pvclock.tsc_to_system_mul, __ATOMIC_RELAXED);
		shift = __atomic_load_n(&pvclock.tsc_shift, __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&pvclock.version, __ATOMIC_ACQUIRE) == version)
			break;
		mul = 0;
	}
	wrmsr(msr, 0);
	if (!mul)
		return 0;
	uint64_t hz = (NSEC_PER_SEC << 32) / mul;
	return shift < 0 ? hz << -shift : hz >> shift;
}
