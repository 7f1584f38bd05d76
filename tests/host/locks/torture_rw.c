/*
 * The torture tests of the locks that let readers in together: rwlock and
 * seqlock.  Exclusion alone does not cover them; these check that readers
 * never see a writer's half-done update, and that a waiting writer is not
 * starved by readers that come after it.
 */
#define _GNU_SOURCE
#include "torture.h"

#include <stdio.h>
#include <string.h>

/* ---- rwlock ------------------------------------------------------------- */

rwlock_t RW = RWLOCK_INIT("rw");
static struct {
	uint64_t a, b; /* the writer keeps a == b; plain accesses */
	uint32_t writer_in, readers_in;
	uint64_t fail;
} R;

static void rw_worker(struct thr *t)
{
	while (running()) {
		if (rnd(t) % 8 == 0) {
			write_lock(&RW);
			if (__atomic_exchange_n(&R.writer_in, 1, __ATOMIC_RELAXED) ||
			    __atomic_load_n(&R.readers_in, __ATOMIC_RELAXED))
				__atomic_fetch_add(&R.fail, 1, __ATOMIC_RELAXED);
			R.a++;
			delay(rnd(t) & 7);
			R.b = R.a;
			__atomic_store_n(&R.writer_in, 0, __ATOMIC_RELAXED);
			write_unlock(&RW);
			t->writes++;
		} else {
			uint64_t x, y;

			read_lock(&RW);
			__atomic_fetch_add(&R.readers_in, 1, __ATOMIC_RELAXED);
			if (__atomic_load_n(&R.writer_in, __ATOMIC_RELAXED))
				__atomic_fetch_add(&R.fail, 1, __ATOMIC_RELAXED);
			x = R.a;
			delay(rnd(t) & 7);
			y = R.b;
			if (x != y)
				__atomic_fetch_add(&R.fail, 1, __ATOMIC_RELAXED);
			__atomic_fetch_sub(&R.readers_in, 1, __ATOMIC_RELAXED);
			read_unlock(&RW);
			t->reads++;
		}
		delay(rnd(t) & 15);
	}
}

struct result t_rwlock(void)
{
	struct totals w, r;

	memset(&R, 0, sizeof(R));
	run_threads(nthreads, rw_worker, run_ms);
	w = SUM(writes);
	r = SUM(reads);
	if (R.a != w.total)
		R.fail++;
	torture_line("rw_lock", "Writes", w, R.fail);
	torture_line("rw_lock", "Reads", r, R.fail);
	if (R.fail)
		return verdict(FAIL, "%llu failures", (unsigned long long)R.fail);
	if (!w.total || !r.total)
		return verdict(FAIL, "no writes or no reads");
	return passed();
}

/* A waiting writer must block new readers. */
static rwlock_t RWF = RWLOCK_INIT("rw.fair");
static int fair_phase, fair_order, fair_w_at, fair_r2_at;

static void fair_worker(struct thr *t)
{
	if (t->id == 0) { /* first reader */
		read_lock(&RWF);
		__atomic_store_n(&fair_phase, 1, __ATOMIC_RELEASE);
		while (__atomic_load_n(&fair_phase, __ATOMIC_ACQUIRE) != 3)
			sleep_ms(1);
		read_unlock(&RWF);
	} else if (t->id == 1) { /* writer */
		while (__atomic_load_n(&fair_phase, __ATOMIC_ACQUIRE) < 1)
			sleep_ms(1);
		write_lock(&RWF);
		__atomic_store_n(&fair_w_at, __atomic_add_fetch(&fair_order, 1, __ATOMIC_SEQ_CST),
		                 __ATOMIC_RELAXED);
		write_unlock(&RWF);
	} else if (t->id == 2) { /* late reader */
		while (__atomic_load_n(&fair_phase, __ATOMIC_ACQUIRE) < 2)
			sleep_ms(1);
		read_lock(&RWF);
		__atomic_store_n(&fair_r2_at, __atomic_add_fetch(&fair_order, 1, __ATOMIC_SEQ_CST),
		                 __ATOMIC_RELAXED);
		read_unlock(&RWF);
	}
}

