/*
 * lock_debug.c - the slow, out-of-line half of lock_debug.h: panics with a
 * message that names the lock and its holder, the spin-timeout, and the
 * statistics functions.
 */
#include "lock_debug.h"

uint64_t lock_spin_timeout_ns = LOCK_SPIN_TIMEOUT_NS;

static const char *meta_name(const struct lock_meta *m)
{
#ifdef LOCK_DEBUG
	if (m && m->name)
		return m->name;
#else
	(void)m;
#endif
	return "(unnamed)";
}

int lock_owner_cpu(const struct lock_meta *m)
{
#ifdef LOCK_DEBUG
	if (m)
		return __atomic_load_n(&m->owner, __ATOMIC_RELAXED) - 1;
#else
	(void)m;
#endif
	return -1;
}

_Noreturn void lock_recursion(const struct lock_meta *m, const void *lock, const char *what)
{
	lock_printf("# BUG: %s on CPU#%d: lock %s (%p) is already held by this CPU\n", what,
	            arch_cpu_id(), meta_name(m), lock);
	arch_dump_stack();
	lock_panic("%s: lock %s (%p) on CPU#%d", what, meta_name(m), lock, arch_cpu_id());
}

/*
 * The wait that counts towards the spin-timeout is the time this waiter was
 * running.  A long gap since its previous check means its vCPU was not run
 * (host overcommit, or the whole VM stopped and resumed: every CPU's clock
 * jumps at once); blaming the holder for it would turn a paused machine into
 * a "deadlock".  A holder whose own vCPU is not run is another matter: the
 * waiter sees no gap, and the timeout is scaled by the overcommit instead
 * (sched.c).
 */
void lock_wait_check(struct lock_wait *w, const struct lock_meta *m, const void *lock)
{
	uint64_t now = arch_now_ns(), waited;
	int owner;

	if (now - w->last_check >= LOCK_WAIT_ABSENT_NS)
		w->absent += now - w->last_check;
	w->last_check = now;
	waited = now - w->start - w->absent;
	if (waited <= lock_spin_timeout_ns)
		return;
	owner = lock_owner_cpu(m);
	lock_printf("# BUG: spin-timeout: CPU#%d waited %llu ms for lock %s (%p), held by CPU#%d "
	            "(not counting %llu ms it did not run)\n",
	            arch_cpu_id(), (unsigned long long)(waited / 1000000u), meta_name(m), lock,
	            owner, (unsigned long long)(w->absent / 1000000u));
	arch_dump_stack();
	if (owner >= 0 && owner != arch_cpu_id())
		arch_dump_cpu_stack(owner);
	lock_panic("spin-timeout on lock %s (%p) held by CPU#%d", meta_name(m), lock, owner);
}

void lock_unlock_check(const struct lock_meta *m, const void *lock)
{
	int owner = lock_owner_cpu(m);

	if (owner < 0) {
		lock_printf("# BUG: CPU#%d unlocks lock %s (%p), which is not held\n",
		            arch_cpu_id(), meta_name(m), lock);
		arch_dump_stack();
		lock_panic("unlock of unheld lock %s (%p)", meta_name(m), lock);
	}
	lock_printf("WARNING: CPU#%d unlocks lock %s (%p) taken by CPU#%d\n", arch_cpu_id(),
	            meta_name(m), lock, owner);
}

static unsigned int bucket_of(uint64_t ns)
{
	unsigned int b = ns ? 64u - (unsigned int)__builtin_clzll(ns) : 0u;

	return b < LOCK_STAT_BUCKETS ? b : LOCK_STAT_BUCKETS - 1;
}

void lock_stat_record(uint64_t *hist, uint64_t *sum, uint64_t *max, uint64_t ns)
{
	hist[bucket_of(ns)]++;
	*sum += ns;
	if (ns > *max)
		*max = ns;
}

void lock_stat_reset(struct lock_stat *s)
{
	uint64_t *p = (uint64_t *)s;

	for (size_t i = 0; i < sizeof(*s) / sizeof(uint64_t); i++)
		p[i] = 0;
}

static void print_hist(const char *name, const char *what, const uint64_t *h)
{
	lock_printf("# lockstat: %s %s_log2_ns", name, what);
	for (unsigned int b = 0; b < LOCK_STAT_BUCKETS; b++)
		if (h[b])
			lock_printf(" %u:%llu", b, (unsigned long long)h[b]);
	lock_printf("\n");
}

/* Bucket b of a histogram counts times in [2^(b-1), 2^b) ns; bucket 0 counts 0 ns. */
void lock_stat_print(const char *name, const struct lock_stat *s)
{
	uint64_t n = s->acquisitions ? s->acquisitions : 1;
	uint64_t c = s->contentions ? s->contentions : 1;

	lock_printf("# lockstat: %s acquisitions=%llu contentions=%llu wait_avg_ns=%llu "
	            "wait_max_ns=%llu hold_avg_ns=%llu hold_max_ns=%llu\n",
	            name, (unsigned long long)s->acquisitions, (unsigned long long)s->contentions,
	            (unsigned long long)(s->wait_ns_sum / c), (unsigned long long)s->wait_ns_max,
	            (unsigned long long)(s->hold_ns_sum / n), (unsigned long long)s->hold_ns_max);
	print_hist(name, "wait", s->wait_hist);
	print_hist(name, "hold", s->hold_hist);
}
