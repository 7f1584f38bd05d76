/*
 * KVM detection and the paravirtual kick of the PV locks.
 *
 * A PV-lock waiter halts; the unlocker kicks it (arch_kick_cpu).  On bare
 * metal and under TCG the kick is a plain IPI.  Under KVM with
 * KVM_FEATURE_PV_UNHALT the sender can instead ask the host, with the
 * KVM_HC_KICK_CPU hypercall, to make the target's HLT return.
 *
 * Which instruction makes a hypercall is the host's business, not the
 * guest's CPU model's: VMCALL on Intel, VMMCALL on AMD, and a software
 * hypervisor may want something else again.  A guest whose CPU model claims
 * another vendor than the host's executes the "wrong" one; KVM then
 * rewrites it in place, in guest memory, into its own
 * (KVM_X86_QUIRK_FIX_HYPERCALL_INSN) and re-runs it -- or, with the quirk
 * off, raises #UD.  Issued from read-only kernel text the rewrite is a #PF.
 *
 * So the hypercall is never issued from kernel text.  It lives in a page of
 * its own, mapped writable and executable: "insn; ret", where the host may
 * patch it.  kvm_pv_init() tries it once, under an exception catch, with a
 * harmless kick of the boot CPU itself: the vendor's instruction first,
 * then the other one, and if neither runs as a hypercall that returns 0,
 * kicks stay IPIs.  Whatever instruction the page holds afterwards (the
 * host may have patched it) is one the host has executed as a hypercall,
 * so later kicks cannot fault.
 *
 * A host that emulates the guest's instructions (a software hypervisor
 * behind the KVM interface, such as kvm_pvm) may "fix" the instruction and
 * then emulate the fixed one the same way, for ever: the vCPU never leaves
 * it.  Interrupts stay deliverable between the attempts, so the probe runs
 * with them on and the boot CPU's tick watches: a tick that finds the
 * vCPU at the start of the page PROBE_STUCK_TICKS times in a row moves it
 * to an exit stub ("return -1") on the same page.  A hypercall that
 * completes leaves the page at once, so this cannot cut a working one short.
 */
#include "kvm.h"
#include "apic.h"
#include "cpu.h"
#include "irq.h"
#include "kernel.h"
#include "mm.h"
#include "smp.h"
#include "time.h"
#include "trap.h"
#include "x86.h"

#define CPUID_HYPERVISOR_BIT (1u << 31) /* leaf 1, ECX */
#define KVM_CPUID_SIGNATURE 0x40000000
#define KVM_CPUID_FEATURES 0x40000001
#define KVM_HC_KICK_CPU 5

static const uint8_t insn_vmcall[3] = {0x0f, 0x01, 0xc1};
static const uint8_t insn_vmmcall[3] = {0x0f, 0x01, 0xd9};
#define OP_RET 0xc3
/* The exit stub, at ESCAPE_OFFSET: mov $-1, %rax; ret. */
static const uint8_t escape_stub[8] = {0x48, 0xc7, 0xc0, 0xff, 0xff, 0xff, 0xff, OP_RET};
#define ESCAPE_OFFSET 64
#define PROBE_STUCK_TICKS 5

static bool detected, detect_done;
static uint32_t features;
static uint8_t *hypercall_page; /* "insn; ret"; NULL: kicks are IPIs */
static char method[96] = "IPI";
static volatile int stuck_ticks, escaped;

/* Per sending CPU, a line each: kicks come from every CPU at once. */
static struct kick_count {
	uint64_t hypercall, ipi;
} __cacheline_aligned kick_counts[MAX_CPUS];

static void detect(void)
{
	uint32_t r[4];
	char sig[12];

	detect_done = true;
	cpuid(1, 0, r);
	if (!(r[2] & CPUID_HYPERVISOR_BIT))
		return;
	cpuid(KVM_CPUID_SIGNATURE, 0, r);
	memcpy(sig, &r[1], 12); /* EBX, ECX, EDX */
	if (memcmp(sig, "KVMKVMKVM\0\0\0", 12) != 0 || r[0] < KVM_CPUID_FEATURES)
		return;
	cpuid(KVM_CPUID_FEATURES, 0, r);
	features = r[0];
	detected = true;
}

bool kvm_detected(void)
{
	if (!detect_done)
		detect();
	return detected;
}

uint32_t kvm_features(void)
{
	return kvm_detected() ? features : 0;
}

static bool cpu_claims_amd(void)
{
	uint32_t r[4];
	char v[12];

	cpuid(0, 0, r);
	memcpy(v, &r[1], 4);
	memcpy(v + 4, &r[3], 4);
	memcpy(v + 8, &r[2], 4);
	return memcmp(v, "AuthenticAMD", 12) == 0 || memcmp(v, "HygonGenuine", 12) == 0;
}

/* KVM's hypercall ABI: number in RAX, arguments in RBX, RCX; result in RAX. */
static long hypercall2(const uint8_t *page, unsigned long nr, unsigned long a0, unsigned long a1)
{
	long ret;

	__asm__ volatile("call *%[stub]"
	                 : "=a"(ret)
	                 : [stub] "r"(page), "a"(nr), "b"(a0), "c"(a1)
	                 : "cc", "memory");
	return ret;
}

/* The tick during a probe: move a vCPU stuck on the instruction to the exit stub. */
static void probe_tick(struct trapframe *tf)
{
	if (tf->rip != (uint64_t)hypercall_page) {
		stuck_ticks = 0;
		return;
	}
	if (++stuck_ticks >= PROBE_STUCK_TICKS) {
		tf->rip = (uint64_t)hypercall_page + ESCAPE_OFFSET;
		escaped = 1;
	}
}

