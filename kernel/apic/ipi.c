/*
 * Inter-processor interrupts and what is built on them: the kick, the
 * cross-CPU call queue behind on_cpu()/on_each_cpu(), work launched on idle
 * CPUs, and the NMIs that dump or stop other CPUs.
 *
 * Call queue: each CPU owns one request slot per target CPU.  A request is
 * pushed onto the target's lock-free list (a CAS push; the target takes
 * the whole list with one exchange, so there is no ABA), and an IPI is
 * sent only when the list was empty: a non-empty list means one is already
 * on its way.  A slot stays busy until the target has run the function,
 * which is both the completion signal for `wait` and what stops the slot
 * from being reused while still queued.
 */
#include "apic.h"
#include "apic/internal.h"
#include "cmdline.h"
#include "cpu.h"
#include "irq.h"
#include "kernel.h"
#include "mm.h"
#include "smp.h"
#include "symbols.h"
#include "time.h"
#include "trap.h"
#include "x86.h"

/* A CPU that has not answered a dump NMI by then is wedged beyond NMIs. */
#define DUMP_TIMEOUT_MS 500
/* Stopping is best effort: an unanswered CPU is left as it is. */
#define STOP_TIMEOUT_MS 100

/* A line each: the target's release of one slot must not disturb the next. */
struct call_req {
	struct call_req *next;
	void (*fn)(void *);
	void *arg;
	volatile int busy;
} __cacheline_aligned;

struct apic_cpu apic_cpus[MAX_CPUS];
/* call_slots[sender][target], allocated once the number of CPUs is known. */
static struct call_req *call_slots[MAX_CPUS];
volatile int smp_stopping;
static volatile int stopping_cpu = -1;
static volatile int stopped_count;
/*
 * NMIs sent to and claimed by each CPU: an NMI that finds its request
 * already handled by an earlier one is still ours, not "unexpected".
 */
static volatile uint64_t nmi_sent[MAX_CPUS], nmi_claimed[MAX_CPUS];

void send_ipi(int cpu, int vector)
{
	lapic_send_icr(cpus[cpu].apic_id, ICR_FIXED | (uint32_t)vector);
}

void send_ipi_mask(const cpumask_t *mask, int vector)
{
	int cpu;
	for_each_cpu(cpu, mask)
		send_ipi(cpu, vector);
}

void send_ipi_allbutself(int vector)
{
	int cpu, me = smp_processor_id();

	/* The shorthand would also reach CPUs we left parked: name each online one. */
	for_each_online_cpu(cpu)
		if (cpu != me)
			send_ipi(cpu, vector);
}

void send_nmi(int cpu)
{
	__atomic_fetch_add(&nmi_sent[cpu], 1, __ATOMIC_RELEASE);
	lapic_send_icr(cpus[cpu].apic_id, ICR_NMI);
}

void arch_kick_cpu(int cpu)
{
	if (cpu == smp_processor_id() || !cpu_online(cpu))
		return;
	if (kvm_kick_cpu(cpus[cpu].apic_id))
		return;
	send_ipi(cpu, VEC_KICK);
}

uint64_t smp_test_ipis(int cpu)
{
	return apic_cpus[cpu].test_ipis;
}

/* ---- The call queue. */

static void call_queue_run(struct apic_cpu *ac)
{
	struct call_req *list = __atomic_exchange_n(&ac->call_head, NULL, __ATOMIC_ACQUIRE);
	struct call_req *fifo = NULL;

	while (list) { /* pushed last-in first: reverse to run in order */
		struct call_req *next = list->next;
		list->next = fifo;
		fifo = list;
		list = next;
	}
	while (fifo) {
		struct call_req *next = fifo->next; /* read before the slot is released */
		fifo->fn(fifo->arg);
		__atomic_store_n(&fifo->busy, 0, __ATOMIC_RELEASE);
		fifo = next;
	}
}