static void *fair_thread(void *p)
{
	struct thr *t = p;

	arch_host_set_cpu(t->id);
	t->fn(t);
	return NULL;
}

struct result t_rwlock_fair(void)
{
	bool waiting = false, try_failed;
	int i;

	rwlock_init(&RWF);
	fair_phase = fair_order = fair_w_at = fair_r2_at = 0;
	arch_host_set_num_cpus(4);
	for (i = 0; i < 3; i++) {
		memset(&thr[i], 0, sizeof(thr[i]));
		thr[i].id = i;
		thr[i].fn = fair_worker;
		pthread_create(&thr[i].pt, NULL, fair_thread, &thr[i]);
	}
	arch_host_set_cpu(3);
	for (i = 0; i < 2000 && !waiting; i++) {
		sleep_ms(1);
		waiting = __atomic_load_n(&fair_phase, __ATOMIC_ACQUIRE) >= 1 &&
		          rwlock_writer_waiting(&RWF);
	}
	try_failed = !read_trylock(&RWF);
	if (!try_failed)
		read_unlock(&RWF);
	__atomic_store_n(&fair_phase, 2, __ATOMIC_RELEASE); /* start the late reader */
	sleep_ms(20);
	__atomic_store_n(&fair_phase, 3, __ATOMIC_RELEASE); /* first reader leaves */
	for (i = 0; i < 3; i++)
		pthread_join(thr[i].pt, NULL);
	arch_host_set_cpu(0);
	printf("# rw_lock-fair: writer_waiting=%d new_reader_refused=%d writer_order=%d "
	       "late_reader_order=%d\n",
	       waiting, try_failed, fair_w_at, fair_r2_at);
	if (!waiting)
		return verdict(FAIL, "writer never seen waiting");
	if (!try_failed)
		return verdict(FAIL, "read_trylock succeeded past a waiting writer");
	if (fair_w_at > fair_r2_at)
		return verdict(FAIL, "late reader overtook the waiting writer");
	return passed();
}

/* ---- seqlock ------------------------------------------------------------ */

seqlock_t SQ = SEQLOCK_INIT("seq");
uint64_t sq_a;
static uint64_t sq_b, sq_fail;

static void seq_worker(struct thr *t)
{
	while (running()) {
		if ((t->id == 0 && (t->ops++ & 1)) || rnd(t) % 16 == 0) {
			uint64_t v;

			write_seqlock(&SQ);
			v = __atomic_load_n(&sq_a, __ATOMIC_RELAXED) + 1;
			__atomic_store_n(&sq_a, v, __ATOMIC_RELAXED);
			delay(rnd(t) & 7);
			__atomic_store_n(&sq_b, v, __ATOMIC_RELAXED);
			write_sequnlock(&SQ);
			t->writes++;
			delay(rnd(t) & 63);
		} else {
			uint64_t x, y;
			unsigned int s;

			for (;;) {
				s = read_seqbegin(&SQ);
				x = __atomic_load_n(&sq_a, __ATOMIC_RELAXED);
				delay(rnd(t) & 7);
				y = __atomic_load_n(&sq_b, __ATOMIC_RELAXED);
				if (!read_seqretry(&SQ, s))
					break;
				t->retries++;
			}
			if (x != y)
				__atomic_fetch_add(&sq_fail, 1, __ATOMIC_RELAXED);
			t->reads++;
			delay(rnd(t) & 15);
		}
	}
}

struct result t_seqlock(void)
{
	struct totals w, r;

	sq_a = sq_b = sq_fail = 0;
	run_threads(nthreads, seq_worker, run_ms);
	w = SUM(writes);
	r = SUM(reads);
	if (sq_a != w.total)
		sq_fail++;
	torture_line("seqlock", "Writes", w, sq_fail);
	torture_line("seqlock", "Reads", r, sq_fail);
	printf("# seqlock: read retries=%llu\n", (unsigned long long)SUM(retries).total);
	if (sq_fail)
		return verdict(FAIL, "%llu torn reads or lost writes", (unsigned long long)sq_fail);
	if (!w.total || !r.total)
		return verdict(FAIL, "no writes or no reads");
	return passed();
}