/*
 * Run the page once under a catch, interrupts on and the tick watching:
 * the exception's vector, or -1 and *ret.  Only before sched_init, which
 * installs the tick hook for good.
 */
static int try_hypercall(uint32_t apic_id, long *ret)
{
	struct fault_catch fc;
	unsigned long flags = local_irq_save();

	stuck_ticks = escaped = 0;
	timer_set_tick_hook(probe_tick);
	fault_catch_begin(&fc);
	if (kernel_setjmp(&fc.jb) == 0) {
		local_irq_enable();
		*ret = hypercall2(hypercall_page, KVM_HC_KICK_CPU, 0, apic_id);
		local_irq_disable();
	}
	local_irq_disable();
	fault_catch_end();
	timer_set_tick_hook(NULL);
	local_irq_restore(flags);
	return fc.vector;
}

static const char *insn_name(const uint8_t *p)
{
	static char bytes[16];

	if (memcmp(p, insn_vmcall, 3) == 0)
		return "vmcall";
	if (memcmp(p, insn_vmmcall, 3) == 0)
		return "vmmcall";
	snprintf(bytes, sizeof(bytes), "%02x %02x %02x", p[0], p[1], p[2]);
	return bytes;
}

/* The page holding "insn; ret", writable and executable; NULL if none. */
static uint8_t *map_hypercall_page(void)
{
	uint64_t pa = frame_alloc_zeroed();
	uint64_t va = pa ? vm_area_alloc(PAGE_SIZE, PAGE_SIZE) : 0;

	if (!va || vm_map(va, pa, PAGE_SIZE, VM_WRITE | VM_EXEC | VM_4K) != 0)
		return NULL;
	return (uint8_t *)va;
}

/* Try `insn` from the page; true if it ran as a hypercall returning 0. */
static bool probe(const uint8_t *insn, char *why, size_t size)
{
	uint32_t self = cpus[smp_processor_id()].apic_id;
	long ret = -1;

	memcpy(hypercall_page, insn, 3);
	hypercall_page[3] = OP_RET;
	memcpy(hypercall_page + ESCAPE_OFFSET, escape_stub, sizeof(escape_stub));
	__asm__ volatile("" ::: "memory");
	int vector = try_hypercall(self, &ret);
	bool patched = memcmp(hypercall_page, insn, 3) != 0;
	if (vector >= 0) {
		snprintf(why, size, "%s: %s%s", insn_name(insn), exception_name(vector),
		         patched ? " after the host rewrote it" : "");
		return false;
	}
	if (escaped) {
		char now[16];
		snprintf(now, sizeof(now), "%s", insn_name(hypercall_page));
		snprintf(why, size, "%s: the host re-ran it without end%s%s", insn_name(insn),
		         patched ? ", rewritten to " : "", patched ? now : "");
		return false;
	}
	if (ret != 0) {
		snprintf(why, size, "%s: returned %ld", insn_name(insn), ret);
		return false;
	}
	snprintf(method, sizeof(method), "hypercall (%s%s%s)", insn_name(hypercall_page),
	         patched ? ", rewritten by the host from " : "", patched ? insn_name(insn) : "");
	return true;
}

void kvm_pv_init(void)
{
	char why1[96], why2[96];

	if (!kvm_detected())
		return;
	if (!kvm_has(KVM_FEATURE_PV_UNHALT)) {
		kprintf("# kvm: no PV unhalt: PV locks kick by IPI\n");
	} else if (!lapic_timer_hz) {
		kprintf(
		    "# kvm: no LAPIC tick to watch the hypercall probe: PV locks kick by IPI\n");
	} else if (!(hypercall_page = map_hypercall_page())) {
		kprintf("# kvm: no page for the hypercall: PV locks kick by IPI\n");
	} else {
		/* The CPU model's vendor first: on a matching host it needs no rewrite. */
		bool amd = cpu_claims_amd();
		const uint8_t *first = amd ? insn_vmmcall : insn_vmcall;
		const uint8_t *second = amd ? insn_vmcall : insn_vmmcall;
		why1[0] = why2[0] = '\0';
		if (probe(first, why1, sizeof(why1)) || probe(second, why2, sizeof(why2))) {
			kprintf("# kvm: PV unhalt: PV locks kick by KVM_HC_KICK_CPU, %s%s%s\n",
			        method, why1[0] ? "; tried " : "", why1);
		} else {
			hypercall_page = NULL;
			kprintf(
			    "# kvm: PV unhalt offered but no hypercall works (%s; %s): PV locks "
			    "kick by IPI\n",
			    why1, why2);
		}
	}
	kvm_cpu_init();
}

bool kvm_kick_cpu(uint32_t apic_id)
{
	struct kick_count *k = &kick_counts[smp_processor_id()];

	if (hypercall_page && hypercall2(hypercall_page, KVM_HC_KICK_CPU, 0, apic_id) == 0) {
		__atomic_fetch_add(&k->hypercall, 1, __ATOMIC_RELAXED);
		return true;
	}
	/* Atomic: a preemptible caller may have moved to another CPU since. */
	__atomic_fetch_add(&k->ipi, 1, __ATOMIC_RELAXED);
	return false;
}

void kick_stats_get(struct kick_stats *out)
{
	out->hypercall = out->ipi = 0;
	for (int cpu = 0; cpu < MAX_CPUS; cpu++) {
		out->hypercall += __atomic_load_n(&kick_counts[cpu].hypercall, __ATOMIC_RELAXED);
		out->ipi += __atomic_load_n(&kick_counts[cpu].ipi, __ATOMIC_RELAXED);
	}
}

const char *kick_method(void)
{
	return hypercall_page ? method : "IPI";
}
