/*
 * Measuring the TSC and the LAPIC timer against a clock of known rate: the
 * PIT (channel 2, gated through port 0x61) or, without one, the ACPI PM
 * timer.
 *
 * An emulated CPU can be descheduled by the host at any moment, for
 * milliseconds.  So a window is never timed by waiting for an edge (a late
 * wake-up would stretch it unseen); each end is a point sample instead: the
 * reference counter read between two TSC reads, dated at the midpoint.  A
 * stall between samples does not matter, a stall inside one widens its
 * bracket: the narrowest of a few samples is kept, and a window whose
 * brackets are still wide is thrown away.  The median of several windows
 * is the result.
 *
 * One exception: the x2APIC current-count register under clock=virtual
 * (QEMU's -icount) cannot be read at all.  QEMU serves RDMSR in the middle
 * of a translation block, where its instruction-counted clock is not
 * exact, and stops the whole machine with "Bad icount read" (an xAPIC MMIO
 * read is replayed at the end of a block instead, and works).  There the
 * LAPIC timer is timed by its interrupt: with virtual time a late edge
 * cannot happen, the host does not exist for the guest's clock.
 */
#include "acpi.h"
#include "apic.h"
#include "apic/internal.h"
#include "cmdline.h"
#include "irq.h"
#include "kernel.h"
#include "time.h"
#include "trap.h"
#include "x86.h"

#define PIT_HZ 1193182ull
#define PM_TIMER_HZ 3579545ull
#define CALIBRATION_MS 5
#define CALIBRATION_WINDOWS 3
/* Disturbed windows are retried, up to this many in all. */
#define CALIBRATION_ATTEMPTS 12
#define SAMPLES_PER_END 3
/* Both brackets together may cover at most 1/this of the window. */
#define MAX_BRACKET_SHARE 500
/* A source that has not counted out a window in this many TSC cycles is broken. */
#define GIVE_UP_CYCLES 400000000ull

#define PORT_PIT_CH2 0x42
#define PORT_PIT_MODE 0x43
#define PORT_SPEAKER 0x61
#define SPEAKER_GATE2 0x01
#define SPEAKER_DATA 0x02
#define PIT_READBACK_CH2 0xc8 /* latch count and status of channel 2 */
#define PIT_STATUS_OUT 0x80

enum window_result { WINDOW_OK, WINDOW_DISTURBED, WINDOW_NO_SOURCE };

struct refclock {
	const char *name;
	uint64_t hz;
	bool (*start)(void);
	/* Ticks since start, increasing; false if the count is no longer valid. */
	bool (*read)(uint64_t *ticks);
};

/* PIT channel 2, mode 0 from 0xffff: 55 ms of counting, then OUT2 rises and stays up. */
static bool pit_start(void)
{
	uint8_t spk = inb(PORT_SPEAKER) & ~SPEAKER_DATA;

	outb(PORT_SPEAKER, spk | SPEAKER_GATE2);
	outb(PORT_PIT_MODE, 0xb0); /* channel 2, lo/hi byte, mode 0, binary */
	outb(PORT_PIT_CH2, 0xff);
	outb(PORT_PIT_CH2, 0xff);
	return true;
}

static bool pit_read(uint64_t *ticks)
{
	outb(PORT_PIT_MODE, PIT_READBACK_CH2);
	uint8_t status = inb(PORT_PIT_CH2);
	uint8_t lo = inb(PORT_PIT_CH2), hi = inb(PORT_PIT_CH2);
	*ticks = 0xffff - (uint64_t)(lo | hi << 8);
	/* OUT2 up: the count ran out (or nothing answers at these ports). */
	return !(status & PIT_STATUS_OUT);
}

static uint32_t pm_last;
static uint64_t pm_ticks;

static uint32_t pm_raw(void)
{
	return inl(acpi.pm_timer_port) & (acpi.pm_timer_32bit ? 0xffffffffu : 0xffffffu);
}

static bool pm_start(void)
{
	if (!acpi.pm_timer_port)
		return false;
	pm_last = pm_raw();
	pm_ticks = 0;
	return true;
}

/* Widened to 64 bits; reads are far closer together than the 4.7 s wrap of 24 bits. */
static bool pm_read(uint64_t *ticks)
{
	uint32_t raw = pm_raw();
	pm_ticks += (raw - pm_last) & (acpi.pm_timer_32bit ? 0xffffffffu : 0xffffffu);
	pm_last = raw;
	*ticks = pm_ticks;
	return true;
}

