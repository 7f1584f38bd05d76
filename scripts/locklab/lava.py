"""LAVA job generation and result checking for locklab (used by make-job and test-lava).

LAVA reads a bare-metal kernel's console with a `monitors` test action: for each monitor it
waits for the monitor's start string, then records a result for every match of its pattern
until the end string.  Monitors run one after the other on the same stream, so each needs its
own start and end strings; locklab gets one monitor per top-level KTAP suite:

    start    '# Subtest: <suite>'       the suite's header
    end      '<ok|not ok> N <suite>'    the suite's own result line (unindented)
    pattern  one console line: an indented KTAP result line (a test of the suite, or a
             nested suite) or a '# metric:' line

so LAVA's test suite is the KTAP suite and LAVA's test case is the test's name.  The pattern
matches single, complete lines only: LAVA searches the last 4000 characters of its buffer, so
a pattern spanning a test's whole output would lose tests that print a lot (histograms,
backtraces), and it searches as data arrives, so a pattern that does not insist on the line's
end would match 'ok 5 fairn' before the rest ('ess # SKIP ...') has come.

The named groups LAVA knows are test_case_id, result, measurement and units.  A result line
gives result 'ok' / 'not ok', or the directive when it has one ('ok 3 x # SKIP why' gives
'SKIP'), and the fixupdict maps them: ok -> pass, not ok -> fail, SKIP -> skip, XFAIL and
TODO -> pass.  A metric line gives test_case_id = the metric's path, measurement and units,
and an empty result that the fixupdict maps to pass.  (A pattern with a result group must
produce a result on every match, and a units group that is None on test lines would be stored
as NULL; conditional groups keep result empty and units '' where they do not apply.)

LAVA turns a test_case_id into a case name by lower-casing it and replacing every run of
non-word characters with '_': lock.ticket.throughput becomes lock_ticket_throughput.
"""

import os
import re

from .paths import SCRIPTS

HERE = os.path.join(SCRIPTS, 'lava')     # the job templates

_NUMBER = r'-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?'

# One console line; see the module docstring.  Python `re` syntax, as LAVA (pexpect) uses.
PATTERN = (
    r'(?:^|(?<=\n))[ \t]*'
    r'(?P<metric>\#[ \t]*metric:[ \t]+)?'
    # not a metric: an indented result line
    r'(?(metric)|(?<=[ \t])(?=(?:not[ \t]+)?ok[ \t]+[0-9]))'
    # result: the directive if there is one, else ok / not ok; empty for a metric
    r'(?=(?(metric)|(?:(?:not[ \t]+)?ok[ \t]+[0-9]+[^#\r\n]*\#[ \t]*(?=SKIP|XFAIL|TODO))?)'
    r'(?P<result>(?(metric)|(?:SKIP|XFAIL|TODO|not ok|ok))))'
    r'(?(metric)|(?:not[ \t]+)?ok[ \t]+[0-9]+[ \t]+(?:-[ \t]+)?)'
    # a metric's path; a test's description up to its directive or comment
    r'(?P<test_case_id>(?(metric)[^\s#]+|[^#\r\n]*[^#\s]))'
    r'(?(metric)[ \t]+(?P<measurement>' + _NUMBER + r')[ \t]+|)'
    r'(?P<units>(?(metric)\S+|))'
    # the whole line: pexpect may see a line before its end has arrived
    r'[^\r\n]*(?=[\r\n])')

FIXUPDICT = {'ok': 'pass', 'not ok': 'fail', 'SKIP': 'skip', 'XFAIL': 'pass', 'TODO': 'pass',
             '': 'pass'}

# The kernel's top-level suites, in the order it runs them (docs/CONTRACT.md).
CONTRACT_SUITES = ['boot', 'smp', 'lock', 'tlb', 'sched', 'bench']

SUITE_NAME = re.compile(r'^[A-Za-z0-9_.-]+$')


def monitor(suite):
    """The monitor for one top-level suite."""
    if not SUITE_NAME.match(suite):
        raise ValueError('suite name %r cannot be a LAVA test definition name' % suite)
    name = re.escape(suite)
    return {
        'name': suite,
        'start': r'# Subtest: %s(?=[ \t\r]*\n)' % name,
        'end': r'\n(?:not )?ok [0-9]+ %s(?=[ \t\r\n])' % name,
        'pattern': PATTERN,
        'fixupdict': dict(FIXUPDICT),
    }


