/* qspinlock.h - queued spinlock: one 32-bit word, a pending bit, per-CPU MCS nodes. */
#ifndef LOCKLAB_LOCK_QSPINLOCK_H
#define LOCKLAB_LOCK_QSPINLOCK_H

#include "lock_debug.h"

/*
 * The word:  bits 0-7 locked byte, bit 8 pending, bits 9-15 free for a
 * variant (pvqspinlock.c counts lock steals there), bits 16-17 the tail's
 * node index (nesting level), bits 18-31 the tail's CPU number + 1
 * (0: no queue).
 */
#define QSPIN_LOCKED 1u /* the locked byte of a held lock */
#define QSPIN_LOCKED_MASK 0xffu
#define QSPIN_PENDING (1u << 8)
#define QSPIN_IDX_SHIFT 16
#define QSPIN_CPU_SHIFT 18
#define QSPIN_TAIL_MASK 0xffff0000u

struct qspinlock {
	union {
		uint32_t val;
		struct {
			uint8_t locked;  /* offset 0 (x86 is little-endian) */
			uint8_t pending; /* bit 0: QSPIN_PENDING */
			uint16_t tail;   /* val >> 16 */
		};
		uint16_t locked_pending; /* offset 0: locked and pending together */
	};
	LOCK_META_FIELD
};

#define QSPINLOCK_INIT(n)                  \
	{                                  \
		.val = 0 LOCK_META_INIT(n) \
	}

/* The MCS queue node; one per CPU and nesting level (task, softirq, hardirq, NMI). */
struct qspin_node {
	struct qspin_node *next; /* successor in the queue */
	uint32_t locked;         /* set by the predecessor: we are the queue head */
	uint32_t count;          /* node 0 only: this CPU's nodes in use */
} __lock_aligned;

/* Slow-path counters (relaxed atomics; the fast path counts nothing). */
struct qspin_stats {
	uint64_t pending;  /* acquisitions through the pending bit */
	uint64_t queued;   /* acquisitions through the MCS queue */
	uint64_t waited;   /* of those, waits on the node behind a predecessor */
	uint64_t nested;   /* queued with node index > 0 (an interrupt queued meanwhile) */
	uint64_t overflow; /* nesting beyond LOCK_MAX_NESTING: trylock spins instead */
};

void qspin_lock_init(struct qspinlock *l);
void qspin_lock(struct qspinlock *l);
bool qspin_trylock(struct qspinlock *l);
void qspin_unlock(struct qspinlock *l);
bool qspin_is_locked(const struct qspinlock *l);
bool qspin_is_contended(const struct qspinlock *l);
void qspin_stats_get(struct qspin_stats *out);
void qspin_stats_reset(void);

/* Tail encoding, shared with pvqspinlock.c. */
static inline uint32_t qspin_encode_tail(int cpu, int idx)
{
	return ((uint32_t)(cpu + 1) << QSPIN_CPU_SHIFT) | ((uint32_t)idx << QSPIN_IDX_SHIFT);
}

static inline int qspin_tail_cpu(uint32_t val)
{
	return (int)(val >> QSPIN_CPU_SHIFT) - 1;
}

static inline int qspin_tail_idx(uint32_t val)
{
	return (int)((val >> QSPIN_IDX_SHIFT) & 3u);
}

/*
 * DELIBERATELY BROKEN variant (qspinlock_broken.c says how): the same slow
 * path compiled with the bug.  No debug hooks; never use it for anything
 * but proving that the exclusion torture can fail.
 */
void qspin_broken_lock(struct qspinlock *l);
void qspin_broken_unlock(struct qspinlock *l);

#endif
