"""report: turn a locklab serial log into a report directory.

    scripts/report LOG [--out DIR]          (default DIR: build/report)

writes
    DIR/report.json         scripts/ktap.py's JSON (tests, verdict, metrics, histograms, ...)
                            plus a "report" section listing the files below
    DIR/hist/<path>.hist    one cyclictest-format histogram file per hist block (rt-tests'
                            --histfile layout), for existing latency-plot tooling
    DIR/plots/*.png         latency histograms (OSADL style: log count axis, steps, one
                            series per CPU), throughput against CPU count per lock type,
                            TLB shootdown cost against interrupt-off section length
    DIR/plots/src/          the gnuplot scripts and data files behind the PNGs
    DIR/index.html          verdict table (every leaf, its status, the diagnostics of
                            failures), the plots and the tables of figures

The log is parsed by scripts/ktap.py, the same parser the runner uses.  Plots need gnuplot;
without it the rest of the report is still written and the page says why the plots are
missing.  Exit status: 0 when the report was written (whatever the tests' verdict), 4 when the
log cannot be read or the output directory cannot be written.
"""

import argparse
import datetime
import html
import os
import shutil
import sys

from . import ktap
from .paths import REPO
from .report_hist import file_name, histfile_text
from .report_plots import Plotter, shootdown_plots, throughput_plots

PROG = 'report'
SETUP_ERROR = 4
STATUS_CLASS = {ktap.OK: 'pass', ktap.FAILED: 'fail', ktap.SKIP: 'skip', ktap.XFAIL: 'xfail'}
STATUS_TEXT = {ktap.OK: 'pass', ktap.FAILED: 'FAIL', ktap.SKIP: 'skip', ktap.XFAIL: 'xfail'}


# -- HTML ----------------------------------------------------------------------------------

