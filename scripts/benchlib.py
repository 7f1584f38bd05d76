"""benchlib: aggregation and report of the benchmark matrix (`make bench`, scripts/bench).

scripts/bench boots the kernel once per leg and repeat (scripts/run-qemu --json) and runs the
host peers; this module turns what they wrote into build/bench/: report.json, report.html,
cyclictest-format histogram files and gnuplot PNGs.

Nothing here knows a complete list of metric names.  Figures are discovered in the runs' JSON:
a metric is identified by its leg (group, vCPUs, kernel options), the test that printed it, its
path and the attributes that tell its lines apart (cpus=, locks=, section_us=, ... and any key
that varies between the lines of one path in one run, such as a swept threshold=).  Values of
the same identity from the repeats are summarised as median, min/max and IQR.  The scenario
ratios look their metrics up by pattern; a missing one is reported as "not measured (no metric
X in this run)" and never stops the report.
"""

import datetime
import html
import importlib.machinery
import importlib.util
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.realpath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import ktap  # noqa: E402  (lives next to this script)

SCHEMA = 'locklab-bench/1'
# scripts/bench's note on a leg whose repeats ran fewer tests than its first run.
NARROW_NOTE = 'repeats after the first ran only'
GNUPLOT_TIMEOUT_S = 60
# Bins per decade of the re-binned latency plots (logarithmic x axis).
DECADE_BINS = 10


