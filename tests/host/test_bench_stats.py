"""Tests of the bench report's statistics (docs/bench.md, "Spread and intervals"): every figure
with its repeats, spread and 95% interval; every factor with its interval, paired where the
repeats pair; "no difference shown" when the interval includes 1; clocks never pooled.

The checks are functions of their own so that the last tests can run them on reports made by
deliberately broken code and see them fail."""

import json
import os
import tempfile
import unittest
from unittest import mock

import support  # noqa: F401  (puts scripts/ on sys.path)
from locklab import bench_html, bench_report, bench_results, bench_scenarios, stats
from test_bench import lock_log, run_entry

WORDING = ('lower', 'higher')


def lock_runs(clock=None, scale=0, reps=3):
    runs = []
    for k in range(reps):
        run = run_entry('lock-smp2-r%d' % (k + 1), 'lock', 2, lock_log(k + scale), rep=k + 1)
        if clock:
            run['clock'] = clock
        runs.append(run)
    return runs


def build(runs):
    with tempfile.TemporaryDirectory() as out:
        report = bench_report.build(out, runs, gnuplot='/nonexistent/gnuplot', host_cpus=2)
        with open(os.path.join(out, 'report.json')) as f:
            written = json.load(f)
        files = sorted(os.listdir(out))
    return report, written, files


class FakeResults:
    clock = 'real'


def entry(samples, reps, unit='ns'):
    """A metric entry as bench_results aggregates it: samples with their repeats."""
    return {'id': 'x', 'path': 'x', 'unit': unit, 'samples': list(samples), 'runs': list(reps),
            'reps': list(reps), 'stats': bench_results.summarize(samples), 'smp': 2,
            'group': 'lock', 'attrs': {}, 'clock': 'real'}


def ratio(before, after, better='lower', reps_b=(1, 2, 3), reps_a=(1, 2, 3)):
    return bench_scenarios.make_ratio('t', 'T', 'wait', 'plain', entry(before, reps_b), 'new',
                                      entry(after, reps_a), better, 'ctx', FakeResults(), WORDING)


# -- the checks ---------------------------------------------------------------------------------

def check_figures(test, report):
    """Every metric and histogram figure: repeats, median, spread and a 95% interval of the
    median that holds the median, and the clock that produced it."""
    test.assertTrue(report['metrics'])
    for e in report['metrics'] + report['histograms']:
        test.assertIn(e['clock'], ('real', 'virtual'), e['id'])
        stat_sets = [e['stats']] if 'n' in e['stats'] else [s for s in e['stats'].values() if s]
        for s in stat_sets:
            for key in ('n', 'values', 'median', 'min', 'max', 'q1', 'q3', 'iqr', 'spread', 'ci'):
                test.assertIn(key, s, e['id'])
            test.assertEqual(s['n'], len(s['values']))
            if s['n'] >= 2:
                test.assertEqual(len(s['ci'] or ()), 2, e['id'])
                lo, hi = s['ci']
                test.assertLessEqual(lo, s['median'], e['id'])
                test.assertGreaterEqual(hi, s['median'], e['id'])
            else:
                test.assertIsNone(s['ci'])


def check_no_difference(test, r):
    """A factor whose interval includes 1 is not stated as a difference anywhere."""
    test.assertFalse(r['shown'])
    test.assertIn('no difference shown', r['statement'])
    row = bench_html.ratio_row(r)
    test.assertIn('no difference shown', row)
    test.assertNotIn('class="num good"', row)
    test.assertNotIn('class="num bad"', row)


def check_clocks_apart(test, report, real_values, virtual_values):
    """Two clocks: two sections, and no figure or factor holds readings of both."""
    test.assertEqual(report['clocks'], ['real', 'virtual'])
    test.assertEqual([s['clock'] for s in report['sections']], ['real', 'virtual'])
    cycles = {e['clock']: sorted(e['stats']['values']) for e in report['metrics']
              if e['path'] == 'lock.ticket.uncontended_cycles'}
    test.assertEqual(cycles, {'real': real_values, 'virtual': virtual_values})
    for r in report['headline']:
        test.assertIn(r['clock'], ('real', 'virtual'))
        for side in ('before', 'after'):
            if r.get(side):
                test.assertEqual(r[side]['clock'], r['clock'])
    lines = bench_report.headline_lines(report)
    test.assertIn('  clock=real:', lines)
    test.assertIn('  clock=virtual:', lines)


# -- the tests ----------------------------------------------------------------------------------

