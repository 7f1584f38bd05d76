#!/usr/bin/env python3
"""KTAP v1 parser for the locklab serial console.

The kernel prints KTAP version 1 (Linux Documentation/dev-tools/ktap.rst) on COM1, plus a few
diagnostic line formats of its own (metrics, histograms, lock-torture statistics, the running
test, totals and an end marker).  This module turns such a log into a structured report, decides
the verdict (the runner's exit code) and writes JUnit XML and JSON.

The parser is incremental (Parser.feed() one line at a time, then Parser.finish()) so that
scripts/run-qemu can follow a live console; parse_text()/parse_file() wrap it for whole logs.

Robustness rules, because the input is a serial port shared with firmware and boot loader:
  * everything before the first "KTAP version 1" is firmware noise and is ignored;
  * ANSI escape sequences, NUL bytes and other control characters are dropped, and a bare CR
    starts a new line (OVMF redraws lines with CR);
  * only structural lines (version, plan, result, "# Subtest:") are placed by their indentation;
    diagnostics and garbage belong to whatever is open, so an unindented panic message still ends
    up with the test that was running;
  * a log that stops anywhere yields a report (verdict 2), never an exception.

Usage as a command:  scripts/ktap.py LOG [--junit FILE] [--json FILE]
prints a summary and exits with the verdict (0 pass, 1 fail, 2 incomplete).
"""

import argparse
import json
import re
import sys
import xml.etree.ElementTree as ET

# Verdicts, as the runner's exit codes (3 timeout and 4 set-up error are decided by the runner).
PASS, FAIL, INCOMPLETE, TIMEOUT, SETUP_ERROR = 0, 1, 2, 3, 4
VERDICT_NAMES = {PASS: 'pass', FAIL: 'fail', INCOMPLETE: 'incomplete', TIMEOUT: 'timeout',
                 SETUP_ERROR: 'setup-error'}

# Test statuses of a leaf.
OK, FAILED, SKIP, XFAIL = 'ok', 'fail', 'skip', 'xfail'

# The test that fails when the kernel command line has errors (the contract says so).
CMDLINE_TEST = 'boot.cmdline'

# Stored strings are capped: a runaway kernel can print megabytes without a newline, and the
# report must stay small enough to read.
MAX_TEXT = 4096
# Diagnostics kept per test; the tail is the interesting part of a long dump (backtraces).
MAX_DIAG_LINES = 400

_ANSI = re.compile(r'\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[()*+].|.)?',
                   re.DOTALL)
_CONTROL = re.compile(r'[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]')
_NEWLINE = re.compile(r'\r\n?|\n')
_START = re.compile(r'KTAP version (\d+)')

_VERSION = re.compile(r'K?TAP version (\d+)$')
_PLAN = re.compile(r'1\.\.(\d+)\s*(?:#\s*(.*))?$')
_RESULT = re.compile(r'(not ok|ok)\b[ \t]*(\d+)?[ \t]*(?:-[ \t]+)?(.*)$')
_DIRECTIVE = re.compile(r'(SKIP|XFAIL|TODO|XPASS|TIMEOUT|ERROR)\b[:\s]*(.*)$', re.IGNORECASE)
_COMMENT_SPLIT = re.compile(r'(?:^|\s)#')
_BAIL = re.compile(r'Bail out!\s*(.*)$')
_SUBTEST = re.compile(r'#\s*Subtest:\s*(.*)$')

# Diagnostic formats, matched against the text after the leading '#'.
_RUNNING = re.compile(r'running:\s+(\S+)(?:\s+timeout_ms=(\d+))?')
_METRIC = re.compile(r'metric:\s+(\S+)\s+(\S+)\s+(\S+)((?:\s+\S+)*)\s*$')
_HIST_BEGIN = re.compile(r'hist-begin:\s+(\S+)((?:\s+\S+)*)\s*$')
_HIST_END = re.compile(r'hist-end:\s+(\S+)((?:\s+\S+)*)\s*$')
_HIST_ROW = re.compile(r'(-?\d+)((?:\s+\d+)+)\s*$')
_TORTURE = re.compile(r'(\S+)-torture:\s+(Writes|Reads):\s+Total:\s+(\d+)\s+'
                      r'Max/Min:\s+(\d+)/(\d+)\s*(\?\?\?)?\s+Fail:\s+(\d+)\s*(!!!)?')
