"""Tests of the A/B comparison (locklab.compare, the command line in locklab.compare_run, the
checks of locklab.compare_test) on synthetic bench output directories: verdicts against the
thresholds, the direction of each kind of figure, pairing, the guarded exit status, refusing
mixed clocks, and bad input."""

import io
import json
import math
import os
import shutil
import tempfile
import unittest
from contextlib import redirect_stderr, redirect_stdout

import support  # noqa: F401  (puts scripts/ on sys.path)
from locklab import compare, compare_run, compare_test

LEG = '[lock smp=2]'


def metric(path, value, unit, **attrs):
    return {'path': path, 'value': value, 'unit': unit, 'attrs': attrs, 'test': 'lock.bench'}


def write_side(root, name, reps, clock='real', session=None, headline=(), slowdown=None):
    """A scripts/bench-style directory: reps is a list (one per repeat) of metric lists."""
    side = os.path.join(root, name)
    os.makedirs(os.path.join(side, 'runs'))
    entries = []
    for rep, metrics in enumerate(reps, 1):
        run = 'lock-smp2-r%d' % rep
        with open(os.path.join(side, 'runs', run + '.json'), 'w') as f:
            json.dump({'run': {'clock': clock}, 'metrics': metrics, 'histograms': []}, f)
        with open(os.path.join(side, 'runs', run + '.log'), 'w') as f:
            f.write('KTAP version 1\n')
            if slowdown:
                f.write('# lock slowdown: %s in every acquire\n' % slowdown)
        entries.append({'name': run, 'group': 'lock', 'smp': 2, 'rep': rep, 'options': {},
                        'json': 'runs/%s.json' % run, 'log': 'runs/%s.log' % run})
    with open(os.path.join(side, 'runs', 'manifest.json'), 'w') as f:
        json.dump({'mode': 'quick', 'session': session, 'runs': entries}, f)
    if headline:
        with open(os.path.join(side, 'report.json'), 'w') as f:
            json.dump({'headline': [{'before': {'metric': m}} for m in headline]}, f)
    return side


def scaled(path, unit, values, factors=None, **attrs):
    """One metric per repeat: values[r] * factors[r]."""
    factors = factors or [1.0] * len(values)
    return [[metric(path, v * k, unit, **attrs)] for v, k in zip(values, factors)]


def zipreps(*series):
    """Merge per-figure lists of per-repeat metric lists into per-repeat lists."""
    return [sum(parts, []) for parts in zip(*series)]


class Base(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix='compare-test-')
        self.addCleanup(shutil.rmtree, self.root)

    def pair(self, reps_a, reps_b, paired=True, **kw):
        session = 's1' if paired else None
        self.last = tempfile.mkdtemp(dir=self.root)
        a = write_side(self.last, 'a', reps_a, session=session, **kw)
        b = write_side(self.last, 'b', reps_b, session=session,
                       **{k: v for k, v in kw.items() if k != 'slowdown'})
        return compare.load_side(a), compare.load_side(b)

    def row(self, result, path):
        rows = [r for r in result['figures'] if r['path'] == path]
        self.assertEqual(len(rows), 1, [r['id'] for r in result['figures']])
        return rows[0]


class Classify(unittest.TestCase):
    def test_directions(self):
        self.assertEqual(compare.classify('lock.ticket.throughput', 'ops/ms'),
                         ('throughput', True))
        self.assertEqual(compare.classify('lock.ticket.uncontended_cycles', 'cycles'),
                         ('cost', False))
        self.assertEqual(compare.classify('lock.ticket.uncontended_floor_x1000', 'x1000'),
                         ('cost', False))
        self.assertEqual(compare.classify('lock.ticket.wait_ns.p99', 'ns'), ('latency', False))
        self.assertEqual(compare.classify('lock.plain.walk_max_wait_ns', 'ns'), ('tail', False))
        self.assertEqual(compare.classify('lock.ticket.fairness_ratio_x1000', 'x1000'),
                         ('fairness', False))
        self.assertEqual(compare.classify('lock.pvticket.lost_kicks', 'sleepers'), (None, None))
        self.assertEqual(compare.classify('lock.ticket.pv_over_plain_x1000', 'x1000'),
                         (None, None))


