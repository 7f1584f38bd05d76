/*
 * qspinlock_broken.c - a DELIBERATELY BROKEN queued spinlock, so that the
 * exclusion torture has a qspinlock to catch (like the broken ticket lock
 * in broken.c).  Never use it for anything else.
 *
 * The bug: the tail is published before the node is initialised.  The
 * queued spinlock must reset its node's locked flag before the exchange
 * that makes the node findable (qspinlock.c, "memory ordering"); this copy
 * of the slow path (qspinlock.c, compiled with `broken` set) never resets
 * it.  A node that was once made queue head keeps locked = 1, so the next
 * time its CPU queues behind somebody it does not wait for the grant: it
 * is a second queue head at once.  Two heads spin on the word together,
 * and the one whose tail is not the word's takes the lock with a plain
 * store of the locked byte when it sees it clear - as does the other.  Both
 * are inside.
 *
 * So that two CPUs reach the queue (where the bug is) as often as three
 * would, this copy has no pending bit: every contender queues.  A few
 * pauses between a head seeing the lock free and taking it stand for the
 * interrupt that would widen the window in real life, so a short torture
 * run on two emulated CPUs catches it.  It carries no debug hooks: with
 * two holders, LOCK_DEBUG's owner checks would panic before the torture
 * could count anything.  Nothing waits on anything that the bug can lose
 * (grants only come early, never late), so it does not hang.
 */
#include "qspinlock.h"
#include "registry.h"

static void qspin_broken_type_init(void *l, const char *name)
{
	(void)name;
	qspin_lock_init(l);
}
static void qspin_broken_type_lock(void *l)
{
	qspin_broken_lock(l);
}
static void qspin_broken_type_unlock(void *l)
{
	qspin_broken_unlock(l);
}

static const struct lock_type qspin_broken_type = {
    .name = "qspinlock_broken",
    .origin = "qspinlock.c with its tail published before its node is initialised",
    .props = LOCK_PROP_BROKEN | LOCK_PROP_PERCPU_NODE,
    .max_nesting = 0,
    .size = sizeof(struct qspinlock),
    .init = qspin_broken_type_init,
    .lock = qspin_broken_type_lock,
    .unlock = qspin_broken_type_unlock,
};
LOCK_TYPE_REGISTER(qspin_broken_type);
