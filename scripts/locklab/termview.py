"""termview: what a person at a terminal sees of a run, instead of the raw serial console.

scripts/run-qemu uses it when stdout is a terminal, CI is not set and --verbose is not given
(pipes, CI and --verbose get the raw console; the log file holds it either way).  It shows:

  * the boot facts in a few lines (CPUs, APIC mode, TSC, memory);
  * one line per test as it finishes: status, path, duration and its most telling figure (a
    histogram as p50 / p99 / max and a sparkline, never its rows); a failure's assertion lines
    follow it in full;
  * a live line at the bottom: the running test, its elapsed time against its deadline;
  * a suite that is over becomes one line (plus its failures), so a whole default run fits on
    the screen; the summary at the end: counts, failures with their first assertion line, the
    slowest tests, the headline figures, where the log is and `make report`.

It reads only the parser's events and report (scripts/ktap.py), never the tests' internals.
The kernel's figure format is the contract's `# metric:` and `# hist-begin/end` lines.
"""

import os
import re
import shutil
import sys

from . import ktap
from .paths import REPO

SPARK_UTF8 = ' \u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588'
SPARK_ASCII = ' .:-=+*#%'
# Boot facts: the kernel's own lines, in this order, shortened to what a person needs first.
BOOT_FACTS = (('cpus', re.compile(r'#\s*smp:\s*(\d+ CPUs? online.*)')),
              ('apic', re.compile(r'#\s*apic:\s*(\S+ mode(?: \([^)]*\))?)')),
              ('time', re.compile(r'#\s*time:\s*(TSC .*)')),
              ('memory', re.compile(r'#\s*mm:\s*(\d+ MiB[^;]*)')))
ASSERTION = re.compile(r'^\S+\.[ch]:\d+: ')
# Figures that say most in one number: ratios first, then tails, then anything.
TELLING = (re.compile(r'(factor|ratio|speedup|vs_|_vs)', re.I), re.compile(r'\bp99\b|\.p99'),
           re.compile(r'.'))
STATUS_WORD = {ktap.OK: 'ok', ktap.FAILED: 'FAIL', ktap.SKIP: 'skip', ktap.XFAIL: 'xfail'}
COLOURS = {'ok': '32', 'FAIL': '1;31', 'skip': '33', 'xfail': '36', 'HANG': '1;31',
           'CRASH': '1;31'}


def fmt_seconds(seconds):
    if seconds is None:
        return ''
    return '%.1f s' % seconds if seconds < 100 else '%d s' % round(seconds)


def fmt_value(value):
    if isinstance(value, float):
        return '%.3g' % value if abs(value) < 1000 else '%d' % round(value)
    if isinstance(value, int) and abs(value) >= 100000:
        return '%.3g' % value
    return str(value)


def hist_quantiles(hist):
    """(p50, p99) bucket starts of a histogram record, or None without samples."""
    totals = [(start, sum(counts)) for start, counts in hist.get('buckets') or []]
    samples = sum(n for _, n in totals)
    if not samples:
        return None
    marks, seen, out = (0.5 * samples, 0.99 * samples), 0, []
    for start, n in sorted(totals):
        seen += n
        while len(out) < 2 and seen >= marks[len(out)]:
            out.append(start)
    while len(out) < 2:
        out.append(totals[-1][0])
    return tuple(out)


