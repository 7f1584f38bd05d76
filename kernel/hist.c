/*
 * Per-CPU latency histograms and the contract's hist block (see hist.h).
 */
#include "hist.h"
#include "cmdline.h"
#include "cpu.h"
#include "kernel.h"
#include "mm.h"
#include "smp.h"

/* kprintf formats into a 512-byte buffer: long rows go out in pieces. */
#define LINE_CHUNK 400

static unsigned bucket_of(const struct hist *h, uint64_t v)
{
	if (h->scale == HIST_LOG2)
		return v == 0 ? 0 : 64 - (unsigned)__builtin_clzll(v);
	return (unsigned)(v / h->width < h->nbuckets ? v / h->width : h->nbuckets);
}

static uint64_t bucket_start(const struct hist *h, unsigned b)
{
	if (h->scale == HIST_LOG2)
		return b == 0 ? 0 : 1ull << (b - 1);
	return (uint64_t)b * h->width;
}

void hist_reset(struct hist *h)
{
	memset(h->counts, 0, (size_t)h->ncpus * h->stride * sizeof(uint32_t));
	for (int c = 0; c < h->ncpus; c++)
		h->stats[c] = (struct hist_cpu_stats){.min = UINT64_MAX};
}

void hist_init(struct hist *h, const char *path, const char *unit, enum hist_scale scale,
               uint64_t width, unsigned nbuckets)
{
	int n = ncpus;
	unsigned per_line = CACHE_LINE / sizeof(uint32_t);

	if (scale == HIST_LOG2 && nbuckets > 65)
		nbuckets = 65;
	unsigned stride = (nbuckets + per_line - 1) / per_line * per_line;
	size_t counts = ALIGN_UP((size_t)n * stride * sizeof(uint32_t), CACHE_LINE);
	size_t need = counts + (size_t)n * sizeof(struct hist_cpu_stats);

	if (need > h->capacity) {
		char *mem = early_alloc(need, CACHE_LINE);
		h->counts = (uint32_t *)mem;
		h->stats = (struct hist_cpu_stats *)(mem + counts);
		h->capacity = need;
	} else {
		h->stats = (struct hist_cpu_stats *)((char *)h->counts + counts);
	}
	h->path = path;
	h->unit = unit;
	h->scale = scale;
	h->width = width ? width : 1;
	h->nbuckets = nbuckets;
	h->ncpus = n;
	h->stride = stride;
	hist_reset(h);
}

void hist_record(struct hist *h, int cpu, uint64_t v)
{
	struct hist_cpu_stats *s = &h->stats[cpu];
	unsigned b = bucket_of(h, v);

	if (b >= h->nbuckets)
		s->overflows++;
	else
		h->counts[(size_t)cpu * h->stride + b]++;
	s->samples++;
	s->sum += v;
	if (v < s->min)
		s->min = v;
	if (v > s->max)
		s->max = v;
}

uint64_t hist_samples(const struct hist *h)
{
	uint64_t n = 0;
	for (int c = 0; c < h->ncpus; c++)
		n += h->stats[c].samples;
	return n;
}

uint64_t hist_max(const struct hist *h)
{
	uint64_t m = 0;
	for (int c = 0; c < h->ncpus; c++)
		if (h->stats[c].samples && h->stats[c].max > m)
			m = h->stats[c].max;
	return m;
}

uint64_t hist_percentile(const struct hist *h, unsigned permille)
{
	uint64_t total = hist_samples(h), seen = 0;
	uint64_t want = (total * permille + 999) / 1000;

	if (want == 0)
		want = 1;
	for (unsigned b = 0; b < h->nbuckets; b++) {
		for (int c = 0; c < h->ncpus; c++)
			seen += h->counts[(size_t)c * h->stride + b];
		if (seen >= want)
			return bucket_start(h, b);
	}
	return hist_max(h); /* in the overflows */
}

void hist_print(const struct hist *h)
{
	char line[2048];
	uint64_t samples = 0, sum = 0, min = UINT64_MAX, max = 0, over = 0;

	/* clock=: which time the samples are in (docs/clock.md), like every metric line. */
	if (h->scale == HIST_LOG2)
		kprintf("# hist-begin: %s unit=%s bucket=log2 cpus=%d clock=%s\n", h->path, h->unit,
		        h->ncpus, clock_name(config.clock));
	else
		kprintf("# hist-begin: %s unit=%s bucket=%lu cpus=%d clock=%s\n", h->path, h->unit,
		        h->width, h->ncpus, clock_name(config.clock));
	for (unsigned b = 0; b < h->nbuckets; b++) {
		bool any = false;
		for (int c = 0; c < h->ncpus && !any; c++)
			any = h->counts[(size_t)c * h->stride + b] != 0;
		if (!any)
			continue;
		size_t used = (size_t)snprintf(line, sizeof(line), "# %lu", bucket_start(h, b));
		for (int c = 0; c < h->ncpus && used < sizeof(line) - 12; c++)
			used += (size_t)snprintf(line + used, sizeof(line) - used, " %u",
			                         h->counts[(size_t)c * h->stride + b]);
		for (size_t off = 0; off < used; off += LINE_CHUNK)
			kprintf("%.*s%s", LINE_CHUNK, line + off,
			        off + LINE_CHUNK >= used ? "\n" : "");
	}
	for (int c = 0; c < h->ncpus; c++) {
		const struct hist_cpu_stats *s = &h->stats[c];
		samples += s->samples;
		sum += s->sum;
		over += s->overflows;
		if (s->samples && s->min < min)
			min = s->min;
		if (s->samples && s->max > max)
			max = s->max;
	}
	kprintf("# hist-end: %s samples=%lu min=%lu avg=%lu max=%lu overflows=%lu\n", h->path,
	        samples, samples ? min : 0, samples ? sum / samples : 0, max, over);
}
