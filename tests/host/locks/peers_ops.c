/*
 * peers_ops.c - the subjects of the peer benchmark that are not locklab's:
 * Concurrency Kit's spinlocks, rwlock and sequence lock, glibc's spin lock,
 * mutex and rwlock, the atomic floor, and the probes that ask whether a
 * ticket lock's cost in a tight loop is a store-forwarding artefact.
 *
 * Each lock or unlock is an out-of-line function (noinline) so that it costs
 * the same call that a locklab descriptor's does (peers.h).  Per-thread queue
 * nodes live in thread-local storage: a thread holds one lock at a time here.
 */
#define _GNU_SOURCE
#include "peers.h"

#include <ck_rwlock.h>
#include <ck_sequence.h>
#include <ck_spinlock.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>

#define OP __attribute__((noinline))

/* ---- Concurrency Kit spinlocks ------------------------------------------ */

OP static void fas_init(void *l)
{
	ck_spinlock_fas_init(l);
}
OP static void fas_lock(void *l)
{
	ck_spinlock_fas_lock(l);
}
OP static void fas_unlock(void *l)
{
	ck_spinlock_fas_unlock(l);
}
OP static void fas_yield(void *l)
{
	while (!ck_spinlock_fas_trylock(l))
		sched_yield();
}

OP static void cas_init(void *l)
{
	ck_spinlock_cas_init(l);
}
OP static void cas_lock(void *l)
{
	ck_spinlock_cas_lock(l);
}
OP static void cas_unlock(void *l)
{
	ck_spinlock_cas_unlock(l);
}
OP static void cas_yield(void *l)
{
	while (!ck_spinlock_cas_trylock(l))
		sched_yield();
}

OP static void cticket_init(void *l)
{
	ck_spinlock_ticket_init(l);
}
OP static void cticket_lock(void *l)
{
	ck_spinlock_ticket_lock(l);
}
OP static void cticket_unlock(void *l)
{
	ck_spinlock_ticket_unlock(l);
}
OP static void cticket_yield(void *l)
{
	while (!ck_spinlock_ticket_trylock(l))
		sched_yield();
}

/* MCS: the lock is the queue's tail pointer; each thread queues its own node. */
static __thread struct ck_spinlock_mcs mcs_me;

OP static void cmcs_init(void *l)
{
	ck_spinlock_mcs_init(l);
}
OP static void cmcs_lock(void *l)
{
	ck_spinlock_mcs_lock(l, &mcs_me);
}
OP static void cmcs_unlock(void *l)
{
	ck_spinlock_mcs_unlock(l, &mcs_me);
}
OP static void cmcs_yield(void *l)
{
	while (!ck_spinlock_mcs_trylock(l, &mcs_me))
		sched_yield();
}

/*
 * CLH: a thread leaves its node to its successor and takes over its
 * predecessor's, so nodes wander between threads; they and each instance's
 * first (unowned) node come from the heap and are never freed, so no
 * re-initialised instance can reuse a node a thread still owns.
 */
static __thread ck_spinlock_clh_t *clh_me;

OP static void clh_init(void *l)
{
	ck_spinlock_clh_init(l, calloc(1, sizeof(ck_spinlock_clh_t)));
}
OP static void clh_lock(void *l)
{
	if (!clh_me)
		clh_me = calloc(1, sizeof(*clh_me));
	ck_spinlock_clh_lock(l, clh_me);
}
OP static void clh_unlock(void *l)
{
	(void)l;
	ck_spinlock_clh_unlock(&clh_me);
}

/* Anderson: an array of one flag per possible waiter, after the lock in its storage. */
#define ANDERSON_SLOTS 16 /* a power of two, at least the threads that contend */

struct anderson {
	ck_spinlock_anderson_t lock;
	ck_spinlock_anderson_thread_t slots[ANDERSON_SLOTS];
};
_Static_assert(sizeof(struct anderson) <= PEER_STORAGE, "anderson lock exceeds storage");
static __thread ck_spinlock_anderson_thread_t *anderson_slot;

