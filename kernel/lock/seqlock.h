/* seqlock.h - sequence counter + writer spinlock; readers retry. */
#ifndef LOCKLAB_LOCK_SEQLOCK_H
#define LOCKLAB_LOCK_SEQLOCK_H

#include "ticket.h"

typedef struct seqlock {
	uint32_t sequence;       /* odd while a writer is inside */
	struct ticket_lock lock; /* serialises writers */
} seqlock_t;

#define SEQLOCK_INIT(n)                                    \
	{                                                  \
		.sequence = 0, .lock = TICKET_LOCK_INIT(n) \
	}
#define DEFINE_SEQLOCK(x) seqlock_t x = SEQLOCK_INIT(#x)

void seqlock_init(seqlock_t *sl);
unsigned int read_seqbegin(const seqlock_t *sl);
bool read_seqretry(const seqlock_t *sl, unsigned int start);
void write_seqlock(seqlock_t *sl);
void write_sequnlock(seqlock_t *sl);

#endif
