"""A/B comparison of two sets of benchmark results: which figures got better, worse, or did not
change beyond what the repeats can tell apart.

Input: two scripts/bench output directories (runs/manifest.json and the runs' run-qemu JSON;
report.json when present, for the headline figures).  Each side's figures are read per repeat
straight from the runs, so that repeat r of A can be paired with repeat r of B: when both sides
ran in one interleaved session (make compare: A B A B ..., one machine), the manifests share a
session id and the ratio's interval is the paired bootstrap of locklab.stats; otherwise the two
sides are resampled independently.

Per figure: A and B (medians over the repeats), the factor B/A with its 95% interval, and a
verdict against a threshold that depends on the figure's kind (THRESHOLDS): 'worse' or 'better'
only when the whole interval lies beyond the band of no change, on one side, with the figure's
direction (throughput: higher is better; costs, waits, latencies: lower is better).  Figures
with no direction (counts, the kernel's own ratios) are listed but not judged.

Which interval judges.  A comparison has few repeats (2 or 3), and the percentile bootstrap of
n readings is at most their range, which holds the true median with probability 1 - 2^(1-n)
only: 50% for two pairs, 75% for three.  On a loaded host in real time, two pairs of a noisy
figure land on the same side of a 5% band often, and the bootstrap alone would call that a
change.  So the verdict also asks a Student t interval of the mean log factor (of the pairs'
log factors when paired, Welch's of the two sides' logs otherwise), which widens as it should
with few readings (t = 12.7 for two pairs), and judges by the hull of the two intervals: a
verdict needs both beyond the band.  Repeats that agree (virtual time: to a few parts in 10^5)
keep both narrow, so a real slowdown is still seen with two pairs.  Both intervals are in the
JSON ('ci' the bootstrap's, 'ci_t', 'ci_judged' their hull).

Guarded figures decide the exit status: 1 when one is 'worse'.  By default they are the
headline figures (the before/after figures of report.json's headline factors); --guard GLOB
(fnmatch over figure ids) replaces that set.

Refused, with CompareError (exit 2): a missing or unreadable directory, results without runs,
results of different clocks (real and virtual time measure different things), and two sides with
no figure in common.
"""

import fnmatch
import html
import json
import math
import os
import re

from . import bench_results
from . import stats

SCHEMA = 'locklab-compare/1'

# The band of no change per kind of figure, as a fraction: a verdict other than 'no change'
# needs the whole interval of B/A beyond [1/(1+t), 1+t].  docs/bench.md gives the reasons.
THRESHOLDS = {
    'cost': 0.05,        # uncontended cost, shootdown cost: one code path, averaged over many
    'throughput': 0.05,  # operations per ms over a fixed run
    'fairness': 0.05,    # max/min acquisitions per CPU
    'latency': 0.10,     # medians and p99 of waits and wakeups: a distribution's body
    'tail': 0.25,        # maxima: one sample each, set by the rarest event of the run
}
KINDS = tuple(THRESHOLDS)
HIST_STATS = (('p50', 'latency'), ('p99', 'latency'), ('max', 'tail'))
TIME_UNITS = ('ns', 'us', 'ms', 's', 'cycles')
_SLOWDOWN = re.compile(r'#\s*lock slowdown:\s*(\S+)\s+\+(\d+)\s*ns')

# Two-sided 95% points of Student's t by degrees of freedom (1..30); beyond 30, 1.96 + 2.4/df
# (within 0.5% of the true value).
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042)

WORSE, BETTER, SAME = 'worse', 'better', 'no change'
NOT_JUDGED, MISSING = 'not judged', 'not compared'


class CompareError(Exception):
    """Bad input: the message says what and where."""


def classify(path, unit):
    """(kind, higher_is_better) of a metric, or (None, None) when it has no direction."""
    leaf = path.rsplit('.', 1)[-1]
    words = set(leaf.split('_'))
    unit = unit or ''
    if 'throughput' in path or unit.startswith('ops/'):
        return 'throughput', True
    if leaf.startswith('fairness'):
        return 'fairness', False
    if unit in TIME_UNITS or leaf.endswith('floor_x1000'):
        if 'max' in words or leaf in ('max', 'p999'):
            return 'tail', False
        if words & {'p50', 'p90', 'p99', 'avg', 'latency'} or 'wait' in path or \
                'latency' in path:
            return 'latency', False
        return 'cost', False
    return None, None


# -- loading -------------------------------------------------------------------------------