_CONFIG_ERROR = re.compile(r'config error:\s*(.*)$')
_COUNTS = re.compile(r'(\S+):((?:\s+\w+:\d+)+)\s*$')
_END = re.compile(r'locklab:\s+end\s+verdict=(\w+)')


def clip(text, limit=MAX_TEXT):
    """Cap a string, saying how much was cut."""
    if len(text) <= limit:
        return text
    return '%s... [%d more characters]' % (text[:limit], len(text) - limit)


def clean_segments(raw):
    """Split one raw console line into clean text lines.

    Accepts bytes or str.  Drops escape sequences and control characters; a CR inside the line
    separates segments (a terminal would start over at column 0)."""
    if isinstance(raw, (bytes, bytearray)):
        raw = bytes(raw).decode('utf-8', 'replace')
    out = []
    for part in _NEWLINE.split(raw.replace('\x00', '').rstrip('\r\n')):
        part = _CONTROL.sub('', _ANSI.sub('', part))
        out.append(part.rstrip())
    return out


def _number(text):
    """An int or float from text, or None."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return None


def _key_values(text):
    """key=value tokens of a line; other tokens are returned separately."""
    pairs, other = {}, []
    for token in text.split():
        key, sep, value = token.partition('=')
        if sep and key:
            number = _number(value)
            pairs[key] = value if number is None else number
        else:
            other.append(token)
    return pairs, other


class Test:
    """One result line (or a test that started and never reported one)."""

    def __init__(self, name, number=None, status=OK, line=None):
        self.name = name
        self.number = number
        self.status = status
        self.directive = None          # 'SKIP', 'XFAIL', ... as written
        self.reason = ''               # text after the directive
        self.diagnostics = []
        self.children = []             # results of its subtests, if it is a suite
        self.line = line               # line number in the log (1-based)
        self.duration = None           # seconds, when the host timed it
        self.incomplete = False        # synthesized: the kernel never reported a result
        self.path = None               # filled in by Parser.finish()

    def to_dict(self):
        suite, _, _ = (self.path or self.name).rpartition('.')
        return {'path': self.path, 'suite': suite, 'name': self.name, 'status': self.status,
                'directive': self.directive, 'reason': self.reason,
                'diagnostics': list(self.diagnostics), 'duration': self.duration,
                'line': self.line, 'incomplete': self.incomplete}


class Suite:
    """A test list being read: everything printed at one indentation below a parent."""

    def __init__(self, indent, name=None, line=None):
        self.indent = indent
        self.name = name               # from '# Subtest:'; the parent's result line decides
        self.line = line
        self.plan = None
        self.plan_line = None
        self.results = []
        self.diagnostics = []          # waiting for the next result line
        self.records = []              # metrics etc. waiting for the next result line
        self.closed_child = None       # a subtest list waiting for its result line
        self.next_child_name = None    # TAP14 style '# Subtest:' at the parent's indent

    def is_fresh(self):
        return self.plan is None and not self.results and self.closed_child is None


class Report:
    """Everything a log said, and what the parser thought of it."""

    def __init__(self):
        self.started = False
        self.tests = []                # leaf Test objects, in log order
        self.roots = []                # top-level Test objects (tree)
        self.plan = None               # top-level plan
        self.metrics = []
        self.histograms = []
        self.torture = []
        self.config_errors = []
        self.totals = None             # '# Totals:' at top level
        self.suite_counts = {}         # KUnit-style per-suite counts
        self.bail = None               # reason, when the kernel bailed out
        self.end_verdict = None        # from '# locklab: end verdict=...'
        self.problems = []             # {'severity', 'line', 'message'}
        self.trailing = []             # diagnostics after the last result
        self.require_end = True
        self.verdict = INCOMPLETE
        self.verdict_reasons = []

    def counts(self):
        counts = {OK: 0, FAILED: 0, SKIP: 0, XFAIL: 0}
        for test in self.tests:
            counts[test.status] += 1
        return {'pass': counts[OK], 'fail': counts[FAILED], 'skip': counts[SKIP],
                'xfail': counts[XFAIL], 'total': len(self.tests)}

    def failed(self):
        return [t for t in self.tests if t.status == FAILED]

    def errors(self):
        return [p for p in self.problems if p['severity'] == 'error']

    def to_dict(self):
        return {
            'verdict': self.verdict,
            'verdict_name': VERDICT_NAMES[self.verdict],
            'verdict_reasons': list(self.verdict_reasons),
            'started': self.started,
            'counts': self.counts(),
            'totals': self.totals,
            'suite_counts': self.suite_counts,
            'plan': self.plan,
            'tests': [t.to_dict() for t in self.tests],
            'metrics': self.metrics,
            'histograms': self.histograms,
            'torture': self.torture,
            'config_errors': self.config_errors,
            'bail': self.bail,
            'end_verdict': self.end_verdict,
            'problems': self.problems,
            'trailing_diagnostics': self.trailing,
        }


def _reported(suite):
    """Result lines the kernel printed in a list (not the ones the parser made up)."""
    return sum(1 for test in suite.results if not test.incomplete)


class Parser:
    """Incremental KTAP reader.  feed() returns events for live consumers:

        ('start',)                      the first 'KTAP version' line
        ('plan', depth, n)              a plan line; depth 0 is the top level
        ('running', path, timeout_ms)   the kernel is about to run a test (timeout_ms may be None)
        ('result', depth, Test)         a result line; Test.path is not final yet
        ('bail', reason)
        ('end', verdict)                the end marker
    """

    def __init__(self):
        self.report = Report()
        self.line_no = 0
        self.stack = []                # open Suites, outermost first
        self.running = None            # (path, timeout_ms, line, t)
        self.hist = None               # histogram block being read
        self.ended = False
        self.stopped = False           # KTAP restarted: ignore the rest
        self.last_result = None        # most recent Test, for diagnostics after the end
        self._indent_warned = False

    # -- live state -------------------------------------------------------------------------

    @property
    def started(self):
        return self.report.started

    @property
    def top_plan(self):
        return self.stack[0].plan if self.stack else None

    @property
    def top_done(self):
        if not self.stack:
            return 0
        return len(self.stack[0].results)

    # -- input ------------------------------------------------------------------------------

    def feed(self, raw, t=None):
        """Read one console line (str or bytes, with or without its newline)."""
        events = []
        for text in clean_segments(raw):
            self.line_no += 1
            events.extend(self._line(text, t))
        return events

    def _problem(self, severity, message, line=None):
        self.report.problems.append({'severity': severity,
                                     'line': self.line_no if line is None else line,
                                     'message': clip(message, 300)})

    def _line(self, text, t):
        if self.stopped or self.ended:
            return []
        if not self.report.started:
            match = _START.search(text)
            if not match:
                return []
            self.report.started = True
            # The header's indentation is the top level's, unless noise precedes it on the line.
            prefix = text[:match.start()]
            root = Suite(indent=len(prefix) if not prefix.strip() else 0, line=self.line_no)
            self.stack = [root]
            if match.group(1) != '1':
                self._problem('warning', 'KTAP version %s, expected 1' % match.group(1))
            return [('start',)]

        content = text.lstrip(' ')
        indent = len(text) - len(content)
        content = content.strip()
        if not content:
            return []

        bail = _BAIL.match(content)
        if bail:
            return self._bail(bail.group(1))
        if content.startswith('#') and not _SUBTEST.match(content):
            return self._diagnostic(content[1:].strip(), t)
        for kind, regex in (('version', _VERSION), ('plan', _PLAN), ('result', _RESULT),
                            ('subtest', _SUBTEST)):
            match = regex.match(content)
            if match:
                return self._structural(kind, indent, match, t)
        self._add_diagnostic(content)
        return []

    # -- structure --------------------------------------------------------------------------

    def _structural(self, kind, indent, match, t):
        suite = self._suite_for(indent)
        if kind == 'version':
            if suite.is_fresh():
                return []
            if len(self.stack) == 1:
                # A second top-level header: the machine reset and the kernel started over.
                self._problem('error', 'KTAP output started again (the machine reset?); '
                                       'the rest of the log is ignored')
                self.stopped = True
            else:
                self._restart_sibling(suite)
            return []
        if kind == 'subtest':
            return self._subtest(suite, match.group(1).strip())
        if kind == 'plan':
            if suite.plan is not None:
                if suite.results and len(self.stack) > 1:
                    suite = self._restart_sibling(suite)
                else:
                    self._problem('warning', 'second plan line in one test list ignored')
                    return []
            suite.plan = int(match.group(1))
            suite.plan_line = self.line_no
            if len(self.stack) == 1:
                self.report.plan = suite.plan
            return [('plan', len(self.stack) - 1, suite.plan)]
        return self._result(suite, match, t)

    def _suite_for(self, indent):
        """The open suite a structural line at this indentation belongs to (opening or
        closing nested lists as needed)."""
        root = self.stack[0]
        if indent < root.indent:
            if not self._indent_warned:
                self._problem('warning', 'line indented less than the top level')
                self._indent_warned = True
            indent = root.indent
        while self.stack[-1].indent > indent:
            self._close_top()
        top = self.stack[-1]
        if indent > top.indent:
            step = top.indent - self.stack[-2].indent if len(self.stack) > 1 else None
            if step is not None and indent - top.indent != step and not self._indent_warned:
                self._problem('warning', 'inconsistent indentation')
                self._indent_warned = True
            self._open_child(top, indent)
        return self.stack[-1]

    def _open_child(self, parent, indent):
        if parent.closed_child is not None:
            self._orphan(parent)
        child = Suite(indent, name=parent.next_child_name, line=self.line_no)
        parent.next_child_name = None
        self.stack.append(child)
        return child

    def _close_top(self):
        """Close the innermost list; its result line is expected next in the parent."""
        child = self.stack.pop()
        parent = self.stack[-1]
        # Diagnostics after the last subtest belong to the suite's own result.
        parent.diagnostics.extend(child.diagnostics)
        parent.records.extend(child.records)
        child.diagnostics, child.records = [], []
        if parent.closed_child is not None:
            self._orphan(parent)
        parent.closed_child = child

    def _restart_sibling(self, suite):
        """A list at this indentation started over: the previous one got no result line."""
        indent = suite.indent
        self._close_top()
        return self._open_child(self.stack[-1], indent)

    def _orphan(self, parent, cut_off=False):
        """A closed subtest list that never got its result line: keep its tests."""
        child = parent.closed_child
        parent.closed_child = None
        name = child.name or '?'
        if cut_off:
            self._problem('error', 'the log ends inside subtest %s (%d of %s results)' % (
                name, _reported(child), '?' if child.plan is None else child.plan),
                line=child.line)
        else:
            self._problem('error', 'subtest %s has no result line' % name, line=child.line)
            self._check_plan(child, name)
        test = Test(name, status=FAILED, line=child.line)
        test.incomplete = True
        test.reason = 'no result line'
        test.children = child.results
        parent.results.append(test)

    def _subtest(self, suite, name):
        # KUnit prints '# Subtest:' first thing in the nested list; TAP14 prints it at the
        # parent's indentation just before the nested list.
        if len(self.stack) > 1 and suite.is_fresh() and suite.name is None:
            suite.name = name
        else:
            suite.next_child_name = name
        return []

    def _result(self, suite, match, t):
        ok = match.group(1) == 'ok'
        number = int(match.group(2)) if match.group(2) else None
        name, directive, reason, comment = self._split_description(match.group(3))
        child = suite.closed_child
        suite.closed_child = None
        if not name:
            name = (child.name if child and child.name else None) or str(number or '?')
        test = Test(clip(name, 256), number, line=self.line_no)
        test.status = self._status(ok, directive)
        test.directive = directive
        test.reason = clip(reason, 1024)
        test.diagnostics = suite.diagnostics
        if comment:
            test.diagnostics.append(comment)
        suite.diagnostics = []
        for record in suite.records:
            record.setdefault('_owner', test)
        suite.records = []
        if child is not None:
            test.children = child.results
            if child.name and child.name != name:
                self._problem('warning', 'subtest "%s" reported as "%s"' % (child.name, name))
            self._check_plan(child, name)
        expected = len(suite.results) + 1
        if number is None:
            self._problem('warning', 'result line without a test number')
        elif number != expected:
            self._problem('warning', 'test number %d, expected %d' % (number, expected))
        if self.running is not None:
            path, _, _, started = self.running
            if t is not None and started is not None and path.rsplit('.', 1)[-1] == test.name:
                test.duration = round(t - started, 6)
            self.running = None
        suite.results.append(test)
        self.last_result = test
        return [('result', len(self.stack) - 1, test)]

    @staticmethod
    def _split_description(text):
        """name, directive, reason, other comment of a result line's description."""
        parts = _COMMENT_SPLIT.split(text, maxsplit=1)
        name = parts[0].strip()
        if len(parts) == 1:
            return name, None, '', ''
        comment = parts[1].strip()
        directive = _DIRECTIVE.match(comment)
        if directive:
            return name, directive.group(1).upper(), directive.group(2).strip(), ''
        return name, None, '', comment

    @staticmethod
    def _status(ok, directive):
        if directive == 'SKIP':
            return SKIP
        if directive == 'XFAIL' or (directive == 'TODO' and not ok):
            return XFAIL
        return OK if ok else FAILED

    def _check_plan(self, suite, name):
        if suite.plan is None:
            if suite.results:
                self._problem('warning', 'subtest %s has no plan' % name, line=suite.line)
            return
        if _reported(suite) != suite.plan:
            self._problem('error', 'subtest %s: plan 1..%d but %d results'
                          % (name, suite.plan, _reported(suite)), line=suite.plan_line)

    # -- diagnostics ------------------------------------------------------------------------

    def _innermost(self):
        return self.stack[-1]

    def _add_diagnostic(self, text):
        suite = self._innermost()
        if len(suite.diagnostics) >= MAX_DIAG_LINES:
            del suite.diagnostics[:len(suite.diagnostics) - MAX_DIAG_LINES + 1]
        suite.diagnostics.append(clip(text))

    def _add_record(self, kind_list, record):
        """Metrics, histograms and torture lines belong to the running test if the kernel
        said which one runs, else to the next result in the current list."""
        if self.running is not None:
            record['test'] = self.running[0]
        else:
            self._innermost().records.append(record)
        kind_list.append(record)

    def _diagnostic(self, text, t):
        if self.hist is not None:
            row = _HIST_ROW.match(text)
            if row:
                self._hist_row(row)
                return []
        for regex, handler in ((_RUNNING, self._running), (_METRIC, self._metric),
                               (_HIST_BEGIN, self._hist_begin), (_HIST_END, self._hist_end),
                               (_TORTURE, self._torture), (_END, self._end),
                               (_COUNTS, self._counts)):
            match = regex.match(text)
            if match:
                events = handler(match, t)
                if events is not None:
                    return events
                break
        config = _CONFIG_ERROR.match(text)
        if config:
            self.report.config_errors.append(clip(config.group(1), 1024))
        self._add_diagnostic(text)
        return []

    def _running(self, match, t):
        path = clip(match.group(1), 512)
        timeout_ms = int(match.group(2)) if match.group(2) else None
        self.running = (path, timeout_ms, self.line_no, t)
        return [('running', path, timeout_ms)]

    def _metric(self, match, t):
        path, value_text, unit, rest = match.groups()
        value = _number(value_text)
        if value is None:
            self._problem('warning', 'metric %s: value "%s" is not a number'
                          % (path, clip(value_text, 40)))
            value = value_text
        attrs, other = _key_values(rest)
        record = {'path': clip(path, 512), 'value': value, 'unit': clip(unit, 64),
                  'attrs': attrs, 'test': None, 'line': self.line_no}
        if other:
            record['extra'] = clip(' '.join(other), 512)
        self._add_record(self.report.metrics, record)
        return []

    def _hist_begin(self, match, t):
        if self.hist is not None:
            self._problem('warning', 'histogram %s has no hist-end line' % self.hist['path'])
            self.hist = None
        attrs, _ = _key_values(match.group(2))
        self.hist = {'path': clip(match.group(1), 512), 'unit': attrs.get('unit'),
                     'bucket': attrs.get('bucket'), 'cpus': attrs.get('cpus'),
                     'buckets': [], 'samples': None, 'min': None, 'avg': None, 'max': None,
                     'overflows': None, 'complete': False, 'test': None,
                     'line': self.line_no}
        self._add_record(self.report.histograms, self.hist)
        return []

    def _hist_row(self, match):
        counts = [int(c) for c in match.group(2).split()]
        cpus = self.hist['cpus']
        if isinstance(cpus, int) and len(counts) != cpus:
            self._problem('warning', 'histogram %s: %d counts for %d cpus'
                          % (self.hist['path'], len(counts), cpus))
        if len(self.hist['buckets']) < 1000000:
            self.hist['buckets'].append([int(match.group(1)), counts])

    def _hist_end(self, match, t):
        hist = self.hist
        path = match.group(1)
        if hist is None or hist['path'] != path:
            self._problem('warning', 'hist-end for %s without its hist-begin' % clip(path, 80))
            return []
        attrs, _ = _key_values(match.group(2))
        for key in ('samples', 'min', 'avg', 'max', 'overflows'):
            hist[key] = attrs.get(key)
        hist['complete'] = True
        counted = sum(sum(c) for _, c in hist['buckets'])
        if isinstance(hist['samples'], int) and isinstance(hist['overflows'], int) \
                and counted + hist['overflows'] != hist['samples']:
            self._problem('warning', 'histogram %s: buckets hold %d samples, hist-end says %d '
                          '(overflows %d)' % (path, counted, hist['samples'], hist['overflows']))
        self.hist = None
        return []

    def _torture(self, match, t):
        lock, kind, total, high, low, imbalance, fail, flagged = match.groups()
        record = {'lock': lock, 'kind': kind.lower(), 'total': int(total), 'max': int(high),
                  'min': int(low), 'imbalance': bool(imbalance), 'fail': int(fail),
                  'flagged': bool(flagged), 'test': None, 'line': self.line_no}
        self._add_record(self.report.torture, record)
        # Keep it as a diagnostic too: it explains a failing torture test.
        return None

    def _counts(self, match, t):
        name = match.group(1)
        counts = {key: int(value) for key, value in
                  (pair.split(':') for pair in match.group(2).split())}
        if name == 'Totals':
            self.report.totals = counts
        else:
            self.report.suite_counts[name] = counts
        return []

    def _end(self, match, t):
        self.report.end_verdict = match.group(1)
        self.ended = True
        return [('end', match.group(1))]

    def _bail(self, reason):
        reason = clip(reason or 'no reason given', 1024)
        if self.report.bail is None:
            self.report.bail = reason
        self._add_diagnostic('Bail out! ' + reason)
        return [('bail', reason)]

    # -- end of input -----------------------------------------------------------------------

    def finish(self, require_end=True):
        """Close whatever is open, resolve paths and decide the verdict."""
        report = self.report
        report.require_end = require_end
        if report.started:
            self._close_all()
            self._resolve(report.roots, [])
            self._assign_records()
            report.tests = []
            self._collect(report.roots, report.tests)
            self._link_config_errors()
            self._check_totals()
        else:
            self._problem('error', 'no "KTAP version 1" line: the kernel never started its tests')
        if self.hist is not None:
            self._problem('warning', 'histogram %s has no hist-end line' % self.hist['path'])
            self.hist = None
        if require_end and report.started and report.end_verdict is None \
                and not self.stopped:
            self._problem('error', 'no end marker "# locklab: end verdict=...": '
                                   'the kernel stopped before finishing')
        report.verdict, report.verdict_reasons = decide_verdict(report)
        return report

    def _close_all(self):
        if self.running is not None:
            # The kernel started a test and stopped (crash, reset, hang): report that test.
            path, _, line, _ = self.running
            test = Test(path.rsplit('.', 1)[-1], status=FAILED, line=line)
            test.incomplete = True
            test.path = path
            test.reason = 'started but never reported a result'
            suite = self._innermost()
            test.diagnostics = suite.diagnostics
            suite.diagnostics = []
            for record in suite.records:
                record.setdefault('_owner', test)
            suite.records = []
            suite.results.append(test)
            self._problem('error', 'test %s started but never reported a result' % path,
                          line=line)
            self.running = None
        while len(self.stack) > 1:
            self._close_top()
            self._orphan(self.stack[-1], cut_off=True)
        root = self.stack[0]
        if root.closed_child is not None:
            self._orphan(root, cut_off=True)
        if root.plan is None:
            self._problem('warning', 'no top-level plan line')
        elif _reported(root) != root.plan:
            self._problem('error', 'plan 1..%d but %d results' % (root.plan, _reported(root)),
                          line=root.plan_line)
        self.report.trailing = list(root.diagnostics)
        for record in root.records:
            record.setdefault('_owner', self.last_result)
        root.records = []
        self.report.roots = root.results

    def _resolve(self, tests, prefix):
        for test in tests:
            if test.path is None:
                test.path = '.'.join(prefix + [test.name])
            self._resolve(test.children, test.path.split('.'))

    def _assign_records(self):
        for kind in (self.report.metrics, self.report.histograms, self.report.torture):
            for record in kind:
                owner = record.pop('_owner', None)
                if record.get('test') is None and owner is not None:
                    record['test'] = owner.path

    def _collect(self, tests, out):
        """Leaves, plus suites that failed on their own (no failing test inside)."""
        for test in tests:
            if not test.children:
                out.append(test)
                continue
            before = len(out)
            self._collect(test.children, out)
            inner_failed = any(t.status == FAILED for t in out[before:])
            if test.status == FAILED and not inner_failed:
                if not test.diagnostics and not test.incomplete:
                    test.diagnostics = ['suite reported not ok although none of its tests failed']
                out.append(test)

    def _link_config_errors(self):
        """The kernel reports a bad command line twice: '# config error:' lines while it boots
        (before any test) and a 'not ok' for boot.cmdline.  Give that failure its reasons."""
        for test in self.report.tests:
            if test.path == CMDLINE_TEST and test.status == FAILED:
                missing = ['config error: ' + e for e in self.report.config_errors
                           if 'config error: ' + e not in test.diagnostics]
                test.diagnostics = missing + test.diagnostics

    def _check_totals(self):
        totals = self.report.totals
        if not totals or 'total' not in totals:
            return
        counted = sum(1 for t in self.report.tests if not t.incomplete)
        if totals['total'] != counted:
            self._problem('warning', 'Totals say total:%d but the log has %d tests'
                          % (totals['total'], counted))