OP static void and_init(void *l)
{
	struct anderson *a = l;

	ck_spinlock_anderson_init(&a->lock, a->slots, ANDERSON_SLOTS);
}
OP static void and_lock(void *l)
{
	ck_spinlock_anderson_lock(&((struct anderson *)l)->lock, &anderson_slot);
}
OP static void and_unlock(void *l)
{
	ck_spinlock_anderson_unlock(&((struct anderson *)l)->lock, anderson_slot);
}

/* ---- Concurrency Kit rwlock and sequence lock -------------------------- */

OP static void crw_init(void *l)
{
	ck_rwlock_init(l);
}
OP static void crw_wlock(void *l)
{
	ck_rwlock_write_lock(l);
}
OP static void crw_wunlock(void *l)
{
	ck_rwlock_write_unlock(l);
}
OP static void crw_wyield(void *l)
{
	while (!ck_rwlock_write_trylock(l))
		sched_yield();
}
OP static void crw_rlock(void *l)
{
	ck_rwlock_read_lock(l);
}
OP static void crw_runlock(void *l)
{
	ck_rwlock_read_unlock(l);
}
OP static void crw_ryield(void *l)
{
	while (!ck_rwlock_read_trylock(l))
		sched_yield();
}

/*
 * ck_sequence leaves writers to serialise themselves; Linux's (and
 * locklab's) seqlock_t is a spinlock plus the sequence, so the writer side
 * here is a fas lock plus the sequence, the same two parts.  A reader's
 * "lock" is one read section: begin, read the protected word, retry.
 */
struct cseq {
	ck_spinlock_fas_t lock;
	ck_sequence_t seq;
	unsigned int data;
};
static __thread unsigned int cseq_sink;

OP static void cseq_init(void *l)
{
	struct cseq *s = l;

	ck_spinlock_fas_init(&s->lock);
	ck_sequence_init(&s->seq);
	s->data = 0;
}
OP static void cseq_wlock(void *l)
{
	struct cseq *s = l;

	ck_spinlock_fas_lock(&s->lock);
	ck_sequence_write_begin(&s->seq);
}
OP static void cseq_wunlock(void *l)
{
	struct cseq *s = l;

	ck_sequence_write_end(&s->seq);
	ck_spinlock_fas_unlock(&s->lock);
}
OP static void cseq_wyield(void *l)
{
	struct cseq *s = l;

	while (!ck_spinlock_fas_trylock(&s->lock))
		sched_yield();
	ck_sequence_write_begin(&s->seq);
}
OP static void cseq_read(void *l)
{
	struct cseq *s = l;
	unsigned int v, d;

	do {
		v = ck_sequence_read_begin(&s->seq);
		d = ck_pr_load_uint(&s->data);
	} while (ck_sequence_read_retry(&s->seq, v));
	cseq_sink += d;
}
OP static void nothing(void *l)
{
	(void)l;
}

/* ---- glibc -------------------------------------------------------------- */

OP static void gspin_init(void *l)
{
	pthread_spin_init(l, PTHREAD_PROCESS_PRIVATE);
}
OP static void gspin_lock(void *l)
{
	pthread_spin_lock(l);
}
OP static void gspin_unlock(void *l)
{
	pthread_spin_unlock(l);
}
OP static void gspin_yield(void *l)
{
	while (pthread_spin_trylock(l))
		sched_yield();
}

OP static void gmutex_init(void *l)
{
	pthread_mutex_init(l, NULL);
}
OP static void gmutex_lock(void *l)
{
	pthread_mutex_lock(l);
}
OP static void gmutex_unlock(void *l)
{
	pthread_mutex_unlock(l);
}

