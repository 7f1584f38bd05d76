/*
 * Latency histograms with one row of counts per CPU, printed as the
 * contract's hist block (which host scripts turn into cyclictest-format
 * histogram files).  Recording is lock-free: each CPU writes only its own
 * row and statistics, each on cache lines of its own.
 */
#ifndef LOCKLAB_HIST_H
#define LOCKLAB_HIST_H

#include "types.h"

enum hist_scale {
	HIST_LINEAR, /* bucket i holds [i*width, (i+1)*width) */
	HIST_LOG2,   /* bucket 0 holds 0, bucket i>0 holds [2^(i-1), 2^i) */
};

struct hist_cpu_stats {
	uint64_t samples, sum, min, max, overflows;
} __cacheline_aligned;

struct hist {
	const char *path; /* e.g. "smp.ipi_roundtrip" */
	const char *unit; /* "ns" or "cycles" */
	enum hist_scale scale;
	uint64_t width; /* HIST_LINEAR bucket width */
	unsigned nbuckets;
	int ncpus;                    /* rows: CPUs 0..ncpus-1 */
	unsigned stride;              /* counts per row, padded to a cache line */
	uint32_t *counts;             /* [ncpus][stride] */
	struct hist_cpu_stats *stats; /* [ncpus] */
	size_t capacity;              /* bytes allocated, reused by a later hist_init */
};

/*
 * Set up (or reset) `h` for the CPUs online now.  Storage comes from the
 * boot allocator and is kept by `h`: give each histogram a static struct
 * and call hist_init on it again to reuse the memory.
 */
void hist_init(struct hist *h, const char *path, const char *unit, enum hist_scale scale,
               uint64_t width, unsigned nbuckets);
void hist_reset(struct hist *h);
/* Values past the last bucket count as overflows (and in min/avg/max). */
void hist_record(struct hist *h, int cpu, uint64_t value);

uint64_t hist_samples(const struct hist *h);
/* The start of the bucket holding the p-th permille sample (all CPUs together). */
uint64_t hist_percentile(const struct hist *h, unsigned permille);
uint64_t hist_max(const struct hist *h);

/*
 * The block, with one count column per CPU:
 *   # hist-begin: <path> unit=<unit> bucket=<width> cpus=<n>
 *   # <bucket start> <count cpu0> <count cpu1> ...
 *   # hist-end: <path> samples=<n> min=<v> avg=<v> max=<v> overflows=<n>
 * HIST_LOG2 prints bucket=log2.  Only non-empty buckets are printed.
 */
void hist_print(const struct hist *h);

#endif