def decide_verdict(report):
    """The exit code for a parsed log and the reasons for it (0 pass, 1 fail, 2 incomplete)."""
    reasons = []
    if not report.started:
        return INCOMPLETE, ['no KTAP output']
    if report.bail is not None:
        reasons.append('bail out: %s' % report.bail)
    if report.end_verdict == 'bail':
        reasons.append('the kernel reported verdict=bail')
    reasons.extend(p['message'] for p in report.errors())
    if reasons:
        return INCOMPLETE, reasons
    failed = report.failed()
    if failed:
        reasons.append('%d test(s) failed: %s' % (len(failed), ', '.join(
            t.path for t in failed[:10]) + (' ...' if len(failed) > 10 else '')))
        if report.end_verdict == 'pass':
            reasons.append('the kernel claimed verdict=pass')
        return FAIL, reasons
    if report.end_verdict not in (None, 'pass'):
        return FAIL, ['the kernel reported verdict=%s although no test failed'
                      % report.end_verdict]
    return PASS, reasons


def parse_lines(lines, require_end=True):
    parser = Parser()
    for line in lines:
        parser.feed(line)
    return parser.finish(require_end=require_end)


def parse_text(text, require_end=True):
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode('utf-8', 'replace')
    return parse_lines(text.split('\n'), require_end=require_end)


