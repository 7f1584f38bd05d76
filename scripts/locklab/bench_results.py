"""Figures of the benchmark runs and the wording of their numbers.

Reading the runs, merging the repeats of one figure and writing a number for a reader are
needed by every part of the report.  They live here, below everything else, so that the
scenario, plot and HTML modules can share them without importing benchlib, which imports
those modules.
"""

import json
import math
import os
import re

from . import report_hist, stats
from .stats import isnum, quantile

# Attributes that always tell lines of one metric apart (a sweep or a configuration).
IDENTITY_KEYS = frozenset(('cpus', 'threads', 'locks', 'section_us', 'load', 'mode', 'k',
                           'model', 'cs', 'cs_ns', 'cs_us', 'section_ns', 'hold_ns'))


# -- numbers -------------------------------------------------------------------------------



def summarize(values):
    """locklab.stats.summary of the numeric values (None if none): n, values, median, min, max,
    q1, q3, iqr, spread and ci, the 95% bootstrap interval [lo, hi] of the median (None below
    two readings).  spread is (max - min) / |median|, the relative range of the repeats."""
    s = stats.summary(values)
    if s and s['median']:
        s['spread'] = (s['max'] - s['min']) / abs(s['median'])
    return s


def run_clock(run):
    """The guest clock a run measured with (real or virtual), from the bench's manifest or the
    runner's JSON.  Runs recorded before the runner had --clock ran in real time."""
    return run.get('clock') or ((run.get('data') or {}).get('run') or {}).get('clock') or 'real'


def _sig(value, digits=3):
    """A number with about `digits` significant digits, no exponent for ordinary sizes."""
    if value is None:
        return '?'
    if value == 0:
        return '0'
    if float(value).is_integer() and abs(value) >= 10 ** (digits - 1):
        return '%d' % value
    magnitude = int(math.floor(math.log10(abs(value))))
    decimals = max(0, digits - 1 - magnitude)
    text = '%.*f' % (decimals, value)
    return text


def human(value, unit):
    """A value in a readable unit: ns -> us/ms/s, cycles as is, x1000 ratios divided."""
    if not isnum(value):
        return 'n/a'
    if unit == 'ns':
        for limit, scale, name in ((1e9, 1e9, 's'), (1e6, 1e6, 'ms'), (1e3, 1e3, 'us')):
            if abs(value) >= limit:
                return '%s %s' % (_sig(value / scale), name)
        return '%s ns' % _sig(value)
    if unit == 'us':
        return human(value * 1000.0, 'ns')
    if unit == 'x1000':
        return '%sx' % _sig(value / 1000.0)
    if unit == 'cycles':
        return '%d cycles' % round(value)
    return ('%s %s' % (_sig(value), unit)).strip()


def human_stats(stats, unit):
    """'median [min-max]' of a summary, or 'n/a'."""
    if not stats:
        return 'n/a'
    text = human(stats['median'], unit)
    if stats['n'] > 1:
        text += ' [%s-%s]' % (human(stats['min'], unit).split(' ')[0],
                               human(stats['max'], unit))
    return text


def factor_text(value):
    if not isnum(value):
        return 'n/a'
    return '%sx' % _sig(value)


# -- histograms ----------------------------------------------------------------------------

def hist_stats(hist):
    """samples, min, avg, max, overflows and percentiles (p50 p90 p99 p999) of one hist block,
    in its unit.  Percentiles interpolate within the bucket; one that falls among the overflows
    is the block's max (flagged in 'tail_in_overflow')."""
    rows = report_hist.hist_rows(hist)
    counted = sum(sum(c) for _, c in rows)
    overflows = hist.get('overflows') if isnum(hist.get('overflows')) else 0
    total = counted + overflows
    gmin, gmax = hist.get('min'), hist.get('max')
    nonempty = [start for start, counts in rows if sum(counts)]
    last_edge = report_hist.bucket_end(hist, rows[-1][0]) if rows else None
    out = {'samples': total, 'min': gmin, 'avg': hist.get('avg'), 'max': gmax,
           'overflows': overflows, 'tail_in_overflow': False, 'beyond': [],
           'last_edge': last_edge}
    if not total:
        for key in ('p50', 'p90', 'p99', 'p999'):
            out[key] = None
        return out
    if not isnum(gmax) and nonempty:
        out['max'] = gmax = report_hist.bucket_end(hist, nonempty[-1])
    for key, q in (('p50', 0.5), ('p90', 0.9), ('p99', 0.99), ('p999', 0.999)):
        target = q * total
        cum, value = 0, None
        for start, counts in rows:
            count = sum(counts)
            if not count:
                continue
            if cum + count >= target:
                end = report_hist.bucket_end(hist, start)
                value = start + (end - start) * max(0.0, (target - cum)) / count
                break
            cum += count
        if value is None:
            # Among the overflows: somewhere between the last bucket's end and the max.
            value = gmax
            out['tail_in_overflow'] = True
            out['beyond'].append(key)
        if isnum(gmin):
            value = max(value, gmin)
        if isnum(gmax):
            value = min(value, gmax)
        out[key] = value
    return out


