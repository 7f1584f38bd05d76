"""Tests of the benchmark pipeline (scripts/bench, locklab.bench_report) without QEMU: canned
serial logs go through the runner's parser into run-qemu-style JSON, then through the
aggregation (medians, spread, identities), the scenario ratios, the peers and the report
writer."""

import contextlib
import io
import json
import os
import shutil
import tempfile
import unittest

import support  # noqa: F401  (puts scripts/ on sys.path)
from locklab import (bench, bench_locks, bench_plan, bench_results, bench_scenarios, ktap,
                     report_hist)
from locklab import bench_report as benchlib


HAVE_GNUPLOT = shutil.which('gnuplot') is not None


def ktap_log(tests, tsc_mhz=2600.0):
    """A complete serial log: tests is [(suite.name, [lines printed while it ran])]."""
    suites = []
    for path, lines in tests:
        suite = path.split('.')[0]
        if not suites or suites[-1][0] != suite:
            suites.append((suite, []))
        suites[-1][1].append((path.split('.', 1)[1], lines))
    out = ['KTAP version 1', '# locklab: x86-64 SMP lock laboratory',
           '# time: TSC %.3f MHz (calibrated against the PIT), invariant TSC: no' % tsc_mhz,
           '1..%d' % len(suites)]
    for i, (suite, members) in enumerate(suites, 1):
        out += ['  KTAP version 1', '  # Subtest: %s' % suite, '  1..%d' % len(members)]
        for j, (name, lines) in enumerate(members, 1):
            out.append('  # running: %s.%s timeout_ms=1000' % (suite, name))
            out += lines
            out.append('  ok %d %s' % (j, name))
        out.append('ok %d %s' % (i, suite))
    out += ['# Totals: pass:%d fail:0 skip:0 total:%d' % (len(tests), len(tests)),
            '# locklab: end verdict=pass']
    return '\n'.join(out) + '\n'


def run_entry(name, group, smp, text, rep=1, options=None, accel='tcg'):
    """A manifest entry with its run-qemu JSON inline, as scripts/bench writes them."""
    report = ktap.parse_text(text)
    data = report.to_dict()
    data['run'] = {'exit': report.verdict, 'smp': smp, 'accel': accel, 'firmware': 'bios'}
    tsc = None
    for line in text.splitlines():
        if line.startswith('# time: TSC'):
            tsc = float(line.split()[3])
    return {'name': name, 'group': group, 'smp': smp, 'rep': rep, 'options': options or {},
            'cmdline': 'tests=%s.* bench=1' % group, 'exit': report.verdict,
            'seconds': 1.0, 'data': data, 'tsc_mhz': tsc, 'accel': accel}


