/*
 * The `lock` suite's shared machinery (see lock_common.h): instances of the
 * registered lock types, per-type results, the all-CPUs runner and the
 * reporting functions.
 */
#include "lock_common.h"
#include "kvm.h"

/* How long a CPU waits for the others to arrive before the run is abandoned. */
#define LT_ARRIVE_TIMEOUT_NS (3 * NSEC_PER_SEC)

struct lt_run lt;

/* ---- Instances of the registered types, each on cache lines of its own. */

static uint8_t lt_store[LT_SLOTS][LT_LOCK_BYTES] __cacheline_aligned;
static char lt_names[LT_SLOTS][48];

bool lt_use(struct lt_lock *lk, const struct lock_type *t, int slot)
{
	lk->t = t;
	lk->l = lt_store[slot];
	if (t->size > LT_LOCK_BYTES) {
		kt_fail(__FILE__, __LINE__, "lock type %s: an instance takes %zu bytes, over %d",
		        t->name, t->size, LT_LOCK_BYTES);
		return false;
	}
	memset(lt_store[slot], 0, t->size);
	snprintf(lt_names[slot], sizeof(lt_names[slot]), "lock.%s", t->name);
	t->init(lk->l, lt_names[slot]);
	return true;
}

/* ---- Per-type results (nested KTAP, one level below the test's). */

void lt_sub_begin(struct lt_sub *s, int n)
{
	s->n = n;
	s->index = 0;
	s->failed = false;
	kprintf("    KTAP version 1\n    1..%d\n", n);
}