class Verdicts(Base):
    BASE = [100.0, 104.0, 96.0]

    def verdict(self, path, unit, factors, paired=True):
        a, b = self.pair(scaled(path, unit, self.BASE), scaled(path, unit, self.BASE, factors),
                         paired=paired)
        return self.row(compare.compare(a, b), path)

    def test_throughput_lower_is_worse(self):
        r = self.verdict('lock.t.throughput', 'ops/ms', [0.9, 0.91, 0.89])
        self.assertEqual(r['verdict'], 'worse')
        self.assertAlmostEqual(r['ratio'], 0.9 * 100 / 100, places=1)
        self.assertTrue(r['paired'])

    def test_throughput_higher_is_better(self):
        self.assertEqual(self.verdict('lock.t.throughput', 'ops/ms', [1.1, 1.12, 1.09])
                         ['verdict'], 'better')

    def test_cost_higher_is_worse(self):
        self.assertEqual(self.verdict('lock.t.uncontended_cycles', 'cycles', [1.2, 1.2, 1.2])
                         ['verdict'], 'worse')

    def test_within_the_threshold_is_no_change(self):
        # 3% is inside the 5% band of a throughput, 8% inside the 10% band of a latency.
        self.assertEqual(self.verdict('lock.t.throughput', 'ops/ms', [0.97, 0.97, 0.97])
                         ['verdict'], 'no change')
        self.assertEqual(self.verdict('lock.t.wait_ns.p99', 'ns', [1.08, 1.08, 1.08])
                         ['verdict'], 'no change')
        self.assertEqual(self.verdict('lock.t.wait_ns.p99', 'ns', [1.15, 1.15, 1.15])
                         ['verdict'], 'worse')

    def test_interval_straddling_the_band_is_no_change(self):
        # Two repeats 20% worse, one 2% better: the interval reaches into the band.
        self.assertEqual(self.verdict('lock.t.throughput', 'ops/ms', [0.8, 0.8, 1.02])
                         ['verdict'], 'no change')

    def test_pairing_cancels_shared_weather(self):
        # Each repeat's host speed differs 3x, B is 10% faster in every pair: paired, the
        # interval is tight; unpaired, the repeats' spread swamps the difference.
        a = [100.0, 200.0, 300.0]
        path = 'lock.t.throughput'
        sa, sb = self.pair(scaled(path, 'ops/ms', a), scaled(path, 'ops/ms', a, [1.1] * 3))
        r = self.row(compare.compare(sa, sb), path)
        self.assertEqual(r['verdict'], 'better')
        self.assertAlmostEqual(r['ci'][0], 1.1)
        sa, sb = self.pair(scaled(path, 'ops/ms', a), scaled(path, 'ops/ms', a, [1.1] * 3),
                           paired=False)
        r = self.row(compare.compare(sa, sb), path)
        self.assertFalse(r['paired'])
        self.assertEqual(r['verdict'], 'no change')

    def test_few_pairs_that_disagree_show_nothing(self):
        # Two pairs, 30% and 20% worse: the bootstrap's interval is their range, wholly below
        # the band, but two pairs that far apart bound nothing (t = 12.7): no change.
        r = self.verdict('lock.t.throughput', 'ops/ms', [0.7, 0.8, 0.75])
        self.assertEqual(r['verdict'], 'worse')   # three pairs agree well enough
        a, b = self.pair(scaled('lock.t.throughput', 'ops/ms', [100.0, 100.0]),
                         scaled('lock.t.throughput', 'ops/ms', [100.0, 100.0], [0.7, 0.8]))
        r = self.row(compare.compare(a, b), 'lock.t.throughput')
        self.assertLess(r['ci'][1], 1 / 1.05)
        self.assertEqual(r['verdict'], 'no change')
        self.assertIn('agree too little', r['why'])
        # Two pairs that agree closely are enough.
        a, b = self.pair(scaled('lock.t.throughput', 'ops/ms', [100.0, 100.0]),
                         scaled('lock.t.throughput', 'ops/ms', [100.0, 100.0], [0.74, 0.741]))
        self.assertEqual(self.row(compare.compare(a, b), 'lock.t.throughput')['verdict'],
                         'worse')

    def test_a_zero_reading_is_not_judged(self):
        a, b = self.pair(scaled('lock.t.wait_ns.p99', 'ns', [10000.0, 10000.0, 8000.0]),
                         scaled('lock.t.wait_ns.p99', 'ns', [2000.0, 0.0, 2000.0]))
        r = self.row(compare.compare(a, b), 'lock.t.wait_ns.p99')
        self.assertTrue(r['ci'][1] < 1 / 1.1)
        self.assertEqual(r['verdict'], 'no change')
        self.assertIn('reading of 0', r['why'])

    def test_t_interval(self):
        lo, hi = compare.log_t_interval([1.0, 2.0], [1.1, 2.2], paired=True)
        self.assertAlmostEqual(lo, 1.1)
        self.assertAlmostEqual(hi, 1.1)
        # Pairs 1.0 and 1.2: mean log 0.0912, sd 0.129, t(1) 12.706: half-width 1.158.
        lo, hi = compare.log_t_interval([1.0, 1.0], [1.0, 1.2], paired=True)
        self.assertAlmostEqual(math.log(hi) - math.log(lo), 2 * 12.706 * 0.12892 / math.sqrt(2),
                               places=3)
        self.assertIsNone(compare.log_t_interval([0.0, 1.0], [1.0, 1.0], paired=True))
        self.assertIsNone(compare.log_t_interval([1.0], [1.0], paired=True))
        self.assertEqual(compare.t975(1), 12.706)
        self.assertAlmostEqual(compare.t975(100), 1.984)

    def test_one_repeat_shows_nothing(self):
        a, b = self.pair(scaled('lock.t.throughput', 'ops/ms', [100.0]),
                         scaled('lock.t.throughput', 'ops/ms', [50.0]))
        r = self.row(compare.compare(a, b), 'lock.t.throughput')
        self.assertEqual(r['verdict'], 'no change')
        self.assertIsNone(r['ci'])

    def test_counts_are_not_judged_and_missing_figures_listed(self):
        a, b = self.pair(zipreps(scaled('lock.t.lost_kicks', 'sleepers', [1.0, 1.0]),
                                 scaled('lock.t.only_a_ns', 'ns', [5.0, 5.0])),
                         scaled('lock.t.lost_kicks', 'sleepers', [9.0, 9.0]))
        result = compare.compare(a, b)
        self.assertEqual(self.row(result, 'lock.t.lost_kicks')['verdict'], 'not judged')
        self.assertEqual(self.row(result, 'lock.t.only_a_ns')['verdict'], 'not compared')
        self.assertEqual(result['summary']['judged'], 0)

    def test_threshold_option(self):
        self.assertEqual(compare.parse_thresholds(['latency=20'])['latency'], 0.2)
        self.assertEqual(compare.parse_thresholds(['all=0.5'])['tail'], 0.5)
        for bad in ('latency', 'speed=5', 'cost=-1', 'cost=x'):
            with self.assertRaises(compare.CompareError):
                compare.parse_thresholds([bad])


