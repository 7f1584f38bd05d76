/*
 * KVM's paravirtual unhalt, the halt/kick hook of the paravirtual ticketlock
 * on KVM hosts that offer it.
 *
 * A PV-ticketlock waiter halts; the unlocker kicks the next waiter.  On bare
 * metal and under TCG the kick is a plain IPI.  Under KVM an IPI to a halted
 * vCPU costs an exit on the sender and an injected interrupt on the target;
 * with KVM_FEATURE_PV_UNHALT the sender instead asks the host directly, with
 * the KVM_HC_KICK_CPU hypercall, to make the target's HLT return.  The
 * feature is found through the hypervisor CPUID leaves; without it (or not
 * on KVM) every kick stays an IPI.
 */
#include "apic.h"
#include "kernel.h"
#include "x86.h"

#define CPUID_HYPERVISOR_BIT (1u << 31) /* leaf 1, ECX */
#define KVM_CPUID_SIGNATURE 0x40000000
#define KVM_CPUID_FEATURES 0x40000001
#define KVM_FEATURE_PV_UNHALT 7
#define KVM_HC_KICK_CPU 5

static bool kick_by_hypercall; /* PV unhalt is offered */
static bool use_vmmcall;       /* AMD and Hygon: VMMCALL, Intel: VMCALL */

void kvm_pv_init(void)
{
	uint32_t r[4];
	char sig[13];

	cpuid(1, 0, r);
	if (!(r[2] & CPUID_HYPERVISOR_BIT))
		return;
	cpuid(KVM_CPUID_SIGNATURE, 0, r);
	memcpy(sig, &r[1], 12); /* EBX, ECX, EDX */
	sig[12] = '\0';
	if (memcmp(sig, "KVMKVMKVM\0\0\0", 12) != 0 || r[0] < KVM_CPUID_FEATURES)
		return;
	cpuid(KVM_CPUID_FEATURES, 0, r);
	if (!(r[0] & (1u << KVM_FEATURE_PV_UNHALT))) {
		kprintf("# kvm: no PV unhalt: the PV ticketlock kicks by IPI\n");
		return;
	}
	/* The hypercall instruction is the vendor's: VMCALL (Intel), VMMCALL (AMD, Hygon). */
	cpuid(0, 0, r);
	memcpy(sig, &r[1], 4);
	memcpy(sig + 4, &r[3], 4);
	memcpy(sig + 8, &r[2], 4);
	bool amd = memcmp(sig, "AuthenticAMD", 12) == 0 || memcmp(sig, "HygonGenuine", 12) == 0;
	use_vmmcall = amd;
	kick_by_hypercall = true;
	kprintf("# kvm: PV unhalt: the PV ticketlock kicks by KVM_HC_KICK_CPU (%s)\n",
	        amd ? "vmmcall" : "vmcall");
}

/* True when the host took the kick; false means "send the IPI instead". */
bool kvm_kick_cpu(uint32_t apic_id)
{
	long ret, nr = KVM_HC_KICK_CPU;
	unsigned long flags = 0, target = apic_id;

	if (!kick_by_hypercall)
		return false;
	if (use_vmmcall)
		__asm__ volatile("vmmcall"
		                 : "=a"(ret)
		                 : "a"(nr), "b"(flags), "c"(target)
		                 : "memory");
	else
		__asm__ volatile("vmcall"
		                 : "=a"(ret)
		                 : "a"(nr), "b"(flags), "c"(target)
		                 : "memory");
	return ret == 0;
}