def _read_json(path):
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def load_side(path, name=None):
    """One side's results: runs (with their run-qemu JSON), clocks, slowdown, guard ids."""
    if not path or not os.path.isdir(path):
        raise CompareError('%s: no such results directory' % path)
    manifest_path = os.path.join(path, 'runs', 'manifest.json')
    try:
        manifest = _read_json(manifest_path)
    except OSError:
        raise CompareError('%s: no runs/manifest.json: not a scripts/bench output directory'
                           % path)
    except ValueError as err:
        raise CompareError('%s: unreadable: %s' % (manifest_path, err))
    runs = bench_results.load_runs(manifest.get('runs') or [], path)
    runs = [r for r in runs if r.get('data')]
    if not runs:
        raise CompareError('%s: no run with results (runs/*.json missing or empty)' % path)
    side = {'dir': path, 'name': name or os.path.basename(os.path.normpath(path)),
            'runs': runs, 'mode': manifest.get('mode'), 'session': manifest.get('session'),
            'iso': manifest.get('iso'), 'commit': manifest.get('commit'),
            'repeats': sorted({r.get('rep') for r in runs if r.get('rep') is not None}),
            'clocks': set(), 'slowdown': None, 'guard_ids': set()}
    for run in runs:
        clock = run.get('clock') or ((run['data'].get('run') or {}).get('clock'))
        if not clock:
            for m in run['data'].get('metrics') or []:
                clock = (m.get('attrs') or {}).get('clock') or clock
        side['clocks'].add(clock or 'real')
        text = bench_results.read_text(os.path.join(path, run['log'])) if run.get('log') \
            else None
        m = _SLOWDOWN.search(text or '')
        if m:
            side['slowdown'] = '%s +%s ns' % (m.group(1), m.group(2))
    report_path = os.path.join(path, 'report.json')
    if os.path.exists(report_path):
        try:
            report = _read_json(report_path)
        except (OSError, ValueError) as err:
            raise CompareError('%s: unreadable: %s' % (report_path, err))
        for ratio in report.get('headline') or []:
            for end in ('before', 'after'):
                metric = (ratio.get(end) or {}).get('metric')
                if metric:
                    side['guard_ids'].add(metric)
        side['commit'] = side['commit'] or (report.get('environment') or {}).get(
            'kernel_commit')
    return side


def figures(runs, keys):
    """{figure id: {id, path, leg, unit, kind, higher, values {rep: value}}} of one side's runs;
    keys: bench_results.identity_keys over both sides, so that ids agree."""
    out = {}

    def put(fid, path, leg, unit, kind, higher, rep, value):
        f = out.setdefault(fid, {'id': fid, 'path': path, 'leg': leg, 'unit': unit,
                                 'kind': kind, 'higher_is_better': higher, 'values': {}})
        f['values'][rep] = value

    for index, run in enumerate(runs):
        rep = run.get('rep', index + 1)
        leg = bench_results.leg_label(run.get('group'), run.get('smp'), run.get('options'))
        for m in bench_results.run_metrics(run):
            attrs = m.get('attrs') or {}
            ident = {k: attrs[k] for k in sorted(keys.get((m.get('test'), m['path']), ()))
                     if k in attrs}
            fid = m['path']
            if ident:
                fid += ' {%s}' % ' '.join('%s=%s' % kv for kv in sorted(ident.items()))
            fid += ' [%s]' % leg
            kind, higher = classify(m['path'], m.get('unit'))
            put(fid, m['path'], leg, m.get('unit'), kind, higher, rep, m['value'])
        for h in bench_results.run_hists(run):
            st = bench_results.hist_stats(h)
            for stat, kind in HIST_STATS:
                if stats.isnum(st.get(stat)):
                    fid = '%s [%s] %s' % (h['path'], leg, stat)
                    put(fid, '%s:%s' % (h['path'], stat), leg, h.get('unit'), kind, False, rep,
                        st[stat])
    return out


# -- comparing -----------------------------------------------------------------------------

def t975(df):
    """The 97.5% point of Student's t with df degrees of freedom (rounded down: wider)."""
    df = int(math.floor(df))
    if df < 1:
        return None
    return T975[df - 1] if df <= len(T975) else 1.96 + 2.4 / df


