"""gnuplot figures of the report command: latency histograms (OSADL style), throughput
against CPU count per lock type, TLB shootdown cost against the interrupt-off section."""

import os
import shutil
import subprocess

from .report_hist import bucket_end, bucket_width, file_name, hist_cpus, hist_rows, is_log2, number

GNUPLOT_TIMEOUT_S = 60
# Count axis floor of the latency plots (OSADL's): zero counts are drawn below it, so a step
# falls to the axis instead of leaving a gap on the log scale.
Y_FLOOR = 0.8
ZERO_AS = 0.1


# -- plots ---------------------------------------------------------------------------------

def gp_string(text):
    """A gnuplot double-quoted string (enhanced text mode off for it)."""
    text = str(text).replace('\\', '\\\\').replace('"', '\\"')
    return '"%s"' % text.replace('\n', ' ')


def _g(value):
    return '%.10g' % value


def numeric_x_axis(xs, xlog=None):
    """The gnuplot lines of a numeric x axis with a tic at each of the sorted points xs: the
    report's and the bench's line plots share it so that their axes read alike."""
    if xlog is None:
        xlog = xs and min(xs) > 0 and max(xs) / min(xs) >= 4
    lines = ['set logscale x 2'] if xlog else []
    lines.append('set xtics (%s)' % ', '.join(_g(x) for x in xs))
    lo, hi = xs[0], xs[-1]
    if lo == hi:
        lines.append('set xrange [%s:%s]' % (_g(lo / 2.0 if xlog else lo - 1),
                                            _g(hi * 2.0 if xlog else hi + 1)))
    elif xlog:
        lines.append('set xrange [%s:%s]' % (_g(lo / 1.25), _g(hi * 1.25)))
    else:
        pad = (hi - lo) * 0.05
        lines.append('set xrange [%s:%s]' % (_g(lo - pad), _g(hi + pad)))
    return lines


def common_affixes(names):
    """Strip the dotted components every name shares at the start and at the end, as long as
    something is left of each: lock.tas.throughput, lock.mcs.throughput -> tas, mcs."""
    parts = [n.split('.') for n in names]
    if len(parts) < 2:
        return {n: n for n in names}
    shortest = min(len(p) for p in parts)
    head = 0
    while head < shortest - 1 and len({p[head] for p in parts}) == 1:
        head += 1
    tail = 0
    while tail < shortest - head - 1 and len({p[len(p) - 1 - tail] for p in parts}) == 1:
        tail += 1
    return {n: '.'.join(p[head:len(p) - tail]) for n, p in zip(names, parts)}


def metric_series(metrics, xkey):
    """Group numeric metrics that carry the numeric attribute `xkey` into series, per unit.

    A series is one path plus the values of any other attribute that varies between that
    path's lines (cpus=2 and cpus=4 are two series).  Repeated points are averaged.  Returns
    {unit: [(label, [(x, y), ...]), ...]}."""
    chosen = [m for m in metrics if number(m.get('value')) is not None
              and number(m.get('attrs', {}).get(xkey)) is not None]
    varying = {}
    for path in {m['path'] for m in chosen}:
        seen = {}
        for m in chosen:
            if m['path'] != path:
                continue
            for key, value in m['attrs'].items():
                if key != xkey:
                    seen.setdefault(key, set()).add(str(value))
        varying[path] = sorted(k for k, v in seen.items() if len(v) > 1)
    groups = {}
    for m in chosen:
        extra = tuple('%s=%s' % (k, m['attrs'].get(k)) for k in varying[m['path']])
        key = (m.get('unit') or '', m['path'], extra)
        groups.setdefault(key, {}).setdefault(m['attrs'][xkey], []).append(m['value'])
    by_unit = {}
    labels = common_affixes(sorted({path for _, path, _ in groups}))
    for (unit, path, extra), points in sorted(groups.items(), key=lambda kv: kv[0]):
        label = ' '.join((labels.get(path, path),) + extra)
        series = sorted((x, sum(ys) / len(ys)) for x, ys in points.items())
        by_unit.setdefault(unit, []).append((label, series))
    return by_unit