class Guards(Base):
    WORSE = 'lock.t.throughput'
    GUARD = 'lock.t.throughput [lock smp=2]'

    def sides(self, headline=()):
        reps_a = zipreps(scaled(self.WORSE, 'ops/ms', [100.0, 101.0, 99.0]),
                         scaled('lock.u.throughput', 'ops/ms', [50.0, 50.0, 50.0]))
        reps_b = zipreps(scaled(self.WORSE, 'ops/ms', [80.0, 81.0, 79.0]),
                         scaled('lock.u.throughput', 'ops/ms', [50.0, 50.0, 50.0]))
        return self.pair(reps_a, reps_b, headline=headline)

    def test_guarded_worse_exits_1(self):
        result = compare.compare(*self.sides(headline=[self.GUARD]))
        self.assertEqual(result['exit'], 1)
        self.assertEqual(result['summary']['guarded_worse'], [self.GUARD])

    def test_unguarded_worse_exits_0(self):
        result = compare.compare(*self.sides(headline=['lock.u.throughput [lock smp=2]']))
        self.assertEqual(result['summary']['worse'], 1)
        self.assertEqual(result['exit'], 0)

    def test_guard_globs_replace_the_headlines(self):
        a, b = self.sides(headline=['lock.u.throughput [lock smp=2]'])
        self.assertEqual(compare.compare(a, b, guards=['lock.t.*'])['exit'], 1)
        self.assertEqual(compare.compare(a, b, guards=['sched.*'])['exit'], 0)

    def test_outputs_and_command_line(self):
        self.sides(headline=[self.GUARD])
        out = os.path.join(self.root, 'out')
        stdout, stderr = io.StringIO(), io.StringIO()
        with redirect_stdout(stdout), redirect_stderr(stderr):
            code = compare_run.main(['--compare', os.path.join(self.last, 'a'),
                                     os.path.join(self.last, 'b'), '--out', out])
        self.assertEqual(code, 1)
        self.assertIn('compare: 2 figures judged: 1 worse, 0 better, 1 no change',
                      stdout.getvalue())
        with open(os.path.join(out, 'compare.json')) as f:
            data = json.load(f)
        self.assertEqual(data['schema'], 'locklab-compare/1')
        self.assertEqual(data['exit'], 1)
        self.assertTrue(data['paired'])
        for name in ('compare.html', 'compare.txt'):
            self.assertTrue(os.path.getsize(os.path.join(out, name)) > 0)


