/*
 * sched.wakeup_latency (bench=1): wake-up latency the way cyclictest
 * measures it, under the booted preemption model.
 *
 * One measuring thread per CPU, pinned, at the highest priority, sleeps to
 * absolute deadlines on a fixed grid (INTERVAL_US; the CPUs' grids are
 * staggered) and records the time from each deadline to its first
 * instruction after the wake-up, into a per-CPU histogram.  It runs three
 * times, DURATION_MS each:
 *
 *   idle       nothing else runs;
 *   plain      one low-priority thread per CPU hammers one spinlock_t
 *              (the ticket lock; under preempt=rt the rt-mutex), holding it
 *              across a walk of WALK_ITEMS items of ITEM_US, with a TLB
 *              shootdown (flush_tlb_range) every SHOOTDOWN_EVERY items;
 *              between walks it yields;
 *   breakable  the same walk under the breakable lock, bracketed by
 *              preempt_disable() like any spinning lock, offering
 *              cond_resched_lock() after every item.
 *
 * Output per load: a hist block `sched.wakeup_latency.<model>.<load>`
 * (10 us buckets, one column per CPU) and
 *   # metric: sched.wakeup_latency.<model>.max_ns <v> ns load=<load> ...
 * with .p99_ns and .p50_ns alongside; then the same latency split where
 * the timer interrupt ran: sched.wakeup_split.<model>.irq_max_ns (deadline
 * to interrupt: the interrupt's delivery) and .sched_max_ns/.sched_p99_ns
 * (interrupt to running: the preemption model's part).
 *
 * What to expect (Molnar, 2004): with long lock holds, none shows
 * millisecond maxima; the breakable lock with voluntary or full preemption,
 * and rt (whose spinlock_t sleeps and whose holder can be preempted), cut
 * that by an order of magnitude.  Under emulation the floor is the
 * emulator's own interrupt delivery and vCPU scheduling: the idle run and
 * the irq part show it.
 */
#include "cmdline.h"
#include "cpu.h"
#include "hist.h"
#include "kernel.h"
#include "ktest.h"
#include "mm.h"
#include "sched.h"
#include "smp.h"
#include "time.h"
#include "tlb.h"
#include "x86.h"

#define cpu_relax lock_arch_cpu_relax
#include "lock/spinlock.h"
#undef cpu_relax

#define INTERVAL_US 500
#define DURATION_MS 2000
#define WALK_ITEMS 200
#define ITEM_US 25
#define SHOOTDOWN_EVERY 50
#define BUCKET_NS 10000
#define BUCKETS 20000 /* 200 ms: emulated CPUs stall for that long under load */
#define PRIO_MEASURE SCHED_PRIO_MAX
#define PRIO_LOAD 1
#define NODES 4096

enum load { LOAD_IDLE, LOAD_PLAIN, LOAD_BREAKABLE, NR_LOADS };
static const char *const load_name[NR_LOADS] = {"idle", "plain", "breakable"};

static struct {
	enum load load;
	struct hist *h;
	struct hist *h_sched; /* the scheduler's part: timer interrupt to thread running */
	volatile uint64_t irq_max[64];
	volatile int stop;
	uint64_t start, end;
	spinlock_t plain __cacheline_aligned;
	struct brk_lock brk __cacheline_aligned;
	uint64_t shoot_va;
	volatile uint64_t walks, breaks, shootdowns, missed;
	uint64_t nodes[NODES];
} wl;

static void measure(void *arg)
{
	int cpu = (int)(uintptr_t)arg;
	uint64_t interval = ns_to_tsc(INTERVAL_US * NSEC_PER_USEC);
	/* Stagger the CPUs across the interval, as cyclictest's -d distance would. */
	uint64_t next = wl.start + interval * (uint64_t)cpu / (uint64_t)ncpus;

	/* A thread that starts late (host stall) joins the grid where it is, unrecorded. */
	while ((int64_t)(rdtsc() - next) >= 0)
		next += interval;
	while ((int64_t)(next - wl.end) < 0) {
		sleep_until(next);
		uint64_t now = rdtsc();
		hist_record(wl.h, cpu, tsc_to_ns(now - next));
		/* Split at the timer interrupt that woke us: delivery, then scheduling. */
		uint64_t irq = this_thread()->timer_woken_tsc;
		if ((int64_t)(irq - next) >= 0 && (int64_t)(now - irq) >= 0) {
			hist_record(wl.h_sched, cpu, tsc_to_ns(now - irq));
			if (tsc_to_ns(irq - next) > wl.irq_max[cpu])
				wl.irq_max[cpu] = tsc_to_ns(irq - next);
		}
		next += interval;
		while ((int64_t)(next - now) <= 0) {
			next += interval;
			__atomic_fetch_add(&wl.missed, 1, __ATOMIC_RELAXED);
		}
	}
}

