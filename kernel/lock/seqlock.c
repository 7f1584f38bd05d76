/*
 * seqlock.c - sequence lock: writers never wait for readers, readers retry.
 *
 * Algorithm.  Writers serialise on a ticket lock and bump a sequence counter
 * before and after their update, so the counter is odd exactly while an
 * update is in progress.  A reader notes an even counter value
 * (read_seqbegin, which waits out an odd one), reads the data, and then asks
 * read_seqretry whether the counter still has that value; if not, a writer
 * was active meanwhile and the reader must discard what it read and start
 * over.  Readers write nothing shared, so any number of them scale; the
 * price is that they may retry, and that the data they read racily must not
 * be trusted (no pointers followed) before read_seqretry has said "valid".
 *
 * Memory ordering.
 *  writer: sequence = s + 1 (odd); release fence; data stores;
 *          sequence = s + 2 with a release store.
 *  reader: s = sequence (acquire); data loads; acquire fence; re-load sequence.
 * If a reader's data load sees any store of an update, the release fence
 * (ordered after "odd") and the reader's acquire fence (ordered before the
 * re-load) pair up, so the re-load sees the odd value or later: retry.  If
 * the first load saw the final even value of an update, its release store
 * pairs with the acquire load, so all that update's data is visible.  On x86
 * both fences are compiler barriers only.  Data shared with readers must be
 * accessed with (relaxed) atomic loads and stores, which is what the C11
 * model requires of racing accesses and what keeps ThreadSanitizer quiet.
 *
 * Fairness: writers FIFO among themselves; readers can starve under a
 * continuous stream of writers (they retry), never the other way round.
 */
#include "seqlock.h"

void seqlock_init(seqlock_t *sl)
{
	*sl = (seqlock_t)SEQLOCK_INIT(NULL);
}

unsigned int read_seqbegin(const seqlock_t *sl)
{
	uint32_t s = __atomic_load_n(&sl->sequence, __ATOMIC_ACQUIRE);
	struct lock_wait w;

	if (lock_likely(!(s & 1)))
		return s;
	lock_wait_begin(&w);
	while ((s = __atomic_load_n(&sl->sequence, __ATOMIC_ACQUIRE)) & 1) {
		cpu_relax();
		lock_wait_spin(&w, LOCK_META(&sl->lock), sl);
	}
	return s;
}

bool read_seqretry(const seqlock_t *sl, unsigned int start)
{
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	return __atomic_load_n(&sl->sequence, __ATOMIC_RELAXED) != start;
}

void write_seqlock(seqlock_t *sl)
{
	uint32_t s;

	ticket_lock(&sl->lock);
	s = __atomic_load_n(&sl->sequence, __ATOMIC_RELAXED);
	__atomic_store_n(&sl->sequence, s + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
}

void write_sequnlock(seqlock_t *sl)
{
	uint32_t s = __atomic_load_n(&sl->sequence, __ATOMIC_RELAXED);

	__atomic_store_n(&sl->sequence, s + 1, __ATOMIC_RELEASE);
	ticket_unlock(&sl->lock);
}