def parse_file(path, require_end=True):
    with open(path, 'rb') as log:
        return parse_text(log.read(), require_end=require_end)


# -- reports ----------------------------------------------------------------------------------

_XML_INVALID = re.compile('[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]')


def _xml_text(text):
    return _XML_INVALID.sub('\ufffd', str(text))


def _classname(test):
    suite = test.path.rpartition('.')[0]
    return suite or 'locklab'


def junit_tree(report, name='locklab', properties=None, run_error=None):
    """An ElementTree of JUnit XML: one testcase per KTAP leaf, grouped by suite path.

    An unfinished log (or run_error, a list of reasons the caller found elsewhere) adds an
    error testcase locklab.ktap-stream, so that CI sees it even when every test passed."""
    root = ET.Element('testsuites', name=name)
    if properties:
        props = ET.SubElement(root, 'properties')
        for key, value in properties.items():
            ET.SubElement(props, 'property', name=_xml_text(key), value=_xml_text(value))
    suites = {}
    for test in report.tests:
        classname = _classname(test)
        if classname not in suites:
            suites[classname] = ET.SubElement(root, 'testsuite', name=_xml_text(classname))
        _junit_case(suites[classname], test, classname)
    reasons = list(run_error or [])
    if report.verdict == INCOMPLETE:
        reasons += report.verdict_reasons
    if reasons:
        suite = ET.SubElement(root, 'testsuite', name='locklab')
        suites['locklab:run'] = suite
        case = ET.SubElement(suite, 'testcase', classname='locklab', name='ktap-stream')
        error = ET.SubElement(case, 'error', message=_xml_text(clip('; '.join(reasons), 2000)))
        error.text = _xml_text('\n'.join(reasons))
    totals = {'tests': 0, 'failures': 0, 'errors': 0, 'skipped': 0}
    for suite in suites.values():
        cases = suite.findall('testcase')
        counts = {'tests': len(cases),
                  'failures': sum(1 for c in cases if c.find('failure') is not None),
                  'errors': sum(1 for c in cases if c.find('error') is not None),
                  'skipped': sum(1 for c in cases if c.find('skipped') is not None)}
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
        times = [float(c.get('time')) for c in cases if c.get('time')]
        if times:
            suite.set('time', '%.3f' % sum(times))
    for key, value in totals.items():
        root.set(key, str(value))
    return ET.ElementTree(root)