def merge_hists(hists):
    """One hist block holding the buckets of several (the repeats of one histogram)."""
    if not hists:
        return None
    first = hists[0]
    cpus = max(report_hist.hist_cpus(h) for h in hists)
    merged = {}
    for h in hists:
        for start, counts in report_hist.hist_rows(h):
            row = merged.setdefault(start, [0] * cpus)
            for cpu, count in enumerate(counts):
                row[cpu] += count
    mins = [h['min'] for h in hists if isnum(h.get('min'))]
    maxs = [h['max'] for h in hists if isnum(h.get('max'))]
    samples = [h['samples'] for h in hists if isnum(h.get('samples'))]
    avgs = [(h['avg'], h['samples']) for h in hists
            if isnum(h.get('avg')) and isnum(h.get('samples'))]
    weight = sum(n for _, n in avgs)
    return {'path': first['path'], 'unit': first.get('unit'), 'bucket': first.get('bucket'),
            'cpus': cpus, 'buckets': sorted([s, c] for s, c in merged.items()),
            'samples': sum(samples) if samples else None,
            'min': min(mins) if mins else None, 'max': max(maxs) if maxs else None,
            'avg': round(sum(a * n for a, n in avgs) / weight) if weight else None,
            'overflows': sum(h.get('overflows') or 0 for h in hists),
            'complete': all(h.get('complete') for h in hists), 'test': first.get('test')}


def parse_histfile(text):
    """A cyclictest --histfile (or scripts/report's histogram file): {'rows': [(value,
    [counts])], 'unit', 'max', 'min', 'avg', 'overflows', 'total'}; value in the file's unit
    (us for cyclictest, the block's unit for locklab files)."""
    rows, footer, unit, comment = [], {}, 'us', {}
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith('#'):
            m = re.match(r'#\s*(Total|Min Latencies|Avg Latencies|Max Latencies|'
                         r'Histogram Overflows):\s*(.*)$', line)
            if m:
                footer[m.group(1)] = [int(x) for x in m.group(2).split() if x.isdigit()]
            m = re.search(r'locklab:.*\bunit=(\S+)', line)
            if m:
                unit = m.group(1)
                for key in ('bucket', 'min', 'max', 'avg', 'samples'):
                    v = re.search(r'\b%s=(\S+)' % key, line)
                    if v:
                        try:
                            comment[key] = int(v.group(1))
                        except ValueError:
                            comment[key] = v.group(1)
            continue
        fields = line.split()
        if all(re.match(r'^-?\d+$', f) for f in fields) and len(fields) >= 2:
            rows.append((int(fields[0]), [int(f) for f in fields[1:]]))
    out = {'rows': rows, 'unit': unit, 'bucket': comment.get('bucket', 1 if unit == 'us'
                                                             else None)}
    out['total'] = sum(footer.get('Total', [])) or sum(sum(c) for _, c in rows)
    threads = len(rows[0][1]) if rows else 0
    for key, name in (('min', 'Min Latencies'), ('avg', 'Avg Latencies'),
                      ('max', 'Max Latencies')):
        values = footer.get(name, [])
        if values:
            out[key] = {'min': min, 'max': max}.get(key, lambda v: sum(v) / len(v))(values)
        else:
            out[key] = None
    overflows = footer.get('Histogram Overflows', [])
    # cyclictest --histofall (and scripts/report with several CPUs) append an all-thread field.
    out['overflows'] = (overflows[-1] if len(overflows) > threads else sum(overflows)) \
        if overflows else 0
    # scripts/report's files give the block's own figures (per-CPU footers are estimates).
    for key in ('min', 'max', 'avg'):
        if isnum(comment.get(key)):
            out[key] = comment[key]
    return out


def histfile_as_block(parsed, path):
    """A parsed histogram file as a hist block (for hist_stats and the plots)."""
    return {'path': path, 'unit': parsed['unit'], 'bucket': parsed.get('bucket'),
            'cpus': len(parsed['rows'][0][1]) if parsed['rows'] else 1,
            'buckets': [[v, c] for v, c in parsed['rows']], 'samples': parsed['total'],
            'min': parsed.get('min'), 'max': parsed.get('max'), 'avg': parsed.get('avg'),
            'overflows': parsed.get('overflows') or 0, 'complete': True}


def to_us(value, unit, tsc_mhz=None):
    if not isnum(value):
        return None
    if unit == 'ns':
        return value / 1000.0
    if unit == 'us':
        return float(value)
    if unit == 'cycles' and tsc_mhz:
        return value / tsc_mhz
    return None