def _mean_sd(values):
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def log_t_interval(a, b, paired):
    """[lo, hi]: the 95% Student t interval of the factor B/A on a log scale; None when a value
    is not positive (no logarithm) or there are too few readings."""
    if any(v <= 0 for v in list(a) + list(b)):
        return None
    if paired:
        if len(a) < 2:
            return None
        mean, sd = _mean_sd([math.log(y / x) for x, y in zip(a, b)])
        half = t975(len(a) - 1) * sd / math.sqrt(len(a))
    else:
        if len(a) < 2 or len(b) < 2:
            return None
        ma, sa = _mean_sd([math.log(x) for x in a])
        mb, sb = _mean_sd([math.log(y) for y in b])
        va, vb = sa * sa / len(a), sb * sb / len(b)
        mean = mb - ma
        if va + vb == 0:
            half = 0.0
        else:
            df = (va + vb) ** 2 / ((va * va / (len(a) - 1)) + (vb * vb / (len(b) - 1)))
            half = t975(df) * math.sqrt(va + vb)
    return [math.exp(mean - half), math.exp(mean + half)]

def parse_thresholds(items):
    """['latency=15', 'tail=0.3', 'all=10'] -> {kind: fraction}; percent above 1."""
    out = dict(THRESHOLDS)
    for item in items or []:
        kind, sep, value = item.partition('=')
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        if not sep or (kind not in THRESHOLDS and kind != 'all') or number <= 0:
            raise CompareError('--threshold %s: expected KIND=PERCENT with KIND one of %s or '
                               'all, PERCENT above 0' % (item, ', '.join(KINDS)))
        fraction = number / 100.0 if number >= 1 else number
        for k in (KINDS if kind == 'all' else (kind,)):
            out[k] = fraction
    return out


def _median_side(values):
    s = stats.summary(values)
    return {'values': values, 'median': s['median'] if s else None,
            'ci': s['ci'] if s else None}


def compare(side_a, side_b, thresholds=None, guards=None):
    """The comparison of B against A: a dict ready for JSON (rows per figure, summary, exit)."""
    thresholds = thresholds or dict(THRESHOLDS)
    clocks_a, clocks_b = side_a['clocks'], side_b['clocks']
    for side, clocks in ((side_a, clocks_a), (side_b, clocks_b)):
        if len(clocks) > 1:
            raise CompareError('%s: its runs used different clocks (%s): figures of real and '
                               'virtual time do not mix' % (side['dir'],
                                                            ', '.join(sorted(clocks))))
    if clocks_a != clocks_b:
        raise CompareError('A (%s) ran under clock=%s and B (%s) under clock=%s: real and '
                           'virtual time measure different things; run both with the same '
                           'CLOCK=' % (side_a['dir'], min(clocks_a), side_b['dir'],
                                       min(clocks_b)))
    paired = bool(side_a.get('session')) and side_a.get('session') == side_b.get('session')
    keys = bench_results.identity_keys(side_a['runs'] + side_b['runs'])
    figs_a, figs_b = figures(side_a['runs'], keys), figures(side_b['runs'], keys)
    if not set(figs_a) & set(figs_b):
        raise CompareError('%s and %s have no figure in common: they ran different legs (a '
                           'full against a quick matrix?)' % (side_a['dir'], side_b['dir']))
    guard_ids = None if guards else side_a['guard_ids'] | side_b['guard_ids']
    rows = []
    for fid in sorted(set(figs_a) | set(figs_b)):
        fa, fb = figs_a.get(fid), figs_b.get(fid)
        info = fa or fb
        guarded = any(fnmatch.fnmatchcase(fid, g) for g in guards) if guards else \
            fid in guard_ids
        row = {'id': fid, 'path': info['path'], 'leg': info['leg'], 'unit': info['unit'],
               'kind': info['kind'], 'higher_is_better': info['higher_is_better'],
               'guarded': guarded, 'threshold': thresholds.get(info['kind']),
               'a': None, 'b': None, 'ratio': None, 'ci': None, 'ci_t': None,
               'ci_judged': None, 'paired': False}
        if fa is None or fb is None:
            row['verdict'] = MISSING
            row['why'] = 'only in %s' % ('B' if fa is None else 'A')
            side = fb if fa is None else fa
            row['b' if fa is None else 'a'] = _median_side(
                [side['values'][r] for r in sorted(side['values'])])
            rows.append(row)
            continue
        common = sorted(set(fa['values']) & set(fb['values']))
        use_pairs = paired and len(common) >= 2
        if use_pairs:
            va = [fa['values'][r] for r in common]
            vb = [fb['values'][r] for r in common]
        else:
            va = [fa['values'][r] for r in sorted(fa['values'])]
            vb = [fb['values'][r] for r in sorted(fb['values'])]
        row['a'], row['b'] = _median_side(va), _median_side(vb)
        ratio = stats.ratio_ci(vb, va, paired=use_pairs)
        if ratio is None:
            row['verdict'] = MISSING
            row['why'] = 'A is 0: no factor'
        else:
            row['ratio'], row['ci'], row['paired'] = ratio['ratio'], ratio['ci'], use_pairs
            row['ci_t'] = log_t_interval(va, vb, use_pairs)
            # No t interval (a reading of 0 has no logarithm): the bootstrap of a few repeats
            # alone shows nothing, so nothing is judged.
            row['ci_judged'] = [min(ratio['ci'][0], row['ci_t'][0]),
                                max(ratio['ci'][1], row['ci_t'][1])] \
                if ratio['ci'] and row['ci_t'] else None
            if info['kind'] is None:
                row['verdict'] = NOT_JUDGED
                row['why'] = 'no direction (a count or the kernel\'s own ratio)'
            else:
                row['verdict'] = stats.verdict(row['ci_judged'], row['threshold'],
                                               info['higher_is_better'])
                if not ratio['ci']:
                    row['why'] = 'one repeat: no interval, nothing shown'
                elif not row['ci_t']:
                    row['why'] = 'a reading of 0: no t interval, nothing shown'
                elif row['verdict'] == SAME and \
                        stats.verdict(ratio['ci'], row['threshold'],
                                      info['higher_is_better']) != SAME:
                    row['why'] = 'the repeats agree too little: the t interval reaches the band'
        rows.append(row)
    return {'schema': SCHEMA, 'a': _side_info(side_a), 'b': _side_info(side_b),
            'clock': min(clocks_a), 'paired': paired, 'thresholds': thresholds,
            'guards': list(guards) if guards else None,
            'guard_default': None if guards else 'the headline figures of report.json',
            'figures': rows, 'summary': summarize(rows),
            'exit': 1 if any(r['guarded'] and r['verdict'] == WORSE for r in rows) else 0}