def _junit_case(suite, test, classname):
    case = ET.SubElement(suite, 'testcase', classname=_xml_text(classname),
                         name=_xml_text(test.name))
    if test.duration is not None:
        case.set('time', '%.3f' % test.duration)
    diagnostics = '\n'.join(test.diagnostics)
    if test.status == FAILED:
        tag = 'error' if test.incomplete else 'failure'
        message = diagnostics or test.reason or 'not ok'
        if test.incomplete and test.reason:
            message = test.reason + ('\n' + diagnostics if diagnostics else '')
        element = ET.SubElement(case, tag, message=_xml_text(clip(message, 8000)),
                                type='incomplete' if test.incomplete else 'not ok')
        element.text = _xml_text(message)
    elif test.status == SKIP:
        ET.SubElement(case, 'skipped', message=_xml_text(test.reason))
    elif test.status == XFAIL:
        out = ET.SubElement(case, 'system-out')
        out.text = _xml_text('XFAIL: %s' % test.reason + ('\n' + diagnostics if diagnostics
                                                          else ''))


def write_junit(report, path, properties=None, run_error=None):
    tree = junit_tree(report, properties=properties, run_error=run_error)
    if hasattr(ET, 'indent'):
        ET.indent(tree)
    tree.write(path, encoding='utf-8', xml_declaration=True)