OP static void grw_init(void *l)
{
	pthread_rwlock_init(l, NULL);
}
OP static void grw_wlock(void *l)
{
	pthread_rwlock_wrlock(l);
}
OP static void grw_rlock(void *l)
{
	pthread_rwlock_rdlock(l);
}
OP static void grw_unlock(void *l)
{
	pthread_rwlock_unlock(l);
}

/* ---- the floor ---------------------------------------------------------- */

OP static void word_init(void *l)
{
	*(volatile uint64_t *)l = 0;
}

/* One locked read-modify-write: what any lock's acquisition costs at least. */
OP static void xadd_lock(void *l)
{
	uint32_t one = 1;

	__asm__ __volatile__("lock xaddl %0, %1" : "+r"(one), "+m"(*(uint32_t *)l) : : "memory");
}

/* A test-and-set lock's whole cost without its spin: xchg, then a release store. */
OP static void xchg_lock(void *l)
{
	(void)__atomic_exchange_n((uint32_t *)l, 1, __ATOMIC_ACQUIRE);
}
OP static void store32_zero(void *l)
{
	__atomic_store_n((uint32_t *)l, 0, __ATOMIC_RELEASE);
}

/*
 * ---- store-forwarding probes ---------------------------------------------
 *
 * A ticket lock's unlock stores 16 bits (head); the next lock's `lock xadd`
 * reads and writes the 32-bit word that contains them.  If that narrow store
 * still sitting in the store buffer makes the wider locked access wait
 * longer than a store of its own width would, the probes below show it: the
 * same `lock xadd` followed by a release store of 8, 16 or 32 bits to the
 * same word, or of 16 bits to the word beside it in the same cache line.
 */
OP static void store16_same(void *l)
{
	uint16_t *h = l;

	__atomic_store_n(h, (uint16_t)(__atomic_load_n(h, __ATOMIC_RELAXED) + 1), __ATOMIC_RELEASE);
}
OP static void store8_same(void *l)
{
	uint8_t *h = l;

	__atomic_store_n(h, (uint8_t)(__atomic_load_n(h, __ATOMIC_RELAXED) + 1), __ATOMIC_RELEASE);
}
OP static void store32_same(void *l)
{
	uint32_t *w = l;

	__atomic_store_n(w, __atomic_load_n(w, __ATOMIC_RELAXED) + 1, __ATOMIC_RELEASE);
}
OP static void store16_other(void *l)
{
	uint16_t *h = (uint16_t *)l + 2; /* bytes 4-5: next to, not inside, the xadd's word */

	__atomic_store_n(h, (uint16_t)(__atomic_load_n(h, __ATOMIC_RELAXED) + 1), __ATOMIC_RELEASE);
}

/*
 * Two working ticket locks that differ only in layout.  packed: as locklab's
 * ticket.c, head and tail the halves of one 32-bit word, taken with a 32-bit
 * `lock xadd` and released with a 16-bit store to head.  split: tail and
 * head in two 32-bit words of the same line, so that the release store and
 * the next xadd touch different bytes.  Ordering as in ticket.c: the xadd
 * (acquire) takes a ticket, head is read with acquire until it matches, the
 * release store of head + 1 passes the lock on.
 */
union tpacked {
	uint32_t val;
	struct {
		uint16_t head, tail;
	};
};

OP static void tpacked_lock(void *l)
{
	union tpacked *t = l;
	uint32_t old = __atomic_fetch_add(&t->val, 1u << 16, __ATOMIC_ACQUIRE);
	uint16_t me = (uint16_t)(old >> 16);

	if ((uint16_t)old == me)
		return;
	while (__atomic_load_n(&t->head, __ATOMIC_ACQUIRE) != me)
		__builtin_ia32_pause();
}
OP static void tpacked_unlock(void *l)
{
	union tpacked *t = l;

	__atomic_store_n(&t->head, (uint16_t)(t->head + 1), __ATOMIC_RELEASE);
}

struct tsplit {
	uint32_t tail, head;
};