def _side_info(side):
    return {'dir': side['dir'], 'name': side['name'], 'commit': side['commit'],
            'mode': side['mode'], 'iso': side['iso'], 'slowdown': side['slowdown'],
            'clock': min(side['clocks']), 'repeats': side['repeats'], 'runs': len(side['runs']),
            'session': side.get('session')}


def summarize(rows):
    judged = [r for r in rows if r['verdict'] in (WORSE, BETTER, SAME)]
    count = {v: sum(1 for r in judged if r['verdict'] == v) for v in (WORSE, BETTER, SAME)}
    return {'figures': len(rows), 'judged': len(judged), 'worse': count[WORSE],
            'better': count[BETTER], 'no_change': count[SAME],
            'no_change_share': count[SAME] / len(judged) if judged else None,
            'not_judged': sum(1 for r in rows if r['verdict'] == NOT_JUDGED),
            'not_compared': sum(1 for r in rows if r['verdict'] == MISSING),
            'guarded': sum(1 for r in rows if r['guarded']),
            'guarded_worse': [r['id'] for r in rows if r['guarded'] and r['verdict'] == WORSE],
            'with_interval': sum(1 for r in judged if r['ci'])}


# -- rendering -----------------------------------------------------------------------------

def num(value):
    if not stats.isnum(value):
        return '-'
    if value == 0:
        return '0'
    if abs(value) >= 1e5 or abs(value) < 1e-2:
        return '%.3g' % value
    return ('%.4g' % value)


def _factor(value):
    return '%.3f' % value if 0.01 <= value < 1000 else '%.3g' % value


def factor_text(row):
    if row['ratio'] is None:
        return '-'
    text = _factor(row['ratio']) + 'x'
    ci = row.get('ci_judged') or row['ci']   # the bootstrap's when nothing was judged
    if ci:
        text += ' [%s-%s]' % (_factor(ci[0]), _factor(ci[1]))
    return text


def summary_line(result):
    s = result['summary']
    share = '%.1f%%' % (100.0 * s['no_change_share']) if s['no_change_share'] is not None \
        else '-'
    return ('compare: %d figures judged: %d worse, %d better, %d no change (%s); guarded %d, '
            '%d worse; %d not judged, %d not compared' % (
                s['judged'], s['worse'], s['better'], s['no_change'], share, s['guarded'],
                len(s['guarded_worse']), s['not_judged'], s['not_compared']))


def side_line(label, info):
    text = '%s: %s' % (label, info['dir'])
    if info.get('commit'):
        text += ' (commit %s)' % info['commit']
    text += ', %d runs, repeats %s' % (info['runs'], ','.join(str(r) for r in info['repeats']))
    if info.get('slowdown'):
        text += ', SLOWED BUILD: %s' % info['slowdown']
    return text