static void call_func_handler(struct trapframe *tf)
{
	(void)tf;
	lapic_eoi();
	call_queue_run(this_apic_cpu());
}

/*
 * CALL_TIMEOUT_MS scaled like the watchdog's threshold: with more vCPUs
 * than host CPUs a healthy target's vCPU can go unrun for seconds (64
 * vCPUs on a loaded 2-CPU host missed 5 s).
 */
static uint64_t call_timeout_ms(void)
{
	uint64_t over = 1;
	if (config.host_cpus > 0 && num_online_cpus() > config.host_cpus)
		over = (uint64_t)(num_online_cpus() + config.host_cpus - 1) / config.host_cpus;
	return CALL_TIMEOUT_MS * over;
}

static __noreturn void call_timeout(int cpu)
{
	kprintf("# smp: CPU %d did not run a cross-CPU call within %lu ms\n", cpu,
	        (unsigned long)call_timeout_ms());
	arch_dump_cpu_stack(cpu);
	panic("cross-CPU call to CPU %d timed out", cpu);
}

/*
 * Wait for a slot to be free, running our own queue meanwhile, so two CPUs
 * calling each other with interrupts off cannot deadlock.
 */
static void slot_wait(struct call_req *slot, int target)
{
	uint64_t deadline = rdtsc() + ns_to_tsc(call_timeout_ms() * NSEC_PER_MSEC);
	struct apic_cpu *me = this_apic_cpu();

	while (__atomic_load_n(&slot->busy, __ATOMIC_ACQUIRE)) {
		if ((int64_t)(rdtsc() - deadline) > 0)
			call_timeout(target);
		if (me->call_head)
			call_queue_run(me);
		cpu_relax();
	}
}

/* Queue fn on `target`; true if the caller must send the IPI. */
static bool call_queue(int target, void (*fn)(void *), void *arg)
{
	struct call_req *slot = &call_slots[smp_processor_id()][target];
	struct apic_cpu *ac = &apic_cpus[target];

	slot_wait(slot, target);
	slot->fn = fn;
	slot->arg = arg;
	slot->busy = 1;
	struct call_req *old = __atomic_load_n(&ac->call_head, __ATOMIC_RELAXED);
	do
		slot->next = old;
	while (!__atomic_compare_exchange_n(&ac->call_head, &old, slot, true, __ATOMIC_RELEASE,
	                                    __ATOMIC_RELAXED));
	return old == NULL;
}

int on_cpu_mask(const cpumask_t *mask, void (*fn)(void *), void *arg, bool wait)
{
	int me = smp_processor_id(), cpu;
	cpumask_t sent;

	cpumask_clear(&sent);
	/* Interrupts off: a handler must not claim our slot between the wait and the push. */
	unsigned long flags = local_irq_save();
	for_each_cpu(cpu, mask) {
		if (cpu == me || !cpu_online(cpu))
			continue;
		if (call_queue(cpu, fn, arg))
			send_ipi(cpu, VEC_CALL_FUNC);
		cpumask_set_cpu(cpu, &sent);
	}
	if (cpumask_test_cpu(me, mask))
		fn(arg);
	local_irq_restore(flags);
	if (wait)
		for_each_cpu(cpu, &sent)
			slot_wait(&call_slots[me][cpu], cpu);
	return 0;
}

int on_cpu(int cpu, void (*fn)(void *), void *arg, bool wait)
{
	cpumask_t one;

	if (!cpu_online(cpu))
		return -1;
	cpumask_clear(&one);
	cpumask_set_cpu(cpu, &one);
	return on_cpu_mask(&one, fn, arg, wait);
}

int on_each_cpu(void (*fn)(void *), void *arg, bool wait)
{
	return on_cpu_mask(&cpu_online_mask, fn, arg, wait);
}

/* ---- Work for idle APs (thread context). */

