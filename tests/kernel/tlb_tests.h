/*
 * Shared by the `tlb` suite's files (tlb_tests.c, tlb_tests_targets.c,
 * tlb_tests_timing.c), so that every test draws its randomness from `seed`
 * the same way and checks pages the same way.  The functions are in
 * tlb_tests.c.
 */
#ifndef LOCKLAB_TESTS_TLB_TESTS_H
#define LOCKLAB_TESTS_TLB_TESTS_H

#include "kernel.h"
#include "mm.h"
#include "time.h"

/* A wait between CPUs that takes longer than this has gone wrong (host stalls included). */
#define WAIT_NS (5 * NSEC_PER_SEC)

static inline uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

/* A generator state from `seed` and a per-test salt; never 0. */
uint64_t rng_seed(uint64_t salt);

static inline void fill_frame(uint64_t pa, uint64_t v)
{
	uint64_t *p = phys_to_virt(pa);
	for (int i = 0; i < 512; i++)
		p[i] = v;
}

static inline uint64_t peek(uint64_t va)
{
	return *(volatile uint64_t *)va;
}

/* A reusable barrier: each CPU counts its own arrivals. */
struct barrier {
	volatile uint64_t count;
	volatile int abort;
	int n;
};

/* Wait for all n; false (and the barrier aborted) if that takes longer than WAIT_NS. */
bool bar_wait(struct barrier *b, uint64_t *mine);

/*
 * Spin with interrupts off for about `ns`, reading `va` (if not 0) and
 * counting in `bad` the values outside [lo, hi].
 */
void irqoff_spin(uint64_t ns, uint64_t va, uint64_t lo, uint64_t hi, volatile int *bad);

/* `base` scaled down when vCPUs outnumber the host's CPUs, but never below `floor`. */
int scaled(int base, int floor);

#endif