def hist_lines(path, rows, unit='ns', bucket=1000, cpus=2, overflows=0, maxv=None):
    samples = sum(sum(c) for _, c in rows) + overflows
    out = ['# hist-begin: %s unit=%s bucket=%s cpus=%d' % (path, unit, bucket, cpus)]
    for start, counts in rows:
        out.append('# %d %s' % (start, ' '.join(str(c) for c in counts)))
    top = maxv if maxv is not None else rows[-1][0] + bucket - 1
    out.append('# hist-end: %s samples=%d min=%d avg=%d max=%d overflows=%d' % (
        path, samples, rows[0][0] + 1, rows[0][0] + bucket // 2, top, overflows))
    return out


def lock_log(k):
    """The lock suite of one run; k scales the figures so that repeats differ."""
    return ktap_log([
        ('lock.bench_uncontended', [
            '# metric: lock.ticket.uncontended_cycles %d cycles debug=0' % (50 + k),
            '# metric: lock.tas.uncontended_cycles %d cycles debug=0' % (40 + k)]),
        ('lock.bench_throughput', [
            '# metric: lock.ticket.throughput %d.500 ops/ms cpus=1 debug=0' % (800 + 10 * k),
            '# metric: lock.ticket.throughput %d.000 ops/ms cpus=2 debug=0' % (200 + 10 * k),
            '# metric: lock.tas.throughput 600.000 ops/ms cpus=1 debug=0',
            '# metric: lock.tas.throughput 500.000 ops/ms cpus=2 debug=0']),
        ('lock.bench_pv_threshold', [
            '# metric: lock.pvticket.throughput_by_threshold %d ops/ms cpus=2 host_cpus=2 '
            'threshold=%d debug=0' % (100 * t + k, t) for t in (16, 64, 256)]),
        ('lock.bench_wait', hist_lines('lock.ticket.wait', [(0, [90, 5]), (1000, [3, 1])],
                                       overflows=1, maxv=5000000 + k) +
         hist_lines('lock.pvticket.wait', [(0, [90, 8]), (1000, [1, 1])], maxv=1999 + k) + [
            '# metric: lock.ticket.fairness_ratio_x1000 %d x1000 cpus=2 acquisitions=%d '
            'debug=0' % (1100 + k, 1000 + k)]),
        ('lock.bench_multilock_throughput', [
            '# metric: lock.multilock_sorted.throughput %d.0 ops/ms cpus=2 locks=8 debug=0'
            % (100 + k),
            '# metric: lock.multilock_global.throughput 50.0 ops/ms cpus=2 locks=8 debug=0']),
        ('lock.breakable_walk', [
            '# metric: lock.plain.walk_max_wait_ns %d ns worst=%d missed=400 waits=3 '
            'walk=400x250us' % (200000000 + 1000000 * k, 210000000),
            '# metric: lock.breakable.walk_max_wait_ns %d ns worst=1 missed=0 waits=30'
            % (10000000 * (k + 1)),
            '# metric: lock.breakable.plain_over_breakable_x1000 20000 x1000 plain_ns=1']),
        ('lock.pv_overcommit', [
            '# metric: lock.ticket.overcommit_throughput 10.000 ops/ms cpus=2 host_cpus=1 '
            'ops=%d' % (1000 + k),
            '# metric: lock.pvticket.overcommit_throughput %d.000 ops/ms cpus=2 host_cpus=1 '
            'ops=5 threshold=%d' % (100 + 10 * k, 17 + k)]),
        ('lock.fairness', [
            '# metric: lock.ticket.fairness_ratio_x1000 1083 x1000 cpus=2 turns=98']),
    ])


def lock_runs():
    return [run_entry('lock-smp2-r%d' % (k + 1), 'lock', 2, lock_log(k), rep=k + 1)
            for k in range(3)]


def tlb_run(rep=1):
    lines = []
    for sec, sync, lazy in ((0, 2000, 1900), (100, 100000, 2500), (1000, 1000000, 3000)):
        lines.append('# metric: tlb.sync.initiator_ns %d ns section_us=%d cpus=4' % (sync, sec))
        lines.append('# metric: tlb.lazy.initiator_ns %d ns section_us=%d cpus=4' % (lazy, sec))
    return run_entry('tlb-smp4-r%d' % rep, 'tlb', 4, ktap_log([('tlb.bench_initiator', lines)]),
                     rep=rep, options={'shootdown': 'sync'})


def sched_run(model, max_ns, rep=1):
    """The kernel's format: a histogram per load, sched.wakeup_latency.<model>.<load>, and
    max/p99/p50 metrics with load=."""
    lines = []
    for load, worst in (('idle', max_ns // 10), ('plain', max_ns), ('breakable', max_ns // 2)):
        lines += hist_lines('sched.wakeup_latency.%s.%s' % (model, load),
                            [(0, [10, 10]), (10000, [2, 1])], bucket=10000, maxv=worst)
        lines.append('# metric: sched.wakeup_latency.%s.max_ns %d ns load=%s cpus=2 '
                     'samples=23 walks=%d' % (model, worst, load, rep))
        lines.append('# metric: sched.wakeup_latency.%s.p99_ns %d ns load=%s cpus=2 '
                     'samples=23 walks=%d' % (model, worst // 2, load, rep))
        lines.append('# metric: sched.wakeup_latency.%s.p50_ns %d ns load=%s cpus=2 '
                     'samples=23 walks=%d' % (model, worst // 4, load, rep))
    return run_entry('sched-smp4-%s-r%d' % (model, rep), 'sched', 4,
                     ktap_log([('sched.wakeup_latency', lines)]), rep=rep,
                     options={'preempt': model})


HOST_OUTPUT = """# host lock benchmark: 2 threads max, 100 ms per point, 2 host CPUs
# metric: host.lock.ticket.uncontended_ns %s ns host_cpus=2
# metric: host.lock.spin_lock.uncontended_ns 5.7 ns host_cpus=2
# metric: host.lock.ticket.throughput %s ops/s threads=1 host_cpus=2 max_min=1/1
# metric: host.lock.ticket.throughput 6000000 ops/s threads=2 host_cpus=2 max_min=9/1
# metric: host.lock.brk.wait_max_ns 1000000 ns mode=none threads=2
# metric: host.lock.brk.wait_max_ns 10000 ns mode=lockbreak threads=2
"""

CYCLIC = """# Histogram
000000 000000\t000000
000010 000090\t000080
000011 000009\t000019
000050 000001\t000001
# Total: 000000100 000000100
# Min Latencies: 00010 00010
# Avg Latencies: 00011 00011
# Max Latencies: 00050 00057
# Histogram Overflows: 00000 00000
# Histogram Overflow at cycle number:
# Thread 0:
# Thread 1:
"""


class Stats(unittest.TestCase):
    def test_summary_odd_and_even(self):
        s = bench_results.summarize([3, 1, 2])
        self.assertEqual((s['n'], s['median'], s['min'], s['max']), (3, 2, 1, 3))
        self.assertEqual((s['q1'], s['q3']), (1.5, 2.5))
        self.assertAlmostEqual(s['spread'], 1.0)
        s = bench_results.summarize([4, 1, 3, 2])
        self.assertEqual(s['median'], 2.5)
        self.assertEqual(s['values'], [4, 1, 3, 2])

    def test_summary_ignores_non_numbers(self):
        self.assertIsNone(bench_results.summarize([]))
        self.assertIsNone(bench_results.summarize(['x', None, True]))
        self.assertEqual(bench_results.summarize([5, 'x', float('nan')])['n'], 1)

    def test_human_units(self):
        self.assertEqual(bench_results.human(212282481, 'ns'), '212 ms')
        self.assertEqual(bench_results.human(1500, 'ns'), '1.50 us')
        self.assertEqual(bench_results.human(20500, 'x1000'), '20.5x')
        self.assertEqual(bench_results.human(835.932, 'ops/ms'), '836 ops/ms')
        self.assertEqual(bench_results.human(None, 'ns'), 'n/a')

    def test_improvement_direction(self):
        self.assertEqual(bench_scenarios.improvement(100, 10, 'lower'), 10)
        self.assertEqual(bench_scenarios.improvement(10, 100, 'higher'), 10)
        self.assertIsNone(bench_scenarios.improvement(10, 0, 'lower'))


class Histograms(unittest.TestCase):
    def block(self, overflows=0):
        return {'path': 'x', 'unit': 'ns', 'bucket': 1000, 'cpus': 2,
                'buckets': [[0, [50, 40]], [1000, [5, 4]], [3000, [0, 1]]],
                'samples': 100 + overflows, 'min': 10, 'avg': 600, 'max': 3500 + overflows,
                'overflows': overflows, 'complete': True}

    def test_percentiles_interpolate_within_buckets(self):
        st = bench_results.hist_stats(self.block())
        self.assertEqual(st['samples'], 100)
        self.assertAlmostEqual(st['p50'], 50 / 90.0 * 1000)
        self.assertAlmostEqual(st['p99'], 2000.0)
        self.assertEqual(st['p999'], 3500)          # clamped by the block's max
        self.assertFalse(st['tail_in_overflow'])

    def test_percentile_among_overflows_is_flagged(self):
        st = bench_results.hist_stats(self.block(overflows=5))
        self.assertTrue(st['tail_in_overflow'])
        self.assertIn('p99', st['beyond'])
        self.assertEqual(st['p99'], st['max'])
        self.assertEqual(st['last_edge'], 4000)

    def test_merge_sums_buckets(self):
        m = bench_results.merge_hists([self.block(), self.block(overflows=2)])
        self.assertEqual(dict((s, c) for s, c in m['buckets'])[0], [100, 80])
        self.assertEqual(m['overflows'], 2)
        self.assertEqual(m['max'], 3502)

    def test_cyclictest_histfile(self):
        parsed = bench_results.parse_histfile(CYCLIC)
        self.assertEqual(parsed['unit'], 'us')
        self.assertEqual(parsed['total'], 200)
        self.assertEqual(parsed['max'], 57)
        st = bench_results.hist_stats(bench_results.histfile_as_block(parsed, 'cyclictest'))
        self.assertAlmostEqual(st['p50'], 10 + 100 / 170.0)

    def test_timer_loop_fallback_writes_a_cyclictest_file(self):
        text = benchlib.timer_loop_histogram(0.3, interval_us=1000, hist_us=100000, cpus=[0])
        parsed = bench_results.parse_histfile(text)
        self.assertEqual(parsed['unit'], 'us')
        self.assertGreater(parsed['total'], 100)
        self.assertIn('not cyclictest', text)

    def test_locklab_histfile_round_trip(self):
        """scripts/report's cyclictest-format file reads back with its unit and rows."""
        text = report_hist.histfile_text(self.block())
        parsed = bench_results.parse_histfile(text)
        self.assertEqual(parsed['unit'], 'ns')
        self.assertEqual(parsed['rows'], [(0, [50, 40]), (1000, [5, 4]), (3000, [0, 1])])


class Aggregation(unittest.TestCase):
    def setUp(self):
        self.results = bench_results.Results(lock_runs(), host_cpus=1)

    def test_median_and_spread_over_repeats(self):
        e = self.results.find(path='lock.ticket.throughput', cpus=2)
        self.assertEqual(len(e), 1)
        s = e[0]['stats']
        self.assertEqual((s['n'], s['median'], s['min'], s['max']), (3, 210.0, 200.0, 220.0))
        self.assertAlmostEqual(s['spread'], 20 / 210.0)

    def test_swept_key_is_an_identity(self):
        e = self.results.find(path='lock.pvticket.throughput_by_threshold')
        self.assertEqual(sorted(x['attrs']['threshold'] for x in e), [16, 64, 256])
        self.assertTrue(all(x['stats']['n'] == 3 for x in e))

    def test_observations_do_not_split_a_figure(self):
        e = self.results.find(path='lock.pvticket.overcommit_throughput')
        self.assertEqual(len(e), 1)          # threshold=17/18/19 is an observation here
        self.assertEqual(e[0]['observed']['threshold'], [17, 18, 19])
        self.assertEqual(len(self.results.find(path='lock.ticket.fairness_ratio_x1000')), 2)

    def test_histograms_per_run_and_merged(self):
        h = self.results.find_hists(path='lock.ticket.wait')[0]
        self.assertEqual(h['stats']['max']['median'], 5000001)
        self.assertEqual(h['merged']['overflows'], 3)
        self.assertEqual(h['stats']['samples']['median'], 100)

    def test_lock_matrix(self):
        m = bench_locks.lock_matrix(self.results)
        unc = {u['type']: u for u in m['uncontended']}
        self.assertEqual(unc['ticket']['cycles']['median'], 51)
        self.assertAlmostEqual(unc['ticket']['ns']['median'], 51 * 1000 / 2600.0)
        self.assertEqual(m['throughput']['cpus'], [1, 2])
        self.assertIn('no knob', m['critical_section'])
        wait = {w['type']: w for w in m['wait']}
        self.assertEqual(wait['ticket']['fairness']['median'], 1101)


class Ratios(unittest.TestCase):
    def test_breakable_vs_plain_paired_median(self):
        r = bench_scenarios.scenario_breakable(bench_results.Results(lock_runs(), 1))['ratios']
        head = [x for x in r if x.get('headline')][0]
        self.assertEqual(head['status'], 'measured')
        # per run: 200/10, 201/20, 202/30 -> median 10.05
        self.assertAlmostEqual(head['factor'], 201.0 / 20)
        self.assertAlmostEqual(head['factor_stats']['min'], 202.0 / 30)
        self.assertEqual(head['kernel_ratio'], 20.0)
        self.assertIn('shorter', head['statement'])

    def test_pv_throughput_and_max_wait(self):
        r = bench_scenarios.scenario_pv(bench_results.Results(lock_runs(), 1))['ratios']
        thr = [x for x in r if x['id'] == 'pv_vs_plain.throughput'][0]
        self.assertAlmostEqual(thr['factor'], 11.0)
        self.assertIn('2.0x overcommitted', thr['context'])
        wait = [x for x in r if x['id'] == 'pv_vs_plain.max_wait'][0]
        self.assertAlmostEqual(wait['factor'], 5000001 / 2000.0)

    def test_lock_pair_headlines_from_the_run(self):
        def log(k):
            lines = []
            for name, unc, thr, fair, p99 in (('ticket', 60, 100, 1500, 9000),
                                              ('qspinlock', 40, 150, 1200, 6000)):
                lines.append('# metric: lock.%s.uncontended_cycles %d cycles debug=0'
                             % (name, unc + k))
                for cpus in (1, 2, 4):
                    lines.append('# metric: lock.%s.throughput %d.000 ops/ms cpus=%d debug=0'
                                 % (name, thr * cpus, cpus))
                lines.append('# metric: lock.%s.fairness_ratio_x1000 %d x1000 cpus=4 '
                             'acquisitions=100 debug=0' % (name, fair))
                lines.append('# metric: lock.%s.wait_ns.p99 %d ns cpus=4 debug=0'
                             % (name, p99))
            return ktap_log([('lock.bench_wait', lines)])
        runs = [run_entry('lock-smp4-r%d' % (k + 1), 'lock', 4, log(k), rep=k + 1)
                for k in range(2)]
        r = bench_scenarios.scenario_locks(bench_results.Results(runs, 2))['ratios']
        unc = [x for x in r if x['id'] == 'qspinlock_vs_ticket.uncontended'][0]
        self.assertAlmostEqual(unc['factor'], 60.5 / 40.5)
        self.assertIn('qspinlock', unc['statement'])
        self.assertIn('cheaper', unc['statement'])
        thr = [x for x in r if x['id'] == 'qspinlock_vs_ticket.throughput']
        self.assertEqual(len(thr), 2)        # 2 and 4 CPUs, not 1
        self.assertAlmostEqual(thr[0]['factor'], 1.5)
        fair = [x for x in r if x['id'] == 'qspinlock_vs_ticket.fairness'][0]
        self.assertAlmostEqual(fair['factor'], 1.25)
        p99 = [x for x in r if x['id'] == 'qspinlock_vs_ticket.wait_p99'][0]
        self.assertAlmostEqual(p99['factor'], 1.5)
        self.assertTrue(all(x['headline'] for x in r))

    def test_lock_pair_p99_from_the_histograms(self):
        lines = hist_lines('lock.ticket.wait', [(0, [50]), (2000, [30]), (4000, [20])],
                           bucket=2000) + \
            hist_lines('lock.qspinlock.wait', [(0, [100])], bucket=2000)
        runs = [run_entry('lock-smp4-r1', 'lock', 4, ktap_log([('lock.bench_wait', lines)]))]
        r = bench_scenarios.scenario_locks(bench_results.Results(runs, 2))['ratios']
        p99 = [x for x in r if x['id'] == 'qspinlock_vs_ticket.wait_p99'][0]
        self.assertEqual(p99['status'], 'measured')
        # ticket: 99 of 100 falls in the last bucket, 95% of its way; qspinlock: 99% of 2 us.
        self.assertAlmostEqual(p99['factor'], 5900.0 / 1980.0)
        self.assertIn('lock.bench_wait', p99['measure'])
        # The p90 is the headline, the p99 a figure (its tail does not reproduce).
        p90 = [x for x in r if x['id'] == 'qspinlock_vs_ticket.wait_p90'][0]
        self.assertTrue(p90['headline'])
        self.assertFalse(p99['headline'])

    def test_lock_pair_missing_type_is_not_measured(self):
        r = bench_scenarios.scenario_locks(bench_results.Results(lock_runs(), 1))['ratios']
        self.assertTrue(r)
        for x in r:
            self.assertEqual(x['status'], 'not measured')
            self.assertRegex(x['statement'], r'no metric lock\.(qspinlock|ticket)\.')
        self.assertTrue(any('lock.qspinlock.' in x['statement'] for x in r))

    def test_pv_pairs_at_2x_and_4x(self):
        def log(smp, k):
            lines = []
            for name, thr, wait in (('pvticket', 50, 4000000), ('pvqspinlock', 80, 1000000),
                                    ('ticket', 5, 90000000)):
                lines.append('# metric: lock.%s.overcommit_throughput %d.000 ops/ms cpus=%d '
                             'host_cpus=2 ops=1' % (name, thr + k, smp))
                lines.append('# metric: lock.%s.overcommit_wait_max_ns %d ns cpus=%d '
                             'host_cpus=2 ops=1' % (name, wait, smp))
            return ktap_log([('lock.pv_overcommit', lines)])
        runs = [run_entry('lock-smp%d-r1' % smp, 'lock', smp, log(smp, 0)) for smp in (4, 8)]
        r = bench_scenarios.scenario_pv(bench_results.Results(runs, 2))['ratios']
        pvq = [x for x in r if x['id'].startswith('pvqspinlock_vs_pvticket.')]
        heads = sorted((x['id'], x['smp']) for x in pvq if x['headline'])
        # The longest wait is a figure, never a headline: one sample, it does not reproduce.
        self.assertEqual(heads, [('pvqspinlock_vs_pvticket.throughput', 4),
                                 ('pvqspinlock_vs_pvticket.throughput', 8)])
        wait = [x for x in pvq if x['id'].endswith('max_wait')][0]
        self.assertAlmostEqual(wait['factor'], 4.0)
        self.assertIn('lock.pv_overcommit', wait['measure'])
        self.assertIn('4.0x overcommitted', [x for x in pvq if x['smp'] == 8][0]['context'])
        # The seed's pair keeps its own rows; its max wait needs the bench_wait histograms.
        self.assertTrue(any(x['id'] == 'pv_vs_plain.throughput' and x['headline'] for x in r))
        missing = [x for x in r if x['id'] == 'pv_vs_plain.max_wait'][0]
        self.assertEqual(missing['status'], 'not measured')

    def test_multilock_below_one_is_worse(self):
        runs = lock_runs()
        r = bench_scenarios.scenario_multilock(bench_results.Results(runs, 1))['ratios'][0]
        self.assertAlmostEqual(r['factor'], 101 / 50.0)
        self.assertIn('the throughput', r['statement'])

    def test_tlb_by_section(self):
        results = bench_results.Results([tlb_run(1), tlb_run(2)], 2)
        r = bench_scenarios.scenario_tlb(results)['ratios']
        by = {x['section_us']: x for x in r}
        self.assertAlmostEqual(by[1000]['factor'], 1000000 / 3000.0)
        self.assertTrue(by[1000]['headline'])
        self.assertLess(by[0]['factor'], 1.1)

    def test_wakeup_models_against_none(self):
        runs = [sched_run(m, v) for m, v in (('none', 900000), ('voluntary', 400000),
                                             ('full', 100000), ('rt', 50000))]
        out = bench_scenarios.scenario_wakeup(bench_results.Results(runs, 2))
        vs_none = {(x['model'], x['load']): x for x in out['ratios']
                   if x['id'].endswith('_vs_none')}
        self.assertEqual(sorted(m for m, l in vs_none if l == 'plain'),
                         ['full', 'rt', 'voluntary'])
        self.assertAlmostEqual(vs_none[('rt', 'plain')]['factor'], 18.0)
        # The headline is the median wakeup; the max is a figure.
        self.assertFalse(vs_none[('rt', 'plain')]['headline'])
        median = {(x['model'], x['load']): x for x in out['ratios']
                  if x['id'].endswith('_vs_none.p50')}
        self.assertAlmostEqual(median[('rt', 'plain')]['factor'], 18.0)
        self.assertTrue(median[('rt', 'plain')]['headline'])
        self.assertFalse(median[('rt', 'idle')]['headline'])
        self.assertEqual([x['id'] for x in out['ratios'] if x['headline']],
                         ['wakeup.rt_vs_none.p50', 'wakeup.breakable_vs_plain_load'])
        load = {x['model']: x for x in out['ratios']
                if x['id'] == 'wakeup.breakable_vs_plain_load'}
        self.assertAlmostEqual(load['none']['factor'], 2.0)
        self.assertTrue(load['none']['headline'])
        rows = {(r['model'], r['load']): r for r in out['rows']}
        self.assertEqual(rows[('rt', 'plain')]['figures']['p99']['median'], 25000)

    def test_wakeup_pairs_legs_by_repeat(self):
        runs = [sched_run('none', 900000 + r, rep=r) for r in (1, 2)] + \
            [sched_run('rt', 50000 * r, rep=r) for r in (1, 2)]
        out = bench_scenarios.scenario_wakeup(bench_results.Results(runs, 2))
        r = [x for x in out['ratios'] if x['id'] == 'wakeup.rt_vs_none' and
             x['load'] == 'plain'][0]
        self.assertEqual(r['factor_stats']['n'], 2)
        self.assertAlmostEqual(r['factor_stats']['max'], 900001 / 50000.0)

    def test_missing_metrics_are_not_measured(self):
        results = bench_results.Results(lock_runs(), 1)
        for fn, needle in ((bench_scenarios.scenario_tlb, 'no metric tlb.sync.initiator_ns'),
                           (bench_scenarios.scenario_wakeup, 'no metric sched.wakeup_latency')):
            r = fn(results)['ratios'][0]
            self.assertEqual(r['status'], 'not measured')
            self.assertTrue(r['statement'].startswith('not measured (' + needle),
                            r['statement'])
        empty = bench_results.Results([], 1)
        for _, fn in bench_scenarios.SCENARIOS:
            for r in fn(empty)['ratios']:
                self.assertEqual(r['status'], 'not measured')
                self.assertIn('in this run', r['statement'])


class Peers(unittest.TestCase):
    def test_host_benchmark_aggregated_and_mapped(self):
        host = bench_locks.host_lock_results([HOST_OUTPUT % ('5.0', '170000000'),
                                              HOST_OUTPUT % ('7.0', '180000000')])
        unc = host[('ticket', 'uncontended_ns', ())]['stats']
        self.assertEqual((unc['median'], unc['min'], unc['max']), (6.0, 5.0, 7.0))
        thr = host[('ticket', 'throughput', (('threads', '1'),))]
        self.assertEqual(thr['unit'], 'ops/ms')
        self.assertEqual(thr['stats']['median'], 175000.0)
        self.assertIn(('spinlock', 'uncontended_ns', ()), host)
        self.assertEqual([b['mode'] for b in bench_locks.host_brk(host)], ['lockbreak', 'none'])

    def test_peer_table_puts_both_sides_in_one_row(self):
        results = bench_results.Results(lock_runs(), 2)
        matrix = bench_locks.lock_matrix(results)
        host = bench_locks.host_lock_results([HOST_OUTPUT % ('5.0', '170000000')])
        table = bench_locks.peer_table(results, host, matrix)
        self.assertEqual(table['columns'], [1, 2])
        row = [r for r in table['rows'] if r['type'] == 'ticket'][0]
        self.assertEqual(row['host_uncontended_ns']['median'], 5.0)
        self.assertEqual(row['throughput'][2]['kernel']['median'], 210.0)
        self.assertEqual(row['throughput'][2]['host']['median'], 6000.0)
        self.assertEqual(row['kernel_wait']['max']['median'], 5000001)


class Report(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='bench-test-')

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def build(self, runs, gnuplot=None, **kw):
        return benchlib.build(self.tmp, runs, kw.get('host', [HOST_OUTPUT % ('5', '1000')]),
                              kw.get('cyclic', [{'label': 'idle', 'policy': 'SCHED_OTHER',
                                                 'text': CYCLIC}]),
                              {'mode': 'quick', 'repeat': 3,
                               'environment': {'qemu_version': 'QEMU 7.2',
                                               'kernel_commit': 'abc'}},
                              gnuplot=gnuplot, host_cpus=2)

    def test_report_without_gnuplot(self):
        report = self.build(lock_runs())
        with open(os.path.join(self.tmp, 'report.json')) as f:
            data = json.load(f)
        self.assertEqual(data['schema'], benchlib.SCHEMA)
        for key in ('accelerator', 'host_cpu_model', 'host_cpus', 'vcpus', 'overcommit',
                    'qemu_version', 'kernel_commit'):
            self.assertIn(key, data['environment'])
        self.assertEqual(data['environment']['accelerator'], 'tcg')
        self.assertEqual(data['environment']['overcommit'], {'2': 1.0})
        ids = [r['id'] for r in data['headline']]
        for rid in ('breakable_vs_plain', 'pv_vs_plain.throughput', 'lazy_vs_sync',
                    'sorted_vs_global'):
            self.assertIn(rid, ids)
        with open(os.path.join(self.tmp, 'report.html')) as f:
            page = f.read()
        self.assertIn('not measured (no metric tlb.sync.initiator_ns', page)
        self.assertIn('Bare metal (locklab guest) vs Linux user space', page)
        self.assertIn('gnuplot is not installed', page)
        self.assertTrue(os.path.isfile(os.path.join(self.tmp, 'hist', 'cyclictest-idle.hist')))
        self.assertTrue(any(n.startswith('lock.ticket.wait')
                            for n in os.listdir(os.path.join(self.tmp, 'hist'))))
        self.assertEqual(report['problems'], [])

    def test_empty_and_broken_runs_still_give_a_report(self):
        broken = {'name': 'lock-smp2-r1', 'group': 'lock', 'smp': 2, 'rep': 1, 'data': None,
                  'options': {}, 'exit': 4}
        report = self.build([broken], host=[], cyclic=[{'label': 'idle', 'policy': 'n/a',
                                                       'problem': 'not measured'}])
        self.assertTrue(all(r['status'] == 'not measured' for r in report['headline']))
        self.assertEqual(report['problems'], [])
        self.assertTrue(os.path.isfile(os.path.join(self.tmp, 'report.html')))

    @unittest.skipUnless(HAVE_GNUPLOT, 'gnuplot not installed')
    def test_plots_are_drawn(self):
        runs = lock_runs() + [tlb_run()] + [sched_run('none', 900000), sched_run('rt', 50000)]
        report = self.build(runs, gnuplot='gnuplot')
        drawn = {p['name'] for p in report['plots'] if p['file']}
        for name in ('throughput', 'uncontended', 'breakable', 'pv-throughput', 'shootdown',
                     'multilock', 'wakeup-idle', 'wakeup-plain', 'wakeup-breakable',
                     'lock-wait'):
            self.assertIn(name, drawn)
            self.assertGreater(os.path.getsize(os.path.join(self.tmp, 'plots', name + '.png')),
                               1000)
        self.assertIsNone(report['plot_problem'])


class Plan(unittest.TestCase):
    def test_lock_vcpus(self):
        self.assertEqual(bench_plan.lock_smps('full', 2), [1, 2, 4, 8])
        self.assertEqual(bench_plan.lock_smps('full', 48), [1, 2, 4, 8, 16, 32, 48])
        self.assertEqual(bench_plan.lock_smps('quick', 2), [4])
        self.assertEqual(bench_plan.lock_smps('full', 2, [3, 1, 3]), [1, 3])

    def test_legs(self):
        legs = bench_plan.plan('full', 2)
        groups = [(l.group, l.smp) for l in legs]
        self.assertNotIn(('overcommit', 4), groups)      # smp=4 and 8 already overcommit
        self.assertEqual([l.options['preempt'] for l in legs if l.group == 'sched'],
                         ['none', 'voluntary', 'full', 'rt'])
        self.assertEqual(legs[0].cmdline, 'tests=lock.* bench=1')
        self.assertIn('shootdown=lazy', [l for l in legs if l.conditional][0].cmdline)
        big = bench_plan.plan('quick', 16)
        self.assertIn(('overcommit', 32), [(l.group, l.smp) for l in big])
        self.assertIn(('overcommit', 64), [(l.group, l.smp) for l in big])
        # 2x is the quick lock leg on 2 CPUs; 4x needs a leg of its own.
        self.assertEqual([l.smp for l in bench_plan.plan('quick', 2) if l.group == 'overcommit'],
                         [8])
        self.assertEqual({l.smp for l in bench_plan.plan('quick', 2) if l.group == 'sched'}, {2})
        self.assertEqual({l.smp for l in legs if l.group == 'tlb'}, {4})

    def test_reuse_rebuilds_the_report(self):
        tmp = tempfile.mkdtemp(prefix='bench-reuse-')
        self.addCleanup(shutil.rmtree, tmp, True)
        os.makedirs(os.path.join(tmp, 'runs'))
        entries = []
        for entry in lock_runs()[:2]:
            data = entry.pop('data')
            with open(os.path.join(tmp, 'runs', entry['name'] + '.json'), 'w') as f:
                json.dump(data, f)
            entry['json'] = 'runs/%s.json' % entry['name']
            entries.append(entry)
        with open(os.path.join(tmp, 'runs', 'manifest.json'), 'w') as f:
            json.dump({'mode': 'full', 'repeat': 2, 'repeats_done': 2, 'host_cpus': 2,
                       'runs': entries}, f)
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            code = bench.main(['--reuse', '--out', tmp, '--gnuplot', 'no-such-gnuplot'])
        self.assertEqual(code, 0)
        self.assertIn('Breakable vs plain ticket lock', out.getvalue())
        with open(os.path.join(tmp, 'report.json')) as f:
            data = json.load(f)
        e = [m for m in data['metrics'] if m['path'] == 'lock.ticket.uncontended_cycles'][0]
        self.assertEqual(e['stats']['n'], 2)

    def test_missing_iso_is_a_setup_error(self):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = bench.main(['--iso', '/nonexistent.iso', '--out', tempfile.gettempdir()])
        self.assertEqual(code, 4)
        self.assertIn('no kernel ISO', err.getvalue())


if __name__ == '__main__':
    unittest.main()