class FigureIntervals(unittest.TestCase):
    def test_every_figure_in_the_json_has_spread_and_interval(self):
        report, written, _ = build(lock_runs())
        check_figures(self, written)
        self.assertEqual(written['clock'], 'real')
        s = next(e['stats'] for e in written['metrics']
                 if e['path'] == 'lock.ticket.uncontended_cycles')
        # 50, 51, 52 cycles: the interval of three readings is their range.
        self.assertEqual((s['median'], s['min'], s['max'], s['iqr']), (51, 50, 52, 1.0))
        self.assertEqual(s['ci'], [50, 52])
        self.assertAlmostEqual(s['spread'], 2 / 51)

    def test_headline_factors_carry_their_interval(self):
        _, written, _ = build(lock_runs())
        measured = [r for r in written['headline'] if r['status'] == 'measured']
        self.assertTrue(measured)
        for r in measured:
            self.assertEqual(r['ci_level'], 0.95)
            self.assertEqual(len(r['ci']), 2, r['id'])
            self.assertIs(r['paired'], True, r['id'])     # one leg: repeat r pairs with r
            self.assertEqual(r['shown'], stats.shows_difference(r['ci']))
            self.assertEqual(len(r['before']['ci']), 2, r['id'])
            self.assertEqual(len(r['after']['ci']), 2, r['id'])
            if r['shown']:
                self.assertIn('[95% CI ', r['statement'])
            else:
                self.assertIn('no difference shown', r['statement'])

    def test_same_data_same_report(self):
        _, a, _ = build(lock_runs())
        _, b, _ = build(lock_runs())
        self.assertEqual([r.get('ci') for r in a['headline']],
                         [r.get('ci') for r in b['headline']])
        self.assertEqual([e['stats'] for e in a['metrics']], [e['stats'] for e in b['metrics']])


class FactorIntervals(unittest.TestCase):
    def test_shown_difference_is_paired(self):
        before, after = [100, 110, 120], [50, 56, 59]
        r = ratio(before, after)
        want = stats.ratio_ci(before, after, paired=True)['ci']
        self.assertEqual(r['ci'], want)
        self.assertTrue(r['paired'])
        self.assertTrue(r['shown'])
        self.assertIn('lower [95%% CI %sx-%sx over 3 repeats]' % (
            bench_results._sig(want[0]), bench_results._sig(want[1])), r['statement'])
        self.assertIn('class="num good"', bench_html.ratio_row(r))

    def test_worse_is_stated_in_its_direction(self):
        r = ratio([50, 56, 59], [100, 110, 120])        # lower is better: 2x worse
        self.assertTrue(r['shown'])
        self.assertLess(r['ci'][1], 1)
        self.assertIn('higher [95% CI ', r['statement'])
        self.assertIn('class="num bad"', bench_html.ratio_row(r))

    def test_interval_including_1_says_no_difference_shown(self):
        r = ratio([100, 90, 130], [95, 120, 80])
        self.assertLess(r['ci'][0], 1)
        self.assertGreater(r['ci'][1], 1)
        check_no_difference(self, r)
        self.assertIn('(95% CI ', r['statement'])

    def test_unpaired_when_the_repeats_differ(self):
        before, after = [100, 110, 120], [50, 56, 59]
        r = ratio(before, after, reps_b=(1, 2, 3), reps_a=(4, 5, 6))
        self.assertFalse(r['paired'])
        self.assertEqual(r['ci'], stats.ratio_ci(before, after, paired=False)['ci'])

    def test_one_repeat_shows_nothing(self):
        r = ratio([100], [50], reps_b=(1,), reps_a=(1,))
        self.assertIsNone(r['ci'])
        check_no_difference(self, r)
        self.assertIn('one repeat: no interval', r['statement'])


class Clocks(unittest.TestCase):
    def test_two_clocks_two_sections_never_pooled(self):
        runs = lock_runs('real') + lock_runs('virtual', scale=10)
        report, written, files = build(runs)
        self.assertIn('clock-real', files)
        self.assertIn('clock-virtual', files)
        check_clocks_apart(self, written, [50, 51, 52], [60, 61, 62])
        check_figures(self, written)

    def test_clock_from_the_runner_json(self):
        runs = lock_runs()
        for run in runs:
            run['data']['run']['clock'] = 'virtual'
        _, written, _ = build(runs)
        self.assertEqual(written['clock'], 'virtual')
        self.assertTrue(all(e['clock'] == 'virtual' for e in written['metrics']))
        measured = [r for r in written['headline'] if r['status'] == 'measured']
        self.assertTrue(measured)
        for r in measured:
            self.assertEqual(r['clock'], 'virtual')
            self.assertIn('clock=virtual', r['context'])


class ChecksCanFail(unittest.TestCase):
    """The checks above, on reports from deliberately broken code."""

    def test_pooling_clocks_is_caught(self):
        runs = lock_runs('real') + lock_runs('virtual', scale=10)
        with mock.patch.object(bench_results, 'run_clock', lambda run: 'real'), \
                mock.patch.object(bench_report, 'run_clock', lambda run: 'real'):
            _, written, _ = build(runs)
        with self.assertRaises(AssertionError):
            check_clocks_apart(self, written, [50, 51, 52], [60, 61, 62])

    def test_a_difference_claimed_inside_the_interval_is_caught(self):
        with mock.patch.object(stats, 'shows_difference', lambda ci, null=1.0: True):
            r = ratio([100, 90, 130], [95, 120, 80])
        with self.assertRaises(AssertionError):
            check_no_difference(self, r)

    def test_a_figure_without_interval_is_caught(self):
        _, written, _ = build(lock_runs())
        for e in written['metrics']:
            e['stats']['ci'] = None
        with self.assertRaises(AssertionError):
            check_figures(self, written)


if __name__ == '__main__':
    unittest.main()
