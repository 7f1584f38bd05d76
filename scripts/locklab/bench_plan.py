"""The bench command's plan: which legs (a kernel boot with its vCPUs and options) a mode
runs, and the progress line with its time estimate while they run."""

import os
import shutil
import sys
import time

from .bench_results import leg_label
from .bench_scenarios import PREEMPT_MODELS, PV_HEADLINE_OVERCOMMIT
from .paths import REPO

PROG = 'bench'
SETUP_ERROR = 4
HOST_BENCH = os.path.join(REPO, 'build', 'host', 'locks', 'plain', 'locktorture')
RUN_TIMEOUT_S = 300
CYCLIC_HIST_US = 10000           # cyclictest -h: 1 us buckets up to 10 ms
CYCLIC_INTERVAL_US = 200

MODES = {
    # lock legs' vCPUs (None: 1, 2, 4, 8 and the host's size), repeats, host benchmark
    # (threads = largest lock leg, ms per point), cyclictest seconds per run, time budget (s)
    'full': {'repeat': 3, 'host_ms': 100, 'cyclic_s': 15, 'budget': 570},
    # quick: two repeats, the fewest that give a factor an interval at all (docs/bench.md).
    'quick': {'repeat': 2, 'host_ms': 50, 'cyclic_s': 4, 'budget': 540},
}


class Leg:
    def __init__(self, group, smp, tests, options=None, conditional=False):
        self.group = group
        self.smp = smp
        self.tests = tests
        self.options = dict(options or {})
        self.conditional = conditional      # the lazy TLB leg: only if the sync one needs it
        self.skip_reason = None
        self.selected = None                # after the first repeat: the tests with figures
        self.first_passed = set()

    @property
    def cmdline(self):
        return ' '.join(['tests=%s' % (self.selected or self.tests), 'bench=1'] +
                        ['%s=%s' % kv for kv in sorted(self.options.items())])

    def name(self, rep):
        opts = ''.join('-%s' % v for _, v in sorted(self.options.items()))
        return '%s-smp%d%s-r%d' % (self.group, self.smp, opts, rep)

    def label(self):
        return leg_label(self.group, self.smp, self.options)

    def __repr__(self):
        return 'Leg(%s)' % self.label()


def lock_smps(mode, host_cpus, override=None):
    """vCPU counts of the lock legs: 1, 2, 4, 8, then powers of two and the host's own count
    when the machine has more CPUs (quick: 4 only)."""
    if override:
        return sorted(set(override))
    if mode == 'quick':
        return [4]
    smps = {1, 2, 4, 8}
    n = 16
    while n <= host_cpus:
        smps.add(n)
        n *= 2
    if host_cpus > 8:
        smps.add(host_cpus)
    return sorted(s for s in smps if s <= 255)


def plan(mode, host_cpus, smps=None, scenario_smp=None):
    """The legs of one repeat, in order."""
    legs = [Leg('lock', n, 'lock.*') for n in lock_smps(mode, host_cpus, smps)]
    # The paravirtual locks at 2x and 4x vCPU overcommit (the PV headlines): an overcommit
    # leg for each factor that no lock leg has.
    have = {leg.smp for leg in legs}
    for factor in PV_HEADLINE_OVERCOMMIT:
        n = min(factor * host_cpus, 255)
        if n > host_cpus and n not in have:
            legs.append(Leg('overcommit', n, 'lock.pv_overcommit,lock.bench_wait'))
            have.add(n)
    # The TLB and scheduler legs: 4 vCPUs; quick keeps them within the host's CPUs (an
    # overcommitted TCG guest runs these suites at half speed or worse).
    s = scenario_smp or (4 if mode == 'full' else min(4, max(2, host_cpus)))
    legs.append(Leg('tlb', s, 'tlb.*', {'shootdown': 'sync'}))
    legs.append(Leg('tlb', s, 'tlb.*', {'shootdown': 'lazy'}, conditional=True))
    for model in PREEMPT_MODELS:
        legs.append(Leg('sched', s, 'sched.*', {'preempt': model}))
    return legs


def estimate_seconds(leg):
    """A first guess of a leg's duration before it has run once (TCG on a small host)."""
    if leg.group == 'lock':
        return 5 + 3.5 * leg.smp
    return 15.0


def fmt_time(seconds):
    seconds = max(0, int(round(seconds)))
    return '%d:%02d' % (seconds // 60, seconds % 60)


class Progress:
    """One self-updating line on a terminal; elsewhere a line per finished step."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() and not os.environ.get('CI')
        self.shown = False
        self.start = time.monotonic()

    def elapsed(self):
        return time.monotonic() - self.start

    def update(self, text):
        if not self.tty:
            return
        columns = shutil.get_terminal_size((100, 24)).columns
        self.stream.write('\r\x1b[K' + text[:max(columns - 1, 20)])
        self.stream.flush()
        self.shown = True

    def line(self, text):
        if self.shown:
            self.stream.write('\r\x1b[K')
            self.shown = False
        self.stream.write(text + '\n')
        self.stream.flush()
