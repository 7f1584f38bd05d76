/*
 * spinlock.c - the registry descriptors of the Linux-named types.
 *
 * raw_spinlock_t and spinlock_t are the ticket lock (ticket.c) behind the
 * API of spinlock.h, which is inline; they are registered as types of their
 * own because that API adds something the suites should see: preemption
 * off around the section, raw_spinlock_t taken here through its irqsave
 * form (the waiter spins with interrupts off, so a handler can never land
 * inside), and spinlock_t's LOCK_STAT figures, which the lock itself
 * protects.  Under preempt=rt a spinlock_t is an rt-mutex: no queue length
 * or statistics are given then, and it must not be taken from a handler.
 */
#include "spinlock.h"
#include "registry.h"

/* CPUs holding or waiting for a ticket lock: tail - head. */
static int ticket_queue(const struct ticket_lock *tl)
{
	uint32_t v = __atomic_load_n(&tl->val, __ATOMIC_RELAXED);

	return (uint16_t)((uint16_t)(v >> 16) - (uint16_t)v);
}

/* ---- raw_spinlock_t, through spin_lock_irqsave: the flags travel with the lock. */

struct raw_irqsave {
	raw_spinlock_t l;
	unsigned long flags; /* written by the holder after taking l, read before releasing it */
};

static void raw_type_init(void *l, const char *name)
{
	struct raw_irqsave *r = l;

	raw_spin_lock_init(&r->l);
	lock_set_name(&r->l.tl, name);
}
static void raw_type_lock(void *l)
{
	struct raw_irqsave *r = l;
	unsigned long flags;

	raw_spin_lock_irqsave(&r->l, flags);
	r->flags = flags;
}
static void raw_type_unlock(void *l)
{
	struct raw_irqsave *r = l;

	raw_spin_unlock_irqrestore(&r->l, r->flags);
}
static bool raw_type_is_locked(const void *l)
{
	return ticket_is_locked(&((const struct raw_irqsave *)l)->l.tl);
}
static bool raw_type_is_contended(const void *l)
{
	return ticket_is_contended(&((const struct raw_irqsave *)l)->l.tl);
}
static int raw_type_queue_len(const void *l)
{
	return ticket_queue(&((const struct raw_irqsave *)l)->l.tl);
}

static const struct lock_type raw_type = {
    .name = "raw_spinlock",
    .origin =
        "Linux raw_spinlock_t: the lock that always spins, kept apart for PREEMPT_RT (2.6.33)",
    .props = LOCK_PROP_FIFO | LOCK_PROP_IRQ_SAFE,
    .max_nesting = 0,
    .size = sizeof(struct raw_irqsave),
    .init = raw_type_init,
    .lock = raw_type_lock,
    .unlock = raw_type_unlock,
    .is_locked = raw_type_is_locked,
    .is_contended = raw_type_is_contended,
    .queue_len = raw_type_queue_len,
};
LOCK_TYPE_REGISTER(raw_type);

/* ---- spinlock_t */

static void spin_type_init(void *l, const char *name)
{
	spinlock_t *s = l;

	spin_lock_init(s);
	lock_set_name(&s->rlock.tl, name);
}
static void spin_type_lock(void *l)
{
	spin_lock(l);
}
static void spin_type_unlock(void *l)
{
	spin_unlock(l);
}
static bool spin_type_trylock(void *l)
{
	return spin_trylock(l);
}
static bool spin_type_is_locked(const void *l)
{
	return spin_is_locked((spinlock_t *)l);
}
static bool spin_type_is_contended(const void *l)
{
	return spin_is_contended((spinlock_t *)l);
}
static int spin_type_queue_len(const void *l)
{
	const spinlock_t *s = l;

	if (SPIN_RT(s))
		return 0;
	return ticket_queue(&s->rlock.tl);
}
static const struct lock_stat *spin_type_stat(const void *l)
{
	return spin_lock_stat((spinlock_t *)l);
}

static const struct lock_type spin_type = {
    .name = "spinlock",
    .origin = "Linux spinlock_t over the ticket lock; an rt-mutex under PREEMPT_RT",
    .props = LOCK_PROP_FIFO,
    .max_nesting = 0,
    .size = sizeof(spinlock_t),
    .init = spin_type_init,
    .lock = spin_type_lock,
    .unlock = spin_type_unlock,
    .trylock = spin_type_trylock,
    .is_locked = spin_type_is_locked,
    .is_contended = spin_type_is_contended,
    .queue_len = spin_type_queue_len,
    .stat = spin_type_stat,
};
LOCK_TYPE_REGISTER(spin_type);