def text_table(result, everything=False):
    """The terminal's table: guarded figures and every figure not 'no change' (all with
    everything=True), then the summary line."""
    lines = [side_line('A', result['a']), side_line('B', result['b']),
             'clock=%s, %s, factor = B/A with its 95%% interval; thresholds: %s' % (
                 result['clock'], 'paired repeats (one interleaved session)'
                 if result['paired'] else 'unpaired (separate sessions)',
                 ', '.join('%s %g%%' % (k, 100 * v) for k, v in
                           sorted(result['thresholds'].items())))]
    shown = [r for r in result['figures'] if everything or r['guarded'] or
             r['verdict'] in (WORSE, BETTER)]
    if shown:
        width = min(max(len(r['id']) for r in shown), 78)
        lines.append('  %-9s %s %-*s %12s %12s  %s' % ('verdict', 'g', width, 'figure', 'A',
                                                      'B', 'B/A'))
        for r in shown:
            lines.append('  %-9s %s %-*s %12s %12s  %s' % (
                r['verdict'] if r['verdict'] != SAME else 'same', '*' if r['guarded'] else ' ',
                width, r['id'], num((r['a'] or {}).get('median')),
                num((r['b'] or {}).get('median')), factor_text(r)))
    lines.append(summary_line(result))
    return lines


_CSS = ('body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}'
        'td,th{border:1px solid #ccc;padding:2px 6px;font-size:90%}td.n{text-align:right}'
        '.worse{background:#f8d0d0}.better{background:#d0f0d0}.slow{color:#b00;font-weight:bold}')


def write_html(path, result):
    esc = html.escape
    out = ['<!DOCTYPE html><html><head><meta charset="utf-8"><title>locklab compare</title>'
           '<style>%s</style></head><body><h1>A/B comparison</h1>' % _CSS]
    for label in ('a', 'b'):
        info = result[label]
        line = esc(side_line(label.upper(), info))
        if info.get('slowdown'):
            line = '<span class="slow">%s</span>' % line
        out.append('<p>%s</p>' % line)
    out.append('<p>%s</p>' % esc(text_table(result)[2]))
    out.append('<p><b>%s</b></p>' % esc(summary_line(result)))
    out.append('<table><tr><th>verdict</th><th>guarded</th><th>figure</th><th>kind</th>'
               '<th>A</th><th>B</th><th>B/A [95%]</th><th>threshold</th><th>note</th></tr>')
    order = {WORSE: 0, BETTER: 1, SAME: 2, NOT_JUDGED: 3, MISSING: 4}
    for r in sorted(result['figures'], key=lambda r: (not r['guarded'],
                                                      order.get(r['verdict'], 5), r['id'])):
        cls = ' class="%s"' % r['verdict'] if r['verdict'] in (WORSE, BETTER) else ''
        out.append('<tr%s><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td class="n">%s</td>'
                   '<td class="n">%s</td><td class="n">%s</td><td class="n">%s</td><td>%s</td>'
                   '</tr>' % (cls, esc(r['verdict']), 'yes' if r['guarded'] else '',
                              esc(r['id']), esc('%s (%s is better)' % (
                                  r['kind'], 'higher' if r['higher_is_better'] else 'lower'))
                              if r['kind'] else '-',
                              num((r['a'] or {}).get('median')),
                              num((r['b'] or {}).get('median')), esc(factor_text(r)),
                              '%g%%' % (100 * r['threshold']) if r['threshold'] else '-',
                              esc(r.get('why', ''))))
    out.append('</table></body></html>')
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(out) + '\n')


def write_outputs(out_dir, result):
    """compare.json, compare.html and compare.txt (the full table) into out_dir."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, 'compare.json'), 'w', encoding='utf-8') as f:
        json.dump(result, f, indent=1, default=sorted)
        f.write('\n')
    write_html(os.path.join(out_dir, 'compare.html'), result)
    with open(os.path.join(out_dir, 'compare.txt'), 'w', encoding='utf-8') as f:
        f.write('\n'.join(text_table(result, everything=True)) + '\n')


def run(dir_a, dir_b, out_dir, guards=None, thresholds=None, stream=None, name_a=None,
        name_b=None):
    """Load, compare, write the outputs, print the table; returns the result (CompareError on
    bad input)."""
    side_a, side_b = load_side(dir_a, name_a), load_side(dir_b, name_b)
    result = compare(side_a, side_b, thresholds, guards)
    write_outputs(out_dir, result)
    if stream is not None:
        for line in text_table(result):
            print(line, file=stream)
        print('compare: %s (full table: %s)' % (
            os.path.join(out_dir, 'compare.html'), os.path.join(out_dir, 'compare.txt')),
            file=stream)
    return result
