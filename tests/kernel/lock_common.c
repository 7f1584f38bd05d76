/*
 * The `lock` suite's shared machinery (see lock_common.h): the primitives
 * table, the all-CPUs runner and the reporting functions.
 */
#include "lock_common.h"
#include "kvm.h"

/* How long a CPU waits for the others to arrive before the run is abandoned. */
#define LT_ARRIVE_TIMEOUT_NS (3 * NSEC_PER_SEC)

struct lt_run lt;

/* ---- The primitives, each lock on cache lines of its own. */

static struct tas_lock ty_tas __cacheline_aligned;
static struct ticket_lock ty_ticket __cacheline_aligned;
static spinlock_t ty_spin __cacheline_aligned;
static raw_spinlock_t ty_raw __cacheline_aligned;
static struct brk_lock ty_brk __cacheline_aligned;
static struct pv_lock ty_pv __cacheline_aligned;
static struct mcs_lock ty_mcs __cacheline_aligned;
static struct mcs_lock ty_mcs_node __cacheline_aligned;
static struct mcs_node ty_nodes[MAX_CPUS];
static unsigned long ty_flags[MAX_CPUS];

/* CPUs holding or waiting for a ticket lock word: tail - head (tickets advance by `step`). */
static int ticket_word_queue(const uint32_t *word, unsigned step)
{
	uint32_t v = __atomic_load_n(word, __ATOMIC_RELAXED);

	return (uint16_t)(((uint16_t)(v >> 16) & ~(step - 1)) - (uint16_t)v) / step;
}

static void tas_init(void)
{
	tas_lock_init(&ty_tas);
	lock_set_name(&ty_tas, "lock.tas");
}
static void tas_lk(int cpu)
{
	(void)cpu;
	tas_lock(&ty_tas);
}
static void tas_ulk(int cpu)
{
	(void)cpu;
	tas_unlock(&ty_tas);
}

static void ticket_init(void)
{
	ticket_lock_init(&ty_ticket);
	lock_set_name(&ty_ticket, "lock.ticket");
}
static void ticket_lk(int cpu)
{
	(void)cpu;
	ticket_lock(&ty_ticket);
}
static void ticket_ulk(int cpu)
{
	(void)cpu;
	ticket_unlock(&ty_ticket);
}
static int ticket_queue(int cpu)
{
	(void)cpu;
	return ticket_word_queue(&ty_ticket.val, 1);
}

static void spin_init(void)
{
	spin_lock_init(&ty_spin);
	lock_set_name(&ty_spin.rlock.tl, "lock.spinlock");
}
static void spin_lk(int cpu)
{
	(void)cpu;
	spin_lock(&ty_spin);
}
static void spin_ulk(int cpu)
{
	(void)cpu;
	spin_unlock(&ty_spin);
}
static int spin_queue(int cpu)
{
	(void)cpu;
	return ticket_word_queue(&ty_spin.rlock.tl.val, 1);
}

/* raw_spinlock_t through its irqsave form: the waiter spins with interrupts off. */
const struct lock_stat *lt_spinlock_stat(void)
{
	return spin_lock_stat(&ty_spin);
}

static void raw_init(void)
{
	raw_spin_lock_init(&ty_raw);
	lock_set_name(&ty_raw.tl, "lock.raw_spinlock");
}
static void raw_lk(int cpu)
{
	unsigned long flags;

	raw_spin_lock_irqsave(&ty_raw, flags);
	ty_flags[cpu] = flags;
}
static void raw_ulk(int cpu)
{
	raw_spin_unlock_irqrestore(&ty_raw, ty_flags[cpu]);
}
static int raw_queue(int cpu)
{
	(void)cpu;
	return ticket_word_queue(&ty_raw.tl.val, 1);
}

static void brk_init(void)
{
	brk_lock_init(&ty_brk);
	lock_set_name(&ty_brk.tl, "lock.breakable");
}
static void brk_lk(int cpu)
{
	(void)cpu;
	brk_lock(&ty_brk);
}
static void brk_ulk(int cpu)
{
	(void)cpu;
	brk_unlock(&ty_brk);
}
static int brk_queue(int cpu)
{
	(void)cpu;
	return ticket_word_queue(&ty_brk.tl.val, 1);
}

static void pv_init(void)
{
	pv_lock_init(&ty_pv);
	lock_set_name(&ty_pv, "lock.pvticket");
}
static void pv_lk(int cpu)
{
	(void)cpu;
	pv_lock(&ty_pv);
}
static void pv_ulk(int cpu)
{
	(void)cpu;
	pv_unlock(&ty_pv);
}
static int pv_queue(int cpu)
{
	(void)cpu;
	return ticket_word_queue(&ty_pv.val, PV_TICKET_INC);
}

/* MCS with this CPU's own nodes (mcs_spin_lock) ... */
static void mcs_init(void)
{
	mcs_lock_init(&ty_mcs);
	lock_set_name(&ty_mcs, "lock.mcs");
}
static void mcs_lk(int cpu)
{
	(void)cpu;
	mcs_spin_lock(&ty_mcs);
}
static void mcs_ulk(int cpu)
{
	(void)cpu;
	mcs_spin_unlock(&ty_mcs);
}

/* ... and with nodes the caller provides. */
static void mcs_node_init(void)
{
	mcs_lock_init(&ty_mcs_node);
	lock_set_name(&ty_mcs_node, "lock.mcs_node");
}
static void mcs_node_lk(int cpu)
{
	mcs_lock(&ty_mcs_node, &ty_nodes[cpu]);
}
static void mcs_node_ulk(int cpu)
{
	mcs_unlock(&ty_mcs_node, &ty_nodes[cpu]);
}
/* From the holder's node along the queue (waiters link themselves in, then spin). */
static int mcs_node_queue(int cpu)
{
	const struct mcs_node *n = &ty_nodes[cpu];
	int len = 1;

	while (len <= MAX_CPUS && (n = __atomic_load_n(&n->next, __ATOMIC_ACQUIRE)))
		len++;
	return len;
}

const struct lt_type lt_types[] = {
    {"tas", tas_init, tas_lk, tas_ulk, NULL},
    {"ticket", ticket_init, ticket_lk, ticket_ulk, ticket_queue},
    {"spinlock", spin_init, spin_lk, spin_ulk, spin_queue},
    {"raw_spinlock", raw_init, raw_lk, raw_ulk, raw_queue},
    {"breakable", brk_init, brk_lk, brk_ulk, brk_queue},
    {"pvticket", pv_init, pv_lk, pv_ulk, pv_queue},
    {"mcs", mcs_init, mcs_lk, mcs_ulk, NULL},
    {"mcs_node", mcs_node_init, mcs_node_lk, mcs_node_ulk, mcs_node_queue},
};
const int lt_ntypes = ARRAY_SIZE(lt_types);

const struct lt_type *lt_type(const char *name)
{
	for (int i = 0; i < lt_ntypes; i++)
		if (strcmp(lt_types[i].name, name) == 0)
			return &lt_types[i];
	panic("lock tests: no lock type %s", name);
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
	const struct lt_type *t = r->ctx;

	while (!lt_over(r)) {
		t->lock(cpu);
		lt_exclusive_section(cpu, pc);
		t->unlock(cpu);
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
