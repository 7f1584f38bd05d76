/*
 * broken.h - DELIBERATELY WRONG locks, for proving that the tests can fail.
 * Never use them for anything else.
 */
#ifndef LOCKLAB_LOCK_BROKEN_H
#define LOCKLAB_LOCK_BROKEN_H

#include "breakable.h"

/* A ticket lock whose ticket is taken with a separate load and store. */
struct broken_lock {
	union {
		uint32_t val;
		struct {
			uint16_t head;
			uint16_t tail;
		};
	};
	uint32_t bailouts; /* waits abandoned after BROKEN_SPIN_BAILOUT_NS */
};

#define BROKEN_LOCK_INIT \
	{                \
		.val = 0 \
	}

void broken_lock_init(struct broken_lock *l);
void broken_lock(struct broken_lock *l);
void broken_unlock(struct broken_lock *l);

/* The 2.6-era break_lock flag protocol, kept to show that it loses requests. */
struct brk_legacy_lock {
	struct ticket_lock tl; /* its ticket word only, without the debug hooks */
	uint32_t break_lock;   /* set by spinners, cleared by each new holder */
	struct brk_audit audit;
};

void brk_legacy_init(struct brk_legacy_lock *l);
void brk_legacy_lock(struct brk_legacy_lock *l);
void brk_legacy_unlock(struct brk_legacy_lock *l);
bool brk_legacy_need_lockbreak(struct brk_legacy_lock *l);
bool brk_legacy_cond_resched_lock(struct brk_legacy_lock *l);
uint32_t brk_legacy_lost_requests(const struct brk_legacy_lock *l);

#endif