void lt_sub_fail(struct lt_sub *s, const struct lock_type *t, const char *fmt, ...)
{
	char msg[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	kprintf("    # %s: %s\n", t->name, msg);
	s->failed = true;
}

void lt_sub_end(struct lt_sub *s, const struct lock_type *t, const char *skip)
{
	int i = ++s->index;

	if (skip && !s->failed) {
		kprintf("    ok %d %s # SKIP %s\n", i, t->name, skip);
	} else if (lt_broken(t)) {
		if (s->failed) {
			kprintf("    ok %d %s # XFAIL deliberately broken: %s\n", i, t->name,
			        t->origin ? t->origin : "");
		} else {
			kprintf(
			    "    # %s: the deliberate failure did not happen: this check cannot "
			    "fail\n",
			    t->name);
			kprintf("    not ok %d %s\n", i, t->name);
			kt_fail(__FILE__, __LINE__, "broken lock type %s passed", t->name);
		}
	} else if (s->failed) {
		kprintf("    not ok %d %s\n", i, t->name);
		kt_fail(__FILE__, __LINE__, "lock type %s failed", t->name);
	} else {
		kprintf("    ok %d %s\n", i, t->name);
	}
	s->failed = false;
}

/* ---- The runner. */

static void lt_entry(void *arg)
{
	struct lt_run *r = arg;
	int cpu = smp_processor_id();
	uint64_t now;

	if (__atomic_add_fetch(&r->arrived, 1, __ATOMIC_ACQ_REL) == r->ncpus) {
		now = rdtsc();
		r->start_tsc = now;
		__atomic_store_n(&r->end_tsc, now + ns_to_tsc(r->duration_ns), __ATOMIC_RELAXED);
		__atomic_store_n(&r->go, true, __ATOMIC_RELEASE);
	} else if (!spin_until(__atomic_load_n(&r->go, __ATOMIC_ACQUIRE) ||
	                           __atomic_load_n(&r->abort, __ATOMIC_RELAXED),
	                       LT_ARRIVE_TIMEOUT_NS)) {
		__atomic_store_n(&r->abort, true, __ATOMIC_RELAXED);
	}
	if (__atomic_load_n(&r->go, __ATOMIC_ACQUIRE) &&
	    !__atomic_load_n(&r->abort, __ATOMIC_RELAXED))
		r->body(r, cpu, &r->pc[cpu]);
	__atomic_add_fetch(&r->finished, 1, __ATOMIC_RELEASE);
}

void lt_prepare(struct lt_run *r, lt_body_fn body, void *ctx, uint64_t duration_ms)
{
	memset(r->pc, 0, sizeof(r->pc));
	for (int cpu = 0; cpu < MAX_CPUS; cpu++)
		r->pc[cpu].rng =
		    (config.seed + 1) * 0x9e3779b97f4a7c15ull + (uint64_t)cpu * 7919 + 1;
	r->body = body;
	r->ctx = ctx;
	r->duration_ns = duration_ms * NSEC_PER_MSEC;
	r->ncpus = 0;
}

bool lt_run_cpus(struct lt_run *r, int n, uint64_t timeout_ms)
{
	uint64_t deadline;
	bool ok = true;

	if (smp_processor_id() != 0) {
		kt_fail(__FILE__, __LINE__, "the lock runner must start on CPU 0");
		return false;
	}
	if (n < 1 || n > num_online_cpus())
		n = num_online_cpus();
	r->ncpus = n;
	r->arrived = r->finished = 0;
	r->go = r->abort = r->stop = false;
	r->start_tsc = r->end_tsc = 0;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	for (int cpu = 1; cpu < n; cpu++) {
		if (smp_launch(cpu, lt_entry, r) != 0) {
			kt_fail(__FILE__, __LINE__,
			        "CPU %d cannot be launched (offline or still busy)", cpu);
			__atomic_store_n(&r->abort, true, __ATOMIC_RELAXED);
			ok = false;
		}
	}
	lt_entry(r);
	deadline = arch_now_ns() + timeout_ms * NSEC_PER_MSEC;
	for (int cpu = 1; cpu < n; cpu++) {
		uint64_t now = arch_now_ns();

		if (!smp_wait_launched(cpu,
		                       now < deadline ? (deadline - now) / NSEC_PER_MSEC : 0)) {
			kt_fail(__FILE__, __LINE__, "CPU %d did not finish within %lu ms", cpu,
			        timeout_ms);
			ok = false;
		}
	}
	r->elapsed_ns = tsc_to_ns(rdtsc() - r->start_tsc);
	if (__atomic_load_n(&r->abort, __ATOMIC_RELAXED)) {
		kt_fail(__FILE__, __LINE__, "only %d of %d CPUs arrived for the run", r->arrived,
		        n);
		ok = false;
	}
	return ok;
}

/* ---- The shared exclusive section. */

struct lt_shared lt_xs;

void lt_exclusion_body(struct lt_run *r, int cpu, struct lt_pcpu *pc)
{
	const struct lt_lock *lk = r->ctx;

	while (!lt_over(r)) {
		lt_acquire(lk);
		lt_exclusive_section(cpu, pc);
		lt_release(lk);
		pc->ops++;
		lt_spin(lt_rand(pc) % 8);
	}
}

uint64_t lt_exclusion_fails(const struct lt_run *r, int n)
{
	uint64_t total = LT_SUM(r, n, ops);
	uint64_t lost = total > lt_xs.counter ? total - lt_xs.counter : lt_xs.counter - total;

	return LT_SUM(r, n, fails) + lost;
}

unsigned lt_pv_threshold_for_ns(uint64_t ns)
{
	const unsigned n = 4096;
	uint64_t best = UINT64_MAX, t;

	for (int rep = 0; rep < 3; rep++) {
		t = rdtsc_ordered();
		lt_spin(n);
		t = tsc_to_ns(rdtsc_ordered() - t);
		best = t < best ? t : best;
	}
	best = best ? best : 1;
	t = ns * n / best;
	return t < 16 ? 16 : t > PV_SPIN_THRESHOLD ? PV_SPIN_THRESHOLD : (unsigned)t;
}

/* ---- Reporting. */

struct lt_counts lt_count(const struct lt_run *r, int n, size_t off)
{
	struct lt_counts c = {0, 0, UINT64_MAX, 0, 0};

	for (int cpu = 0; cpu < n; cpu++) {
		uint64_t v = *(const uint64_t *)((const char *)&r->pc[cpu] + off);

		c.total += v;
		if (v > c.max) {
			c.max = v;
			c.max_cpu = cpu;
		}
		if (v < c.min) {
			c.min = v;
			c.min_cpu = cpu;
		}
	}
	if (n < 1)
		c.min = 0;
	return c;
}

uint64_t lt_sum(const struct lt_run *r, int n, size_t off)
{
	return lt_count(r, n, off).total;
}

void lt_torture_line(const char *lock, const char *kind, const struct lt_counts *c, uint64_t fails)
{
	kprintf("# %s-torture: %s:  Total: %lu  Max/Min: %lu/%lu%s  Fail: %lu%s\n", lock, kind,
	        c->total, c->max, c->min, c->max > 2 * c->min ? " ???" : "", fails,
	        fails ? " !!!" : "");
}

uint64_t lt_ratio_x1000(uint64_t max, uint64_t min)
{
	return min ? max * 1000 / min : LT_RATIO_INF;
}

void lt_metric(const char *name, const char *what, long long v, const char *unit, const char *extra)
{
	char path[96];

	snprintf(path, sizeof(path), "lock.%s.%s", name, what);
	kt_metric(path, v, unit, extra);
}

void lt_metric_x1000(const char *name, const char *what, uint64_t v_x1000, const char *unit,
                     const char *extra)
{
	char tags[64]; /* tsc=guessed, steal_ns= (kvm.h) */

	figure_tags(tags, sizeof(tags), unit);
	kprintf("# metric: lock.%s.%s %lu.%03lu %s%s%s%s\n", name, what, v_x1000 / 1000,
	        v_x1000 % 1000, unit, extra && *extra ? " " : "", extra ? extra : "", tags);
}