def sparkline(hist, width=16, utf8=True):
    """The bucket counts squeezed into `width` characters, heights relative to the tallest."""
    buckets = sorted(hist.get('buckets') or [])
    if not buckets:
        return ''
    low, high = buckets[0][0], buckets[-1][0]
    span = max(high - low, 1)
    cells = [0] * width
    for start, counts in buckets:
        cells[min(width - 1, (start - low) * width // (span + 1))] += sum(counts)
    levels = SPARK_UTF8 if utf8 else SPARK_ASCII
    top = max(cells) or 1
    return ''.join(levels[0 if not c else max(1, round(c * (len(levels) - 1) / top))]
                   for c in cells)


def hist_line(hist, utf8=True):
    unit = hist.get('unit') or ''
    q = hist_quantiles(hist)
    if q is None:
        return '%s: no samples' % hist['path']
    return '%s p50 %s p99 %s max %s %s  %s' % (
        hist['path'].split('.')[-1], fmt_value(q[0]), fmt_value(q[1]),
        fmt_value(hist.get('max', '?')), unit, sparkline(hist, utf8=utf8))


def metric_text(metric):
    attrs = metric.get('attrs') or {}
    where = ' cpus=%s' % attrs['cpus'] if 'cpus' in attrs else ''
    return '%s %s %s%s' % (metric['path'], fmt_value(metric['value']), metric['unit'], where)


def telling_figure(metrics, hists, utf8=True):
    """The one figure that says most about a test: a histogram's shape, else a ratio, a tail,
    or the first figure; with how many more there are."""
    if hists:
        more = len(hists) - 1 + len(metrics)
        return hist_line(hists[0], utf8) + ('  (+%d)' % more if more else '')
    for pattern in TELLING:
        chosen = [m for m in metrics if pattern.search(m['path'])]
        if chosen:
            more = len(metrics) - 1
            return metric_text(chosen[0]) + ('  (+%d)' % more if more else '')
    return ''


def assertion_lines(test):
    """A failed test's assertion lines (file:line: ...) and config errors, in full."""
    return [d.lstrip('# ').strip() for d in test.diagnostics if ASSERTION.match(
        d.lstrip('# ').strip()) or 'config error' in d]


def first_finding(test):
    """What a failure found, in one line: its first assertion, else what it printed."""
    lines = [d.lstrip('# ').strip() for d in test.diagnostics]
    for wanted in (lambda d: ASSERTION.match(d), lambda d: 'config error' in d, bool):
        for line in lines:
            if wanted(line):
                return line
    return test.reason or ''


class TermView:
    def __init__(self, out=None, log_path=None, columns=None, rows=None, colour=None):
        self.out = out or sys.stdout
        size = shutil.get_terminal_size((100, 40))
        self.columns = columns or size.columns
        self.rows = rows or size.lines
        self.log_path = log_path
        encoding = (getattr(self.out, 'encoding', None) or '').lower()
        self.utf8 = 'utf' in encoding
        self.colour = colour if colour is not None else not os.environ.get('NO_COLOR')
        self.live_shown = False
        self.boot_lines = []
        self.facts_done = False
        self.suite = None              # name of the suite running
        self.suite_rows = 0            # rows printed since its header; None: cannot collapse
        self.suite_kept = []           # its lines that stay after it collapses (failures)
        self.suite_tests = 0
        self.suite_finished = 0        # its tests that reported a result
        self.suite_time = 0.0
        self.running = None            # (path, started, allowance seconds)
        self.done = 0
        self.plan = None
        self.durations = []            # (seconds, path)
        self.closed = False

    # writing ----------------------------------------------------------------------------

    def _write(self, text):
        try:
            self.out.write(text)
            self.out.flush()
        except (BrokenPipeError, ValueError):
            self.closed = True

    def clear_live(self):
        if self.live_shown:
            self._write('\r\x1b[K')
            self.live_shown = False

    def external(self):
        """Someone else (QEMU, the runner) writes to the terminal: rows no longer ours."""
        self.clear_live()
        self.suite_rows = None

    def fit(self, text):
        return text if len(text) < self.columns else text[:max(self.columns - 2, 10)] + '>'

    def paint(self, word):
        if self.colour and word in COLOURS:
            return '\x1b[%sm%s\x1b[0m' % (COLOURS[word], word) + ' ' * (6 - len(word))
        return word.ljust(6)

    def emit(self, text, status=None, keep=False):
        """One row on the screen; status words are coloured."""
        self.clear_live()
        text = self.fit(text)
        if status:
            text = self.paint(status) + text[6:]
        self._write(text + '\n')
        if self.suite_rows is not None and self.suite is not None:
            self.suite_rows += 1
        if keep and self.suite is not None:
            self.suite_kept.append((text, None))

    # input --------------------------------------------------------------------------------

    def line(self, text):
        """A clean console line, before the parser sees it (for the boot facts)."""
        if not self.facts_done and len(self.boot_lines) < 400:
            self.boot_lines.append(text)

    def show_facts(self):
        self.facts_done = True
        facts = []
        for label, regex in BOOT_FACTS:
            for text in self.boot_lines:
                match = regex.search(text)
                if match:
                    facts.append('%-7s %s' % (label, match.group(1).strip().rstrip(',')))
                    break
        errors = [t.split('config error:', 1)[1].strip() for t in self.boot_lines
                  if 'config error:' in t]
        for text in facts:
            self.emit('  ' + text)
        for error in errors:
            self.emit('  config error: ' + error)
        self.boot_lines = []

    def event(self, event, now, parser):
        kind = event[0]
        if kind == 'plan' and event[1] == 0 and not self.facts_done:
            self.plan = event[2]
            self.show_facts()
        elif kind == 'plan' and event[1] == 1:
            suite = parser.stack[-1].name if parser.stack and parser.stack[-1].name else '?'
            self.suite, self.suite_rows, self.suite_kept = suite, 0, []
            self.suite_tests, self.suite_time, self.suite_finished = event[2], now, 0
            self.emit('%s (%d tests)' % (suite, event[2]))
        elif kind == 'running':
            self.running = (event[1], now, event[3] if len(event) > 3 else None)
        elif kind == 'result' and event[1] == 1:
            self.test_done(event[2], now, parser)
        elif kind == 'result' and event[1] == 0:
            self.suite_done(event[2], now)

    def set_allowance(self, seconds):
        if self.running:
            self.running = (self.running[0], self.running[1], seconds)

    def test_done(self, test, now, parser):
        path = '%s.%s' % (self.suite, test.name) if self.suite else test.name
        self.running = None
        self.done += 1
        self.suite_finished += 1
        if test.duration is not None:
            self.durations.append((test.duration, path))
        word = STATUS_WORD.get(test.status, test.status)
        report = parser.report
        metrics = [m for m in report.metrics if m.get('test') == path]
        hists = [h for h in report.histograms if h.get('test') == path]
        figure = telling_figure(metrics, hists, self.utf8)
        if test.status == ktap.SKIP:
            figure = test.reason or figure
        elif test.status == ktap.XFAIL and not figure:
            figure = test.reason
        text = '%-6s%-34s %7s  %s' % (word, path, fmt_seconds(test.duration), figure)
        self.emit(text.rstrip(), status=word)
        if test.status == ktap.FAILED:
            self.suite_kept.append((text.rstrip(), word))
            for line in assertion_lines(test) or [d.lstrip('# ') for d in test.diagnostics[-3:]]:
                self.emit('        ' + line)
                self.suite_kept.append(('        ' + line, None))

    def suite_done(self, test, now):
        """Collapse the suite's rows into one line, keeping its failures, when they are
        all still on the screen."""
        word = STATUS_WORD.get(test.status, test.status)
        counts = {}
        stack = list(test.children)
        while stack:                   # leaves, as the summary counts them
            child = stack.pop()
            if child.children:
                stack.extend(child.children)
            else:
                counts[child.status] = counts.get(child.status, 0) + 1
        parts = ['%d %s' % (counts[s], STATUS_WORD[s]) for s in (ktap.OK, ktap.FAILED,
                                                                  ktap.XFAIL, ktap.SKIP)
                 if counts.get(s)]
        text = '%-6s%-34s %7s  %s' % (word, test.name, fmt_seconds(now - self.suite_time),
                                      ', '.join(parts))
        rows = self.suite_rows
        self.clear_live()
        if rows is not None and rows + 2 < self.rows:
            self._write('\x1b[%dA\r\x1b[J' % rows if rows else '')
            self.suite = None
            self.emit(text.rstrip(), status=word)
            for kept, status in self.suite_kept:
                self.emit(kept, status=status)
        else:
            self.suite = None
            self.emit(text.rstrip(), status=word)
        self.suite_kept = []

    def tick(self, now, started):
        """Redraw the live line."""
        if self.closed:
            return
        progress = '[%d/%s]' % (self.suite_finished + 1, self.suite_tests) if self.suite else ''
        if self.running:
            path, since, allowance = self.running
            deadline = ' / %s' % fmt_seconds(allowance) if allowance else ''
            text = '  .. %s %s  %s%s' % (progress, path, fmt_seconds(now - since), deadline)
        elif started:
            text = '  .. kernel  %s' % fmt_seconds(now)
        else:
            text = '  .. firmware and boot loader  %s' % fmt_seconds(now)
        self._write('\r\x1b[K' + self.fit(text))
        self.live_shown = True

    # the end ------------------------------------------------------------------------------

    def finish(self, report, info, code, timeout_message=None):
        self.clear_live()
        self.suite_rows = None
        if self.running:
            path, since, allowance = self.running
            word = 'HANG' if timeout_message else 'CRASH'
            self.emit('%-6s%-34s %7s  %s' % (word, path, fmt_seconds(info['seconds'] - since),
                                             'deadline %s' % fmt_seconds(allowance)
                                             if allowance else ''), status=word)
            test = next((t for t in report.tests if t.path == path), None)
            for line in (test.diagnostics[-6:] if test else []):
                self.emit('        ' + line.lstrip('# '))
        for line in self.summary(report, info, code, timeout_message):
            self.emit(line)

    def summary(self, report, info, code, timeout_message):
        counts = report.counts()
        out = ['-' * min(self.columns - 1, 78)]
        out.append('%s: %d passed, %d failed, %d skipped, %d xfail  (%s, smp=%s, %s, %s)' % (
            ktap.VERDICT_NAMES[code].upper(), counts['pass'], counts['fail'], counts['skip'],
            counts['xfail'], info['firmware'], info['smp'], info['accel'],
            fmt_seconds(info['seconds'])))
        if timeout_message:
            out.append('timeout: ' + timeout_message)
        if report.bail:
            out.append('bail out: ' + report.bail)
        for error in list(dict.fromkeys(report.config_errors))[:3]:
            out.append('config error: ' + error)
        failed = report.failed()
        if failed:
            out.append('failed:')
            for test in failed[:8]:
                out.append('  %s  %s' % (test.path, first_finding(test)))
            if len(failed) > 8:
                out.append('  ... and %d more' % (len(failed) - 8))
        slow = sorted(self.durations, reverse=True)[:3]
        if slow:
            out.append('slowest: ' + ', '.join('%s %s' % (p, fmt_seconds(s)) for s, p in slow))
        for line in self.headlines(report)[:5]:
            out.append('figure: ' + line)
        log = info.get('log') or self.log_path
        if log:
            shown = os.path.relpath(log) if not os.path.relpath(log).startswith('..') else log
            out.append('log: %s   (raw bytes: %s.raw)' % (shown, shown))
            default = os.path.join(REPO, 'build', 'last.log')
            report_cmd = 'make report' if os.path.realpath(log) == default else \
                'scripts/report %s' % shown
            out.append('next: %s (HTML and plots in build/report/); the whole console: '
                       'VERBOSE=1' % report_cmd)
        return out

    def headlines(self, report):
        """One figure per suite that printed any: its most telling one."""
        lines, suites = [], []
        for record in report.histograms + report.metrics:
            suite = (record.get('test') or record['path']).split('.')[0]
            if suite not in suites:
                suites.append(suite)
        for suite in suites:
            metrics = [m for m in report.metrics
                       if (m.get('test') or m['path']).split('.')[0] == suite]
            hists = [h for h in report.histograms
                     if (h.get('test') or h['path']).split('.')[0] == suite]
            for pattern in TELLING[:2]:
                chosen = [m for m in metrics if pattern.search(m['path'])]
                if chosen:
                    lines.append(metric_text(chosen[0]))
                    break
            else:
                if hists:
                    lines.append(hists[0]['path'] + ' ' + hist_line(hists[0], self.utf8))
                elif metrics:
                    lines.append(metric_text(metrics[0]))
        return lines