def _load_report_script():
    """scripts/report (no .py suffix): its histogram and gnuplot functions."""
    path = os.path.join(HERE, 'report')
    loader = importlib.machinery.SourceFileLoader('locklab_report_script', path)
    spec = importlib.util.spec_from_loader('locklab_report_script', loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


REPORT = _load_report_script()

# Attributes that always tell lines of one metric apart (a sweep or a configuration).
IDENTITY_KEYS = frozenset(('cpus', 'threads', 'locks', 'section_us', 'load', 'mode', 'k',
                           'model', 'cs', 'cs_ns', 'cs_us', 'section_ns', 'hold_ns'))
# Host benchmark names -> the kernel's names for the same primitive.
HOST_NAMES = {'spin_lock': 'spinlock', 'brk': 'breakable', 'multi_sorted': 'multilock_sorted',
              'multi_global': 'multilock_global'}
PREEMPT_MODELS = ('none', 'voluntary', 'full', 'rt')


# -- numbers -------------------------------------------------------------------------------

def isnum(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        not (isinstance(value, float) and (math.isnan(value) or math.isinf(value)))


def quantile(ordered, q):
    """Linear-interpolated quantile of an ascending list (None when empty)."""
    if not ordered:
        return None
    pos = (len(ordered) - 1) * q
    low = int(math.floor(pos))
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summarize(values):
    """{n, median, min, max, q1, q3, spread, values} of the numeric values (None if none).
    spread is (max - min) / median, the relative range of the repeats."""
    values = [v for v in values if isnum(v)]
    if not values:
        return None
    ordered = sorted(values)
    med = quantile(ordered, 0.5)
    return {'n': len(values), 'median': med, 'min': ordered[0], 'max': ordered[-1],
            'q1': quantile(ordered, 0.25), 'q3': quantile(ordered, 0.75),
            'spread': (ordered[-1] - ordered[0]) / abs(med) if med else None,
            'values': values}


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
    rows = REPORT.hist_rows(hist)
    counted = sum(sum(c) for _, c in rows)
    overflows = hist.get('overflows') if isnum(hist.get('overflows')) else 0
    total = counted + overflows
    gmin, gmax = hist.get('min'), hist.get('max')
    nonempty = [start for start, counts in rows if sum(counts)]
    last_edge = REPORT.bucket_end(hist, rows[-1][0]) if rows else None
    out = {'samples': total, 'min': gmin, 'avg': hist.get('avg'), 'max': gmax,
           'overflows': overflows, 'tail_in_overflow': False, 'beyond': [],
           'last_edge': last_edge}
    if not total:
        for key in ('p50', 'p90', 'p99', 'p999'):
            out[key] = None
        return out
    if not isnum(gmax) and nonempty:
        out['max'] = gmax = REPORT.bucket_end(hist, nonempty[-1])
    for key, q in (('p50', 0.5), ('p90', 0.9), ('p99', 0.99), ('p999', 0.999)):
        target = q * total
        cum, value = 0, None
        for start, counts in rows:
            count = sum(counts)
            if not count:
                continue
            if cum + count >= target:
                end = REPORT.bucket_end(hist, start)
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
    cpus = max(REPORT.hist_cpus(h) for h in hists)
    merged = {}
    for h in hists:
        for start, counts in REPORT.hist_rows(h):
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
        self.metrics = []
        self.hists = []
        self._aggregate()

    def _aggregate(self):
        keys = identity_keys(self.runs)
        metrics, hists = {}, {}
        for index, run in enumerate(self.runs):
            group, smp, opts = run.get('group'), run.get('smp'), run.get('options') or {}
            for m in run_metrics(run):
                test = m.get('test')
                attrs = m.get('attrs') or {}
                idk = keys.get((test, m['path']), set())
                ident = {k: attrs[k] for k in sorted(idk) if k in attrs}
                key = (group, smp, _opts_key(opts), test, m['path'], _attr_key(ident))
                entry = metrics.get(key)
                if entry is None:
                    entry = metrics[key] = {
                        'path': m['path'], 'test': test, 'group': group, 'smp': smp,
                        'options': dict(opts), 'attrs': ident, 'unit': m.get('unit'),
                        'samples': [], 'runs': [], 'reps': [], 'observed': {}}
                entry['samples'].append(m['value'])
                entry['runs'].append(index)
                entry['reps'].append(run.get('rep', index))
                for k, v in attrs.items():
                    if k not in ident:
                        entry['observed'].setdefault(k, []).append(v)
            for h in run_hists(run):
                key = (group, smp, _opts_key(opts), h.get('test'), h['path'])
                entry = hists.get(key)
                if entry is None:
                    entry = hists[key] = {'path': h['path'], 'test': h.get('test'),
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


# -- ratios --------------------------------------------------------------------------------

def paired_factors(before, after, better):
    """Improvement factor per repeat where both figures were measured: in the same run when
    they come from one leg, else in the runs of the same repeat (legs of a repeat run one after
    the other, so these pairs saw about the same host load)."""
    out = []
    key = 'reps' if before.get('reps') and after.get('reps') else 'runs'
    b_by_run, a_by_run = {}, {}
    for value, run in zip(before['samples'], before[key]):
        b_by_run.setdefault(run, []).append(value)
    for value, run in zip(after['samples'], after[key]):
        a_by_run.setdefault(run, []).append(value)
    for run in sorted(set(b_by_run) & set(a_by_run)):
        b = quantile(sorted(b_by_run[run]), 0.5)
        a = quantile(sorted(a_by_run[run]), 0.5)
        f = improvement(b, a, better)
        if f is not None:
            out.append(f)
    return out


def improvement(before, after, better):
    """How many times better `after` is than `before`: before/after when lower is better,
    after/before when higher is better (> 1 means an improvement)."""
    if not (isnum(before) and isnum(after)):
        return None
    if better == 'lower':
        return before / after if after else None
    return after / before if before else None


def not_measured(rid, title, measure, missing):
    return {'id': rid, 'title': title, 'measure': measure, 'status': 'not measured',
            'factor': None, 'statement': 'not measured (%s)' % missing, 'missing': missing}


def figure(entry, unit=None, stats=None):
    stats = stats if stats is not None else entry['stats']
    return {'metric': entry['id'], 'path': entry['path'], 'unit': unit or entry['unit'],
            'median': stats['median'] if stats else None,
            'min': stats['min'] if stats else None, 'max': stats['max'] if stats else None,
            'n': stats['n'] if stats else 0, 'smp': entry['smp'], 'group': entry['group'],
            'attrs': entry.get('attrs', {})}


def make_ratio(rid, title, measure, before_label, before, after_label, after, better,
               context, results, wording):
    """A measured ratio between two aggregated figures (metric entries or pseudo-entries with
    'samples', 'runs', 'stats')."""
    b, a = before['stats'], after['stats']
    # The factor of the two medians (so that it agrees with the two figures stated beside
    # it); its spread is the range of the factors of the single repeats.
    paired = paired_factors(before, after, better)
    spread = summarize(paired) if paired else None
    factor = improvement(b['median'] if b else None, a['median'] if a else None, better)
    unit = before.get('unit') or after.get('unit')
    ratio = {'id': rid, 'title': title, 'measure': measure, 'status': 'measured',
             'better': better, 'factor': factor, 'factor_stats': spread,
             'before_over_after': (b['median'] / a['median'])
             if b and a and isnum(b['median']) and isnum(a['median']) and a['median'] else None,
             'before': dict(figure(before), label=before_label),
             'after': dict(figure(after), label=after_label),
             'context': context}
    if factor is None:
        ratio['status'] = 'not measured'
        ratio['statement'] = 'not measured (%s: %s is 0 or missing)' % (
            title, before_label if not (b and b['median']) else after_label)
        return ratio
    good, bad = wording
    if factor >= 1:
        verdict = '%s %s' % (factor_text(factor), good)
    else:
        verdict = '%s %s' % (factor_text(1.0 / factor), bad)
    rng = ''
    if spread and spread['n'] > 1:
        low, high = spread['min'], spread['max']
        if factor < 1 and low > 0:
            low, high = 1.0 / high, 1.0 / low       # in the verdict's direction
        rng = ', %s-%s over %d repeats' % (factor_text(low), factor_text(high), spread['n'])
    ratio['statement'] = '%s: %s %s against %s %s: %s (%s%s)' % (
        title, after_label, human(a['median'], unit), before_label, human(b['median'], unit),
        verdict, context, rng)
    return ratio


def leg_context(results, smp, extra=''):
    runs = [r for r in results.runs if r.get('smp') == smp]
    accel = sorted({r.get('accel') for r in runs if r.get('accel')})
    oc = results.overcommit(smp)
    text = '%s vCPU%s on %d host CPU%s' % (smp, '' if smp == 1 else 's', results.host_cpus,
                                          '' if results.host_cpus == 1 else 's')
    if oc is not None and oc > 1:
        text += ', %sx overcommitted' % _sig(oc, 2)
    if accel:
        text += ', ' + '/'.join(accel)
    return text + (', ' + extra if extra else '')


def hist_pseudo(entry, stat):
    """A histogram statistic over the repeats, shaped like a metric entry for make_ratio."""
    values = [p[stat] for p in entry['per_run']]
    return {'id': '%s %s' % (entry['id'], stat), 'path': '%s:%s' % (entry['path'], stat),
            'unit': entry['unit'], 'samples': values, 'runs': list(entry['runs']),
            'reps': list(entry.get('reps') or []),
            'stats': summarize(values), 'smp': entry['smp'], 'group': entry['group'],
            'attrs': {}}


# -- scenarios -----------------------------------------------------------------------------

def scenario_breakable(results):
    """Breakable vs plain: the longest wait of a waiter while a holder walks a long list."""
    title = 'Breakable vs plain lock'
    measure = 'longest wait of a waiter during a long walk under the lock'
    rows, ratios = [], []
    plain = results.find(regex=r'^lock\.plain\.walk_max_wait_ns$')
    variants = [p.split('.')[1] for p in results.paths(r'^lock\.[^.]+\.walk_max_wait_ns$')
                if p.split('.')[1] != 'plain']
    if not plain:
        return {'ratios': [not_measured('breakable_vs_plain', title, measure,
                                        'no metric lock.plain.walk_max_wait_ns in this run')],
                'rows': rows}
    if not variants:
        return {'ratios': [not_measured('breakable_vs_plain', title, measure,
                                        'no metric lock.breakable.walk_max_wait_ns in this '
                                        'run')], 'rows': rows}
    headline_smp = preferred_smp([e['smp'] for e in plain], results.host_cpus)
    walk = (plain[0]['observed'].get('walk') or [None])[0]
    for variant in variants:
        for after in results.find(path='lock.%s.walk_max_wait_ns' % variant):
            before = [e for e in plain if e['smp'] == after['smp']]
            if not before:
                continue
            before = before[0]
            extra = 'walk %s' % walk if walk else ''
            ratio = make_ratio('breakable_vs_plain' if variant == 'breakable'
                               else 'breakable_vs_plain.' + variant,
                               '%s vs plain ticket lock' % variant.capitalize(),
                               measure, 'plain', before, variant, after, 'lower',
                               leg_context(results, after['smp'], extra), results,
                               ('shorter', 'longer'))
            ratio['smp'] = after['smp']
            ratio['headline'] = after['smp'] == headline_smp and variant == (
                'breakable' if 'breakable' in variants else variants[0])
            kernel_ratio = results.find(path='lock.%s.plain_over_breakable_x1000' % variant,
                                        smp=after['smp'])
            if kernel_ratio and kernel_ratio[0]['stats']:
                ratio['kernel_ratio'] = kernel_ratio[0]['stats']['median'] / 1000.0
            ratios.append(ratio)
            rows.append(ratio)
    if not any(r.get('headline') for r in ratios) and ratios:
        ratios[0]['headline'] = True
    return {'ratios': ratios, 'rows': rows}


def scenario_pv(results):
    """Paravirtual vs plain ticket lock under vCPU overcommit: throughput and max wait."""
    out = []
    title = 'Paravirtual vs plain ticket lock under overcommit'
    plain = results.find(path='lock.ticket.overcommit_throughput')
    pv = results.find(path='lock.pvticket.overcommit_throughput')
    if not plain or not pv:
        out.append(not_measured('pv_vs_plain.throughput', title + ' (throughput)',
                                'throughput with more vCPUs than host CPUs',
                                'no metric lock.%s.overcommit_throughput in this run'
                                % ('ticket' if not plain else 'pvticket')))
    else:
        smps = sorted({e['smp'] for e in pv} & {e['smp'] for e in plain})
        top = max(smps) if smps else None
        for smp in smps:
            b = [e for e in plain if e['smp'] == smp][0]
            a = [e for e in pv if e['smp'] == smp][0]
            oc = results.overcommit(smp)
            extra = '' if oc and oc > 1 else 'not overcommitted: no stalled lock holder ' \
                'expected'
            r = make_ratio('pv_vs_plain.throughput', title + ' (throughput)',
                           'acquisitions per ms, all vCPUs contending', 'ticket', b, 'pvticket',
                           a, 'higher', leg_context(results, smp, extra), results,
                           ('the throughput', 'less throughput'))
            r['smp'] = smp
            r['headline'] = smp == top
            out.append(r)
    # Max wait: the acquisition-wait histograms of the same legs.
    hp = results.find_hists(path='lock.ticket.wait')
    hv = results.find_hists(path='lock.pvticket.wait')
    if not hp or not hv:
        out.append(not_measured('pv_vs_plain.max_wait', title + ' (max wait)',
                                'longest acquisition wait, all vCPUs contending',
                                'no histogram lock.%s.wait in this run'
                                % ('ticket' if not hp else 'pvticket')))
    else:
        smps = sorted({e['smp'] for e in hp} & {e['smp'] for e in hv})
        top = max(smps) if smps else None
        for smp in smps:
            b = hist_pseudo([e for e in hp if e['smp'] == smp][0], 'max')
            a = hist_pseudo([e for e in hv if e['smp'] == smp][0], 'max')
            r = make_ratio('pv_vs_plain.max_wait', title + ' (max wait)',
                           'longest acquisition wait, all vCPUs contending (lock.bench_wait)',
                           'ticket', b, 'pvticket', a, 'lower',
                           leg_context(results, smp), results, ('shorter', 'longer'))
            r['smp'] = smp
            r['headline'] = smp == top
            out.append(r)
    return {'ratios': out, 'rows': out}


def scenario_tlb(results):
    """Lazy vs synchronous TLB shootdown: initiator cost by interrupt-off section length."""
    title = 'Lazy vs synchronous shootdown'
    measure = "initiator's cost while the targets keep interrupts off"
    sync = [e for e in results.find(regex=r'^tlb\.sync\.initiator_ns$')
            if isnum(e['attrs'].get('section_us', (e['observed'].get('section_us') or [None])[0]))]
    lazy = [e for e in results.find(regex=r'^tlb\.lazy\.initiator_ns$')
            if isnum(e['attrs'].get('section_us', (e['observed'].get('section_us') or [None])[0]))]
    if not sync or not lazy:
        missing = 'tlb.sync.initiator_ns' if not sync else 'tlb.lazy.initiator_ns'
        return {'ratios': [not_measured('lazy_vs_sync', title, measure,
                                        'no metric %s with section_us= in this run' % missing)],
                'rows': []}

    def section(e):
        return e['attrs'].get('section_us', (e['observed'].get('section_us') or [None])[0])

    out = []
    pairs = []
    for a in lazy:
        for b in sync:
            if section(a) == section(b) and a['smp'] == b['smp'] and \
                    a['attrs'].get('cpus') == b['attrs'].get('cpus'):
                pairs.append((section(a), b, a))
    if not pairs:
        return {'ratios': [not_measured('lazy_vs_sync', title, measure,
                                        'no section_us= value measured for both modes')],
                'rows': []}
    top = max(p[0] for p in pairs)
    hsmp = preferred_smp([p[1]['smp'] for p in pairs], results.host_cpus)
    if not any(p[1]['smp'] == hsmp for p in pairs if p[0] == top):
        hsmp = [p[1]['smp'] for p in pairs if p[0] == top][0]
    for sec, b, a in sorted(pairs, key=lambda p: (p[1]['smp'], p[0])):
        r = make_ratio('lazy_vs_sync', '%s (section %s us)' % (title, sec), measure, 'sync', b,
                       'lazy', a, 'lower',
                       leg_context(results, b['smp'], 'interrupt-off section %s us' % sec),
                       results, ('cheaper', 'more expensive'))
        r['section_us'] = sec
        r['smp'] = b['smp']
        r['headline'] = sec == top and b['smp'] == hsmp
        out.append(r)
    return {'ratios': out, 'rows': out}


def scenario_multilock(results):
    """Address-sorted multi-lock vs global-lock-first: throughput by CPUs and lock count."""
    title = 'Sorted multi-lock vs global lock'
    measure = 'operations per ms taking k locks at once'
    sorted_e = results.find(path='lock.multilock_sorted.throughput')
    global_e = results.find(path='lock.multilock_global.throughput')
    if not sorted_e or not global_e:
        missing = 'lock.multilock_sorted.throughput' if not sorted_e else \
            'lock.multilock_global.throughput'
        return {'ratios': [not_measured('sorted_vs_global', title, measure,
                                        'no metric %s in this run' % missing)], 'rows': []}
    points = {}
    for a in sorted_e:
        cpus, locks = a['attrs'].get('cpus'), a['attrs'].get('locks')
        for b in global_e:
            if b['smp'] == a['smp'] and b['attrs'].get('cpus') == cpus and \
                    b['attrs'].get('locks') == locks:
                points.setdefault((cpus, locks), []).append((b, a))
    out = []
    if not points:
        return {'ratios': [not_measured('sorted_vs_global', title, measure,
                                        'no cpus=/locks= point measured for both protocols')],
                'rows': []}
    top_cpus = max(c for c, _ in points if isnum(c))
    top_locks = max(k for c, k in points if c == top_cpus and isnum(k))
    for (cpus, locks), cands in sorted(points.items(), key=lambda kv: (
            kv[0][0] if isnum(kv[0][0]) else 0, kv[0][1] if isnum(kv[0][1]) else 0)):
        # The leg whose every vCPU contends, else the largest.
        chosen = [c for c in cands if c[0]['smp'] == cpus] or \
            sorted(cands, key=lambda c: c[0]['smp'])[-1:]
        b, a = chosen[0]
        r = make_ratio('sorted_vs_global', '%s (%s CPUs, %s locks)' % (title, cpus, locks),
                       measure, 'global', b, 'sorted', a, 'higher',
                       leg_context(results, b['smp'], '%s CPUs contending, %s locks each'
                                   % (cpus, locks)), results,
                       ('the throughput', 'less throughput'))
        r['cpus'], r['locks'], r['smp'] = cpus, locks, b['smp']
        r['headline'] = cpus == top_cpus and locks == top_locks
        out.append(r)
    return {'ratios': out, 'rows': out}


WAKEUP_HIST = r'^sched\.wakeup_latency\.([^.]+)(?:\.([^.]+))?$'
WAKEUP_METRIC = r'^sched\.wakeup_latency\.([^.]+)\.(max|p99|p50)_ns$'


def _model_of(entry):
    m = re.match(r'^sched\.wakeup_latency\.([^.]+)', entry['path'])
    model = m.group(1) if m else None
    return entry['options'].get('preempt') if model in (None, 'max_ns') else model


def _load_of(entry):
    """The lock load of a wakeup figure: its load= attribute, else the hist path's suffix."""
    load = entry.get('attrs', {}).get('load')
    if load is None:
        load = (entry.get('observed', {}).get('load') or [None])[0]
    if load is None:
        m = re.match(WAKEUP_HIST, entry['path'])
        load = m.group(2) if m else None
    return load


def wakeup_table(results):
    """(model, load) -> {'max', 'p99', 'p50': figure entries (metric or histogram statistic),
    'hist': the histogram entry}."""
    table = {}
    for e in results.find(regex=WAKEUP_METRIC):
        stat = re.match(WAKEUP_METRIC, e['path']).group(2)
        table.setdefault((_model_of(e), _load_of(e)), {}).setdefault(stat, e)
    for h in results.find_hists(regex=WAKEUP_HIST):
        load = _load_of(h)
        if load is None:
            known = {l for (m, l) in table if m == _model_of(h)}
            load = known.pop() if len(known) == 1 else None
        row = table.setdefault((_model_of(h), load), {})
        row.setdefault('hist', h)
        for stat in ('max', 'p99', 'p50'):
            row.setdefault(stat, hist_pseudo(h, stat))
    return table


def _model_order(model):
    return (PREEMPT_MODELS.index(model) if model in PREEMPT_MODELS else len(PREEMPT_MODELS),
            str(model))


def _load_order(load):
    order = ('idle', 'plain', 'breakable')
    return (order.index(load) if load in order else len(order), str(load))


def scenario_wakeup(results):
    """Wakeup latency per preemption model under lock load: each model against none, and a
    breakable lock's load against a plain one's."""
    title = 'Wakeup latency'
    measure = 'worst wakeup latency of a high-priority thread'
    table = wakeup_table(results)
    rows = [{'model': m, 'load': l, 'figures': {k: figure(v) for k, v in row.items()
                                                 if k != 'hist'},
             'hist': row.get('hist', {}).get('id')}
            for (m, l), row in sorted(table.items(), key=lambda kv: (
                _model_order(kv[0][0]), _load_order(kv[0][1])))]
    if not table:
        return {'ratios': [not_measured('wakeup.rt_vs_none', title + ': preempt=rt vs none',
                                        measure, 'no metric sched.wakeup_latency.<model>.max_ns '
                                        'and no histogram sched.wakeup_latency.<model> in this '
                                        'run')], 'rows': rows}
    out = []
    loads = sorted({l for _, l in table}, key=_load_order)
    heavy = [l for l in loads if l not in (None, 'idle')]
    head_load = 'plain' if 'plain' in loads else (heavy[0] if heavy else loads[0])
    models = sorted({m for m, _ in table}, key=_model_order)
    for load in loads:
        base = table.get(('none', load), {}).get('max')
        for model in models:
            if model == 'none':
                continue
            after = table.get((model, load), {}).get('max')
            if after is None:
                continue
            rid = 'wakeup.%s_vs_none' % model
            t = '%s: preempt=%s vs none%s' % (title, model, ' under %s lock load' % load
                                              if load not in (None, 'idle') else
                                              ' (no load)' if load == 'idle' else '')
            if base is None:
                out.append(not_measured(rid, t, measure,
                                        'no metric sched.wakeup_latency.none.max_ns%s in this '
                                        'run' % (' with load=%s' % load if load else '')))
                continue
            r = make_ratio(rid, t, measure, 'none', base, model, after, 'lower',
                           leg_context(results, after['smp'],
                                       'load=%s' % load if load else ''), results,
                           ('lower', 'higher'))
            r['model'], r['load'] = model, load
            r['headline'] = model == 'rt' and load == head_load
            out.append(r)
    if 'plain' in loads and 'breakable' in loads:
        for model in models:
            b = table.get((model, 'plain'), {}).get('max')
            a = table.get((model, 'breakable'), {}).get('max')
            if a is None or b is None:
                continue
            r = make_ratio('wakeup.breakable_vs_plain_load',
                           '%s: breakable vs plain lock load, preempt=%s' % (title, model),
                           measure, 'plain load', b, 'breakable load', a, 'lower',
                           leg_context(results, a['smp'], 'preempt=%s' % model), results,
                           ('lower', 'higher'))
            r['model'], r['load'] = model, 'breakable'
            r['headline'] = model == 'none'
            out.append(r)
    if not out:
        out.append(not_measured('wakeup.rt_vs_none', title + ': preempt=rt vs none', measure,
                                'no metric sched.wakeup_latency.rt.max_ns in this run'))
    return {'ratios': out, 'rows': rows}


SCENARIOS = (('breakable', scenario_breakable), ('pv', scenario_pv), ('tlb', scenario_tlb),
             ('multilock', scenario_multilock), ('wakeup', scenario_wakeup))


# -- the lock matrix -----------------------------------------------------------------------

def lock_types(results):
    types = set()
    for regex in (r'^lock\.([^.]+)\.uncontended_cycles$', r'^lock\.([^.]+)\.throughput$'):
        for p in results.paths(regex):
            types.add(p.split('.')[1])
    for p in results.paths(r'^lock\.([^.]+)\.wait$', hists=True):
        types.add(p.split('.')[1])
    return sorted(types)


def lock_matrix(results):
    """Uncontended cost, throughput by CPUs, waits and fairness per lock type."""
    tsc = results.tsc_mhz()
    out = {'tsc_mhz': tsc, 'uncontended': [], 'throughput': {'cpus': [], 'rows': []},
           'wait': [], 'missing': []}
    unc = results.find(regex=r'^lock\.[^.]+\.uncontended_cycles$')
    if not unc:
        out['missing'].append('no metric lock.<type>.uncontended_cycles in this run')
    for name in sorted({e['path'].split('.')[1] for e in unc}):
        entries = [e for e in unc if e['path'].split('.')[1] == name]
        e = sorted(entries, key=lambda x: x['smp'])[0]     # fewest vCPUs: the quietest guest
        s = e['stats']
        ns = {k: s[k] * 1000.0 / tsc for k in ('median', 'min', 'max')} if tsc and s else None
        out['uncontended'].append({'type': name, 'cycles': s, 'ns': ns, 'smp': e['smp'],
                                   'metric': e['id'], 'debug': e['observed'].get('debug')})
    thr = results.find(regex=r'^lock\.[^.]+\.throughput$', test=None) or []
    thr = [e for e in thr if isnum(e['attrs'].get('cpus'))
           and not e['path'].startswith('lock.multilock_')]
    if not thr:
        out['missing'].append('no metric lock.<type>.throughput with cpus= in this run')
    cpus_all = sorted({e['attrs']['cpus'] for e in thr})
    out['throughput']['cpus'] = cpus_all
    for name in sorted({e['path'].split('.')[1] for e in thr}):
        row = {'type': name, 'cells': {}}
        for c in cpus_all:
            cands = [e for e in thr if e['path'].split('.')[1] == name and
                     e['attrs']['cpus'] == c]
            if not cands:
                continue
            exact = [e for e in cands if e['smp'] == c]
            e = exact[0] if exact else sorted(cands, key=lambda x: x['smp'])[-1]
            row['cells'][c] = {'stats': e['stats'], 'smp': e['smp'], 'unit': e['unit'],
                               'metric': e['id']}
        out['throughput']['rows'].append(row)
    waits = results.find_hists(regex=r'^lock\.[^.]+\.wait$')
    if not waits:
        out['missing'].append('no histogram lock.<type>.wait in this run')
    fair = results.find(regex=r'^lock\.[^.]+\.fairness_ratio_x1000$')
    for h in waits:
        name = h['path'].split('.')[1]
        f = [e for e in fair if e['path'].split('.')[1] == name and e['smp'] == h['smp']
             and e['test'] == h['test']]
        out['wait'].append({'type': name, 'smp': h['smp'], 'unit': h['unit'],
                            'stats': h['stats'], 'hist': h['id'],
                            'tail_in_overflow': any(p['tail_in_overflow']
                                                    for p in h['per_run']),
                            'fairness': f[0]['stats'] if f else None,
                            'fairness_metric': f[0]['id'] if f else None})
    out['wait'].sort(key=lambda w: (w['type'], w['smp']))
    for w, h in ((w, next(h for h in waits if h['id'] == w['hist'])) for w in out['wait']):
        w['beyond'] = sorted({k for p in h['per_run'] for k in p['beyond']})
        w['last_edge'] = h['per_run'][0]['last_edge'] if h['per_run'] else None
    # The kernel's own fairness test (FIFO locks, counted turns), where it ran.
    out['fairness_test'] = [{'type': e['path'].split('.')[1], 'smp': e['smp'],
                             'stats': e['stats'], 'test': e['test']}
                            for e in fair if not any(w['fairness_metric'] == e['id']
                                                     for w in out['wait'])]
    out['critical_section'] = critical_section_note(results)
    return out


def critical_section_note(results):
    keys = set()
    for e in results.find(regex=r'^lock\.'):
        keys.update(k for k in e['attrs'] if k in ('cs', 'cs_ns', 'cs_us', 'section_ns',
                                                   'hold_ns'))
    if keys:
        return 'critical-section length swept by the kernel (%s=)' % ', '.join(sorted(keys))
    return ('critical-section length: the kernel has no knob for it (no cs= option or '
            'attribute); every figure uses the benchmark\'s fixed section (a read, a pause '
            'and a write of shared data)')


# -- peers ---------------------------------------------------------------------------------

_METRIC_LINE = re.compile(r'^#\s*metric:\s+(\S+)\s+(\S+)\s+(\S+)((?:\s+\S+)*)\s*$')


def parse_metric_lines(text):
    """'# metric:' lines of any output (the host benchmark prints them without KTAP)."""
    out = []
    for line in (text or '').splitlines():
        m = _METRIC_LINE.match(line.strip())
        if not m:
            continue
        try:
            value = float(m.group(2))
        except ValueError:
            continue
        if value.is_integer() and '.' not in m.group(2):
            value = int(value)
        attrs = {}
        for token in m.group(4).split():
            k, sep, v = token.partition('=')
            if sep:
                try:
                    attrs[k] = int(v)
                except ValueError:
                    try:
                        attrs[k] = float(v)
                    except ValueError:
                        attrs[k] = v
        out.append({'path': m.group(1), 'value': value, 'unit': m.group(3), 'attrs': attrs})
    return out


def host_lock_results(outputs):
    """The host pthread benchmark's repeats (their stdout) aggregated: {(kernel name, what,
    identity attrs): entry}.  Throughput is converted from ops/s to ops/ms."""
    entries = {}
    for rep, text in enumerate(outputs):
        for m in parse_metric_lines(text):
            parts = m['path'].split('.')
            if len(parts) < 4 or parts[0] != 'host' or parts[1] != 'lock':
                continue
            name = HOST_NAMES.get(parts[2], parts[2])
            what = '.'.join(parts[3:])
            ident = {k: v for k, v in m['attrs'].items() if k in ('threads', 'mode', 'k')}
            value, unit = m['value'], m['unit']
            if unit == 'ops/s':
                value, unit = value / 1000.0, 'ops/ms'
            key = (name, what, _attr_key(ident))
            e = entries.setdefault(key, {'type': name, 'host_name': parts[2], 'what': what,
                                         'attrs': ident, 'unit': unit, 'samples': [],
                                         'runs': [], 'observed': {}})
            e['samples'].append(value)
            e['runs'].append(rep)
            for k, v in m['attrs'].items():
                if k not in ident:
                    e['observed'].setdefault(k, []).append(v)
    for e in entries.values():
        e['stats'] = summarize(e['samples'])
    return entries


def peer_table(results, host, matrix):
    """One row per lock type: bare-metal (locklab) and Linux user-space (pthreads) figures and
    their noise side by side."""
    host_types = {e['type'] for e in host.values()}
    kernel_types = {u['type'] for u in matrix['uncontended']} | \
        {r['type'] for r in matrix['throughput']['rows']}
    common = sorted(host_types & kernel_types)
    threads_all = sorted({e['attrs'].get('threads') for e in host.values()
                          if e['what'] == 'throughput' and isnum(e['attrs'].get('threads'))})
    cpus_all = matrix['throughput']['cpus']
    both = sorted(set(threads_all) & set(cpus_all))
    columns = [both[0], both[-1]] if len(both) > 1 else both
    rows = []
    for name in common + sorted(kernel_types - host_types) + sorted(host_types - kernel_types):
        row = {'type': name, 'in_kernel': name in kernel_types, 'on_host': name in host_types}
        unc = [u for u in matrix['uncontended'] if u['type'] == name]
        row['kernel_uncontended_ns'] = unc[0]['ns'] if unc else None
        row['kernel_uncontended_cycles'] = unc[0]['cycles'] if unc else None
        h = host.get((name, 'uncontended_ns', ()))
        if h is None:
            h = next((e for e in host.values() if e['type'] == name and
                      e['what'] == 'uncontended_ns'), None)
        row['host_uncontended_ns'] = h['stats'] if h else None
        row['throughput'] = {}
        trow = next((r for r in matrix['throughput']['rows'] if r['type'] == name), None)
        for n in columns:
            k = trow['cells'].get(n) if trow else None
            he = next((e for e in host.values() if e['type'] == name and
                       e['what'] == 'throughput' and e['attrs'].get('threads') == n), None)
            row['throughput'][n] = {'kernel': k['stats'] if k else None,
                                    'kernel_smp': k['smp'] if k else None,
                                    'host': he['stats'] if he else None,
                                    'host_max_min': (he['observed'].get('max_min') or [None])[0]
                                    if he else None}
        waits = [w for w in matrix['wait'] if w['type'] == name]
        w = sorted(waits, key=lambda x: x['smp'])[-1] if waits else None
        row['kernel_wait'] = {'smp': w['smp'], 'p99': w['stats']['p99'],
                              'max': w['stats']['max'], 'unit': w['unit']} if w else None
        rows.append(row)
    return {'rows': rows, 'columns': columns,
            'note': 'Throughput in ops/ms (the host benchmark prints ops/s; divided by 1000). '
                    'Bare-metal uncontended cost is TSC cycles converted with the guest\'s '
                    'calibrated TSC rate (%s MHz).' % (_sig(matrix['tsc_mhz'], 5)
                                                       if matrix['tsc_mhz'] else '?')}


def host_brk(host):
    """The host benchmark's breakable-lock wait (max, by mode), as a peer of the walk."""
    out = []
    for e in host.values():
        if e['type'] == 'breakable' and e['what'] == 'wait_max_ns':
            out.append({'mode': e['attrs'].get('mode'), 'stats': e['stats'],
                        'threads': (e['observed'].get('threads') or [None])[0]})
    return sorted(out, key=lambda x: str(x['mode']))


# -- environment ---------------------------------------------------------------------------

def cpu_model(cpuinfo='/proc/cpuinfo'):
    text = read_text(cpuinfo) or ''
    m = re.search(r'^model name\s*:\s*(.+)$', text, re.MULTILINE)
    return m.group(1).strip() if m else platform.processor() or 'unknown'


def host_cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def command_first_line(argv):
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, timeout=20)
        text = proc.stdout.decode('utf-8', 'replace').strip()
        return text.splitlines()[0] if text else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def git_commit(repo=REPO):
    head = command_first_line(['git', '-C', repo, 'rev-parse', 'HEAD'])
    if not head or not re.match(r'^[0-9a-f]{7,}$', head):
        return None
    try:
        proc = subprocess.run(['git', '-C', repo, 'status', '--porcelain', '--untracked-files=no'],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=20)
        dirty = bool(proc.stdout.strip())
    except (OSError, subprocess.TimeoutExpired):
        dirty = False
    return head + ('-dirty' if dirty else '')


def _timer_loop_worker(cpu, seconds, interval_us, hist_us, queue):
    """One CPU's share of timer_loop_histogram (runs in a child process)."""
    import time
    try:
        os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError):
        pass
    counts = [0] * hist_us
    lo, hi, total, n, over = None, 0, 0, 0, 0
    step = interval_us * 1000
    deadline = time.monotonic_ns() + int(seconds * 1e9)
    target = time.monotonic_ns() + step
    while target < deadline:
        delay = target - time.monotonic_ns()
        if delay > 0:
            time.sleep(delay / 1e9)
        late = max(0, time.monotonic_ns() - target) // 1000          # us, as cyclictest
        n += 1
        total += late
        lo = late if lo is None else min(lo, late)
        hi = max(hi, late)
        if late < hist_us:
            counts[late] += 1
        else:
            over += 1
        target += step
        now = time.monotonic_ns()
        if target < now:                       # missed periods: skip them, as cyclictest does
            target += ((now - target) // step + 1) * step
    queue.put((cpu, counts, lo or 0, hi, total // n if n else 0, over, n))


def timer_loop_histogram(seconds, interval_us=200, hist_us=10000, cpus=None):
    """cyclictest's measurement without its privilege check, for when it cannot run: one
    process per CPU sleeps to an absolute deadline every interval_us (SCHED_OTHER) and records
    how late it woke, in 1 us buckets.  Returns the histogram in cyclictest's --histfile
    layout.  The interpreter adds a few microseconds of its own to every sample."""
    import multiprocessing
    cpus = sorted(cpus if cpus is not None else os.sched_getaffinity(0))
    ctx = multiprocessing.get_context('fork')
    queue = ctx.Queue()
    procs = [ctx.Process(target=_timer_loop_worker, args=(c, seconds, interval_us, hist_us,
                                                          queue)) for c in cpus]
    for p in procs:
        p.start()
    results = {}
    for _ in procs:
        cpu, counts, lo, hi, avg, over, n = queue.get(timeout=seconds + 60)
        results[cpu] = (counts, lo, hi, avg, over, n)
    for p in procs:
        p.join(timeout=10)
    order = [results[c] for c in cpus]
    out = ['# Histogram']
    for us in range(hist_us):
        if any(r[0][us] for r in order):
            out.append('%06d %s' % (us, '\t'.join('%06d' % r[0][us] for r in order)))
    out.append('# Total:' + ''.join(' %09d' % sum(r[0]) for r in order))
    out.append('# Min Latencies:' + ''.join(' %05d' % r[1] for r in order))
    out.append('# Avg Latencies:' + ''.join(' %05d' % r[3] for r in order))
    out.append('# Max Latencies:' + ''.join(' %05d' % r[2] for r in order))
    out.append('# Histogram Overflows:' + ''.join(' %05d' % r[4] for r in order))
    out.append('# Histogram Overflow at cycle number:')
    for i in range(len(order)):
        out.append('# Thread %d:' % i)
    out.append('')
    out.append('# locklab: host timer loop (SCHED_OTHER, Python, clock_nanosleep to an '
               'absolute deadline every %d us), not cyclictest' % interval_us)
    return '\n'.join(out) + '\n'


def host_is_rt():
    if (read_text('/sys/kernel/realtime') or '').strip() == '1':
        return True
    return 'PREEMPT_RT' in platform.version()


def environment(results, extra=None):
    runs = results.runs
    accels = sorted({r.get('accel') for r in runs if r.get('accel')})
    reasons = sorted({r.get('accel_reason') for r in runs if r.get('accel_reason')})
    smps = sorted({r.get('smp') for r in runs if isnum(r.get('smp'))})
    debug = sorted({str(v) for e in results.metrics for v in e['observed'].get('debug', [])})
    env = {
        'accelerator': '/'.join(accels) if accels else 'unknown',
        'accelerator_reason': '; '.join(reasons) if reasons else None,
        'host_cpu_model': cpu_model(),
        'host_cpus': results.host_cpus,
        'host_cpus_online': os.cpu_count(),
        'vcpus': smps,
        'overcommit': {str(s): round(s / float(results.host_cpus), 2) for s in smps},
        'max_overcommit': round(max(smps) / float(results.host_cpus), 2) if smps else None,
        'guest_tsc_mhz': results.tsc_mhz(),
        'lock_debug': ('off (debug=0 on the figures)' if debug == ['0'] else
                       'ON (debug=1 on some figures: they include the debug options\' cost)'
                       if '1' in debug else 'unknown (no debug= attribute seen)'),
        'host_kernel': '%s %s' % (platform.system(), platform.release()),
        'host_kernel_rt': host_is_rt(),
        'python': platform.python_version(),
    }
    if extra:
        env.update(extra)
    return env


# -- plots ---------------------------------------------------------------------------------

_g = REPORT._g
gp_string = REPORT.gp_string


class Plots:
    """gnuplot scripts and data in DIR/plots/src, PNGs in DIR/plots."""

    def __init__(self, out_dir, gnuplot='gnuplot'):
        self.dir = os.path.join(out_dir, 'plots')
        self.src = os.path.join(self.dir, 'src')
        self.gnuplot = shutil.which(gnuplot) if gnuplot else None
        self.made = []
        self.errors = []

    def draw(self, name, script, data, caption, section):
        os.makedirs(self.src, exist_ok=True)
        for fname, text in data.items():
            with open(os.path.join(self.src, fname), 'w', encoding='utf-8') as f:
                f.write(text)
        header = ('set terminal pngcairo size 1000,560 enhanced font "DejaVu Sans,10"\n'
                  'set output %s\nset datafile missing "?"\n'
                  % gp_string(os.path.join('..', name + '.png')))
        with open(os.path.join(self.src, name + '.gp'), 'w', encoding='utf-8') as f:
            f.write(header + script)
        png = os.path.join(self.dir, name + '.png')
        drawn = False
        if self.gnuplot:
            try:
                proc = subprocess.run([self.gnuplot, name + '.gp'], cwd=self.src,
                                      stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, timeout=GNUPLOT_TIMEOUT_S)
                msg = proc.stdout.decode('utf-8', 'replace').strip()
                drawn = proc.returncode == 0 and os.path.isfile(png) and os.path.getsize(png)
                if not drawn:
                    self.errors.append('%s.png: gnuplot failed: %s' % (name, msg[-400:]))
            except (OSError, subprocess.TimeoutExpired) as err:
                self.errors.append('%s.png: %s' % (name, err))
        entry = {'name': name, 'file': 'plots/%s.png' % name if drawn else None,
                 'script': 'plots/src/%s.gp' % name, 'caption': caption, 'section': section}
        self.made.append(entry)
        return entry

    # kinds ---------------------------------------------------------------------------

    def lines(self, name, title, xlabel, ylabel, series, caption, section, ylog=None,
              categorical=None, hline=None, xlog=None, vline=None):
        """series: [(label, [(x, median, low, high)])] drawn with error bars."""
        series = [(label, [p for p in pts if isnum(p[1])]) for label, pts in series]
        series = [(label, pts) for label, pts in series if pts]
        if not series:
            return None
        xs = sorted({p[0] for _, pts in series for p in pts})
        ys = [v for _, pts in series for p in pts for v in p[1:] if isnum(v)]
        if categorical is None:
            categorical = bool(xs) and (xs[0] <= 0 or xs[-1] / float(xs[0]) > 64)
        data, plot = {}, []
        for i, (label, pts) in enumerate(series):
            fname = '%s-%d.dat' % (name, i)
            rows = ['# %s: x median low high' % label]
            for x, med, low, high in sorted(pts):
                rows.append('%s %s %s %s' % (_g(xs.index(x) if categorical else x), _g(med),
                                             _g(low if isnum(low) else med),
                                             _g(high if isnum(high) else med)))
            data[fname] = '\n'.join(rows) + '\n'
            plot.append('"%s" using 1:2:3:4 with yerrorlines lw 2 lc %d dt %d pt %d ps 1.1 '
                        'title %s noenhanced' % (fname, i % 8 + 1, i // 8 + 1,
                                                 (7, 5, 9, 11, 13)[i // 8 % 5], gp_string(label)))
        if hline is not None:
            plot.append('%s with lines lc rgb "#888888" dt 2 title "%s"' % (_g(hline[0]),
                                                                          hline[1]))
        s = ['set title %s noenhanced' % gp_string(title),
             'set xlabel %s noenhanced' % gp_string(xlabel),
             'set ylabel %s noenhanced' % gp_string(ylabel),
             'set grid lc rgb "#dddddd"', 'set key outside right top box noenhanced',
             'set bars small']
        positive = ys and min(ys) > 0
        if ylog is None:
            ylog = positive and max(ys) / min(ys) > 50
        if ylog and positive:
            s += ['set logscale y', 'set format y "%g"']
        else:
            s += ['set yrange [0:*]', 'set format y "%g"']
        if categorical:
            s.append('set xtics (%s)' % ', '.join('%s %d' % (gp_string(_g(x)), i)
                                                  for i, x in enumerate(xs)))
            s.append('set xrange [-0.4:%s]' % _g(len(xs) - 0.6))
        else:
            if xlog is None:
                xlog = xs and min(xs) > 0 and max(xs) / min(xs) >= 4
            if xlog:
                s.append('set logscale x 2')
            s.append('set xtics (%s)' % ', '.join(_g(x) for x in xs))
            lo, hi = xs[0], xs[-1]
            if lo == hi:
                s.append('set xrange [%s:%s]' % (_g(lo / 2.0 if xlog else lo - 1),
                                                 _g(hi * 2.0 if xlog else hi + 1)))
            elif xlog:
                s.append('set xrange [%s:%s]' % (_g(lo / 1.25), _g(hi * 1.25)))
            else:
                pad = (hi - lo) * 0.05
                s.append('set xrange [%s:%s]' % (_g(lo - pad), _g(hi + pad)))
        if vline is not None and not categorical and xs[0] <= vline[0] <= xs[-1]:
            s.append('set arrow from %s, graph 0 to %s, graph 1 nohead lc rgb "#888888" dt 2'
                     % (_g(vline[0]), _g(vline[0])))
            s.append('set label %s at %s, graph 0.04 left offset 0.5,0 tc rgb "#666666" '
                     'noenhanced' % (gp_string(vline[1]), _g(vline[0])))
        s.append('plot ' + ', \\\n     '.join(plot))
        return self.draw(name, '\n'.join(s) + '\n', data, caption, section)

    def bars(self, name, title, ylabel, categories, series, caption, section, ylog=None):
        """Clustered bars with error bars: series [(label, {category: (median, low, high)})]."""
        series = [(label, vals) for label, vals in series
                  if any(isnum(v[0]) for v in vals.values() if v)]
        categories = [c for c in categories
                      if any(vals.get(c) and isnum(vals[c][0]) for _, vals in series)]
        if not series or not categories:
            return None
        rows = ['# category' + ''.join(' "%s" low high' % label for label, _ in series)]
        ys = []
        for c in categories:
            fields = [gp_string(c)]
            for _, vals in series:
                v = vals.get(c)
                if v and isnum(v[0]):
                    med = v[0]
                    low = v[1] if isnum(v[1]) else med
                    high = v[2] if isnum(v[2]) else med
                    fields += [_g(med), _g(low), _g(high)]
                    ys += [med, low, high]
                else:
                    fields += ['?', '?', '?']
            rows.append(' '.join(fields))
        fname = name + '.dat'
        positive = ys and min(ys) > 0
        if ylog is None:
            ylog = positive and max(ys) / min(ys) > 50
        s = ['set title %s noenhanced' % gp_string(title),
             'set ylabel %s noenhanced' % gp_string(ylabel),
             'set style data histogram',
             'set style histogram errorbars gap 2 lw 1',
             'set style fill solid 0.7 border -1',
             'set boxwidth 0.9',
             'set grid ytics lc rgb "#dddddd"',
             'set key outside right top box noenhanced',
             'set xtics rotate by -30 noenhanced']
        if ylog and positive:
            s += ['set logscale y', 'set yrange [%s:%s]' % (_g(min(ys) / 2.0), _g(max(ys) * 2)),
                  'set format y "%g"']
        else:
            s += ['set yrange [0:*]']
        plot = []
        for i, (label, _) in enumerate(series):
            col = 2 + 3 * i
            plot.append('%s using %d:%d:%d%s title %s lc %d' % (
                '"%s"' % fname if i == 0 else '""', col, col + 1, col + 2,
                ':xtic(1)' if i == 0 else '', gp_string(label), i + 1))
        s.append('plot ' + ', \\\n     '.join(plot))
        return self.draw(name, '\n'.join(s) + '\n', {fname: '\n'.join(rows) + '\n'}, caption,
                         section)

    def density(self, name, title, series, caption, section, tsc_mhz=None):
        """Latency histograms of different bucket widths in one plot: x in us, y the share of
        samples per us (count / total / bucket width), logarithmic, one step line each.  When
        the x range spans more than 50:1 the axis is logarithmic and every histogram is
        re-binned to DECADE_BINS bins per decade (each bucket's count spread over the bins it
        overlaps), so that sparse tails stay readable.  series: [(label, hist block)]."""
        prepared = []
        for label, hist in series:
            if hist is None:
                continue
            unit = hist.get('unit')
            rows = [(s, sum(c)) for s, c in REPORT.hist_rows(hist) if sum(c)]
            total = sum(c for _, c in rows) + (hist.get('overflows') or 0)
            if not rows or not total:
                continue
            pts = []
            for start, count in rows:
                a = to_us(start, unit, tsc_mhz)
                b = to_us(REPORT.bucket_end(hist, start), unit, tsc_mhz)
                if a is not None and b is not None and b > a:
                    pts.append((a, b, count))
            if pts:
                prepared.append((label, pts, total, to_us(hist.get('max'), unit, tsc_mhz),
                                 to_us(hist.get('min'), unit, tsc_mhz)))
        if not prepared:
            return None
        hi = max(p[1] for _, pts, _, _, _ in prepared for p in pts)
        lows = []
        for _, pts, _, _, mn in prepared:
            for a, b, _ in pts:
                lows.append(a if a > 0 else (mn if isnum(mn) and 0 < mn < b else b / 2.0))
        xlog = hi / max(min(lows), 1e-9) > 50
        curves = []
        for label, pts, total, mx, mn in prepared:
            if xlog:
                bins = {}
                for a, b, count in pts:
                    if a <= 0:
                        a = mn if isnum(mn) and 0 < mn < b else b / 2.0
                    first = int(math.floor(math.log10(a) * DECADE_BINS))
                    last = int(math.ceil(math.log10(b) * DECADE_BINS))
                    for i in range(first, max(last, first + 1)):
                        lo = max(a, 10 ** (i / float(DECADE_BINS)))
                        up = min(b, 10 ** ((i + 1) / float(DECADE_BINS)))
                        if up > lo:
                            bins[i] = bins.get(i, 0.0) + count * (up - lo) / (b - a)
                edges = [(10 ** (i / float(DECADE_BINS)), 10 ** ((i + 1) / float(DECADE_BINS)),
                          c) for i, c in sorted(bins.items()) if c > 0]
            else:
                edges = pts
            curve = [(a, b, c / float(total) / (b - a)) for a, b, c in edges]
            curves.append((label, curve, total, mx))
        ds = [d for _, curve, _, _ in curves for _, _, d in curve if d > 0]
        floor = min(ds) / 3.0
        data, plot = {}, []
        for i, (label, curve, total, mx) in enumerate(curves):
            rows = ['# %s: x (us) share of samples per us' % label]
            prev = None
            for a, b, d in curve:
                if prev is None or a > prev * (1 + 1e-9) + 1e-12:
                    if prev is not None:
                        rows.append('%s %s' % (_g(prev), _g(floor)))
                    rows.append('%s %s' % (_g(a), _g(floor)))
                rows.append('%s %s' % (_g(a), _g(d)))
                rows.append('%s %s' % (_g(b), _g(d)))
                prev = b
            rows.append('%s %s' % (_g(prev), _g(floor)))
            fname = '%s-%d.dat' % (name, i)
            data[fname] = '\n'.join(rows) + '\n'
            legend = '%s (%d samples, max %s)' % (label, total, human(mx, 'us')
                                                   if mx is not None else '?')
            plot.append('"%s" using 1:2 with lines lw 1.6 lc %d dt %d title %s noenhanced' % (
                fname, i % 8 + 1, i // 8 + 1, gp_string(legend)))
        s = ['set title %s noenhanced' % gp_string(title),
             'set xlabel "latency (us)%s"' % (', logarithmic axis, %d bins per decade'
                                              % DECADE_BINS if xlog else ''),
             'set ylabel "share of samples per us (log)"',
             'set logscale y', 'set format y "10^{%L}"',
             'set yrange [%s:*]' % _g(floor),
             'set grid lc rgb "#dddddd"', 'set key outside below box noenhanced']
        if xlog:
            s += ['set logscale x 10', 'set format x "%g"']
        else:
            s += ['set xrange [0:*]']
        s.append('plot ' + ', \\\n     '.join(plot))
        return self.draw(name, '\n'.join(s) + '\n', data, caption, section)


def stat_triplet(stats, scale=1.0):
    if not stats:
        return (None, None, None)
    return (stats['median'] / scale, stats['min'] / scale, stats['max'] / scale)


def draw_plots(plots, results, matrix, scen, peers, cyclic, out_dir='.', hist_names=None):
    tsc = matrix['tsc_mhz']
    hist_names = hist_names or {}
    # Lock throughput by CPUs, bare metal and host side by side.
    series = []
    for row in matrix['throughput']['rows']:
        pts = [(c, cell['stats']['median'], cell['stats']['min'], cell['stats']['max'])
               for c, cell in sorted(row['cells'].items()) if cell['stats']]
        series.append((row['type'], pts))
    plots.lines('throughput', 'locklab: lock throughput against contending CPUs '
                '(median, min-max over repeats)', 'CPUs contending', 'ops/ms', series,
                'Contended throughput of each lock type in the guest, from the leg whose '
                'every vCPU contends (lock.<type>.throughput); right of the dashed line the '
                'vCPUs outnumber the host CPUs.', 'locks',
                vline=(results.host_cpus, '%d host CPUs' % results.host_cpus))
    host = peers.get('host_entries') or {}
    hseries = {}
    for e in host.values():
        if e['what'] == 'throughput' and isnum(e['attrs'].get('threads')) and e['stats']:
            hseries.setdefault(e['type'], []).append((e['attrs']['threads'],
                                                     e['stats']['median'], e['stats']['min'],
                                                     e['stats']['max']))
    plots.lines('host-throughput', 'Linux user space (pthreads, same lock sources): '
                'throughput against threads', 'threads', 'ops/ms',
                sorted(hseries.items()),
                'The host peer: tests/host/locks torture --bench, the same lock algorithms as '
                'pthreads on the host Linux.', 'peers')
    # Uncontended: bare metal vs host, ns.
    cats = [r['type'] for r in peers['table']['rows'] if r['type'] != 'none']
    kvals, hvals = {}, {}
    for r in peers['table']['rows']:
        if r['kernel_uncontended_ns']:
            k = r['kernel_uncontended_ns']
            kvals[r['type']] = (k['median'], k['min'], k['max'])
        if r['host_uncontended_ns']:
            hvals[r['type']] = stat_triplet(r['host_uncontended_ns'])
    plots.bars('uncontended', 'Uncontended lock+unlock: bare metal (TCG guest) vs Linux user '
               'space', 'ns per lock+unlock', cats,
               [('locklab (guest)', kvals), ('Linux pthreads (host)', hvals)],
               'Cost of one uncontended lock+unlock pair (median, error bars min-max over '
               'repeats).', 'peers')
    # Lock waits.
    waits = results.find_hists(regex=r'^lock\.[^.]+\.wait$')
    if waits:
        top = max(w['smp'] for w in waits)
        plots.density('lock-wait', 'Acquisition waits per lock type, %d vCPUs' % top,
                      [(w['path'].split('.')[1], w['merged']) for w in waits
                       if w['smp'] == top],
                      'Distribution of acquisition waits under saturation (lock.<type>.wait, '
                      'every repeat merged), all vCPUs contending.', 'locks', tsc)
    # Breakable.
    b = scen['breakable']['rows']
    if b:
        cats, before, after = [], {}, {}
        for r in b:
            label = '%s (%s vCPUs)' % (r['after']['label'], r.get('smp'))
            cats.append(label)
            before[label] = (r['before']['median'] / 1e6, r['before']['min'] / 1e6,
                             r['before']['max'] / 1e6)
            after[label] = (r['after']['median'] / 1e6, r['after']['min'] / 1e6,
                            r['after']['max'] / 1e6)
        plots.bars('breakable', 'Longest wait during a long walk: plain ticket lock vs '
                   'breakable variants', 'ms', cats, [('plain', before),
                                                     ('breakable variant', after)],
                   'Median over repeats of the longest wait of a waiter while another CPU '
                   'walks a list under the lock (lock.<variant>.walk_max_wait_ns).', 'scenarios',
                   ylog=True)
        walks = results.find_hists(regex=r'^lock\.[^.]+\.walk_wait$')
        if walks:
            smp = preferred_smp([w['smp'] for w in walks], results.host_cpus)
            plots.density('breakable-waits', 'Waits during the walk, %d vCPUs' % smp,
                          [(w['path'].split('.')[1], w['merged']) for w in walks
                           if w['smp'] == smp],
                          'Every wait of the waiter during the walks (lock.<variant>.walk_wait).',
                          'scenarios', tsc)
    # PV.
    pv = [r for r in scen['pv']['rows'] if r['status'] == 'measured']
    if pv:
        for kind, unit, scale, label in (('throughput', 'ops/ms', 1.0, 'ops/ms'),
                                         ('max_wait', 'ns', 1e6, 'ms')):
            rows = [r for r in pv if r['id'].endswith(kind)]
            if not rows:
                continue
            cats, before, after = [], {}, {}
            for r in rows:
                c = '%s vCPUs (%sx)' % (r['smp'], _sig(results.overcommit(r['smp']), 2))
                cats.append(c)
                before[c] = stat_triplet(r['before'], scale)
                after[c] = stat_triplet(r['after'], scale)
            plots.bars('pv-' + kind.replace('_', '-'),
                       'Ticket vs paravirtual ticket lock by vCPU overcommit: %s'
                       % kind.replace('_', ' '), label, cats,
                       [('ticket', before), ('pvticket', after)],
                       'Plain and paravirtual ticket locks as vCPUs outnumber host CPUs '
                       '(%s).' % ('lock.<type>.overcommit_throughput' if kind == 'throughput'
                                  else 'max of lock.<type>.wait'), 'scenarios')
    # Shootdown.
    sync = results.find(regex=r'^tlb\.(sync|lazy)\.initiator_ns$')
    if sync:
        series = {}
        for e in sync:
            sec = e['attrs'].get('section_us', (e['observed'].get('section_us') or [None])[0])
            if isnum(sec) and e['stats']:
                label = '%s (%s vCPUs)' % (e['path'].split('.')[1], e['smp'])
                series.setdefault(label, []).append((sec, e['stats']['median'] / 1000.0,
                                                     e['stats']['min'] / 1000.0,
                                                     e['stats']['max'] / 1000.0))
        plots.lines('shootdown', 'TLB shootdown: initiator cost against interrupt-off section',
                    'interrupt-off section on the targets (us)', 'initiator cost (us)',
                    sorted(series.items()),
                    'Synchronous and lazy shootdown (tlb.<mode>.initiator_ns by section_us).',
                    'scenarios')
    tlbh = results.find_hists(regex=r'^tlb\.[^.]+\.initiator$')
    if tlbh:
        smp = preferred_smp([h['smp'] for h in tlbh], results.host_cpus)
        plots.density('shootdown-latency', 'TLB shootdown: initiator cost, %d vCPUs' % smp,
                      [(h['path'].split('.')[1] + ''.join(
                          ' %s=%s' % kv for kv in sorted(h['options'].items())
                          if len({str(x['options']) for x in tlbh}) > 1), h['merged'])
                       for h in tlbh if h['smp'] == smp],
                      'Distribution of the initiator\'s cost per shootdown '
                      '(tlb.<mode>.initiator histograms, every repeat merged).', 'scenarios',
                      tsc)
    # Multi-lock.
    ml = [r for r in scen['multilock']['rows'] if r['status'] == 'measured']
    if ml:
        series = {}
        for r in ml:
            fs = r.get('factor_stats')
            lo, hi = (fs['min'], fs['max']) if fs else (r['factor'], r['factor'])
            series.setdefault('%s locks' % r['locks'], []).append((r['cpus'], r['factor'], lo,
                                                                  hi))
        plots.lines('multilock', 'Sorted multi-lock throughput relative to the global lock',
                    'CPUs contending', 'sorted / global throughput',
                    sorted(series.items(), key=lambda kv: int(kv[0].split()[0])
                           if kv[0].split()[0].isdigit() else 0),
                    'Above 1: taking the locks in address order beats serialising on one '
                    'global lock.', 'scenarios', ylog=True, hline=(1, 'equal'))
    # Wakeup latency against cyclictest: locklab's histograms as scripts/report converted
    # them (the files in hist/), beside cyclictest's own --histfile output.  An idle guest is
    # drawn with the idle host, a guest under lock load with the host under lock load.
    groups = {}
    for h in results.find_hists(regex=WAKEUP_HIST):
        block = h['merged']
        text = read_text(os.path.join(out_dir, hist_names[h['id']])) \
            if hist_names.get(h['id']) else None
        if text:
            block = histfile_as_block(parse_histfile(text), h['path'])
        groups.setdefault(_load_of(h), []).append((_model_order(_model_of(h)),
                                                  'locklab preempt=%s' % _model_of(h), block))
    cyc = {c['label']: c for c in cyclic.get('runs', []) if c.get('block')}
    if not groups:
        groups[None] = []
    for load in sorted(groups, key=_load_order):
        series = [(label, block) for _, label, block in sorted(groups[load],
                                                               key=lambda x: x[0])]
        peers_for = ['idle'] if load == 'idle' else ['lock-load'] if load else list(cyc)
        for label in peers_for:
            if label in cyc:
                c = cyc[label]
                series.append(('%s on the host, %s (%s)' % (c.get('tool') or 'cyclictest',
                                                             label, c['policy']), c['block']))
        name = 'wakeup' if load is None else 'wakeup-' + load
        plots.density(name, 'Wakeup latency%s: locklab per preemption model vs cyclictest on '
                      'the host' % (', %s' % ('no load' if load == 'idle' else
                                              '%s lock load' % load) if load else ''),
                      series,
                      'locklab\'s sched.wakeup_latency histograms%s (as scripts/report '
                      'converts them to cyclictest\'s format) and cyclictest --histfile output '
                      '(%s), drawn as the share of samples per us so that different bucket '
                      'widths and sample counts compare.' % (
                          ' under load=%s' % load if load else '',
                          'host idle' if load == 'idle' else 'host under the pthread lock '
                          'benchmark' if load else 'idle and under lock load'),
                      'peers', tsc)


# -- HTML ----------------------------------------------------------------------------------

CSS = REPORT.CSS + """
td.nm, span.nm { color: #8d6e00; font-style: italic; }
td.good { color: #2e7d32; font-weight: bold; } td.bad { color: #c62828; font-weight: bold; }
table.env td:first-child { width: 16em; color: #555; }
small { color: #666; }
"""


def esc(text):
    return html.escape('' if text is None else str(text))


def _cell(text, cls=None):
    return '<td%s>%s</td>' % (' class="%s"' % cls if cls else '', text)


def _num(text):
    return '<td class="num">%s</td>' % text


def ratio_row(r):
    if r['status'] != 'measured':
        return '<tr><td>%s</td>%s<td colspan="3"></td><td class="nm">%s</td></tr>' % (
            esc(r['title']), _cell('', 'nm'), esc(r['statement']))
    f = r['factor']
    cls = 'good' if f >= 1 else 'bad'
    fs = r.get('factor_stats')
    rng = ' <small>[%s-%s]</small>' % (factor_text(fs['min']), factor_text(fs['max'])) \
        if fs and fs['n'] > 1 else ''
    unit = r['before'].get('unit')
    return ('<tr><td>%s</td><td class="num %s">%s%s</td><td class="num">%s</td>'
            '<td class="num">%s</td><td>%s</td><td>%s</td></tr>' % (
                esc(r['title']), cls, esc(factor_text(f)), rng,
                esc('%s: %s' % (r['before']['label'], human(r['before']['median'], unit))),
                esc('%s: %s' % (r['after']['label'], human(r['after']['median'], unit))),
                esc(r.get('context', '')), esc(r['statement'])))


RATIO_HEAD = ('<table><tr><th>comparison</th><th>factor (&gt;1: better)</th><th>before</th>'
              '<th>after</th><th>where</th><th>statement</th></tr>')


def _figure_html(plot):
    if not plot or not plot.get('file'):
        return ''
    return '<figure><img src="%s" alt="%s"><figcaption>%s <small>(gnuplot: %s)</small>' \
        '</figcaption></figure>' % (esc(plot['file']), esc(plot['caption']),
                                    esc(plot['caption']), esc(plot['script']))


def pct_text(w, key):
    """A percentile of a histogram summary.  When it fell among the overflows (samples past
    the histogram's range, whose values the kernel does not print) in a repeat, say so."""
    s = w['stats'].get(key)
    if not s:
        return 'n/a'
    if key in (w.get('beyond') or []):
        ov, n = w['stats'].get('overflows'), w['stats'].get('samples')
        share = ov['median'] * 100.0 / n['median'] if ov and n and n['median'] else None
        return 'past the histogram (%s of the samples overflowed)' % (
            '%s%%' % _sig(share, 2) if share is not None else 'some')
    return human(s['median'], w['unit'])


def write_html(path, report, plots):
    env, runs = report['environment'], report['runs']
    out = ['<!DOCTYPE html>', '<html lang="en"><head><meta charset="utf-8">',
           '<title>locklab benchmarks</title><style>%s</style></head><body>' % CSS,
           '<h1>locklab benchmarks</h1>',
           '<p class="meta">mode %s, %s repeat(s) asked, %s done; %d runs in %s s; written %s'
           '</p>' % (esc(report['mode']), esc(report['repeat']), esc(report['repeats_done']),
                     len(runs), esc(report.get('seconds')), esc(report['written']))]
    narrowed = [n for n in report.get('notes', []) if NARROW_NOTE in n]
    for note in report.get('notes', []):
        if note not in narrowed:
            out.append('<p class="note">%s</p>' % esc(note))
    if narrowed:
        out.append('<details><summary>Repeats after the first ran only the tests that printed '
                   'figures in the first run (%d legs)</summary><ul>%s</ul></details>' % (
                       len(narrowed), ''.join('<li>%s</li>' % esc(n) for n in narrowed)))

    out.append('<h2 id="environment">Environment</h2><table class="env">')
    oc = env.get('max_overcommit')
    rows = [('accelerator', '%s%s' % (env['accelerator'], ' (%s)' % env['accelerator_reason']
                                      if env.get('accelerator_reason') else '')),
            ('host CPU', env['host_cpu_model']),
            ('host CPUs', '%s usable (%s online)' % (env['host_cpus'], env['host_cpus_online'])),
            ('vCPUs', ', '.join(str(v) for v in env['vcpus']) or 'none'),
            ('vCPU overcommit', ', '.join('%s vCPUs: %sx' % kv for kv in env['overcommit'].items())
             + (' (up to %sx)' % oc if oc else '')),
            ('QEMU', env.get('qemu_version')), ('kernel commit', env.get('kernel_commit')),
            ('lock debug options', env['lock_debug']),
            ('guest TSC', '%s MHz' % _sig(env['guest_tsc_mhz'], 5) if env.get('guest_tsc_mhz')
             else 'unknown'),
            ('host kernel', '%s%s' % (env['host_kernel'], ' (PREEMPT_RT)' if env['host_kernel_rt']
                                      else ' (not an RT kernel)')),
            ('host load average', env.get('loadavg')), ('ISO', env.get('iso')),
            ('gnuplot', env.get('gnuplot'))]
    for k, v in rows:
        out.append('<tr><td>%s</td><td>%s</td></tr>' % (esc(k), esc(v if v is not None
                                                                    else 'unknown')))
    out.append('</table>')

    out.append('<h2 id="headline">Headline ratios</h2>')
    out.append('<p>Each comparison as a factor: how many times better the "after" figure is '
               '(lower latency or cost, higher throughput); below 1 it is worse.  The factor '
               'is that of the two medians over the repeats; in brackets the range of the '
               'factors of the single repeats.</p>')
    out.append(RATIO_HEAD)
    for r in report['headline']:
        out.append(ratio_row(r))
    out.append('</table>')

    m = report['locks']
    out.append('<h2 id="locks">Lock primitives</h2>')
    out.append('<p>%s.</p>' % esc(m['critical_section']))
    for miss in m['missing']:
        out.append('<p class="nm">not measured (%s)</p>' % esc(miss))
    if m['uncontended']:
        out.append('<h3>Uncontended lock+unlock</h3><table><tr><th>type</th><th>cycles '
                   'median [min-max]</th><th>ns</th><th>leg</th></tr>')
        for u in m['uncontended']:
            ns = u['ns']
            out.append('<tr><td>%s</td>%s%s<td>%s vCPU(s)</td></tr>' % (
                esc(u['type']), _num(esc(human_stats(u['cycles'], 'cycles'))),
                _num(esc('%s [%s-%s]' % (_sig(ns['median']), _sig(ns['min']), _sig(ns['max']))
                         if ns else 'n/a')), esc(u['smp'])))
        out.append('</table>')
    t = m['throughput']
    if t['rows']:
        out.append('<h3>Contended throughput (ops/ms) by CPUs contending</h3><table><tr>'
                   '<th>type</th>%s</tr>' % ''.join('<th>%s CPU%s</th>' % (c, 's' if c != 1
                                                                           else '')
                                                    for c in t['cpus']))
        for row in t['rows']:
            cells = []
            for c in t['cpus']:
                cell = row['cells'].get(c)
                if not cell:
                    cells.append('<td class="nm">-</td>')
                    continue
                s = cell['stats']
                text = '%s <small>[%s-%s]%s</small>' % (
                    _sig(s['median']), _sig(s['min']), _sig(s['max']),
                    '' if cell['smp'] == c else ' (%s vCPUs)' % cell['smp'])
                cells.append(_num(text))
            out.append('<tr><td>%s</td>%s</tr>' % (esc(row['type']), ''.join(cells)))
        out.append('</table>')
        out.append(_figure_html(plots.get('throughput')))
    if m['wait']:
        out.append('<h3>Acquisition waits and fairness under saturation</h3><table><tr>'
                   '<th>type</th><th>vCPUs</th><th>samples</th><th>p50</th><th>p99</th>'
                   '<th>max [min-max over repeats]</th><th>fairness max/min per CPU</th></tr>')
        for w in m['wait']:
            s = w['stats']
            fair = w['fairness']
            out.append('<tr><td>%s</td>%s%s%s%s%s%s</tr>' % (
                esc(w['type']), _num(esc(w['smp'])),
                _num(esc('%d' % round(s['samples']['median']) if s['samples'] else 'n/a')),
                _num(esc(human(s['p50']['median'], w['unit']) if s['p50'] else 'n/a')),
                _num(esc(pct_text(w, 'p99'))),
                _num(esc(human_stats(s['max'], w['unit']))),
                _num(esc('%sx [%s-%s]' % (_sig(fair['median'] / 1000.0),
                                          _sig(fair['min'] / 1000.0),
                                          _sig(fair['max'] / 1000.0)) if fair else 'n/a'))))
        out.append('</table>')
        out.append(_figure_html(plots.get('lock-wait')))
    if m.get('fairness_test'):
        out.append('<p>The kernel\'s fairness test (counted turns, FIFO locks): %s</p>' % esc(
            '; '.join('%s at %s vCPUs %sx' % (f['type'], f['smp'],
                                              _sig(f['stats']['median'] / 1000.0))
                      for f in m['fairness_test'] if f['stats'])))

    out.append('<h2 id="scenarios">Scenarios</h2>')
    for key, title, plot_names in (
            ('breakable', 'Breakable vs plain (long walk)', ('breakable', 'breakable-waits')),
            ('pv', 'Paravirtual vs plain ticket under overcommit',
             ('pv-throughput', 'pv-max-wait')),
            ('tlb', 'Lazy vs synchronous shootdown', ('shootdown', 'shootdown-latency')),
            ('multilock', 'Sorted multi-lock vs global lock', ('multilock',)),
            ('wakeup', 'Wakeup latency per preemption model', ())):
        s = report['scenarios'][key]
        out.append('<h3>%s</h3>' % esc(title))
        out.append(RATIO_HEAD)
        for r in s['ratios']:
            out.append(ratio_row(r))
        out.append('</table>')
        if key == 'breakable':
            extra = [r for r in s['ratios'] if r.get('kernel_ratio') is not None]
            if extra:
                out.append('<p><small>The kernel\'s own ratio (plain walk wait over the '
                           'breakable p90): %s.</small></p>' % esc('; '.join(
                               '%s at %s vCPUs %sx' % (r['after']['label'], r['smp'],
                                                       _sig(r['kernel_ratio']))
                               for r in extra)))
            hb = report['peers'].get('host_breakable') or []
            if hb:
                out.append('<p><small>Host peer (pthreads, 64-step holder): longest wait by '
                           'mode: %s.</small></p>' % esc('; '.join(
                               '%s %s' % (h['mode'], human_stats(h['stats'], 'ns'))
                               for h in hb)))
        if key == 'wakeup' and s.get('table'):
            out.append('<table><tr><th>preempt</th><th>lock load</th><th>p50</th><th>p99</th>'
                       '<th>max [min-max over repeats]</th><th>repeats</th></tr>')
            for row in s['table']:
                f = row['figures']

                def cell(stat, full=False):
                    x = f.get(stat)
                    if not x or x.get('median') is None:
                        return 'n/a'
                    if full and x['n'] > 1:
                        return '%s [%s-%s]' % (human(x['median'], x['unit']),
                                               human(x['min'], x['unit']).split(' ')[0],
                                               human(x['max'], x['unit']))
                    return human(x['median'], x['unit'])
                out.append('<tr><td>%s</td><td>%s</td>%s%s%s%s</tr>' % (
                    esc(row['model']), esc(row['load'] or '-'), _num(esc(cell('p50'))),
                    _num(esc(cell('p99'))), _num(esc(cell('max', True))),
                    _num(esc((f.get('max') or {}).get('n', 0)))))
            out.append('</table>')
        for name in plot_names:
            out.append(_figure_html(plots.get(name)))

    p = report['peers']
    out.append('<h2 id="peers">Peers on the same machine</h2>')
    out.append('<h3>Bare metal (locklab guest) vs Linux user space (pthreads)</h3>')
    if p.get('host_problem'):
        out.append('<p class="nm">%s</p>' % esc(p['host_problem']))
    table = p['table']
    cols = table['columns']
    out.append('<p>%s %s</p>' % (esc(table['note']), esc(p.get('host_note') or '')))
    out.append('<table><tr><th rowspan="2">type</th><th colspan="2">uncontended (ns)</th>%s'
               '<th colspan="2">bare-metal noise: acquisition waits, all vCPUs contending '
               '(largest vCPU count)</th></tr><tr>'
               '<th>bare metal</th><th>Linux</th>%s<th>wait p99</th><th>wait max</th></tr>' % (
                   ''.join('<th colspan="2">throughput, %s CPU%s (ops/ms)</th>'
                           % (n, 's' if n != 1 else '') for n in cols),
                   ''.join('<th>bare metal</th><th>Linux</th>' for _ in cols)))
    for r in table['rows']:
        k, h = r['kernel_uncontended_ns'], r['host_uncontended_ns']
        cells = [_num(esc('%s [%s-%s]' % (_sig(k['median']), _sig(k['min']), _sig(k['max']))
                          if k else 'n/a')),
                 _num(esc('%s [%s-%s]' % (_sig(h['median']), _sig(h['min']), _sig(h['max']))
                          if h else 'n/a'))]
        for n in cols:
            c = r['throughput'].get(n) or {}
            for side in ('kernel', 'host'):
                s = c.get(side)
                cells.append(_num(esc('%s [%s-%s]' % (_sig(s['median']), _sig(s['min']),
                                                      _sig(s['max'])) if s else 'n/a')))
        w = r['kernel_wait']
        cells.append(_num(esc(human(w['p99'] and w['p99']['median'], w['unit']) if w and w['p99']
                              else 'n/a')))
        cells.append(_num(esc(human_stats(w['max'], w['unit']) if w else 'n/a')))
        out.append('<tr><td>%s</td>%s</tr>' % (esc(r['type']), ''.join(cells)))
    out.append('</table><p><small>Values: median [min-max] over the repeats.  The host '
               'benchmark records no per-acquisition waits, so its noise is the spread of its '
               'repeats only.</small></p>')
    out.append(_figure_html(plots.get('uncontended')))
    out.append(_figure_html(plots.get('host-throughput')))

    c = p['cyclictest']
    out.append('<h3>cyclictest on the host vs locklab wakeup latency</h3>')
    for note in c.get('notes', []):
        out.append('<p class="note">%s</p>' % esc(note))
    out.append('<table><tr><th>source</th><th>policy</th><th>samples</th><th>p50</th>'
               '<th>p99</th><th>max</th><th>histogram file</th></tr>')
    for run in c.get('runs', []):
        st = run.get('stats') or {}
        out.append('<tr><td>%s %s</td><td>%s</td>%s%s%s%s<td>%s</td></tr>' % (
            esc(run.get('tool') or 'cyclictest'), esc(run['label']), esc(run['policy']), _num(esc(st.get('samples', 'n/a'))),
            _num(esc(human(st.get('p50'), 'us'))), _num(esc(human(st.get('p99'), 'us'))),
            _num(esc(human(st.get('max'), 'us'))),
            '<a href="%s">%s</a>' % (esc(run['histfile']), esc(run['histfile']))
            if run.get('histfile') else esc(run.get('problem', ''))))
    for w in c.get('locklab', []):
        s = w['stats']
        out.append('<tr><td>locklab %s</td><td>preempt=%s, %s</td>%s%s%s%s<td>%s</td></tr>' % (
            esc(w['path']), esc(w['model']), esc('load=%s, ' % w['load'] if w.get('load') else '')
            + esc(w['leg']),
            _num(esc('%d' % round(s['samples']['median']) if s['samples'] else 'n/a')),
            _num(esc(human(s['p50']['median'], w['unit']) if s['p50'] else 'n/a')),
            _num(esc(human(s['p99']['median'], w['unit']) if s['p99'] else 'n/a')),
            _num(esc(human_stats(s['max'], w['unit']))),
            '<a href="%s">%s</a>' % (esc(w['histfile']), esc(w['histfile']))
            if w.get('histfile') else ''))
    if not c.get('locklab'):
        out.append('<tr><td colspan="7" class="nm">locklab: not measured (no histogram '
                   'sched.wakeup_latency.&lt;model&gt;[.&lt;load&gt;] in this run)</td></tr>')
    out.append('</table>')
    for name in sorted(n for n in plots if n.startswith('wakeup')):
        out.append(_figure_html(plots[name]))

    if report.get('plot_problem'):
        out.append('<p class="note">%s</p>' % esc(report['plot_problem']))

    out.append('<h2 id="runs">Runs</h2><table><tr><th>run</th><th>leg</th><th>vCPUs</th>'
               '<th>kernel options</th><th>verdict</th><th>seconds</th><th>notes</th>'
               '<th>files</th></tr>')
    for r in runs:
        out.append('<tr%s><td>%s</td><td>%s</td>%s<td><code>%s</code></td><td>%s</td>%s'
                   '<td>%s</td><td>%s</td></tr>' % (
                       '' if r.get('exit') == 0 else ' class="fail"', esc(r.get('name')),
                       esc(r.get('group')), _num(esc(r.get('smp'))), esc(r.get('cmdline')),
                       esc(r.get('verdict')), _num(esc(r.get('seconds'))),
                       esc('; '.join(r.get('notes') or [])),
                       ' '.join('<a href="%s">%s</a>' % (esc(r[k]), k) for k in ('log', 'json')
                                if r.get(k))))
    out.append('</table>')

    out.append('<h2 id="metrics">Every figure</h2><details><summary>%d metrics, %d histograms '
               '(median [min-max] over repeats, IQR)</summary><table><tr><th>metric</th>'
               '<th>leg</th><th>n</th><th>median</th><th>min</th><th>max</th><th>IQR</th>'
               '<th>unit</th></tr>' % (len(report['metrics']), len(report['histograms'])))
    for e in report['metrics']:
        s = e['stats'] or {}
        out.append('<tr><td><code>%s%s</code></td><td>%s</td>%s%s%s%s%s<td>%s</td></tr>' % (
            esc(e['path']), esc(' ' + ' '.join('%s=%s' % kv for kv in sorted(e['attrs'].items()))
                                if e['attrs'] else ''),
            esc(e['leg']), _num(esc(s.get('n'))), _num(esc(_sig(s.get('median'), 4))),
            _num(esc(_sig(s.get('min'), 4))), _num(esc(_sig(s.get('max'), 4))),
            _num(esc('%s-%s' % (_sig(s.get('q1'), 4), _sig(s.get('q3'), 4)) if s else '')),
            esc(e['unit'])))
    for h in report['histograms']:
        s = h['stats']
        out.append('<tr><td><code>%s</code> (histogram max)</td><td>%s</td>%s%s%s%s%s<td>%s'
                   '</td></tr>' % (esc(h['path']), esc(h['leg']),
                                   _num(esc(s['max']['n'] if s['max'] else 0)),
                                   _num(esc(_sig(s['max']['median'], 4) if s['max'] else '')),
                                   _num(esc(_sig(s['max']['min'], 4) if s['max'] else '')),
                                   _num(esc(_sig(s['max']['max'], 4) if s['max'] else '')),
                                   _num(esc('%s-%s' % (_sig(s['max']['q1'], 4),
                                                       _sig(s['max']['q3'], 4))
                                            if s['max'] else '')),
                                   esc(h['unit'])))
    out.append('</table></details>')
    out.append('<p class="meta">Machine-readable: <a href="report.json">report.json</a>; '
               'cyclictest-format histograms in <a href="hist/">hist/</a>; plot scripts in '
               '<a href="plots/src/">plots/src/</a>.</p></body></html>')
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(x for x in out if x) + '\n')


# -- the whole report ----------------------------------------------------------------------

def _strip_entry(e):
    return {'id': e['id'], 'path': e['path'], 'test': e['test'], 'group': e['group'],
            'smp': e['smp'], 'options': e['options'], 'attrs': e['attrs'], 'unit': e['unit'],
            'leg': leg_label(e['group'], e['smp'], e['options']), 'stats': e['stats'],
            'observed': {k: v for k, v in e['observed'].items()}}


def _strip_hist(h, histfile=None):
    return {'id': h['id'], 'path': h['path'], 'test': h['test'], 'group': h['group'],
            'smp': h['smp'], 'options': h['options'], 'unit': h['unit'],
            'leg': leg_label(h['group'], h['smp'], h['options']),
            'stats': h['stats'], 'per_run': h['per_run'], 'histfile': histfile}


def _safe(problems, name, fn, default):
    try:
        return fn()
    except Exception as err:  # noqa: BLE001  (a section must not take the report down)
        problems.append('%s: %s: %s' % (name, type(err).__name__, err))
        return default


def cyclictest_section(cyclic_runs, results, hist_names):
    """cyclictest runs ({label, policy, histfile text or None, problem}) and locklab's wakeup
    histograms, with their statistics."""
    out = {'runs': [], 'locklab': [], 'notes': []}
    for c in cyclic_runs or []:
        run = {k: v for k, v in c.items() if k not in ('text',)}
        if c.get('text'):
            parsed = parse_histfile(c['text'])
            block = histfile_as_block(parsed, 'cyclictest.' + c['label'])
            run['block'] = block
            st = hist_stats(block)
            st['max'] = parsed.get('max') if parsed.get('max') is not None else st['max']
            run['stats'] = st
        out['runs'].append(run)
        out['notes'].extend(c.get('notes') or [])
    for h in sorted(results.find_hists(regex=WAKEUP_HIST),
                    key=lambda h: (_load_order(_load_of(h)), _model_order(_model_of(h)))):
        out['locklab'].append({'path': h['path'], 'model': _model_of(h), 'load': _load_of(h),
                               'unit': h['unit'],
                               'leg': leg_label(h['group'], h['smp'], h['options']),
                               'stats': h['stats'], 'histfile': hist_names.get(h['id'])})
    return out


def build(out_dir, runs, host_outputs=None, cyclic_runs=None, meta=None, gnuplot='gnuplot',
          host_cpus=None):
    """Aggregate and write report.json, report.html, hist/ and plots/ into out_dir.  runs: the
    manifest entries (loaded with load_runs or with 'data' inline).  Returns the report dict."""
    meta = dict(meta or {})
    problems = []
    host_cpus = host_cpus or meta.get('host_cpus') or host_cpu_count()
    results = Results(runs, host_cpus)
    os.makedirs(out_dir, exist_ok=True)
    for stale in ('hist', 'plots'):
        shutil.rmtree(os.path.join(out_dir, stale), ignore_errors=True)
    hist_dir = os.path.join(out_dir, 'hist')
    os.makedirs(hist_dir)

    # Merged histograms as cyclictest-format files (scripts/report's writer).
    hist_names, taken = {}, set()
    for h in results.hists:
        if not h['merged']:
            continue
        name = REPORT.file_name('%s-smp%s%s' % (h['path'], h['smp'], ''.join(
            '-%s' % v for _, v in sorted(h['options'].items()))), taken, '.hist')
        with open(os.path.join(hist_dir, name), 'w', encoding='utf-8') as f:
            f.write(REPORT.histfile_text(h['merged']))
        hist_names[h['id']] = 'hist/' + name
    for c in cyclic_runs or []:
        if c.get('text'):
            name = REPORT.file_name('cyclictest-' + c['label'], taken, '.hist')
            with open(os.path.join(hist_dir, name), 'w', encoding='utf-8') as f:
                f.write(c['text'])
            c['histfile'] = 'hist/' + name

    matrix = _safe(problems, 'lock matrix', lambda: lock_matrix(results),
                   {'tsc_mhz': None, 'uncontended': [], 'throughput': {'cpus': [], 'rows': []},
                    'wait': [], 'missing': ['the lock matrix could not be computed'],
                    'critical_section': '', 'fairness_test': []})
    scen = {}
    for key, fn in SCENARIOS:
        scen[key] = _safe(problems, 'scenario ' + key, lambda fn=fn: fn(results),
                          {'ratios': [not_measured(key, key, '', 'the scenario could not be '
                                                   'computed; see problems')], 'rows': []})
    host = _safe(problems, 'host peer', lambda: host_lock_results(host_outputs or []), {})
    peers = {'host_entries': host,
             'table': _safe(problems, 'peer table', lambda: peer_table(results, host, matrix),
                            {'rows': [], 'columns': [], 'note': ''}),
             'host_breakable': _safe(problems, 'host breakable', lambda: host_brk(host), []),
             'host_problem': meta.pop('host_problem', None),
             'host_note': meta.pop('host_note', None)}
    if not host and not peers['host_problem']:
        peers['host_problem'] = 'not measured (no host.lock.* metric from the host benchmark)'
    cyclic = _safe(problems, 'cyclictest', lambda: cyclictest_section(cyclic_runs, results,
                                                                     hist_names),
                   {'runs': [], 'locklab': [], 'notes': []})

    plots = Plots(out_dir, gnuplot)
    _safe(problems, 'plots', lambda: draw_plots(plots, results, matrix, scen, peers, cyclic,
                                                out_dir, hist_names), None)
    plot_problem = None
    if not plots.gnuplot:
        plot_problem = 'Plots not drawn: gnuplot is not installed (make deps installs ' \
            'gnuplot-nox); the gnuplot scripts are in plots/src/.'
    elif plots.errors:
        plot_problem = '; '.join(plots.errors)

    headline = []
    for key, _ in SCENARIOS:
        rs = scen[key]['ratios']
        chosen = [r for r in rs if r.get('headline')]
        if not chosen:
            chosen = [r for r in rs if r['status'] != 'measured'][:1] or rs[:1]
        headline.extend(chosen)

    env = environment(results, meta.pop('environment', None))
    env['gnuplot'] = command_first_line([plots.gnuplot, '--version']) if plots.gnuplot else \
        'not installed'
    report = {
        'schema': SCHEMA,
        'written': datetime.datetime.now().strftime('%Y-%m-%d %H:%M:%S'),
        'mode': meta.get('mode'), 'repeat': meta.get('repeat'),
        'repeats_done': meta.get('repeats_done', meta.get('repeat')),
        'seconds': meta.get('seconds'), 'notes': meta.get('notes', []),
        'environment': env,
        'headline': headline,
        'locks': matrix,
        'scenarios': {k: dict({'ratios': v['ratios']},
                              **({'table': v['rows']} if k == 'wakeup' else {}))
                      for k, v in scen.items()},
        'peers': {'table': peers['table'], 'host_breakable': peers['host_breakable'],
                  'host_problem': peers['host_problem'], 'host_note': peers['host_note'],
                  'host_metrics': [{k: v for k, v in e.items() if k != 'runs'}
                                   for e in host.values()],
                  'cyclictest': {'runs': [{k: v for k, v in r.items() if k != 'block'}
                                          for r in cyclic['runs']],
                                 'locklab': cyclic['locklab'], 'notes': cyclic['notes']}},
        'runs': [{k: v for k, v in r.items() if k not in ('data',)} for r in runs],
        'metrics': [_strip_entry(e) for e in results.metrics],
        'histograms': [_strip_hist(h, hist_names.get(h['id'])) for h in results.hists],
        'plots': plots.made, 'plot_problem': plot_problem, 'problems': problems,
    }
    for r in report['runs']:
        data = next((x.get('data') for x in runs if x.get('name') == r.get('name')), None) or {}
        r.setdefault('verdict', data.get('verdict_name'))
        r.setdefault('tests', (data.get('counts') or {}).get('total'))
    with open(os.path.join(out_dir, 'report.json'), 'w', encoding='utf-8') as f:
        json.dump(report, f, indent=1, default=str)
        f.write('\n')
    report['peers']['cyclictest'] = cyclic
    by_name = {p['name']: p for p in plots.made}
    write_html(os.path.join(out_dir, 'report.html'), report, by_name)
    if not os.listdir(hist_dir):
        os.rmdir(hist_dir)
    return report


def headline_lines(report):
    """The headline ratios as plain text lines (what scripts/bench prints at the end)."""
    lines = []
    for r in report['headline']:
        if r['status'] == 'measured':
            lines.append('  ' + r['statement'])
        else:
            lines.append('  %s: %s' % (r['title'], r['statement']))
    return lines
