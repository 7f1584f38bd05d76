"""report.html, the page a person reads.

Kept apart from the figures it shows, so that the page's wording and layout can change
without touching how any figure is computed.
"""

import html

from . import bench_peers, report
from .bench_results import _sig, factor_text, human, human_stats
from .bench_scenarios import interval_text

# scripts/bench's note on a leg whose repeats ran fewer tests than its first run.
NARROW_NOTE = 'repeats after the first ran only'


# -- HTML ----------------------------------------------------------------------------------

CSS = report.CSS + """
td.nm, span.nm { color: #8d6e00; font-style: italic; }
td.good { color: #2e7d32; font-weight: bold; } td.bad { color: #c62828; font-weight: bold; }
td.nd { color: #666; }
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
    ci = r.get('ci')
    if r.get('shown'):
        # Shown: the factor in green or red, its interval in the verdict's direction.
        cell = '<td class="num %s">%s <small>[95%% CI %s]</small></td>' % (
            'good' if f >= 1 else 'bad', esc(factor_text(f if f >= 1 else 1.0 / f)
                                           + ('' if f >= 1 else ' worse')),
            esc(interval_text(f, ci)))
    else:
        # Not shown: no coloured number, only the medians' factor and the interval.
        cell = '<td class="num nd">no difference shown <small>(%s%s)</small></td>' % (
            esc(factor_text(f)), esc(', 95%% CI %s-%s' % (factor_text(ci[0]), factor_text(ci[1]))
                                     if ci else ', one repeat: no interval'))
    unit = r['before'].get('unit')
    return ('<tr><td>%s</td>%s<td class="num">%s</td>'
            '<td class="num">%s</td><td>%s</td><td>%s</td></tr>' % (
                esc(r['title']), cell,
                esc('%s: %s' % (r['before']['label'], human(r['before']['median'], unit))),
                esc('%s: %s' % (r['after']['label'], human(r['after']['median'], unit))),
                esc(r.get('context', '')), esc(r['statement'])))


RATIO_HEAD = ('<table><tr><th>comparison</th><th>factor (&gt;1: better)</th><th>before</th>'
              '<th>after</th><th>where</th><th>statement</th></tr>')


def _figure_row(name, leg, s, unit):
    """A row of the every-figure table: the summary of one figure's repeats."""
    s = s or {}
    spread = s.get('spread')
    ci = s.get('ci')
    return '<tr><td><code>%s</code></td><td>%s</td>%s%s%s%s%s%s%s<td>%s</td></tr>' % (
        esc(name), esc(leg), _num(esc(s.get('n', 0))), _num(esc(_sig(s.get('median'), 4))),
        _num(esc(_sig(s.get('min'), 4))), _num(esc(_sig(s.get('max'), 4))),
        _num(esc(_sig(s.get('iqr'), 3) if s else '')),
        _num(esc('%s%%' % _sig(spread * 100, 2) if spread is not None else '')),
        _num(esc('%s-%s' % (_sig(ci[0], 4), _sig(ci[1], 4)) if ci else '-')), esc(unit))


def write_clock_index(path, report):
    """The page of a bench whose runs had several clocks: a section per clock with its
    headline and a link to its own report; nothing is compared across clocks."""
    out = ['<!DOCTYPE html>', '<html lang="en"><head><meta charset="utf-8">',
           '<title>locklab benchmarks</title><style>%s</style></head><body>' % CSS,
           '<h1>locklab benchmarks</h1>',
           '<p class="meta">mode %s; runs of %d clocks, reported apart (a figure or factor never '
           'pools real and virtual time); written %s</p>' % (
               esc(report['mode']), len(report['sections']), esc(report['written']))]
    for s in report['sections']:
        out.append('<h2 id="clock-%s">clock=%s</h2><p><a href="%s">the whole report</a></p>'
                   % (esc(s['clock']), esc(s['clock']), esc(s['html'])))
        out.append(RATIO_HEAD)
        out.extend(ratio_row(r) for r in s['headline'])
        out.append('</table>')
    out.append('</body></html>')
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(out) + '\n')


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
               '(lower latency or cost, higher throughput).  The factor is that of the two '
               'medians over the repeats; in brackets its 95%% confidence interval (bootstrap '
               'over the repeats, paired where both figures come from the same repeats; '
               'docs/bench.md).  An interval that includes 1 shows no difference.  Clock: '
               '%s.</p>' % esc(report.get('clock')))
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
            ('locks', 'Lock types side by side', ()),
            ('breakable', 'Breakable vs plain (long walk)', ('breakable', 'breakable-waits')),
            ('pv', 'Paravirtual locks vs their plain counterparts under overcommit',
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
    out.extend(bench_peers.html(report))   # same-algorithm peers (bench_peers.py)

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
               '(over the repeats: median, min, max, IQR, relative spread (max-min)/median, '
               '95%% interval of the median; clock %s)</summary><table><tr><th>metric</th>'
               '<th>leg</th><th>n</th><th>median</th><th>min</th><th>max</th><th>IQR</th>'
               '<th>spread</th><th>95%% CI</th><th>unit</th></tr>' % (
                   len(report['metrics']), len(report['histograms']),
                   esc(report.get('clock'))))
    for e in report['metrics']:
        name = e['path'] + (' ' + ' '.join('%s=%s' % kv for kv in sorted(e['attrs'].items()))
                            if e['attrs'] else '')
        out.append(_figure_row(name, e['leg'], e['stats'], e['unit']))
    for h in report['histograms']:
        for stat in ('p50', 'p99', 'max'):
            out.append(_figure_row('%s (histogram %s)' % (h['path'], stat), h['leg'],
                                   h['stats'].get(stat), h['unit']))
    out.append('</table></details>')
    out.append('<p class="meta">Machine-readable: <a href="report.json">report.json</a>; '
               'cyclictest-format histograms in <a href="hist/">hist/</a>; plot scripts in '
               '<a href="plots/src/">plots/src/</a>.</p></body></html>')
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(x for x in out if x) + '\n')