# -- runs ----------------------------------------------------------------------------------

_TSC = re.compile(r'#\s*time:\s*TSC\s+([0-9.]+)\s*MHz')
_ACCEL = re.compile(r'run-qemu: accel=(\S+) \((.*)\)')


def read_text(path):
    try:
        with open(path, encoding='utf-8', errors='replace') as f:
            return f.read()
    except OSError:
        return None


def load_runs(entries, base=None):
    """The manifest's runs with their run-qemu JSON ('data'), the TSC rate from the serial log
    and the accelerator's reason from the runner's output.  Missing files leave data None."""
    runs = []
    for entry in entries:
        run = dict(entry)
        run.setdefault('options', {})
        if run.get('data') is None and run.get('json'):
            path = run['json'] if os.path.isabs(run['json']) or base is None else \
                os.path.join(base, run['json'])
            text = read_text(path)
            try:
                run['data'] = json.loads(text) if text else None
            except ValueError:
                run['data'] = None
        if run.get('tsc_mhz') is None and run.get('log'):
            path = run['log'] if os.path.isabs(run['log']) or base is None else \
                os.path.join(base, run['log'])
            text = read_text(path) or ''
            m = _TSC.search(text)
            run['tsc_mhz'] = float(m.group(1)) if m else None
        if run.get('accel_reason') is None and run.get('out'):
            path = run['out'] if os.path.isabs(run['out']) or base is None else \
                os.path.join(base, run['out'])
            m = _ACCEL.search(read_text(path) or '')
            if m:
                run['accel_reason'] = m.group(2)
                run.setdefault('accel', m.group(1))
        data = run.get('data') or {}
        info = data.get('run') or {}
        run.setdefault('accel', info.get('accel'))
        if run.get('accel') is None:
            run['accel'] = info.get('accel')
        run['clock'] = run_clock(run)
        runs.append(run)
    return runs


def _opts_key(options):
    return tuple(sorted((k, str(v)) for k, v in (options or {}).items()))


def _attr_key(attrs):
    return tuple(sorted((k, str(v)) for k, v in attrs.items()))


def run_metrics(run):
    data = run.get('data') or {}
    return [m for m in data.get('metrics') or [] if isnum(m.get('value'))]


def run_hists(run):
    data = run.get('data') or {}
    return [h for h in data.get('histograms') or [] if h.get('buckets') is not None]


def identity_keys(runs):
    """(test, path) -> the attribute keys that identify a line of that metric."""
    keys = {}
    for run in runs:
        groups = {}
        for m in run_metrics(run):
            attrs = m.get('attrs') or {}
            known = tuple(sorted((k, str(v)) for k, v in attrs.items() if k in IDENTITY_KEYS))
            groups.setdefault((m.get('test'), m['path'], known), []).append(m)
        for (test, path, known), lines in groups.items():
            found = keys.setdefault((test, path), set())
            found.update(k for k, _ in known)
            if len(lines) > 1:
                names = set()
                for m in lines:
                    names.update((m.get('attrs') or {}).keys())
                for name in names:
                    if len({str((m.get('attrs') or {}).get(name)) for m in lines}) > 1:
                        found.add(name)
    return keys


def leg_label(group, smp, options):
    text = '%s smp=%s' % (group, smp)
    for key, value in sorted((options or {}).items()):
        text += ' %s=%s' % (key, value)
    return text


