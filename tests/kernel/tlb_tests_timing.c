/*
 * The `tlb` suite's figures (bench=1), last in the suite: this file's name
 * sorts after tlb_tests_targets.c.  They measure rather than check, run
 * only on request and take longer than the rest of the suite together, so
 * they are kept apart from the tests.
 *
 *   bench_targets             the initiator's cost against the number of
 *                             targets, both modes.
 *   bench_irqoff_sections     the same against the length of the targets'
 *                             interrupt-off sections (the seed scenario).
 */
#include "cpu.h"
#include "hist.h"
#include "irq.h"
#include "kernel.h"
#include "ktest.h"
#include "mm.h"
#include "smp.h"
#include "time.h"
#include "tlb.h"
#include "x86.h"

#include "tlb_tests.h"

/* ---- Figures (bench=1). */

#define BENCH_SAMPLES 300
#define MAX_SAMPLES 2000 /* bench_irqoff_sections at 1 ms sections, below */
#define BENCH_MAX_TARGETS 16
#define HIST_WIDTH_NS 1000
#define HIST_BUCKETS 2000

struct bench_load {
	uint64_t va;
	uint64_t section_ns;
	int ntargets; /* CPUs 1..ntargets work, the rest stay idle */
	volatile int stop, started;
	volatile uint64_t sections;
	uint64_t seed;
};

/*
 * A target: an interrupt-off section of section_ns (reading the page), then
 * HLT with interrupts on until the next interrupt (a flush IPI, its tick).
 * It is not in the idle loop, so it is always a target.  Halting rather
 * than spinning between sections leaves the host's CPUs to the vCPUs that
 * have work: under emulation on a small host, spinning targets would make
 * every IPI wait for the host to schedule them, and measure the host.
 */
static void bench_target(void *arg)
{
	struct bench_load *l = arg;

	__atomic_add_fetch(&l->started, 1, __ATOMIC_ACQ_REL);
	while (!l->stop) {
		(void)peek(l->va);
		if (l->section_ns) {
			unsigned long f = local_irq_save();
			uint64_t end = rdtsc() + ns_to_tsc(l->section_ns);
			while ((int64_t)(rdtsc() - end) < 0)
				(void)peek(l->va);
			local_irq_restore(f);
			l->sections++;
		}
		local_irq_disable();
		if (!l->stop)
			__asm__ volatile("sti; hlt" ::: "memory");
		local_irq_enable();
	}
}

static void load_start(struct bench_load *l)
{
	l->stop = 0;
	l->started = 0;
	for (int cpu = 1; cpu <= l->ntargets; cpu++)
		KT_EXPECT_EQ(smp_launch(cpu, bench_target, l), 0);
	KT_EXPECT(spin_until(l->started == l->ntargets, WAIT_NS));
}