# The last monitor: it starts (without consuming) at the "# Totals:" line that follows the
# last suite, records it as test case locklab/totals (pass when no test failed), and ends at
# the kernel's end marker, so LAVA reads the console to the end of the report.
TOTALS_MONITOR = {
    'name': 'locklab',
    'start': r'(?=\# Totals: )',
    'end': r'\# locklab: end verdict=\w+(?=[ \t\r]*\n)',
    'pattern': (r'\# (?P<test_case_id>Totals): pass:[0-9]+ fail:'
                r'(?P<result>0(?=[ \t\r\n])|[1-9])[^\r\n]*(?=[\r\n])'),
    'fixupdict': dict([('0', 'pass')] + [(str(d), 'fail') for d in range(1, 10)]),
}


def monitors(suites):
    """The monitors of a job whose kernel runs these top-level suites, in this order."""
    return [monitor(suite) for suite in suites] + [dict(TOTALS_MONITOR)]


def _yaml_quote(text):
    """A YAML single-quoted scalar (no escapes inside but '')."""
    return "'%s'" % str(text).replace("'", "''")


def monitors_yaml(suites, indent):
    """The YAML text of a `monitors:` list for these suites, indented by `indent` spaces."""
    pad = ' ' * indent
    out = []
    for mon in monitors(suites):
        out.append('%s- name: %s' % (pad, mon['name']))
        for key in ('start', 'end', 'pattern'):
            out.append('%s  %s: %s' % (pad, key, _yaml_quote(mon[key])))
        out.append('%s  fixupdict:' % pad)
        for key, value in mon['fixupdict'].items():
            out.append('%s    %s: %s' % (pad, _yaml_quote(key), value))
    return '\n'.join(out)


_PLACEHOLDER = re.compile(r'@([A-Z_]+)@')
_MONITORS_LINE = re.compile(r'^([ \t]*)@MONITORS@[ \t]*$', re.MULTILINE)


def render(template, values, suites=None):
    """Fill a template: a line holding only @MONITORS@ becomes the monitors list (indented as
    that line), every other @NAME@ becomes values['NAME'].  Unknown names are an error."""
    if suites is not None:
        template = _MONITORS_LINE.sub(lambda m: monitors_yaml(suites, len(m.group(1))),
                                      template)

    def one(match):
        key = match.group(1)
        if key not in values:
            raise KeyError('template needs a value for @%s@' % key)
        return str(values[key])
    return _PLACEHOLDER.sub(one, template)


def template(name):
    with open(os.path.join(HERE, name), encoding='utf-8') as src:
        return src.read()


def qemu_opt(text):
    """A QEMU option value: commas doubled."""
    return str(text).replace(',', ',,')


def quote_arg(text):
    """One argument of the command line LAVA joins with spaces and pexpect splits again
    (shell-like quoting)."""
    if re.match(r'^[A-Za-z0-9_./=,:+@%-]+$', text):
        return text
    return '"%s"' % text.replace('\\', '\\\\').replace('"', '\\"')


def fw_cfg_option(cmdline):
    """The device dictionary's fw_cfg option carrying the kernel command line."""
    return '-fw_cfg ' + quote_arg('name=opt/locklab/cmdline,string=' + qemu_opt(cmdline))


def suites_from_tests(cmdline):
    """The top-level suites a tests= option selects, when every glob names its suite
    literally (tests=boot.*,smp.ipi_* -> [boot, smp] in contract order); else None."""
    globs = None
    for token in cmdline.split():
        key, _, value = token.partition('=')
        if key == 'tests':
            globs = [g for g in value.split(',') if g]
    if not globs:
        return None
    suites = []
    for glob in globs:
        suite = glob.split('.', 1)[0]
        if not suite or any(c in suite for c in '*?['):
            return None
        if suite not in suites:
            suites.append(suite)
    order = {s: i for i, s in enumerate(CONTRACT_SUITES)}
    return sorted(suites, key=lambda s: (order.get(s, len(order)), suites.index(s)))


def suites_from_report(report):
    """Top-level suite names of a parsed KTAP log, in log order."""
    return [t.name for t in report.roots if t.children or not t.incomplete]


# -- reading lava-run's output ---------------------------------------------------------------

def case_name(test_case_id):
    """What LAVA's monitor makes of a test_case_id."""
    return re.sub(r'\W+', '_', test_case_id.strip().lower())


def definition_name(monitor_name):
    return monitor_name.replace(' ', '-').lower()


