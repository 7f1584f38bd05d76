/*
 * lock_slowdown.h - a known slowdown of one lock type, built in on request.
 *
 * `make LOCK_SLOWDOWN=TYPE:NS` builds a kernel in which the registered lock
 * type TYPE waits NS nanoseconds more in every acquire, and nothing else
 * changes.  It exists to prove the A/B comparison (make test-compare): a
 * comparison that cannot see a slowdown of known size and place proves
 * nothing.  Without the option none of it is compiled.
 */
#ifndef LOCKLAB_LOCK_SLOWDOWN_H
#define LOCKLAB_LOCK_SLOWDOWN_H

#ifdef LOCK_SLOWDOWN
/*
 * After time_init, before the other CPUs start: look the type up, say so on
 * the console (`# lock slowdown: ...`), or report a `# config error` when no
 * type has that name.
 */
void lock_slowdown_init(void);
#else
static inline void lock_slowdown_init(void)
{
}
#endif

#endif /* LOCKLAB_LOCK_SLOWDOWN_H */
