/* tas.h - test-and-test-and-set lock with bounded exponential backoff. */
#ifndef LOCKLAB_LOCK_TAS_H
#define LOCKLAB_LOCK_TAS_H

#include "lock_debug.h"

struct tas_lock {
	uint32_t locked;
	LOCK_META_FIELD
};

#define TAS_LOCK_INIT(n)                      \
	{                                     \
		.locked = 0 LOCK_META_INIT(n) \
	}

void tas_lock_init(struct tas_lock *l);
void tas_lock(struct tas_lock *l);
bool tas_trylock(struct tas_lock *l);
void tas_unlock(struct tas_lock *l);
bool tas_is_locked(const struct tas_lock *l);

#endif
