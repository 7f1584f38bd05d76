/* mcs.h - MCS queue lock: each waiter spins on its own node. */
#ifndef LOCKLAB_LOCK_MCS_H
#define LOCKLAB_LOCK_MCS_H

#include "lock_debug.h"

struct mcs_lock;

struct mcs_node {
	struct mcs_node *next;  /* successor in the queue */
	uint32_t locked;        /* set by the predecessor: the lock is ours */
	struct mcs_lock *owner; /* per-CPU nodes: the lock this node is used for */
} __lock_aligned;

struct mcs_lock {
	struct mcs_node *tail; /* last node in the queue; NULL: free */
	LOCK_META_FIELD
};

#define MCS_LOCK_INIT(n)                       \
	{                                      \
		.tail = NULL LOCK_META_INIT(n) \
	}

void mcs_lock_init(struct mcs_lock *l);

/* Caller-provided node, which must stay put until mcs_unlock() returns. */
void mcs_lock(struct mcs_lock *l, struct mcs_node *node);
bool mcs_trylock(struct mcs_lock *l, struct mcs_node *node);
void mcs_unlock(struct mcs_lock *l, struct mcs_node *node);

/*
 * The same with this CPU's nodes (LOCK_MAX_NESTING at once, any release order);
 * the caller must stay on this CPU until the unlock (preemption off).
 */
void mcs_spin_lock(struct mcs_lock *l);
bool mcs_spin_trylock(struct mcs_lock *l);
void mcs_spin_unlock(struct mcs_lock *l);

bool mcs_is_locked(const struct mcs_lock *l);

#endif