OP static void tsplit_lock(void *l)
{
	struct tsplit *t = l;
	uint32_t me = __atomic_fetch_add(&t->tail, 1, __ATOMIC_ACQUIRE);

	while (__atomic_load_n(&t->head, __ATOMIC_ACQUIRE) != me)
		__builtin_ia32_pause();
}
OP static void tsplit_unlock(void *l)
{
	struct tsplit *t = l;

	__atomic_store_n(&t->head, t->head + 1, __ATOMIC_RELEASE);
}

/* ---- the table ---------------------------------------------------------- */

#define EXCL true
#define SHARED false

const struct subject peer_subjects[] = {
    {"ck.fas", "ck", fas_init, fas_lock, fas_unlock, EXCL, 'y', fas_yield, NULL, false},
    {"ck.cas", "ck", cas_init, cas_lock, cas_unlock, EXCL, 'y', cas_yield, NULL, false},
    {"ck.ticket", "ck", cticket_init, cticket_lock, cticket_unlock, EXCL, 'y', cticket_yield, NULL,
     false},
    {"ck.mcs", "ck", cmcs_init, cmcs_lock, cmcs_unlock, EXCL, 'y', cmcs_yield, NULL, false},
    {"ck.clh", "ck", clh_init, clh_lock, clh_unlock, EXCL, 0, NULL, NULL, false},
    {"ck.anderson", "ck", and_init, and_lock, and_unlock, EXCL, 0, NULL, NULL, false},
    {"ck.rwlock.write", "ck", crw_init, crw_wlock, crw_wunlock, EXCL, 'y', crw_wyield, NULL, false},
    {"ck.rwlock.read", "ck", crw_init, crw_rlock, crw_runlock, SHARED, 'y', crw_ryield, NULL, true},
    {"ck.sequence.write", "ck", cseq_init, cseq_wlock, cseq_wunlock, EXCL, 'y', cseq_wyield, NULL,
     false},
    {"ck.sequence.read", "ck", cseq_init, cseq_read, nothing, SHARED, 's', NULL, NULL, true},
    {"glibc.spin", "glibc", gspin_init, gspin_lock, gspin_unlock, EXCL, 'y', gspin_yield, NULL,
     false},
    {"glibc.mutex", "glibc", gmutex_init, gmutex_lock, gmutex_unlock, EXCL, 's', NULL, NULL, false},
    {"glibc.rwlock.write", "glibc", grw_init, grw_wlock, grw_unlock, EXCL, 's', NULL, NULL, false},
    {"glibc.rwlock.read", "glibc", grw_init, grw_rlock, grw_unlock, SHARED, 's', NULL, NULL, true},
    {"floor.none", "floor", word_init, nothing, nothing, SHARED, 's', NULL, NULL, false},
    {"floor.xadd", "floor", word_init, xadd_lock, nothing, SHARED, 's', NULL, NULL, false},
    {"floor.xchg_store", "floor", word_init, xchg_lock, store32_zero, SHARED, 's', NULL, NULL,
     false},
    {"probe.xadd_store8", "probe", word_init, xadd_lock, store8_same, SHARED, 's', NULL, NULL,
     false},
    {"probe.xadd_store16", "probe", word_init, xadd_lock, store16_same, SHARED, 's', NULL, NULL,
     false},
    {"probe.xadd_store32", "probe", word_init, xadd_lock, store32_same, SHARED, 's', NULL, NULL,
     false},
    {"probe.xadd_store16_other", "probe", word_init, xadd_lock, store16_other, SHARED, 's', NULL,
     NULL, false},
    {"probe.ticket_packed", "probe", word_init, tpacked_lock, tpacked_unlock, EXCL, 0, NULL, NULL,
     false},
    {"probe.ticket_split", "probe", word_init, tsplit_lock, tsplit_unlock, EXCL, 0, NULL, NULL,
     false},
    /* No lock at all, claiming to exclude: proves the exclusion check fails (--include-broken). */
    {"broken.nolock", "probe", word_init, nothing, nothing, EXCL, 's', NULL, NULL, false},
    {NULL, NULL, NULL, NULL, NULL, false, 0, NULL, NULL, false},
};