class Plotter:
    """Writes gnuplot scripts and data under DIR/plots/src and runs gnuplot on each."""

    def __init__(self, plots_dir, gnuplot='gnuplot'):
        self.dir = plots_dir
        self.src = os.path.join(plots_dir, 'src')
        self.gnuplot = shutil.which(gnuplot)
        self.taken = set()
        self.errors = []

    @property
    def available(self):
        return self.gnuplot is not None

    def _run(self, name, script, data):
        """Write name.gp / name*.dat and draw name.png; returns the PNG path or None."""
        os.makedirs(self.src, exist_ok=True)
        for data_name, text in data.items():
            with open(os.path.join(self.src, data_name), 'w', encoding='utf-8') as out:
                out.write(text)
        png = os.path.join(self.dir, name + '.png')
        header = ('set terminal pngcairo size 960,560 enhanced font "DejaVu Sans,10"\n'
                  'set output %s\n' % gp_string(os.path.join('..', name + '.png')))
        gp = os.path.join(self.src, name + '.gp')
        with open(gp, 'w', encoding='utf-8') as out:
            out.write(header + script)
        if not self.available:
            return None
        try:
            proc = subprocess.run([self.gnuplot, name + '.gp'], cwd=self.src,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, timeout=GNUPLOT_TIMEOUT_S)
            message = proc.stdout.decode('utf-8', 'replace').strip()
            failed = proc.returncode != 0
        except (OSError, subprocess.TimeoutExpired) as err:
            message, failed = str(err), True
        if failed or not os.path.isfile(png) or os.path.getsize(png) == 0:
            self.errors.append('%s.png: gnuplot failed: %s' % (name, message[-500:] or '?'))
            return None
        return png

    def latency(self, hist):
        """OSADL-style latency plot: steps, one series per CPU, log count axis from 0.8."""
        rows = hist_rows(hist)
        if not rows or not any(sum(c) for _, c in rows):
            return None
        name = file_name('hist-' + hist['path'], self.taken, '')
        cpus = hist_cpus(hist)
        log2 = is_log2(hist)
        unit = hist.get('unit') or 'value'
        last_end = bucket_end(hist, rows[-1][0])
        # ns histograms reaching past 100 us are drawn in us.
        scale, shown_unit = (1000.0, 'us') if unit == 'ns' and last_end >= 1e5 else (1.0, unit)
        # A linear histogram whose range spans more than two decades (a long tail) gets a
        # logarithmic x axis; otherwise the bulk of it would be one vertical line.
        low_edge = max(rows[0][0], bucket_width(hist) if not log2 else 1)
        xlog = log2 or (rows[0][0] >= 0 and last_end / float(low_edge) > 200)

        def xpos(value):
            if value <= 0 and xlog:
                # On a log axis the value 0 (bucket 0) is drawn at half the next edge.
                return 0.5 if log2 else low_edge / 2.0 / scale
            return value / scale

        # A step per bucket: (start, count) ... then (end, floor) where the next bucket does
        # not follow at once, so empty ranges lie on the axis.
        points = []
        for i, (start, counts) in enumerate(rows):
            points.append((xpos(start), counts))
            end = bucket_end(hist, start)
            if i + 1 == len(rows) or rows[i + 1][0] != end:
                points.append((xpos(end), [0] * cpus))
        first = xpos(rows[0][0])
        data = ['# %s: x (%s), then count per CPU (0 drawn as %g)'
                % (hist['path'], shown_unit, ZERO_AS)]
        data.append(_g(first) + ''.join(' ' + _g(ZERO_AS) for _ in range(cpus)))
        for x, counts in points:
            data.append(_g(x) + ''.join(' ' + (_g(c) if c else _g(ZERO_AS)) for c in counts))
        top = max(max(c) for _, c in rows)
        last = points[-1][0]
        lines = []
        samples = hist.get('samples')
        title = '%s: %s samples on %d CPU%s' % (
            hist['path'], samples if samples is not None else sum(sum(c) for _, c in rows),
            cpus, '' if cpus == 1 else 's')
        lines.append('set title %s noenhanced' % gp_string(title))
        gmax = number(hist.get('max'))
        xlabel = 'Latency (%s)' % shown_unit
        if gmax is not None:
            xlabel += ', max %s %s' % (_g(round(gmax / scale, 1)), shown_unit)
        if xlog and not log2:
            xlabel += ', logarithmic axis'
        lines.append('set xlabel %s noenhanced' % gp_string(xlabel))
        lines.append('set ylabel "Number of latency samples"')
        lines.append('set logscale y')
        lines.append('set yrange [%g:%s]' % (Y_FLOOR, _g(max(2.0, top * 2.0))))
        lines.append('set format y "10^{%L}"')
        if log2:
            lines.append('set logscale x 2')
            lines.append('set format x "2^{%L}"')
            lines.append('set xrange [%s:%s]' % (_g(first / 1.5), _g(last * 1.5)))
            if rows[0][0] <= 0:
                lines.append('set xtics add ("0" 0.5)')
        elif xlog:
            lines.append('set logscale x 10')
            lines.append('set format x "%g"')
            lines.append('set xrange [%s:%s]' % (_g(first / 1.2), _g(last * 1.2)))
        else:
            low = first
            span = last - low
            start = 0 if low >= 0 and low <= last / 2.0 else low - span * 0.02
            lines.append('set xrange [%s:%s]' % (_g(start), _g(last + span * 0.02)))
            lines.append('set format x "%g"')
        lines.append('set grid xtics ytics mytics lc rgb "#dddddd"')
        lines.append('set key top right box opaque')
        overflows = hist.get('overflows')
        if overflows:
            lines.append('set label 1 %s at graph 0.98, graph 0.70 right noenhanced' % gp_string(
                '%s sample%s beyond the last bucket' % (overflows, '' if overflows == 1 else 's')))
        series = []
        for cpu in range(cpus):
            empty = not any(counts[cpu] for _, counts in rows)
            series.append('"%s.dat" using 1:%d with steps lw 1.5 title "CPU%d%s"'
                          % (name, cpu + 2, cpu, ' (no samples)' if empty else ''))
        lines.append('plot ' + ', \\\n     '.join(series))
        return self._run(name, '\n'.join(lines) + '\n', {name + '.dat': '\n'.join(data) + '\n'})

    def lines(self, name, title, xlabel, ylabel, series, unit, xlog=None, categorical=False,
              ylog=None):
        """One line per series ([(label, [(x, y)])]); returns the PNG path or None."""
        name = file_name(name, self.taken, '')
        xs = sorted({x for _, pts in series for x, _ in pts})
        ys = [y for _, pts in series for _, y in pts]
        scale, unit_label = 1.0, unit
        if unit == 'ns' and ys and max(abs(y) for y in ys) >= 1e7:
            scale, unit_label = 1e6, 'ms'
        elif unit == 'ns' and ys and max(abs(y) for y in ys) >= 1e4:
            scale, unit_label = 1e3, 'us'
        data = {}
        plot = []
        for i, (label, pts) in enumerate(series):
            dat = '%s-%d.dat' % (name, i)
            text = ['# %s: x y' % label]
            for x, y in pts:
                text.append('%s %s' % (_g(xs.index(x) if categorical else x), _g(y / scale)))
            data[dat] = '\n'.join(text) + '\n'
            # gnuplot has eight line colours; later series differ in dashes and points too.
            plot.append('"%s" using 1:2 with linespoints lw 2 lc %d dt %d pt %d ps 1.2 '
                        'title %s noenhanced' % (dat, i % 8 + 1, i // 8 + 1,
                                                 (7, 5, 9, 11, 13)[i // 8 % 5],
                                                 gp_string(label)))
        lines = ['set title %s noenhanced' % gp_string(title),
                 'set xlabel %s noenhanced' % gp_string(xlabel),
                 'set ylabel %s noenhanced' % gp_string(
                     '%s (%s)' % (ylabel, unit_label) if unit_label else ylabel),
                 'set grid lc rgb "#dddddd"',
                 'set key outside right top box noenhanced']
        positive = ys and min(ys) > 0
        if ylog is None:
            ylog = positive and max(ys) / min(ys) > 100
        if ylog and positive:
            lines.append('set logscale y')
            lines.append('set format y "%g"')
        else:
            lines.append('set yrange [%s:*]' % ('0' if not ys or min(ys) >= 0 else '*'))
            lines.append('set format y "%.1s%c"')
        if categorical:
            tics = ', '.join('%s %d' % (gp_string(_g(x)), i) for i, x in enumerate(xs))
            lines.append('set xtics (%s)' % tics)
            lines.append('set xrange [-0.3:%s]' % _g(len(xs) - 0.7))
        else:
            lines += numeric_x_axis(xs, xlog)
        lines.append('plot ' + ', \\\n     '.join(plot))
        return self._run(name, '\n'.join(lines) + '\n', data)


def throughput_plots(plotter, metrics):
    """Throughput against CPU count per lock type: metrics '<...>.throughput' with cpus=N."""
    chosen = [m for m in metrics if m['path'].endswith('.throughput')]
    out = []
    for unit, series in sorted(metric_series(chosen, 'cpus').items()):
        name = 'throughput' if not out else 'throughput-' + unit
        png = plotter.lines(name, 'Lock throughput against CPU count', 'CPUs',
                            'throughput', series, unit)
        out.append({'kind': 'throughput', 'unit': unit, 'png': png,
                    'series': [label for label, _ in series],
                    'caption': 'Throughput of each lock type against the number of CPUs '
                               'contending (metrics *.throughput with cpus=).'})
    return out


def shootdown_plots(plotter, metrics):
    """Shootdown cost against interrupt-off section length: metrics with section_us=N."""
    chosen = [m for m in metrics if number(m.get('attrs', {}).get('section_us')) is not None]
    out = []
    for unit, series in sorted(metric_series(chosen, 'section_us').items()):
        xs = sorted({x for _, pts in series for x, _ in pts})
        spread = xs and (xs[0] <= 0 or xs[-1] / xs[0] > 20)
        name = 'shootdown' if not out else 'shootdown-' + unit
        png = plotter.lines(name, 'TLB shootdown cost against interrupt-off section length',
                            'interrupt-off section on the targets (us)', 'initiator cost',
                            series, unit, categorical=bool(spread and len(xs) > 1))
        out.append({'kind': 'shootdown', 'unit': unit, 'png': png,
                    'series': [label for label, _ in series],
                    'caption': 'What a shootdown costs its initiator while the other CPUs '
                               'keep interrupts off for the given time (metrics with '
                               'section_us=).'})
    return out