class LavaLog:
    """lava-run's output: one YAML flow mapping per line {dt, lvl, msg}."""

    def __init__(self, text, yaml_module):
        self.results = []        # msg of lvl 'results'
        self.target = []         # console lines (lvl 'target' and 'feedback')
        self.errors = []         # lvl 'error' / 'exception' messages
        self.unparsed = 0
        for line in text.splitlines():
            line = line.strip()
            if not line.startswith('{'):
                continue
            try:
                entry = yaml_module.safe_load(line)
            except yaml_module.YAMLError:
                self.unparsed += 1
                continue
            if not isinstance(entry, dict):
                continue
            level, msg = entry.get('lvl'), entry.get('msg')
            if level == 'results' and isinstance(msg, dict):
                self.results.append(msg)
            elif level in ('target', 'feedback'):
                # 'feedback': what the console printed after the last action read it
                self.target.append('' if msg is None else str(msg))
            elif level in ('error', 'exception'):
                self.errors.append(str(msg))

    def console(self):
        return '\n'.join(self.target) + '\n'

    def lava_result(self, case):
        """LAVA's own result for one of its actions (definition 'lava')."""
        for result in self.results:
            if result.get('definition') == 'lava' and result.get('case') == case:
                return result
        return None

    def test_results(self):
        return [r for r in self.results if r.get('definition') != 'lava']


def expected_cases(report, ktap):
    """What the monitors should have recorded for a parsed log:
    ({(definition, case): [result, ...]}, [(definition, case, value, units), ...], leaves)
    where results cover every KTAP result line below the top-level suites (leaves and nested
    suites) and leaves lists (definition, case, ktap path, result) for every leaf."""
    status_to_lava = {ktap.OK: 'pass', ktap.FAILED: 'fail', ktap.SKIP: 'skip',
                      ktap.XFAIL: 'pass'}
    cases, leaves = {}, []

    def walk(test, definition):
        for child in test.children:
            key = (definition, case_name(child.name))
            if not child.incomplete:
                cases.setdefault(key, []).append(status_to_lava[child.status])
            if not child.children:
                leaves.append((definition, key[1], child.path, status_to_lava[child.status],
                               child.incomplete))
            walk(child, definition)

    for root in report.roots:
        walk(root, definition_name(root.name))
    if report.totals is not None and 'fail' in report.totals:
        cases[(TOTALS_MONITOR['name'], 'totals')] = [
            'fail' if report.totals['fail'] else 'pass']
    metrics = []
    for m in report.metrics:
        suite = (m.get('test') or m['path']).split('.', 1)[0]
        if isinstance(m.get('value'), (int, float)):
            metrics.append((definition_name(suite), case_name(m['path']), m['value'],
                            m.get('unit') or ''))
    return cases, metrics, leaves


def compare(report, ktap, lava_results):
    """Problems (strings) between a parsed KTAP log and the LAVA results of the same run."""
    problems = []
    cases, metrics, leaves = expected_cases(report, ktap)
    got_cases, got_metrics = {}, []
    for r in lava_results:
        key = (r.get('definition'), r.get('case'))
        if r.get('measurement') is not None:
            try:
                value = float(r['measurement'])
            except (TypeError, ValueError):
                problems.append('LAVA case %s/%s: measurement %r is not a number'
                                % (key + (r['measurement'],)))
                continue
            got_metrics.append(key + (value, r.get('units') or ''))
        else:
            got_cases.setdefault(key, []).append(r.get('result'))
    for definition, case, path, result, incomplete in leaves:
        got = got_cases.get((definition, case))
        if incomplete:
            problems.append('KTAP test %s never reported a result' % path)
        elif not got:
            problems.append('KTAP test %s (%s) is missing from LAVA (expected case %s/%s)'
                            % (path, result, definition, case))
    for key, want in sorted(cases.items()):
        got = got_cases.get(key)
        if got is not None and sorted(got) != sorted(want):
            problems.append('LAVA case %s/%s: result %s, KTAP says %s'
                            % (key + ('/'.join(got), '/'.join(want))))
    for key in sorted(set(got_cases) - set(cases)):
        problems.append('LAVA case %s/%s (%s) matches no KTAP result line'
                        % (key + ('/'.join(got_cases[key]),)))
    remaining = list(got_metrics)
    for definition, case, value, unit in metrics:
        for i, (d, c, v, u) in enumerate(remaining):
            if (d, c) == (definition, case) and abs(v - value) <= 1e-9 * max(1, abs(value)) \
                    and u == unit:
                del remaining[i]
                break
        else:
            problems.append('metric %s/%s = %s %s is missing from the LAVA measurements'
                            % (definition, case, value, unit))
    for d, c, v, u in remaining:
        problems.append('LAVA measurement %s/%s = %s %s matches no metric line' % (d, c, v, u))
    return problems