/* One item of the walk: a little pointer chasing for ITEM_US. */
static void walk_item(uint64_t *pos)
{
	uint64_t end = rdtsc() + ns_to_tsc(ITEM_US * NSEC_PER_USEC);
	do {
		*pos = wl.nodes[*pos % NODES];
	} while ((int64_t)(rdtsc() - end) < 0);
}

static void shootdown(int i)
{
	if (wl.shoot_va && i % SHOOTDOWN_EVERY == SHOOTDOWN_EVERY - 1) {
		flush_tlb_range(wl.shoot_va, wl.shoot_va + PAGE_SIZE);
		__atomic_fetch_add(&wl.shootdowns, 1, __ATOMIC_RELAXED);
	}
}

static void hammer(void *arg)
{
	uint64_t pos = (uint64_t)(uintptr_t)arg;

	while (!__atomic_load_n(&wl.stop, __ATOMIC_ACQUIRE)) {
		if (wl.load == LOAD_PLAIN) {
			spin_lock(&wl.plain);
			for (int i = 0; i < WALK_ITEMS; i++) {
				walk_item(&pos);
				shootdown(i);
			}
			spin_unlock(&wl.plain);
		} else {
			preempt_disable(); /* a spinning lock's section, like spin_lock's */
			brk_lock(&wl.brk);
			for (int i = 0; i < WALK_ITEMS; i++) {
				walk_item(&pos);
				shootdown(i);
				if (cond_resched_lock(&wl.brk))
					__atomic_fetch_add(&wl.breaks, 1, __ATOMIC_RELAXED);
			}
			brk_unlock(&wl.brk);
			preempt_enable();
		}
		__atomic_fetch_add(&wl.walks, 1, __ATOMIC_RELAXED);
		yield(); /* the only way anyone else gets this CPU under preempt=none */
	}
}