static const struct refclock pit = {"the PIT", PIT_HZ, pit_start, pit_read};
static const struct refclock pm_timer = {"the ACPI PM timer", PM_TIMER_HZ, pm_start, pm_read};

struct sample {
	uint64_t tsc;   /* midpoint of the bracket */
	uint64_t width; /* the bracket, in TSC cycles */
	uint64_t value;
};

static bool sample_ref(const struct refclock *rc, struct sample *s)
{
	uint64_t before = rdtsc();
	bool ok = rc->read(&s->value);
	uint64_t after = rdtsc();
	s->tsc = before + (after - before) / 2;
	s->width = after - before;
	return ok;
}

/* False where reading the current count would stop QEMU (top of file). */
static bool lapic_count_readable(void)
{
	return apic_mode == APIC_MODE_XAPIC ||
	       (apic_mode == APIC_MODE_X2APIC && config.clock != CLOCK_VIRTUAL);
}

static void sample_lapic(struct sample *s)
{
	uint64_t before = rdtsc();
	s->value = lapic_count_readable() ? apic_read(APIC_TIMER_CUR) : 0;
	uint64_t after = rdtsc();
	s->tsc = before + (after - before) / 2;
	s->width = after - before;
}

/* The least disturbed of a few samples of the reference and of the LAPIC count. */
static bool sample_end(const struct refclock *rc, struct sample *ref, struct sample *lapic)
{
	struct sample s;

	ref->width = lapic->width = UINT64_MAX;
	for (int i = 0; i < SAMPLES_PER_END; i++) {
		if (!sample_ref(rc, &s))
			return false;
		if (s.width < ref->width)
			*ref = s;
		sample_lapic(&s);
		if (s.width < lapic->width)
			*lapic = s;
	}
	return true;
}

struct window {
	uint64_t tsc_hz;
	uint64_t lapic_fp; /* LAPIC counts per TSC cycle, 32.32 fixed point */
};

static enum window_result window(const struct refclock *rc, struct window *w)
{
	struct sample r0, r1, l0, l1, s;
	uint64_t want = rc->hz * CALIBRATION_MS / 1000;

	if (!rc->start())
		return WINDOW_NO_SOURCE;
	if (apic_mode != APIC_MODE_NONE) {
		apic_write(APIC_LVT_TIMER, APIC_LVT_MASKED | VEC_TIMER);
		apic_write(APIC_TIMER_DIV, APIC_TIMER_DIV_1);
		apic_write(APIC_TIMER_INIT, 0xffffffffu);
	}
	if (!sample_end(rc, &r0, &l0))
		return WINDOW_NO_SOURCE; /* not even counting at the start */
	do {
		if (!sample_ref(rc, &s) || s.tsc - r0.tsc > GIVE_UP_CYCLES)
			return WINDOW_DISTURBED;
	} while (s.value - r0.value < want);
	if (!sample_end(rc, &r1, &l1))
		return WINDOW_DISTURBED;
	uint64_t span = r1.tsc - r0.tsc;
	if ((r0.width + r1.width) * MAX_BRACKET_SHARE > span ||
	    (l0.width + l1.width) * MAX_BRACKET_SHARE > l1.tsc - l0.tsc)
		return WINDOW_DISTURBED;
	w->tsc_hz = span * rc->hz / (r1.value - r0.value);
	/* Unreadable count: 0, and time_init times the LAPIC separately. */
	w->lapic_fp = ((l0.value - l1.value) << 32) / (l1.tsc - l0.tsc);
	return WINDOW_OK;
}

static void insert_sorted(uint64_t *a, int n, uint64_t v)
{
	int j = n;
	for (; j > 0 && a[j - 1] > v; j--)
		a[j] = a[j - 1];
	a[j] = v;
}

static bool calibrate_with(const struct refclock *rc, uint64_t *tsc_rate, uint64_t *lapic_fp)
{
	uint64_t rate[CALIBRATION_WINDOWS], fp[CALIBRATION_WINDOWS];
	int good = 0;
	struct window w;

	for (int i = 0; i < CALIBRATION_ATTEMPTS && good < CALIBRATION_WINDOWS; i++) {
		enum window_result r = window(rc, &w);
		if (r == WINDOW_NO_SOURCE && good == 0)
			return false;
		if (r != WINDOW_OK)
			continue;
		insert_sorted(rate, good, w.tsc_hz);
		insert_sorted(fp, good, w.lapic_fp);
		good++;
	}
	if (good == 0)
		return false;
	*tsc_rate = rate[good / 2];
	*lapic_fp = fp[good / 2];
	return true;
}

