"""KTAP v1 parser for the locklab serial console.

The kernel prints KTAP version 1 (Linux Documentation/dev-tools/ktap.rst) on COM1, plus a few
diagnostic line formats of its own (metrics, histograms, lock-torture statistics, the running
test, totals and an end marker).  This module turns such a log into a structured report and
decides the verdict (the runner's exit code); the report is written as JUnit XML and JSON.

The code is split by subject into modules that live next to this one: ktap_report holds the
report's data model, the verdict rule and the JUnit XML / JSON writers, and ktap_diagnostics
reads locklab's own diagnostic lines.  Every name they define for callers is re-exported here,
so the other tools only `import ktap`.

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
import re
import sys

from .ktap_diagnostics import DiagnosticLines
from .ktap_report import (  # noqa: F401  (re-exported: callers only import ktap)
    FAIL, FAILED, INCOMPLETE, MAX_TEXT, OK, PASS, SETUP_ERROR, SKIP, TIMEOUT, VERDICT_NAMES,
    XFAIL, Report, Test, clip, decide_verdict, junit_tree, summary_lines, write_json,
    write_junit)

# The test that fails when the kernel command line has errors (the contract says so).
CMDLINE_TEST = 'boot.cmdline'

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


def _reported(suite):
    """Result lines the kernel printed in a list (not the ones the parser made up)."""
    return sum(1 for test in suite.results if not test.incomplete)


class Parser(DiagnosticLines):
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

    # The '#' line formats (metrics, histograms, ...) are read by DiagnosticLines.

    def _innermost(self):
        return self.stack[-1]

    def _add_diagnostic(self, text):
        suite = self._innermost()
        if len(suite.diagnostics) >= MAX_DIAG_LINES:
            del suite.diagnostics[:len(suite.diagnostics) - MAX_DIAG_LINES + 1]
        suite.diagnostics.append(clip(text))

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