int smp_launch(int cpu, void (*fn)(void *), void *arg)
{
	struct apic_cpu *ac = &apic_cpus[cpu];
	int expected = 0;

	if (cpu == 0 || !cpu_online(cpu) ||
	    !__atomic_compare_exchange_n(&ac->work_busy, &expected, 1, false, __ATOMIC_ACQUIRE,
	                                 __ATOMIC_RELAXED))
		return -1;
	ac->work_arg = arg;
	__atomic_store_n(&ac->work_fn, fn, __ATOMIC_RELEASE);
	/* With the scheduler up, the AP's launch thread runs it; else its idle loop. */
	if (!sched_launch_notify(cpu))
		send_ipi(cpu, VEC_KICK);
	return 0;
}

/* kernel/sched: wake `cpu`'s launch thread for new work; false if there is none yet. */
__attribute__((weak)) bool sched_launch_notify(int cpu)
{
	(void)cpu;
	return false;
}

bool smp_wait_launched(int cpu, uint64_t timeout_ms)
{
	struct apic_cpu *ac = &apic_cpus[cpu];
	return spin_until(!__atomic_load_n(&ac->work_busy, __ATOMIC_ACQUIRE),
	                  timeout_ms * NSEC_PER_MSEC);
}

int smp_run_all(void (*fn)(void *), void *arg, uint64_t timeout_ms)
{
	int cpu, me = smp_processor_id(), failed = 0;
	cpumask_t launched;

	cpumask_clear(&launched);
	for_each_online_cpu(cpu) {
		if (cpu == me)
			continue;
		if (smp_launch(cpu, fn, arg) == 0)
			cpumask_set_cpu(cpu, &launched);
		else
			failed++;
	}
	fn(arg);
	uint64_t deadline = arch_now_ns() + timeout_ms * NSEC_PER_MSEC;
	for_each_cpu(cpu, &launched) {
		uint64_t now = arch_now_ns();
		uint64_t left = now < deadline ? (deadline - now) / NSEC_PER_MSEC : 0;
		if (!smp_wait_launched(cpu, left))
			failed++;
	}
	return failed;
}

/*
 * Called with interrupts off by an AP's idle loop, or once the scheduler
 * runs by the AP's launch thread: run launched work, if any.
 */
bool smp_idle_work(void)
{
	struct apic_cpu *ac = this_apic_cpu();
	void (*fn)(void *) = __atomic_load_n(&ac->work_fn, __ATOMIC_ACQUIRE);

	if (!fn)
		return false;
	ac->work_fn = NULL;
	local_irq_enable();
	fn(ac->work_arg);
	__atomic_store_n(&ac->work_busy, 0, __ATOMIC_RELEASE);
	return true;
}

/* ---- NMIs: dumps, pings and stops. */

static void print_rip(int cpu, uint64_t rip, const char *note)
{
	uint64_t off = 0;
	const char *name = ksym_lookup(rip, &off);
	kprintf("# cpu %d: RIP %016lx %s+%#lx%s\n", cpu, rip, name ? name : "?", off, note);
}

static bool nmi_handler(struct trapframe *tf)
{
	int me = smp_processor_id();
	struct apic_cpu *ac = &apic_cpus[me];
	unsigned req = __atomic_exchange_n(&ac->nmi_request, 0, __ATOMIC_ACQ_REL);
	uint64_t sent = __atomic_load_n(&nmi_sent[me], __ATOMIC_ACQUIRE);
	bool ours = req || nmi_claimed[me] < sent;

	nmi_claimed[me] = sent;
	if (!ours)
		return false;
	ac->nmi_count++;
	if (req & NMI_REQ_DUMP) {
		ac->nmi_rip = tf->rip;
		print_rip(me, tf->rip, "");
		backtrace_from(tf->rbp, tf->rip);
	}
	if (req & (NMI_REQ_DUMP | NMI_REQ_PING))
		__atomic_fetch_add(&ac->nmi_done, 1, __ATOMIC_RELEASE);
	if (req & NMI_REQ_STOP) {
		__atomic_fetch_add(&stopped_count, 1, __ATOMIC_RELEASE);
		/* NMIs stay blocked until an iret that never comes: a quiet, final halt. */
		for (;;)
			halt();
	}
	return true;
}