bool tsc_calibrate(const char **source, uint64_t *tsc_rate, uint64_t *lapic_fp)
{
	unsigned long flags = local_irq_save();
	bool ok = true;

	if (calibrate_with(&pit, tsc_rate, lapic_fp))
		*source = pit.name;
	else if (calibrate_with(&pm_timer, tsc_rate, lapic_fp))
		*source = pm_timer.name;
	else
		ok = false;
	outb(PORT_SPEAKER, inb(PORT_SPEAKER) & ~(SPEAKER_GATE2 | SPEAKER_DATA));
	local_irq_restore(flags);
	return ok;
}

#define EDGE_TIMEOUT_NS NSEC_PER_SEC

static volatile uint64_t edge_tsc;

static void edge_handler(struct trapframe *tf)
{
	(void)tf;
	edge_tsc = rdtsc();
	lapic_eoi();
}

/*
 * TSC cycles from writing `counts` to the initial count to the timer's
 * interrupt; 0 if none came within EDGE_TIMEOUT_NS.  The windows below are
 * milliseconds long, so spinning for the edge costs little.
 */
static uint64_t cycles_to_edge(uint32_t counts)
{
	uint64_t limit = ns_to_tsc(EDGE_TIMEOUT_NS);

	edge_tsc = 0;
	apic_write(APIC_LVT_TIMER, VEC_TIMER); /* one-shot, unmasked */
	apic_write(APIC_TIMER_DIV, APIC_TIMER_DIV_1);
	uint64_t start = rdtsc();
	apic_write(APIC_TIMER_INIT, counts);
	local_irq_enable();
	while (!edge_tsc && rdtsc() - start < limit)
		cpu_relax();
	local_irq_disable();
	apic_write(APIC_LVT_TIMER, APIC_LVT_MASKED | VEC_TIMER);
	apic_write(APIC_TIMER_INIT, 0);
	return edge_tsc ? edge_tsc - start : 0;
}

/*
 * LAPIC counts per TSC cycle (32.32) from interrupt edges.  Two windows,
 * `ms` and twice that long, and their difference: the fixed cost of
 * programming the timer and of taking the interrupt (exactly the same
 * instructions both times, so the same virtual time) cancels out.
 */
static uint64_t lapic_calibrate_by_edge(unsigned ms)
{
	unsigned long flags = local_irq_save();
	register_irq_handler(VEC_TIMER, edge_handler);
	/* A first guess at the rate, to size the windows. */
	uint64_t probe = 1u << 20, cycles = cycles_to_edge((uint32_t)probe);
	uint64_t want = probe * ns_to_tsc((uint64_t)ms * NSEC_PER_MSEC) / (cycles ? cycles : 1);
	uint32_t n = (uint32_t)(want < probe ? probe : want > 0x7fffffffu ? 0x7fffffffu : want);
	uint64_t one = cycles ? cycles_to_edge(n) : 0, two = one ? cycles_to_edge(2 * n) : 0;
	register_irq_handler(VEC_TIMER, NULL); /* time_init installs the tick's */
	local_irq_restore(flags);
	if (!cycles || !one || !two)
		kprintf("# time: the LAPIC timer's interrupt did not come within 1 s: no timer\n");
	return two > one ? ((uint64_t)n << 32) / (two - one) : 0;
}

/* LAPIC counts per TSC cycle (32.32) measured over `ms` of a TSC of known rate. */
uint64_t lapic_calibrate_by_tsc(unsigned ms)
{
	struct sample l0, l1;

	if (!lapic_count_readable())
		return lapic_calibrate_by_edge(ms);
	apic_write(APIC_LVT_TIMER, APIC_LVT_MASKED | VEC_TIMER);
	apic_write(APIC_TIMER_DIV, APIC_TIMER_DIV_1);
	apic_write(APIC_TIMER_INIT, 0xffffffffu);
	sample_lapic(&l0);
	mdelay(ms);
	sample_lapic(&l1);
	return ((l0.value - l1.value) << 32) / (l1.tsc - l0.tsc);
}