CSS = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 75em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 1.6em; }
.meta { color: #555; }
.verdict { display: inline-block; padding: 0.2em 0.7em; border-radius: 4px; color: #fff;
           font-weight: bold; }
.v-pass { background: #2e7d32; } .v-fail { background: #c62828; }
.v-incomplete { background: #6a1b9a; } .v-other { background: #555; }
table { border-collapse: collapse; margin: 0.5em 0; width: 100%; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left;
         vertical-align: top; }
th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.fail td { background: #fdecea; } tr.skip td { background: #fff8e1; }
tr.xfail td { background: #eef4fb; }
.status { font-weight: bold; } .s-pass { color: #2e7d32; } .s-fail { color: #c62828; }
.s-skip { color: #8d6e00; } .s-xfail { color: #1565c0; }
pre { margin: 0.2em 0; white-space: pre-wrap; font-size: 90%; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #555; font-size: 90%; }
.note { color: #8d6e00; }
"""


def esc(text):
    return html.escape('' if text is None else str(text))


def verdict_class(name):
    return {'pass': 'v-pass', 'fail': 'v-fail', 'incomplete': 'v-incomplete'}.get(
        name, 'v-other')


def test_details(test):
    parts = []
    if test.status == ktap.FAILED:
        if test.incomplete and test.reason:
            parts.append('<div>%s</div>' % esc(test.reason))
        if test.diagnostics:
            parts.append('<pre>%s</pre>' % esc('\n'.join(test.diagnostics)))
        elif not test.incomplete:
            parts.append('<div>not ok (no diagnostics)</div>')
    elif test.reason:
        parts.append('<div>%s</div>' % esc(test.reason))
    return ''.join(parts)


def write_html(path, report, log_path, hist_files, plots, plot_problem):
    counts = report.counts()
    verdict = ktap.VERDICT_NAMES[report.verdict]
    out = ['<!DOCTYPE html>', '<html lang="en"><head><meta charset="utf-8">',
           '<title>locklab report: %s</title>' % esc(verdict),
           '<style>%s</style></head><body>' % CSS,
           '<h1>locklab report</h1>',
           '<p class="meta">log <code>%s</code>, written %s</p>' % (
               esc(log_path), esc(datetime.datetime.now().strftime('%Y-%m-%d %H:%M:%S'))),
           '<p><span class="verdict %s">%s</span> &nbsp; %d tests: %d passed, %d failed, '
           '%d skipped, %d xfail</p>' % (verdict_class(verdict), esc(verdict.upper()),
                                          counts['total'], counts['pass'], counts['fail'],
                                          counts['skip'], counts['xfail'])]
    if report.verdict_reasons:
        out.append('<ul>%s</ul>' % ''.join('<li>%s</li>' % esc(r)
                                           for r in report.verdict_reasons))
    if report.config_errors:
        out.append('<p class="note">config errors: %s</p>' % esc('; '.join(
            report.config_errors)))
    notes = [p for p in report.problems if p['severity'] != 'error']
    if notes:
        out.append('<details><summary>%d parser note(s)</summary><ul>%s</ul></details>' % (
            len(notes), ''.join('<li>line %s: %s</li>' % (esc(p['line']), esc(p['message']))
                                for p in notes)))

    out.append('<h2 id="tests">Tests</h2>')
    if report.tests:
        out.append('<table><tr><th>test</th><th>status</th><th>details</th></tr>')
        for test in report.tests:
            cls = STATUS_CLASS[test.status]
            out.append('<tr class="%s"><td><code>%s</code></td><td class="status s-%s">%s</td>'
                       '<td>%s</td></tr>' % (cls, esc(test.path), cls,
                                             esc(STATUS_TEXT[test.status]),
                                             test_details(test)))
        out.append('</table>')
    else:
        out.append('<p>The log has no test results.</p>')

    out.append('<h2 id="plots">Plots</h2>')
    if plot_problem:
        out.append('<p class="note">%s</p>' % esc(plot_problem))
    drawn = [p for p in plots if p.get('png')]
    if not plots:
        out.append('<p>No histograms, throughput or shootdown figures in this log.</p>')
    for plot in plots:
        if not plot.get('png'):
            continue
        rel = os.path.relpath(plot['png'], os.path.dirname(path))
        caption = esc(plot['caption'])
        if plot.get('hist'):
            caption += ' Data: <a href="%s">%s</a>' % (esc(plot['hist']), esc(plot['hist']))
        out.append('<figure><img src="%s" alt="%s"><figcaption>%s</figcaption></figure>' % (
            esc(rel), esc(plot['caption']), caption))
    if plots and not drawn and not plot_problem:
        out.append('<p class="note">No plot could be drawn.</p>')

    out.append('<h2 id="histograms">Histograms</h2>')
    if report.histograms:
        out.append('<table><tr><th>histogram</th><th>test</th><th>unit</th><th>bucket</th>'
                   '<th>CPUs</th><th>samples</th><th>min</th><th>avg</th><th>max</th>'
                   '<th>overflows</th><th>cyclictest file</th></tr>')
        for hist, name in zip(report.histograms, hist_files):
            out.append('<tr><td><code>%s</code>%s</td><td><code>%s</code></td><td>%s</td>'
                       '<td>%s</td>%s<td><a href="hist/%s">%s</a></td></tr>' % (
                           esc(hist['path']),
                           '' if hist.get('complete') else ' <span class="note">(incomplete)'
                                                            '</span>',
                           esc(hist.get('test') or ''), esc(hist.get('unit')),
                           esc(hist.get('bucket')),
                           ''.join('<td class="num">%s</td>' % esc(
                               '' if hist.get(k) is None else hist.get(k))
                               for k in ('cpus', 'samples', 'min', 'avg', 'max', 'overflows')),
                           esc(name), esc(name)))
        out.append('</table>')
    else:
        out.append('<p>No histogram blocks in this log.</p>')

    out.append('<h2 id="metrics">Metrics</h2>')
    if report.metrics:
        out.append('<table><tr><th>metric</th><th>value</th><th>unit</th><th>keys</th>'
                   '<th>test</th></tr>')
        for m in report.metrics:
            keys = ' '.join('%s=%s' % kv for kv in m.get('attrs', {}).items())
            if m.get('extra'):
                keys = (keys + ' ' + m['extra']).strip()
            out.append('<tr><td><code>%s</code></td><td class="num">%s</td><td>%s</td>'
                       '<td>%s</td><td><code>%s</code></td></tr>' % (
                           esc(m['path']), esc(m['value']), esc(m.get('unit')), esc(keys),
                           esc(m.get('test') or '')))
        out.append('</table>')
    else:
        out.append('<p>No metric lines in this log.</p>')

    if report.torture:
        out.append('<h2 id="torture">Lock torture</h2><table><tr><th>lock</th><th>kind</th>'
                   '<th>total</th><th>max</th><th>min</th><th>fail</th><th>test</th></tr>')
        for t in report.torture:
            out.append('<tr%s><td>%s</td><td>%s</td>%s<td><code>%s</code></td></tr>' % (
                ' class="fail"' if t['fail'] or t['flagged'] else '', esc(t['lock']),
                esc(t['kind']), ''.join('<td class="num">%s</td>' % esc(t[k])
                                        for k in ('total', 'max', 'min', 'fail')),
                esc(t.get('test') or '')))
        out.append('</table>')

    out.append('<p class="meta">Machine-readable: <a href="report.json">report.json</a>'
               '%s</p>' % (' &middot; cyclictest-format histograms in <a href="hist/">hist/'
                           '</a>' if hist_files else ''))
    out.append('</body></html>')
    with open(path, 'w', encoding='utf-8') as page:
        page.write('\n'.join(out) + '\n')


# -- main ----------------------------------------------------------------------------------

def build_report(log_path, out_dir, gnuplot='gnuplot'):
    """Write the report for log_path into out_dir; returns a summary dict.  Raises OSError
    when the log cannot be read or the directory cannot be written."""
    report = ktap.parse_file(log_path)
    os.makedirs(out_dir, exist_ok=True)
    hist_dir = os.path.join(out_dir, 'hist')
    plots_dir = os.path.join(out_dir, 'plots')
    for stale in (hist_dir, plots_dir):
        shutil.rmtree(stale, ignore_errors=True)
    os.makedirs(hist_dir)
    os.makedirs(plots_dir)

    taken, hist_files = set(), []
    for hist in report.histograms:
        name = file_name(hist['path'], taken, '.hist')
        with open(os.path.join(hist_dir, name), 'w', encoding='utf-8') as out:
            out.write(histfile_text(hist))
        hist_files.append(name)

    plotter = Plotter(plots_dir, gnuplot)
    plots = []
    for hist, name in zip(report.histograms, hist_files):
        if not any(sum(counts) for _, counts in hist['buckets']):
            continue                # no samples in buckets: nothing to draw
        png = plotter.latency(hist)
        plots.append({'kind': 'latency', 'path': hist['path'], 'png': png,
                      'hist': 'hist/' + name,
                      'caption': 'Latency histogram %s (%s), one line per CPU.'
                                 % (hist['path'], hist.get('unit') or '?')})
    plots += throughput_plots(plotter, report.metrics)
    plots += shootdown_plots(plotter, report.metrics)
    if not plotter.available:
        plot_problem = ('Plots not drawn: gnuplot is not installed (make deps installs '
                        'gnuplot-nox); their gnuplot scripts are in plots/src/.')
    elif plotter.errors:
        plot_problem = '; '.join(plotter.errors)
    else:
        plot_problem = None
    for directory in (hist_dir, plots_dir):
        if not os.listdir(directory):
            os.rmdir(directory)

    index = os.path.join(out_dir, 'index.html')
    write_html(index, report, log_path, hist_files, plots, plot_problem)
    summary = {
        'log': os.path.abspath(log_path),
        'index': 'index.html',
        'histfiles': [{'path': h['path'], 'file': 'hist/' + n}
                      for h, n in zip(report.histograms, hist_files)],
        'plots': [{'kind': p['kind'], 'file': os.path.relpath(p['png'], out_dir)
                   if p.get('png') else None,
                   'path': p.get('path'), 'unit': p.get('unit'), 'series': p.get('series')}
                  for p in plots],
        'plot_problem': plot_problem,
    }
    ktap.write_json(report, os.path.join(out_dir, 'report.json'), extra={'report': summary})
    summary['verdict'] = ktap.VERDICT_NAMES[report.verdict]
    summary['counts'] = report.counts()
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='scripts/report', description='Turn a locklab serial log into JSON, '
        'cyclictest-format histograms, PNG plots and an HTML page.')
    parser.add_argument('log', help='serial log (e.g. build/last.log)')
    parser.add_argument('--out', default=os.path.join(REPO, 'build', 'report'),
                        help='output directory (default build/report)')
    parser.add_argument('--gnuplot', default='gnuplot', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not os.path.isfile(args.log):
        print('%s: no log at %s%s' % (PROG, args.log, ' (make run writes build/last.log)'
                                       if args.log.endswith('last.log') else ''),
              file=sys.stderr)
        return SETUP_ERROR
    try:
        summary = build_report(args.log, args.out, args.gnuplot)
    except OSError as err:
        print('%s: %s' % (PROG, err), file=sys.stderr)
        return SETUP_ERROR
    counts = summary['counts']
    drawn = sum(1 for p in summary['plots'] if p['file'])
    print('%s: %d tests (%d passed, %d failed, %d skipped, %d xfail), verdict %s; '
          '%d histogram file(s), %d plot(s)' % (
              PROG, counts['total'], counts['pass'], counts['fail'], counts['skip'],
              counts['xfail'], summary['verdict'], len(summary['histfiles']), drawn))
    if summary['plot_problem']:
        print('%s: warning: %s' % (PROG, summary['plot_problem']), file=sys.stderr)
    index = os.path.join(args.out, 'index.html')
    shown = os.path.relpath(index)
    print('%s: %s' % (PROG, index if shown.startswith('..') else shown))
    return 0


if __name__ == '__main__':
    sys.exit(main())