static void load_stop(struct bench_load *l)
{
	l->stop = 1;
	for (int cpu = 1; cpu <= l->ntargets; cpu++) {
		arch_kick_cpu(cpu);
		KT_EXPECT(smp_wait_launched(cpu, 10000));
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void sort_u64(uint64_t *v, int n)
{
	for (int i = 1; i < n; i++) /* insertion sort: at most 2000 samples */
		for (int j = i; j > 0 && cmp_u64(&v[j - 1], &v[j]) > 0; j--) {
			uint64_t t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
}

/* `n` shootdowns of one page in `mode`, each timed; the median in ns. */
static uint64_t time_shootdowns(uint64_t va, enum tlb_mode mode, int n, struct hist *h,
                                uint64_t *rng, uint64_t *p99)
{
	static uint64_t ns[MAX_SAMPLES];
	int me = smp_processor_id();

	if (n > MAX_SAMPLES)
		n = MAX_SAMPLES;
	for (int i = 0; i < n; i++) {
		ndelay(20000 + rng_next(rng) % 100000); /* fall anywhere in the targets' cycle */
		uint64_t t0 = rdtsc_ordered();
		flush_tlb_range_mode(va, va + PAGE_SIZE, mode);
		ns[i] = tsc_to_ns(rdtsc_ordered() - t0);
		if (h)
			hist_record(h, me, ns[i]);
	}
	sort_u64(ns, n);
	if (p99)
		*p99 = ns[n * 99 / 100];
	return ns[n / 2];
}

static const char *mode_name(enum tlb_mode m)
{
	return m == TLB_SYNC ? "sync" : "lazy";
}

/* Initiator cost against the number of targets (the others idle), both modes. */
KTEST(tlb, bench_targets, .min_cpus = 2, .timeout_ms = 60000, .flags = KT_BENCH)
{
	static struct hist hists[2][BENCH_MAX_TARGETS];
	static char paths[2][BENCH_MAX_TARGETS][48];
	static struct bench_load l;
	int n = num_online_cpus(), max = n - 1 < BENCH_MAX_TARGETS ? n - 1 : BENCH_MAX_TARGETS;
	uint64_t va = vm_area_alloc(PAGE_SIZE, PAGE_SIZE), pa = frame_alloc();
	uint64_t rng = rng_seed(11);
	char extra[64];

	if (!va || !pa) {
		kt_fail(__FILE__, __LINE__, "no memory");
		return;
	}
	fill_frame(pa, 7);
	vm_map(va, pa, PAGE_SIZE, VM_WRITE);
	for (int k = 1; k <= max; k++) {
		memset(&l, 0, sizeof(l));
		l.va = va;
		l.ntargets = k;
		l.seed = rng_seed(12);
		load_start(&l);
		mdelay(2); /* the others idle by now */
		for (int m = TLB_SYNC; m <= TLB_LAZY; m++) {
			struct hist *h = &hists[m][k - 1];
			if (k == max)
				snprintf(paths[m][k - 1], sizeof(paths[m][k - 1]),
				         "tlb.%s.initiator", mode_name((enum tlb_mode)m));
			else
				snprintf(paths[m][k - 1], sizeof(paths[m][k - 1]),
				         "tlb.%s.initiator.targets%d", mode_name((enum tlb_mode)m),
				         k);
			hist_init(h, paths[m][k - 1], "ns", HIST_LINEAR, HIST_WIDTH_NS,
			          HIST_BUCKETS);
			uint64_t p99, med = time_shootdowns(va, (enum tlb_mode)m, BENCH_SAMPLES, h,
			                                    &rng, &p99);
			hist_print(h);
			snprintf(extra, sizeof(extra), "targets=%d cpus=%d", k, n);
			char path[48];
			snprintf(path, sizeof(path), "tlb.%s.initiator_ns",
			         mode_name((enum tlb_mode)m));
			kt_metric(path, (long long)med, "ns", extra);
			snprintf(path, sizeof(path), "tlb.%s.initiator_ns.p99",
			         mode_name((enum tlb_mode)m));
			kt_metric(path, (long long)p99, "ns", extra);
		}
		load_stop(&l);
	}
	vm_unmap(va, PAGE_SIZE);
	flush_tlb_range_mode(va, va + PAGE_SIZE, TLB_SYNC);
	frame_free(pa);
	vm_area_free(va, PAGE_SIZE);
}

/*
 * The seed scenario: every other CPU keeps going into interrupt-off sections
 * of a given length.  A synchronous initiator waits for each target to leave
 * its section; a lazy one does not.  Also what a shootdown costs all CPUs
 * together (the initiator's time plus the targets' time in flush handlers).
 */
KTEST(tlb, bench_irqoff_sections, .min_cpus = 2, .timeout_ms = 90000, .flags = KT_BENCH)
{
	static const unsigned sections_us[] = {0, 10, 100, 1000};
	static struct bench_load l;
	int n = num_online_cpus();
	uint64_t va = vm_area_alloc(PAGE_SIZE, PAGE_SIZE), pa = frame_alloc();
	uint64_t rng = rng_seed(13), med[ARRAY_SIZE(sections_us)][2];
	char extra[64], path[64];

	if (!va || !pa) {
		kt_fail(__FILE__, __LINE__, "no memory");
		return;
	}
	fill_frame(pa, 9);
	vm_map(va, pa, PAGE_SIZE, VM_WRITE);
	for (size_t s = 0; s < ARRAY_SIZE(sections_us); s++) {
		memset(&l, 0, sizeof(l));
		l.va = va;
		l.ntargets = n - 1;
		l.section_ns = sections_us[s] * NSEC_PER_USEC;
		l.seed = rng_seed(14 + s);
		load_start(&l);
		/*
		 * The sync initiator's cost at 1 ms sections spreads from 0.1 to 3 ms
		 * with a thin stretch around its median, so 100 samples left the
		 * median moving by 8 % from boot to boot (virtual time); 2000 take
		 * 2.4 s and move it by about 3 %.
		 */
		int samples = sections_us[s] >= 1000 ? MAX_SAMPLES : 200;
		uint64_t cycles[2] = {0, 0};
		for (int m = TLB_SYNC; m <= TLB_LAZY; m++) {
			struct tlb_stats a, b;
			tlb_stats_read(&a);
			med[s][m] =
			    time_shootdowns(va, (enum tlb_mode)m, samples, NULL, &rng, NULL);
			tlb_stats_read(&b);
			uint64_t shots = b.shootdowns[m] - a.shootdowns[m];
			cycles[m] = shots ? (b.initiator_cycles[m] - a.initiator_cycles[m] +
			                     b.target_cycles - a.target_cycles) /
			                        shots
			                  : 0;
			snprintf(extra, sizeof(extra), "section_us=%u cpus=%d", sections_us[s], n);
			snprintf(path, sizeof(path), "tlb.%s.initiator_ns",
			         mode_name((enum tlb_mode)m));
			kt_metric(path, (long long)med[s][m], "ns", extra);
			snprintf(extra, sizeof(extra), "irqoff_us=%u cpus=%d", sections_us[s], n);
			snprintf(path, sizeof(path), "tlb.%s.cycles_per_shootdown",
			         mode_name((enum tlb_mode)m));
			kt_metric(path, (long long)cycles[m], "cycles", extra);
		}
		load_stop(&l);
		uint64_t ratio = med[s][TLB_LAZY] ? med[s][TLB_SYNC] * 100 / med[s][TLB_LAZY] : 0;
		snprintf(extra, sizeof(extra), "irqoff_us=%u cpus=%d", sections_us[s], n);
		kt_metric("tlb.sync_over_lazy.initiator_pct", (long long)ratio, "%", extra);
		kprintf(
		    "  # sections of %4u us with interrupts off on %d CPUs: initiator median "
		    "sync %lu ns, lazy %lu ns, ratio %lu.%02lu; all CPUs per shootdown: sync %lu, "
		    "lazy %lu cycles\n",
		    sections_us[s], n - 1, med[s][TLB_SYNC], med[s][TLB_LAZY], ratio / 100,
		    ratio % 100, cycles[TLB_SYNC], cycles[TLB_LAZY]);
	}
	size_t last = ARRAY_SIZE(sections_us) - 1;
	/* The shape, not the numbers: sync follows the section, lazy does not. */
	KT_EXPECT(med[last][TLB_SYNC] > med[0][TLB_SYNC]);
	KT_EXPECT(med[last][TLB_SYNC] > 2 * med[last][TLB_LAZY]);
	vm_unmap(va, PAGE_SIZE);
	flush_tlb_range_mode(va, va + PAGE_SIZE, TLB_SYNC);
	frame_free(pa);
	vm_area_free(va, PAGE_SIZE);
}
