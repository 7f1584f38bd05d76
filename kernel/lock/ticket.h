/* ticket.h - FIFO ticket spinlock (the default spinlock_t). */
#ifndef LOCKLAB_LOCK_TICKET_H
#define LOCKLAB_LOCK_TICKET_H

#include "lock_debug.h"

/*
 * head is the ticket being served, tail the next ticket to hand out.  head is
 * the low half (offset 0 on little-endian x86) so that a 16-bit access to
 * head and a 32-bit access to the whole word start at the same address.
 */
struct ticket_lock {
	union {
		uint32_t val;
		struct {
			uint16_t head;
			uint16_t tail;
		};
	};
	LOCK_META_FIELD
};

#define TICKET_TAIL_ONE (1u << 16)
#define TICKET_LOCK_INIT(n)                \
	{                                  \
		.val = 0 LOCK_META_INIT(n) \
	}

void ticket_lock_init(struct ticket_lock *l);
void ticket_lock(struct ticket_lock *l);
bool ticket_trylock(struct ticket_lock *l);
void ticket_unlock(struct ticket_lock *l);
bool ticket_is_locked(const struct ticket_lock *l);
bool ticket_is_contended(const struct ticket_lock *l);

#endif
