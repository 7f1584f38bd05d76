"""Statistics of repeated readings: median, quantiles, the spread of the repeats, 95% confidence
intervals of a median and of a ratio of two medians, and the verdict of an A/B comparison.

Method.  A figure is read once per repeat (three repeats by default), from a distribution nobody
knows: often skewed, sometimes with two modes (a vCPU preempted or not).  The percentile bootstrap
needs no assumption about that distribution: resample the repeats with replacement, take the
median of each resample, and read the interval off the 2.5% and 97.5% points of those medians.

What few repeats can say.  A resample's median is always one of the readings (or, for an even
count, the mean of two), so the interval of n readings can never be wider than their range, and for
n = 3 it is that range.  That is the honest answer: three readings bound the median only by the
extremes seen.  A single reading has no interval at all (None), never a zero-width one.

Exactness and determinism.  For up to EXACT_MAX readings every one of the n^n resamples is
enumerated, so the interval is the exact bootstrap distribution, with no random numbers.  Beyond
that, RESAMPLES resamples are drawn from a generator seeded by the readings themselves: the same
readings always give the same interval, so a report regenerated from stored runs does not change.

Ratios.  A factor B/A is the ratio of the medians.  When repeat r of A and repeat r of B ran back
to back (paired), the pairs are resampled together, so weather shared by both halves of a pair
cancels; otherwise A and B are resampled independently.
"""

import hashlib
import itertools
import math
import random

LEVEL = 0.95
EXACT_MAX = 5  # 5^5 = 3125 resamples enumerated; 6^6 would be 46656
RESAMPLES = 4000


def isnum(value):
    """True for a finite int or float (not a bool)."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def quantile(ordered, q):
    """Linear-interpolated quantile q (0..1) of an ascending list; None when empty."""
    if not ordered:
        return None
    pos = (len(ordered) - 1) * q
    low = int(math.floor(pos))
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def median(values):
    """Median of the numbers in values; None when there are none."""
    return quantile(sorted(v for v in values if isnum(v)), 0.5)


def _seed(*groups):
    text = repr([list(g) for g in groups]).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], 'little')


def _resamples(n, seed):
    """Index tuples of the bootstrap, each with its weight: all n^n for small n, else a seeded
    random draw of RESAMPLES."""
    if n <= EXACT_MAX:
        weight = 1.0 / n**n
        for idx in itertools.product(range(n), repeat=n):
            yield idx, weight
        return
    rng = random.Random(seed)
    weight = 1.0 / RESAMPLES
    for _ in range(RESAMPLES):
        yield [rng.randrange(n) for _ in range(n)], weight


def _percentiles(weighted, level):
    """(lo, hi): the (1-level)/2 and (1+level)/2 points of a weighted list of (value, weight)."""
    weighted.sort(key=lambda vw: vw[0])
    tail = (1.0 - level) / 2.0
    lo = hi = None
    acc = 0.0
    for value, weight in weighted:
        acc += weight
        if lo is None and acc >= tail - 1e-12:
            lo = value
        if acc >= 1.0 - tail - 1e-12:
            hi = value
            break
    if hi is None:
        hi = weighted[-1][0]
    return lo, hi


def _median_dist(values, seed):
    """The bootstrap distribution of the median of values, as {median: weight}."""
    dist = {}
    for idx, weight in _resamples(len(values), seed):
        m = quantile(sorted(values[i] for i in idx), 0.5)
        dist[m] = dist.get(m, 0.0) + weight
    return dist


def median_ci(values, level=LEVEL):
    """(lo, hi): the bootstrap interval of the median of values; None for fewer than 2 readings."""
    values = [v for v in values if isnum(v)]
    if len(values) < 2:
        return None
    dist = _median_dist(values, _seed(values))
    return _percentiles(list(dist.items()), level)


def summary(values, level=LEVEL):
    """Everything a report says of one figure's repeats: n, values, median, min, max, q1, q3, iqr,
    spread (max - min) / median, and ci [lo, hi] of the median (None below 2 readings).
    None when there is no number at all."""
    values = [v for v in values if isnum(v)]
    if not values:
        return None
    ordered = sorted(values)
    med = quantile(ordered, 0.5)
    q1, q3 = quantile(ordered, 0.25), quantile(ordered, 0.75)
    ci = median_ci(values, level)
    return {
        'n': len(values),
        'values': list(values),
        'median': med,
        'min': ordered[0],
        'max': ordered[-1],
        'q1': q1,
        'q3': q3,
        'iqr': q3 - q1,
        'spread': (ordered[-1] - ordered[0]) / med if med else None,
        'ci': list(ci) if ci else None,
        'ci_level': level,
    }


def ratio_ci(a, b, paired=False, level=LEVEL):
    """The factor median(a) / median(b) with its bootstrap interval.

    Returns {ratio, ci: [lo, hi] or None, paired, n_a, n_b}; None when either side has no number
    or b's median is zero.  paired=True needs len(a) == len(b) with a[r] and b[r] from the same
    repeat; the pairs are then resampled together."""
    if paired:
        pairs = [(x, y) for x, y in zip(a, b) if isnum(x) and isnum(y)]
        if len(a) != len(b):
            raise ValueError('paired ratio of %d and %d readings' % (len(a), len(b)))
        a = [x for x, _ in pairs]
        b = [y for _, y in pairs]
    else:
        a = [v for v in a if isnum(v)]
        b = [v for v in b if isnum(v)]
    if not a or not b:
        return None
    mb = median(b)
    if not mb:
        return None
    result = {'ratio': median(a) / mb, 'ci': None, 'paired': paired, 'n_a': len(a),
              'n_b': len(b)}
    if paired and len(a) >= 2:
        weighted = []
        for idx, weight in _resamples(len(a), _seed(a, b)):
            den = quantile(sorted(b[i] for i in idx), 0.5)
            if den:
                weighted.append((quantile(sorted(a[i] for i in idx), 0.5) / den, weight))
        if weighted:
            result['ci'] = list(_percentiles(weighted, level))
    elif not paired and len(a) >= 2 and len(b) >= 2:
        da = _median_dist(a, _seed(a))
        db = _median_dist(b, _seed(b))
        weighted = [(ma / mb_, wa * wb) for ma, wa in da.items() for mb_, wb in db.items() if mb_]
        if weighted:
            result['ci'] = list(_percentiles(weighted, level))
    return result


def shows_difference(ci, null=1.0):
    """True when the interval [lo, hi] excludes null (1 for a factor); False when it includes it
    or there is no interval."""
    return bool(ci) and (ci[0] > null or ci[1] < null)


def verdict(ci, threshold, higher_is_better):
    """'better', 'worse' or 'no change' for a factor B/A with interval ci, against a threshold
    (0.05 = 5%).  The band of no change is [1/(1+t), 1+t]; a verdict other than 'no change' needs
    the whole interval beyond the band, on one side.  No interval (a single repeat) is
    'no change': nothing was shown."""
    if not ci:
        return 'no change'
    up, down = 1.0 + threshold, 1.0 / (1.0 + threshold)
    if ci[0] > up:
        return 'better' if higher_is_better else 'worse'
    if ci[1] < down:
        return 'worse' if higher_is_better else 'better'
    return 'no change'
