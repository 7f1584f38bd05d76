/*
 * multilock.c - taking N spinlocks at once, two deadlock-free ways (the 2008
 * mm_lock() argument between Arcangeli and Torvalds).
 *
 * Sorted (mm_lock): sort the array of lock pointers by address and take
 * them in that order, skipping duplicates (a lock listed twice must be taken
 * once: it is not recursive).  Deadlock needs a cycle of CPUs each holding a
 * lock and waiting for one held by the next; along such a cycle every CPU
 * waits for a lock at a higher address than all it holds, and addresses
 * cannot increase all the way around a cycle.  Cost: an O(n log n) sort
 * (heapsort here: in place, no recursion, no allocation) and n acquisitions,
 * with no serialisation between callers whose sets are disjoint.  Callers
 * holding any of these locks in another order break the argument.
 *
 * Global-lock-first (Torvalds): take one upper-level lock, then the N locks
 * in any order, then drop the upper lock again.  Everybody who takes more
 * than one of these locks at a time does so holding the global lock, so at
 * most one CPU is ever collecting locks; the others holding any of them hold
 * just one, or have finished collecting, and wait for nothing, so they
 * release.  No cycle.  Dropping the global lock once all are taken lets the
 * next collector start, while disjoint holders keep their locks.  Cost: no
 * sort, but every multi-locker serialises on one line while collecting.
 * The array must not contain duplicates (LOCK_DEBUG catches one as
 * recursion).  The two protocols must not be mixed on the same locks.
 *
 * Memory ordering is that of the individual locks.
 */
#include "multilock.h"

static inline bool before(const spinlock_t *a, const spinlock_t *b)
{
	return (uintptr_t)a < (uintptr_t)b;
}

static void sift_down(spinlock_t **a, int root, int n)
{
	for (;;) {
		int child = 2 * root + 1;
		spinlock_t *t;

		if (child >= n)
			return;
		if (child + 1 < n && before(a[child], a[child + 1]))
			child++;
		if (!before(a[root], a[child]))
			return;
		t = a[root];
		a[root] = a[child];
		a[child] = t;
		root = child;
	}
}

static void sort_locks(spinlock_t **a, int n)
{
	for (int i = n / 2 - 1; i >= 0; i--)
		sift_down(a, i, n);
	for (int end = n - 1; end > 0; end--) {
		spinlock_t *t = a[0];

		a[0] = a[end];
		a[end] = t;
		sift_down(a, 0, end);
	}
}

void multi_lock_sorted(spinlock_t **locks, int n)
{
	sort_locks(locks, n);
	for (int i = 0; i < n; i++)
		if (i == 0 || locks[i] != locks[i - 1])
			spin_lock(locks[i]);
}

void multi_unlock_sorted(spinlock_t **locks, int n)
{
	for (int i = n - 1; i >= 0; i--)
		if (i == 0 || locks[i] != locks[i - 1])
			spin_unlock(locks[i]);
}

void multi_lock_global(spinlock_t *global, spinlock_t **locks, int n)
{
	spin_lock(global);
	for (int i = 0; i < n; i++)
		spin_lock(locks[i]);
	spin_unlock(global);
}

void multi_unlock_global(spinlock_t **locks, int n)
{
	for (int i = n - 1; i >= 0; i--)
		spin_unlock(locks[i]);
}