def write_json(report, path, extra=None):
    data = report.to_dict()
    if extra:
        data.update(extra)
    with open(path, 'w', encoding='utf-8') as out:
        json.dump(data, out, indent=1, sort_keys=False)
        out.write('\n')


def summary_lines(report, verbose=True):
    """Human-readable summary of a report."""
    counts = report.counts()
    lines = ['%d tests: %d passed, %d failed, %d skipped, %d xfail'
             % (counts['total'], counts['pass'], counts['fail'], counts['skip'], counts['xfail'])]
    if verbose:
        for test in report.tests:
            if test.status == FAILED:
                lines.append('not ok %s%s' % (test.path, ' (no result)' if test.incomplete
                                              else ''))
                lines.extend('    # ' + d for d in test.diagnostics[-20:])
    if report.bail is not None:
        lines.append('bail out: %s' % report.bail)
    for problem in report.problems:
        lines.append('%s: line %s: %s' % (problem['severity'], problem['line'],
                                          problem['message']))
    lines.append('verdict: %d (%s)%s' % (report.verdict, VERDICT_NAMES[report.verdict],
                                         ': ' + '; '.join(report.verdict_reasons)
                                         if report.verdict else ''))
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description='Parse a locklab KTAP log and exit with its '
                                     'verdict (0 pass, 1 fail, 2 incomplete).')
    parser.add_argument('log', help='serial log, or - for stdin')
    parser.add_argument('--junit', metavar='FILE', help='write JUnit XML')
    parser.add_argument('--json', metavar='FILE', help='write JSON')
    parser.add_argument('--no-end-marker', action='store_true',
                        help='do not require the "# locklab: end" line (plain KTAP logs)')
    parser.add_argument('-q', '--quiet', action='store_true', help='only the verdict line')
    args = parser.parse_args(argv)
    try:
        if args.log == '-':
            report = parse_text(sys.stdin.buffer.read(), require_end=not args.no_end_marker)
        else:
            report = parse_file(args.log, require_end=not args.no_end_marker)
    except OSError as err:
        print('ktap.py: %s' % err, file=sys.stderr)
        return SETUP_ERROR
    if args.junit:
        write_junit(report, args.junit)
    if args.json:
        write_json(report, args.json)
    lines = summary_lines(report, verbose=not args.quiet)
    print('\n'.join(lines[-1:] if args.quiet else lines))
    return report.verdict


if __name__ == '__main__':
    sys.exit(main())
