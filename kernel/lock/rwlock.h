/* rwlock.h - writer-fair reader-writer spinlock. */
#ifndef LOCKLAB_LOCK_RWLOCK_H
#define LOCKLAB_LOCK_RWLOCK_H

#include "ticket.h"

#define RW_WLOCKED 0x0ffu  /* low byte: a writer holds the lock */
#define RW_WWAITING 0x100u /* a writer waits for the readers to drain */
#define RW_WMASK 0x1ffu
#define RW_READER 0x200u /* one reader */

typedef struct rwlock {
	union {
		uint32_t cnts;   /* readers * RW_READER | RW_WWAITING | RW_WLOCKED */
		uint8_t wlocked; /* offset 0: the RW_WLOCKED byte */
	};
	struct ticket_lock wait; /* FIFO queue of the slow paths */
	LOCK_META_FIELD          /* writer side */
} rwlock_t;

#define RWLOCK_INIT(n)                                                               \
	{                                                                            \
		.cnts = 0, .wait = TICKET_LOCK_INIT("rwlock.wait") LOCK_META_INIT(n) \
	}
#define DEFINE_RWLOCK(x) rwlock_t x = RWLOCK_INIT(#x)

void rwlock_init(rwlock_t *l);
void read_lock(rwlock_t *l);
bool read_trylock(rwlock_t *l);
void read_unlock(rwlock_t *l);
void write_lock(rwlock_t *l);
bool write_trylock(rwlock_t *l);
void write_unlock(rwlock_t *l);
bool rwlock_writer_waiting(const rwlock_t *l);

#endif