/*
 * ---- locklab, while the registry is empty ---------------------------------
 *
 * peers.c takes locklab's locks from the registry.  A tree whose lock files
 * do not register yet gets this list instead (and says so), named as the
 * kernel's bench names them.  The seqlock is no lock type (its readers
 * retry instead of locking), so its two entries here are always timed.
 */
#include "spinlock.h"

#define LL(name, type, lk, unl)                    \
	OP static void ll_##name##_lock(void *l)   \
	{                                          \
		lk((type *)l);                     \
	}                                          \
	OP static void ll_##name##_unlock(void *l) \
	{                                          \
		unl((type *)l);                    \
	}
#define LL_INIT(name, type, fn)                  \
	OP static void ll_##name##_init(void *l) \
	{                                        \
		fn((type *)l);                   \
	}

LL_INIT(tas, struct tas_lock, tas_lock_init)
LL(tas, struct tas_lock, tas_lock, tas_unlock)
LL_INIT(ticket, struct ticket_lock, ticket_lock_init)
LL(ticket, struct ticket_lock, ticket_lock, ticket_unlock)
LL_INIT(pvticket, struct pv_lock, pv_lock_init)
LL(pvticket, struct pv_lock, pv_lock, pv_unlock)
LL_INIT(mcs, struct mcs_lock, mcs_lock_init)
LL(mcs, struct mcs_lock, mcs_spin_lock, mcs_spin_unlock)
LL_INIT(breakable, struct brk_lock, brk_lock_init)
LL(breakable, struct brk_lock, brk_lock, brk_unlock)
LL_INIT(spinlock, spinlock_t, spin_lock_init)
LL(spinlock, spinlock_t, spin_lock, spin_unlock)
LL_INIT(rwlock, rwlock_t, rwlock_init)
LL(rwlock, rwlock_t, write_lock, write_unlock)
LL(rwlock_read, rwlock_t, read_lock, read_unlock)
LL_INIT(seqlock, seqlock_t, seqlock_init)
LL(seqlock, seqlock_t, write_seqlock, write_sequnlock)

static __thread unsigned int ll_seq_sink;

OP static void ll_seqlock_read(void *l)
{
	unsigned int s;

	do
		s = read_seqbegin(l);
	while (read_seqretry(l, s));
	ll_seq_sink += s;
}

#define LLS(n, name, excl, rd)                                                                   \
	{                                                                                        \
		n, "locklab", ll_##name##_init, ll_##name##_lock, ll_##name##_unlock, excl, 'c', \
		    NULL, NULL, rd                                                               \
	}

const struct subject locklab_fallback[] = {
    LLS("locklab.tas", tas, EXCL, false),
    LLS("locklab.ticket", ticket, EXCL, false),
    LLS("locklab.pvticket", pvticket, EXCL, false),
    LLS("locklab.mcs", mcs, EXCL, false),
    LLS("locklab.breakable", breakable, EXCL, false),
    LLS("locklab.spinlock", spinlock, EXCL, false),
    LLS("locklab.rwlock", rwlock, EXCL, false),
    {"locklab.rwlock.read", "locklab", ll_rwlock_init, ll_rwlock_read_lock, ll_rwlock_read_unlock,
     SHARED, 'c', NULL, NULL, true},
    LLS("locklab.seqlock", seqlock, EXCL, false),
    {"locklab.seqlock.read", "locklab", ll_seqlock_init, ll_seqlock_read, nothing, SHARED, 'c',
     NULL, NULL, true},
    {NULL, NULL, NULL, NULL, NULL, false, 0, NULL, NULL, false},
};