class BadInput(Base):
    def test_mixed_clocks_are_refused(self):
        a = write_side(self.root, 'a', scaled('lock.t.throughput', 'ops/ms', [1.0, 1.0]),
                       clock='real')
        b = write_side(self.root, 'b', scaled('lock.t.throughput', 'ops/ms', [1.0, 1.0]),
                       clock='virtual')
        with self.assertRaisesRegex(compare.CompareError, 'clock=real.*clock=virtual'):
            compare.compare(compare.load_side(a), compare.load_side(b))
        stderr = io.StringIO()
        with redirect_stderr(stderr), redirect_stdout(io.StringIO()):
            self.assertEqual(compare_run.main(['--compare', a, b, '--out',
                                               os.path.join(self.root, 'o')]), 2)
        self.assertIn('clock', stderr.getvalue())

    def test_no_figure_in_common(self):
        a, b = self.pair(scaled('lock.t.throughput', 'ops/ms', [1.0, 1.0]),
                         scaled('lock.u.throughput', 'ops/ms', [1.0, 1.0]))
        with self.assertRaisesRegex(compare.CompareError, 'no figure in common'):
            compare.compare(a, b)

    def test_missing_and_empty_directories(self):
        with self.assertRaisesRegex(compare.CompareError, 'no such results directory'):
            compare.load_side(os.path.join(self.root, 'nowhere'))
        os.makedirs(os.path.join(self.root, 'empty'))
        with self.assertRaisesRegex(compare.CompareError, 'manifest'):
            compare.load_side(os.path.join(self.root, 'empty'))
        stderr = io.StringIO()
        with redirect_stderr(stderr), redirect_stdout(io.StringIO()):
            self.assertEqual(compare_run.main(['--compare', os.path.join(self.root, 'x'),
                                               os.path.join(self.root, 'y')]), 2)
            self.assertEqual(compare_run.main(['--compare', 'only-one']), 2)
            self.assertEqual(compare_run.main(['--compare-run', os.path.join(self.root, 'a.iso'),
                                               os.path.join(self.root, 'b.iso')]), 2)
        self.assertIn('no such results directory', stderr.getvalue())


class TheProof(Base):
    """The checks make test-compare applies, on synthetic results."""

    def test_slowdown_seen_and_unrelated_figures_quiet(self):
        a, s = self.pair(zipreps(scaled('lock.ticket.throughput', 'ops/ms', [400.0, 401.0]),
                                 scaled('lock.ticket.uncontended_cycles', 'cycles', [576, 576]),
                                 scaled('lock.tas.throughput', 'ops/ms', [300.0, 300.0])),
                         zipreps(scaled('lock.ticket.throughput', 'ops/ms', [300.0, 301.0]),
                                 scaled('lock.ticket.uncontended_cycles', 'cycles', [900, 900]),
                                 scaled('lock.tas.throughput', 'ops/ms', [300.0, 300.1])),
                         slowdown=None)
        ok, message, lines = compare_test.check_slowdown(compare.compare(a, s), 'ticket')
        self.assertTrue(ok, message)
        self.assertEqual(len(lines), 2)
        # A slowdown nobody sees fails, and so does an unrelated figure reported worse.
        ok, message, _ = compare_test.check_slowdown(compare.compare(a, a), 'ticket')
        self.assertFalse(ok)
        self.assertIn('not reported worse', message)
        ok, message, _ = compare_test.check_slowdown(compare.compare(a, s), 'tas')
        self.assertFalse(ok)
        self.assertIn('unrelated figures reported worse', message)

    def test_aa_check(self):
        a, b = self.pair(scaled('lock.t.throughput', 'ops/ms', [100.0, 101.0]),
                         scaled('lock.t.throughput', 'ops/ms', [100.0, 101.0]))
        self.assertTrue(compare_test.check_aa(compare.compare(a, b))[0])
        a, b = self.pair(scaled('lock.u.throughput', 'ops/ms', [100.0, 101.0]),
                         scaled('lock.u.throughput', 'ops/ms', [50.0, 51.0]))
        ok, message = compare_test.check_aa(compare.compare(a, b))
        self.assertFalse(ok)
        self.assertIn('below 95%', message)

    def test_slowed_build_is_named(self):
        a = write_side(self.root, 'a', scaled('lock.t.throughput', 'ops/ms', [1.0]),
                       slowdown='ticket +200 ns (200 TSC cycles)')
        self.assertEqual(compare.load_side(a)['slowdown'], 'ticket +200 ns')


if __name__ == '__main__':
    unittest.main()
