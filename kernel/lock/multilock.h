/* multilock.h - take many spinlocks at once without deadlock. */
#ifndef LOCKLAB_LOCK_MULTILOCK_H
#define LOCKLAB_LOCK_MULTILOCK_H

#include "spinlock.h"

/* Sorts @locks by address in place; duplicates are taken once. */
void multi_lock_sorted(spinlock_t **locks, int n);
void multi_unlock_sorted(spinlock_t **locks, int n); /* @locks as sorted above */

/* Takes @global, then @locks in the given order (no duplicates), then drops @global. */
void multi_lock_global(spinlock_t *global, spinlock_t **locks, int n);
void multi_unlock_global(spinlock_t **locks, int n);

#endif
