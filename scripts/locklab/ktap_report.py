"""The report of a parsed KTAP log, its verdict, and the JUnit XML, JSON and summary made of it.

This is the part the other tools consume, and it changes for reasons of its own (a new JSON
field, a CI system that wants its XML another way), so it lives apart from the parser.  It
imports no other ktap module; ktap.py re-exports its names, so callers only `import ktap`.
"""

import json
import re
import xml.etree.ElementTree as ET

# Verdicts, as the runner's exit codes (3 timeout and 4 set-up error are decided by the runner).
PASS, FAIL, INCOMPLETE, TIMEOUT, SETUP_ERROR = 0, 1, 2, 3, 4
VERDICT_NAMES = {PASS: 'pass', FAIL: 'fail', INCOMPLETE: 'incomplete', TIMEOUT: 'timeout',
                 SETUP_ERROR: 'setup-error'}

# Test statuses of a leaf.
OK, FAILED, SKIP, XFAIL = 'ok', 'fail', 'skip', 'xfail'

# Stored strings are capped: a runaway kernel can print megabytes without a newline, and the
# report must stay small enough to read.
MAX_TEXT = 4096


def clip(text, limit=MAX_TEXT):
    """Cap a string, saying how much was cut."""
    if len(text) <= limit:
        return text
    return '%s... [%d more characters]' % (text[:limit], len(text) - limit)


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
