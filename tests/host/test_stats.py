"""Tests of locklab.stats: intervals against values worked out by hand, determinism, and the
verdicts of a comparison."""

import unittest

import support  # noqa: F401  (puts scripts/ on sys.path)
from locklab import stats


class MedianInterval(unittest.TestCase):
    def test_three_readings_give_their_range(self):
        # Of the 27 resamples of 3, 7 have median 1 (P = 7/27 > 2.5%), so the exact interval is
        # the whole range: what three readings can honestly say.
        self.assertEqual(stats.median_ci([3.0, 1.0, 2.0]), (1.0, 3.0))

    def test_one_reading_has_no_interval(self):
        self.assertIsNone(stats.median_ci([5.0]))
        self.assertIsNone(stats.summary([5.0])['ci'])

    def test_more_readings_narrow_the_interval(self):
        values = [10.0] * 20 + [100.0, 0.0]
        lo, hi = stats.median_ci(values)
        self.assertEqual((lo, hi), (10.0, 10.0))

    def test_interval_holds_the_median_and_is_deterministic(self):
        values = [5.1, 4.9, 5.3, 6.0, 4.2, 5.0, 5.5, 4.8]
        first = stats.median_ci(values)
        self.assertEqual(first, stats.median_ci(list(values)))
        self.assertLessEqual(first[0], stats.median(values))
        self.assertGreaterEqual(first[1], stats.median(values))
        self.assertGreaterEqual(first[0], min(values))
        self.assertLessEqual(first[1], max(values))

    def test_summary_fields(self):
        s = stats.summary([2.0, 4.0, 6.0, 'x', None])
        self.assertEqual((s['n'], s['median'], s['min'], s['max']), (3, 4.0, 2.0, 6.0))
        self.assertEqual((s['q1'], s['q3'], s['iqr']), (3.0, 5.0, 2.0))
        self.assertAlmostEqual(s['spread'], 1.0)
        self.assertEqual(s['ci'], [2.0, 6.0])
        self.assertIsNone(stats.summary(['x']))


class RatioInterval(unittest.TestCase):
    def test_unpaired_three_by_three(self):
        r = stats.ratio_ci([10.0, 11.0, 12.0], [5.0, 5.5, 6.0])
        self.assertAlmostEqual(r['ratio'], 2.0)
        self.assertEqual(r['ci'], [10.0 / 6.0, 12.0 / 5.0])
        self.assertFalse(r['paired'])

    def test_paired_cancels_shared_weather(self):
        # Each repeat's weather scales A and B alike: the pairs all say 2x, unpaired cannot.
        a = [10.0, 20.0, 40.0, 80.0]
        b = [5.0, 10.0, 20.0, 40.0]
        paired = stats.ratio_ci(a, b, paired=True)
        unpaired = stats.ratio_ci(a, b)
        self.assertAlmostEqual(paired['ci'][0], 2.0)
        self.assertAlmostEqual(paired['ci'][1], 2.0)
        self.assertLess(unpaired['ci'][0], 1.0)
        self.assertGreater(unpaired['ci'][1], 4.0)

    def test_paired_needs_equal_counts(self):
        with self.assertRaises(ValueError):
            stats.ratio_ci([1.0, 2.0], [1.0], paired=True)

    def test_no_number_or_zero_median(self):
        self.assertIsNone(stats.ratio_ci([], [1.0]))
        self.assertIsNone(stats.ratio_ci([1.0], [0.0]))
        self.assertIsNone(stats.ratio_ci([2.0], [1.0])['ci'])

    def test_shows_difference(self):
        self.assertTrue(stats.shows_difference([1.2, 3.0]))
        self.assertTrue(stats.shows_difference([0.2, 0.9]))
        self.assertFalse(stats.shows_difference([0.8, 3.7]))
        self.assertFalse(stats.shows_difference(None))


class Verdict(unittest.TestCase):
    def test_higher_is_better(self):
        self.assertEqual(stats.verdict([1.10, 1.30], 0.05, True), 'better')
        self.assertEqual(stats.verdict([0.70, 0.90], 0.05, True), 'worse')
        self.assertEqual(stats.verdict([0.97, 1.30], 0.05, True), 'no change')

    def test_lower_is_better(self):
        self.assertEqual(stats.verdict([1.10, 1.30], 0.05, False), 'worse')
        self.assertEqual(stats.verdict([0.70, 0.90], 0.05, False), 'better')

    def test_inside_the_band_is_no_change(self):
        # Shown to differ from 1, but by less than the threshold.
        self.assertEqual(stats.verdict([1.01, 1.04], 0.05, True), 'no change')
        self.assertEqual(stats.verdict(None, 0.05, True), 'no change')


if __name__ == '__main__':
    unittest.main()