static void run_load(enum load load, struct hist *h, struct hist *hs, const char *path)
{
	struct thread *m[64], *l[64];
	int n = ncpus < 64 ? ncpus : 64;
	char extra[160];
	const char *model = preempt_name(sched_model());

	hist_init(h, path, "ns", HIST_LINEAR, BUCKET_NS, BUCKETS);
	hist_init(hs, "sched.wakeup_latency.sched_part", "ns", HIST_LINEAR, BUCKET_NS, BUCKETS);
	memset((void *)wl.irq_max, 0, sizeof(wl.irq_max));
	wl.load = load;
	wl.h = h;
	wl.h_sched = hs;
	wl.stop = 0;
	wl.walks = wl.breaks = wl.shootdowns = wl.missed = 0;
	spin_lock_init(&wl.plain);
	brk_lock_init(&wl.brk);
	for (int i = 0; i < n; i++)
		l[i] = load == LOAD_IDLE ? NULL
		                         : thread_run(hammer, (void *)(uintptr_t)(i * 977),
		                                      "hammer", PRIO_LOAD, i);
	msleep(20); /* the load is going before the first deadline */
	wl.start = rdtsc() + ns_to_tsc(20 * NSEC_PER_MSEC);
	wl.end = wl.start + ns_to_tsc(DURATION_MS * NSEC_PER_MSEC);
	for (int i = 0; i < n; i++)
		m[i] = thread_run(measure, (void *)(uintptr_t)i, "measure", PRIO_MEASURE, i);
	sleep_until(wl.end + ns_to_tsc(5 * NSEC_PER_MSEC));
	__atomic_store_n(&wl.stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < n; i++) {
		if (!thread_join(m[i], 10000))
			kt_fail(__FILE__, __LINE__, "measuring thread on CPU %d did not finish", i);
		if (l[i] && !thread_join(l[i], 10000))
			kt_fail(__FILE__, __LINE__, "load thread on CPU %d did not finish", i);
	}
	hist_print(h);
	snprintf(extra, sizeof(extra),
	         "load=%s cpus=%d interval_us=%d samples=%lu walk_us=%d walks=%lu breaks=%lu "
	         "shootdowns=%lu missed=%lu",
	         load_name[load], n, INTERVAL_US, hist_samples(h), WALK_ITEMS * ITEM_US, wl.walks,
	         wl.breaks, wl.shootdowns, wl.missed);
	char name[96];
	snprintf(name, sizeof(name), "sched.wakeup_latency.%s.max_ns", model);
	kt_metric(name, (long long)hist_max(h), "ns", extra);
	snprintf(name, sizeof(name), "sched.wakeup_latency.%s.p99_ns", model);
	kt_metric(name, (long long)hist_percentile(h, 990), "ns", extra);
	snprintf(name, sizeof(name), "sched.wakeup_latency.%s.p50_ns", model);
	kt_metric(name, (long long)hist_percentile(h, 500), "ns", extra);
	/*
	 * The same latency split where the timer interrupt ran: before it, the
	 * interrupt's delivery (hardware, or the emulator; and any section
	 * with interrupts off); after it, the scheduler's part, which is what
	 * the preemption model decides.
	 */
	uint64_t irq_max = 0;
	for (int i = 0; i < n; i++)
		if (wl.irq_max[i] > irq_max)
			irq_max = wl.irq_max[i];
	snprintf(extra, sizeof(extra), "load=%s cpus=%d samples=%lu", load_name[load], n,
	         hist_samples(hs));
	snprintf(name, sizeof(name), "sched.wakeup_split.%s.irq_max_ns", model);
	kt_metric(name, (long long)irq_max, "ns", extra);
	snprintf(name, sizeof(name), "sched.wakeup_split.%s.sched_max_ns", model);
	kt_metric(name, (long long)hist_max(hs), "ns", extra);
	snprintf(name, sizeof(name), "sched.wakeup_split.%s.sched_p99_ns", model);
	kt_metric(name, (long long)hist_percentile(hs, 990), "ns", extra);
	KT_EXPECT(hist_samples(h) > 0);
}

KTEST(sched, wakeup_latency, .flags = KT_BENCH, .timeout_ms = 60000)
{
	static struct hist h[NR_LOADS], hs[NR_LOADS];
	static char paths[NR_LOADS][64];
	uint64_t max[NR_LOADS];

	for (int i = 0; i < NODES; i++)
		wl.nodes[i] = (uint64_t)i * 2654435761u % NODES;
	/* A mapped page of our own for the shootdowns in flight. */
	wl.shoot_va = vm_area_alloc(PAGE_SIZE, PAGE_SIZE);
	uint64_t frame = frame_alloc_zeroed();
	if (!wl.shoot_va || !frame || vm_map(wl.shoot_va, frame, PAGE_SIZE, VM_WRITE) != 0) {
		kprintf("  # no page for TLB shootdowns: the load walks without them\n");
		wl.shoot_va = 0;
	}
	for (int load = 0; load < NR_LOADS; load++) {
		snprintf(paths[load], sizeof(paths[load]), "sched.wakeup_latency.%s.%s",
		         preempt_name(sched_model()), load_name[load]);
		run_load((enum load)load, &h[load], &hs[load], paths[load]);
		max[load] = hist_max(&h[load]);
	}
	kprintf("  # preempt=%s max wake-up latency: idle %lu us, plain-lock load %lu us, "
	        "breakable-lock load %lu us\n",
	        preempt_name(sched_model()), max[LOAD_IDLE] / 1000, max[LOAD_PLAIN] / 1000,
	        max[LOAD_BREAKABLE] / 1000);
	if (wl.shoot_va) {
		vm_unmap(wl.shoot_va, PAGE_SIZE);
		flush_tlb_range(wl.shoot_va, wl.shoot_va + PAGE_SIZE);
		vm_area_free(wl.shoot_va, PAGE_SIZE);
		frame_free(frame);
	}
}
