"""The report's gnuplot figures.

gnuplot may be missing or may fail; keeping every script written for it and every call to it
here keeps its details out of the figures and the page.
"""

import math
import os
import shutil
import subprocess

from . import report_hist, report_plots
from .bench_results import (_sig, histfile_as_block, human, parse_histfile, preferred_smp,
                           read_text, to_us)
from .stats import isnum
from .bench_scenarios import PV_PAIRS, WAKEUP_HIST, _load_of, _load_order, _model_of, _model_order

GNUPLOT_TIMEOUT_S = 60
# Bins per decade of the re-binned latency plots (logarithmic x axis).
DECADE_BINS = 10


# -- plots ---------------------------------------------------------------------------------

_g = report_plots._g
gp_string = report_plots.gp_string


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
            s += report_plots.numeric_x_axis(xs, xlog)
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
            rows = [(s, sum(c)) for s, c in report_hist.hist_rows(hist) if sum(c)]
            total = sum(c for _, c in rows) + (hist.get('overflows') or 0)
            if not rows or not total:
                continue
            pts = []
            for start, count in rows:
                a = to_us(start, unit, tsc_mhz)
                b = to_us(report_hist.bucket_end(hist, start), unit, tsc_mhz)
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
    # The seed's pair (the first of PV_PAIRS); the labels come from the figures.
    pv = [r for r in scen['pv']['rows'] if r['status'] == 'measured'
          and r['id'].startswith(PV_PAIRS[0][0] + '.')]
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
            plain_name, pv_name = rows[0]['before']['label'], rows[0]['after']['label']
            plots.bars('pv-' + kind.replace('_', '-'),
                       '%s vs %s by vCPU overcommit: %s'
                       % (plain_name, pv_name, kind.replace('_', ' ')), label, cats,
                       [(plain_name, before), (pv_name, after)],
                       'A lock and its paravirtual form as vCPUs outnumber host CPUs '
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