class Results:
    """Every figure of the runs, aggregated over the repeats."""

    def __init__(self, runs, host_cpus):
        self.runs = runs
        self.host_cpus = host_cpus or 1
        # Figures of different clocks are never pooled: the clock is part of every identity,
        # and a report is built from the runs of one clock (bench_report.build).
        clocks = sorted({run_clock(r) for r in runs})
        self.clock = clocks[0] if len(clocks) == 1 else None
        self.metrics = []
        self.hists = []
        self._aggregate()

    def _aggregate(self):
        keys = identity_keys(self.runs)
        metrics, hists = {}, {}
        for index, run in enumerate(self.runs):
            group, smp, opts = run.get('group'), run.get('smp'), run.get('options') or {}
            clock = run_clock(run)
            for m in run_metrics(run):
                test = m.get('test')
                attrs = m.get('attrs') or {}
                idk = keys.get((test, m['path']), set())
                ident = {k: attrs[k] for k in sorted(idk) if k in attrs}
                key = (clock, group, smp, _opts_key(opts), test, m['path'], _attr_key(ident))
                entry = metrics.get(key)
                if entry is None:
                    entry = metrics[key] = {
                        'clock': clock, 'path': m['path'], 'test': test, 'group': group,
                        'smp': smp,
                        'options': dict(opts), 'attrs': ident, 'unit': m.get('unit'),
                        'samples': [], 'runs': [], 'reps': [], 'observed': {}}
                entry['samples'].append(m['value'])
                entry['runs'].append(index)
                entry['reps'].append(run.get('rep', index))
                for k, v in attrs.items():
                    if k not in ident:
                        entry['observed'].setdefault(k, []).append(v)
            for h in run_hists(run):
                key = (clock, group, smp, _opts_key(opts), h.get('test'), h['path'])
                entry = hists.get(key)
                if entry is None:
                    entry = hists[key] = {'clock': clock, 'path': h['path'], 'test': h.get('test'),
                                          'group': group, 'smp': smp, 'options': dict(opts),
                                          'unit': h.get('unit'), 'blocks': [], 'runs': [],
                                          'reps': [],
                                          'tsc_mhz': run.get('tsc_mhz')}
                entry['blocks'].append(h)
                entry['runs'].append(index)
                entry['reps'].append(run.get('rep', index))
        for entry in metrics.values():
            entry['stats'] = summarize(entry['samples'])
            entry['id'] = self._metric_id(entry)
            self.metrics.append(entry)
        for entry in hists.values():
            per = [hist_stats(b) for b in entry['blocks']]
            entry['per_run'] = per
            entry['stats'] = {k: summarize([p[k] for p in per])
                              for k in ('samples', 'min', 'avg', 'max', 'p50', 'p90', 'p99',
                                        'p999', 'overflows')}
            entry['merged'] = merge_hists(entry['blocks'])
            entry['id'] = '%s [%s]' % (entry['path'], leg_label(entry['group'], entry['smp'],
                                                                entry['options']))
            self.hists.append(entry)
        self.metrics.sort(key=lambda e: (e['group'] or '', e['smp'] or 0, e['path'],
                                         _sort_attrs(e['attrs'])))
        self.hists.sort(key=lambda e: (e['group'] or '', e['smp'] or 0, e['path']))

    @staticmethod
    def _metric_id(entry):
        text = entry['path']
        if entry['attrs']:
            text += ' {%s}' % ' '.join('%s=%s' % kv for kv in sorted(entry['attrs'].items()))
        return text + ' [%s]' % leg_label(entry['group'], entry['smp'], entry['options'])

    # queries -------------------------------------------------------------------------

    @staticmethod
    def _select(entries, path, regex, group, smp, options, keep=None):
        """Entries matching every given criterion (None means any)."""
        pattern = re.compile(regex) if regex else None
        out = []
        for e in entries:
            if path is not None and e['path'] != path:
                continue
            if pattern is not None and not pattern.search(e['path']):
                continue
            if group is not None and e['group'] != group:
                continue
            if smp is not None and e['smp'] != smp:
                continue
            if options and any(str(e['options'].get(k)) != str(v) for k, v in options.items()):
                continue
            if keep is not None and not keep(e):
                continue
            out.append(e)
        return out

    def find(self, path=None, regex=None, group=None, smp=None, test=None, options=None,
             **attrs):
        def keep(e):
            if test is not None and e['test'] != test:
                return False
            return all(str(e['attrs'].get(k, (e['observed'].get(k) or [None])[0])) == str(v)
                       for k, v in attrs.items())
        return self._select(self.metrics, path, regex, group, smp, options, keep)

    def find_hists(self, path=None, regex=None, group=None, smp=None, options=None):
        return self._select(self.hists, path, regex, group, smp, options)

    def paths(self, regex, hists=False):
        pattern = re.compile(regex)
        return sorted({e['path'] for e in (self.hists if hists else self.metrics)
                       if pattern.search(e['path'])})

    def overcommit(self, smp):
        return smp / float(self.host_cpus) if isnum(smp) else None

    def tsc_mhz(self):
        values = [r['tsc_mhz'] for r in self.runs if isnum(r.get('tsc_mhz'))]
        return quantile(sorted(values), 0.5) if values else None


def _sort_attrs(attrs):
    return tuple((k, float(v) if isnum(v) else 0, str(v)) for k, v in sorted(attrs.items()))


def preferred_smp(smps, host_cpus):
    """The leg a headline figure comes from when several measured it: the largest vCPU count
    that does not overcommit the host, else the smallest."""
    smps = sorted({s for s in smps if isnum(s)})
    if not smps:
        return None
    fitting = [s for s in smps if s <= host_cpus]
    return fitting[-1] if fitting else smps[0]


def pick(entries, prefer_smp=None, host_cpus=1):
    """One entry among legs that measured the same figure: the one at prefer_smp, else the
    preferred leg."""
    if not entries:
        return None
    if prefer_smp is not None:
        for e in entries:
            if e['smp'] == prefer_smp:
                return e
    smp = preferred_smp([e['smp'] for e in entries], host_cpus)
    for e in entries:
        if e['smp'] == smp:
            return e
    return entries[0]