/* Post an NMI request; returns the done count to wait past. */
static unsigned nmi_request(int cpu, unsigned what)
{
	struct apic_cpu *ac = &apic_cpus[cpu];
	unsigned done = __atomic_load_n(&ac->nmi_done, __ATOMIC_ACQUIRE);
	__atomic_fetch_or(&ac->nmi_request, what, __ATOMIC_RELEASE);
	send_nmi(cpu);
	return done;
}

unsigned nmi_ping_post(int cpu)
{
	return nmi_request(cpu, NMI_REQ_PING);
}

bool smp_nmi_ping(int cpu, uint64_t timeout_ms)
{
	struct apic_cpu *ac = &apic_cpus[cpu];
	unsigned done = nmi_request(cpu, NMI_REQ_PING);
	return spin_until(__atomic_load_n(&ac->nmi_done, __ATOMIC_ACQUIRE) != done,
	                  timeout_ms * NSEC_PER_MSEC);
}

void arch_dump_cpu_stack(int cpu)
{
	if (cpu == smp_processor_id()) {
		uint64_t rip;
		__asm__ volatile("leaq (%%rip), %0" : "=r"(rip));
		apic_cpus[cpu].nmi_rip = rip;
		print_rip(cpu, rip, " (this CPU)");
		dump_stack();
		return;
	}
	if (!cpu_online(cpu) || apic_mode == APIC_MODE_NONE) {
		kprintf("# cpu %d: not online\n", cpu);
		return;
	}
	struct apic_cpu *ac = &apic_cpus[cpu];
	unsigned done = nmi_request(cpu, NMI_REQ_DUMP);
	if (!spin_until(__atomic_load_n(&ac->nmi_done, __ATOMIC_ACQUIRE) != done,
	                DUMP_TIMEOUT_MS * NSEC_PER_MSEC))
		kprintf("# cpu %d: no answer to the dump NMI within %d ms\n", cpu, DUMP_TIMEOUT_MS);
}

void smp_stop_others(void)
{
	int me = smp_processor_id(), expected = -1, cpu, n = 0;

	if (apic_mode == APIC_MODE_NONE || num_online_cpus() <= 1)
		return;
	if (!__atomic_compare_exchange_n(&stopping_cpu, &expected, me, false, __ATOMIC_ACQ_REL,
	                                 __ATOMIC_ACQUIRE)) {
		if (expected == me)
			return; /* already done (panic, then kexit) */
		/* Another CPU is stopping everyone and will report: get out of its way. */
		__asm__ volatile("cli");
		for (;;)
			halt();
	}
	smp_stopping = 1;
	for_each_online_cpu(cpu) {
		if (cpu == me)
			continue;
		nmi_request(cpu, NMI_REQ_STOP);
		n++;
	}
	spin_until(__atomic_load_n(&stopped_count, __ATOMIC_ACQUIRE) >= n,
	           STOP_TIMEOUT_MS * NSEC_PER_MSEC);
}

/* ---- Handlers. */

static void kick_handler(struct trapframe *tf)
{
	(void)tf;
	this_apic_cpu()->kicks++;
	lapic_eoi();
}

static void test_handler(struct trapframe *tf)
{
	(void)tf;
	this_apic_cpu()->test_ipis++;
	lapic_eoi();
}

void ipi_alloc_slots(int n)
{
	for (int cpu = 0; cpu < n; cpu++)
		call_slots[cpu] = early_alloc(sizeof(struct call_req) * (size_t)n, CACHE_LINE);
}

void ipi_init(void)
{
	register_irq_handler(VEC_CALL_FUNC, call_func_handler);
	register_irq_handler(VEC_KICK, kick_handler);
	register_irq_handler(VEC_TEST, test_handler);
	register_nmi_handler(nmi_handler);
}
