"""Tests of scripts/ktap.py: the KTAP parser, the verdict and the JUnit/JSON writers."""

import io
import json
import os
import random
import sys
import tempfile
import time
import unittest
import xml.etree.ElementTree as ET

from support import DATA
from locklab import ktap


SAMPLES = sorted(f for f in os.listdir(DATA) if f.endswith('.log'))
END_MARKER = b'# locklab: end verdict='


def sample(name):
    return ktap.parse_file(os.path.join(DATA, name))


def parse(text, require_end=False):
    return ktap.parse_text(text, require_end=require_end)


def by_path(report):
    return {t.path: t for t in report.tests}


def has_problem(report, words, severity=None):
    return any(words in p['message'] and (severity is None or p['severity'] == severity)
               for p in report.problems)


class SampleLogs(unittest.TestCase):
    def test_pass_with_nesting_at_two_spaces(self):
        report = sample('pass_nested2.log')
        self.assertEqual(report.verdict, ktap.PASS, report.verdict_reasons)
        self.assertEqual(report.counts(), {'pass': 7, 'fail': 0, 'skip': 1, 'xfail': 1,
                                           'total': 9})
        tests = by_path(report)
        self.assertEqual(tests['boot.x2apic'].status, ktap.SKIP)
        self.assertEqual(tests['boot.x2apic'].reason, 'x2APIC not offered by this CPU model')
        self.assertEqual(tests['lock.broken_lock_detected'].status, ktap.XFAIL)
        self.assertIn('tlb.sync.broadcast', tests)
        self.assertEqual(report.plan, 3)
        self.assertEqual(report.end_verdict, 'pass')
        self.assertEqual(report.totals, {'pass': 7, 'fail': 0, 'skip': 1, 'total': 9})
        self.assertEqual(report.suite_counts['boot']['skip'], 1)
        self.assertEqual([p for p in report.problems if p['severity'] == 'error'], [])

    def test_firmware_noise_is_ignored(self):
        report = sample('pass_nested2.log')
        self.assertTrue(report.started)
        for test in report.tests:
            self.assertNotIn('\x1b', test.name)
        self.assertNotIn('BdsDxe', json.dumps(report.to_dict()))

    def test_nesting_at_four_spaces_and_three_levels(self):
        report = sample('nested4.log')
        self.assertEqual(report.verdict, ktap.PASS, report.verdict_reasons)
        tests = by_path(report)
        self.assertEqual(sorted(tests), ['bench', 'sched.preempt.none', 'sched.preempt.rt',
                                         'sched.preempt.voluntary', 'sched.wakeup_latency'])
        self.assertEqual(tests['sched.preempt.rt'].status, ktap.XFAIL)
        self.assertEqual(tests['sched.wakeup_latency'].status, ktap.SKIP)
        self.assertEqual(tests['bench'].status, ktap.SKIP)      # 1..0 suite skipped whole

    def test_failure_keeps_its_diagnostics(self):
        report = sample('fail.log')
        self.assertEqual(report.verdict, ktap.FAIL)
        tests = by_path(report)
        self.assertEqual(set(tests), {'boot.cmdline', 'boot.symbols', 'lock.ticket_exclusion',
                                      'lock.mcs_exclusion - description with'})
        failed = tests['lock.ticket_exclusion']
        self.assertEqual(failed.status, ktap.FAILED)
        self.assertIn('counter is 997, expected 1000', failed.diagnostics)
        self.assertNotIn('running: lock.ticket_exclusion timeout_ms=5000', failed.diagnostics)
        self.assertEqual(report.config_errors, ['unknown key "bogus" (bogus=1)'] * 2)
        self.assertEqual(tests['boot.cmdline'].diagnostics.count(
            'config error: unknown key "bogus" (bogus=1)'), 1)
        self.assertEqual(tests['lock.mcs_exclusion - description with'].diagnostics,
                         ['a comment'])

    def test_config_error_from_the_boot_header_reaches_boot_cmdline(self):
        report = parse('KTAP version 1\n# config error: unknown option bogus\n1..1\n'
                       '  1..1\n  # expected config_errors == 0\n  not ok 1 cmdline\n'
                       'not ok 1 boot\n')
        self.assertEqual(report.tests[0].diagnostics, ['config error: unknown option bogus',
                                                       'expected config_errors == 0'])

    def test_lines_before_ktap_do_not_count(self):
        report = sample('fail.log')
        self.assertEqual(report.counts()['total'], 4)

    def test_missing_plan_is_only_a_warning(self):
        report = sample('missing_plan.log')
        self.assertEqual(report.verdict, ktap.PASS)
        self.assertTrue(has_problem(report, 'no plan', 'warning'))
        self.assertTrue(has_problem(report, 'no top-level plan', 'warning'))

    def test_plan_mismatch(self):
        report = sample('plan_mismatch.log')
        self.assertEqual(report.verdict, ktap.INCOMPLETE)
        self.assertTrue(has_problem(report, 'plan 1..5 but 3 results', 'error'))

    def test_truncated_log_names_the_running_test(self):
        report = sample('truncated.log')
        self.assertEqual(report.verdict, ktap.INCOMPLETE)
        hung = by_path(report)['smp.ipi_storm']
        self.assertTrue(hung.incomplete)
        self.assertEqual(hung.diagnostics, ['sending 100000 IPIs to 3 CPUs'])
        self.assertTrue(has_problem(report, 'no end marker', 'error'))

    def test_bail_out(self):
        report = sample('bail.log')
        self.assertEqual(report.verdict, ktap.INCOMPLETE)
        self.assertEqual(report.bail, 'only 3 of 4 CPUs came up')
        self.assertEqual(report.end_verdict, 'bail')

    def test_real_crash_keeps_the_backtrace(self):
        report = sample('crash_real.log')
        self.assertEqual(report.verdict, ktap.INCOMPLETE)
        crashed = by_path(report)['boot.crash_demo']
        self.assertTrue(crashed.incomplete)
        self.assertTrue(any('crash_demo' in d and d.startswith('#0') for d in crashed.diagnostics))

    def test_real_uefi_log(self):
        report = sample('uefi_real.log')
        self.assertEqual(report.verdict, ktap.PASS, report.verdict_reasons)
        self.assertEqual(report.counts()['xfail'], 1)

    def test_metrics(self):
        metrics = sample('pass_nested2.log').metrics
        first = metrics[0]
        self.assertEqual(first['path'], 'lock.mcs_exclusion.acquire_ns.p99')
        self.assertEqual((first['value'], first['unit']), (812, 'ns'))
        self.assertEqual(first['attrs'], {'cpus': 4, 'iters': 100000})
        self.assertEqual(first['test'], 'lock.mcs_exclusion')
        self.assertEqual(metrics[-1]['test'], 'tlb.sync.broadcast')

    def test_histogram(self):
        hists = sample('pass_nested2.log').histograms
        self.assertEqual(len(hists), 1)
        hist = hists[0]
        self.assertEqual((hist['path'], hist['unit'], hist['bucket'], hist['cpus']),
                         ('lock.latency.acquire', 'ns', 100, 4))
        self.assertEqual(hist['buckets'], [[0, [10, 12, 9, 11]], [100, [5, 3, 6, 4]],
                                           [400, [0, 1, 0, 0]]])
        self.assertEqual((hist['samples'], hist['min'], hist['avg'], hist['max'],
                          hist['overflows']), (62, 12, 95, 480, 1))
        self.assertTrue(hist['complete'])
        self.assertEqual(hist['test'], 'lock.latency')

    def test_torture_lines(self):
        torture = sample('pass_nested2.log').torture
        self.assertEqual(torture[0], {'lock': 'lock_ticket', 'kind': 'writes', 'total': 93746,
                                      'max': 23510, 'min': 23301, 'imbalance': False,
                                      'fail': 0, 'flagged': False,
                                      'test': 'lock.ticket_exclusion', 'line': 25})
        broken = torture[1]
        self.assertTrue(broken['imbalance'] and broken['flagged'])
        self.assertEqual(broken['fail'], 37)


class Constructs(unittest.TestCase):
    """Smaller cases, written inline."""

    def test_xfail_with_ok_or_not_ok_and_todo(self):
        report = parse('KTAP version 1\n1..3\nok 1 a # XFAIL known\nnot ok 2 b # XFAIL known\n'
                       'not ok 3 c # TODO later\n')
        self.assertEqual([t.status for t in report.tests], [ktap.XFAIL] * 3)
        self.assertEqual(report.verdict, ktap.PASS)

    def test_skip_on_not_ok_is_a_skip(self):
        report = parse('KTAP version 1\n1..1\nnot ok 1 a # SKIP no hardware\n')
        self.assertEqual(report.tests[0].status, ktap.SKIP)
        self.assertEqual(report.verdict, ktap.PASS)

    def test_top_level_leaf(self):
        report = parse('KTAP version 1\n1..1\nnot ok 1 lonely\n')
        self.assertEqual(report.tests[0].path, 'lonely')
        self.assertEqual(report.verdict, ktap.FAIL)

    def test_tap14_subtest_line_at_parent_indentation(self):
        report = parse('KTAP version 1\n1..1\n# Subtest: outer\n    1..1\n    ok 1 inner\n'
                       'ok 1 outer\n')
        self.assertEqual([t.path for t in report.tests], ['outer.inner'])
        self.assertEqual(report.verdict, ktap.PASS)

    def test_odd_but_consistent_indentation(self):
        text = ('KTAP version 1\n1..1\n   KTAP version 1\n   1..1\n      KTAP version 1\n'
                '      1..1\n      ok 1 deep\n   ok 1 mid\nok 1 top\n')
        report = parse(text)
        self.assertEqual([t.path for t in report.tests], ['top.mid.deep'])
        self.assertEqual(report.verdict, ktap.PASS)

    def test_suite_not_ok_without_failing_test_is_reported(self):
        report = parse('KTAP version 1\n1..1\n  1..1\n  ok 1 fine\n  # setup of suite failed\n'
                       'not ok 1 suite\n')
        self.assertEqual(report.verdict, ktap.FAIL)
        self.assertIn('suite', by_path(report))
        self.assertEqual(by_path(report)['suite'].diagnostics, ['setup of suite failed'])

    def test_subtest_without_result_line(self):
        report = parse('KTAP version 1\n1..2\n  1..1\n  ok 1 a\n  1..1\n  ok 1 b\nok 2 two\n')
        self.assertEqual(report.verdict, ktap.INCOMPLETE)
        self.assertTrue(has_problem(report, 'has no result line'))
        # The list without a result line is reported itself, as unfinished.
        self.assertEqual(sorted(t.path for t in report.tests), ['?', '?.a', 'two.b'])
        self.assertTrue(by_path(report)['?'].incomplete)

    def test_more_results_than_planned(self):
        report = parse('KTAP version 1\n1..1\nok 1 a\nok 2 b\n')
        self.assertEqual(report.verdict, ktap.INCOMPLETE)
        self.assertTrue(has_problem(report, 'plan 1..1 but 2 results'))

    def test_restart_means_reset(self):
        report = parse('KTAP version 1\n1..1\n  1..1\n  ok 1 a\nKTAP version 1\n1..1\nok 1 x\n')
        self.assertEqual(report.verdict, ktap.INCOMPLETE)
        self.assertTrue(has_problem(report, 'started again'))

    def test_bail_out_indented_anywhere(self):
        for line in ('Bail out!', '    Bail out! lost CPU 2', '\tBail out! tab'):
            report = parse('KTAP version 1\n1..1\n  1..2\n  ok 1 a\n%s\n' % line)
            self.assertEqual(report.verdict, ktap.INCOMPLETE, line)
            self.assertIsNotNone(report.bail)

    def test_end_marker_cross_check(self):
        claims_fail = parse('KTAP version 1\n1..1\nok 1 a\n# locklab: end verdict=fail\n')
        self.assertEqual(claims_fail.verdict, ktap.FAIL)
        claims_pass = parse('KTAP version 1\n1..1\nnot ok 1 a\n# locklab: end verdict=pass\n')
        self.assertEqual(claims_pass.verdict, ktap.FAIL)
        bail = parse('KTAP version 1\n1..1\nok 1 a\n# locklab: end verdict=bail\n')
        self.assertEqual(bail.verdict, ktap.INCOMPLETE)

    def test_end_marker_required_by_default(self):
        text = 'KTAP version 1\n1..1\nok 1 a\n'
        self.assertEqual(ktap.parse_text(text).verdict, ktap.INCOMPLETE)
        self.assertEqual(ktap.parse_text(text + '# locklab: end verdict=pass\n').verdict,
                         ktap.PASS)

    def test_lines_after_end_marker_are_ignored(self):
        report = ktap.parse_text('KTAP version 1\n1..1\nok 1 a\n# locklab: end verdict=pass\n'
                                 'not ok 2 b\nBail out!\n')
        self.assertEqual(report.verdict, ktap.PASS)

    def test_no_ktap_at_all(self):
        report = ktap.parse_text('SeaBIOS (version 1.16)\nBooting from DVD/CD...\n')
        self.assertFalse(report.started)
        self.assertEqual(report.verdict, ktap.INCOMPLETE)

    def test_cr_nul_and_escapes(self):
        text = (b'\x1b[2J\x1b[1;1H\x00garbage\rKTAP version 1\r\n1..1\r\n\x1b[0m  1..1\x00\r\n'
                b'  ok 1 \x1b[32ma\x1b[0m\r\nok 1 s\r\n# locklab: end verdict=pass\r\n')
        report = ktap.parse_text(text)
        self.assertEqual(report.verdict, ktap.PASS, report.verdict_reasons)
        self.assertEqual(report.tests[0].path, 's.a')

    def test_ktap_header_after_noise_on_the_same_line(self):
        report = parse("  Booting `locklab'KTAP version 1\n1..1\nok 1 a\n")
        self.assertEqual(report.verdict, ktap.PASS)

    def test_indented_top_level(self):
        report = parse('  KTAP version 1\n  1..1\n    1..1\n    ok 1 a\n  ok 1 s\n')
        self.assertEqual([t.path for t in report.tests], ['s.a'])
        self.assertEqual(report.verdict, ktap.PASS, report.verdict_reasons)

    def test_cr_only_line_ends(self):
        report = parse('KTAP version 1\r1..1\rok 1 a\r')
        self.assertEqual(report.verdict, ktap.PASS)

    def test_garbage_inside_ktap_becomes_diagnostics(self):
        report = parse('KTAP version 1\n1..1\n  1..1\n@@ corrupt \x7f line\n  not ok 1 a\n'
                       'ok 1 s\n')
        self.assertEqual(report.tests[0].diagnostics, ['@@ corrupt  line'])

    def test_histogram_problems(self):
        report = parse('KTAP version 1\n1..1\n# hist-begin: h unit=cycles bucket=10 cpus=2\n'
                       '# 0 1\n# 10 1 1\n# hist-end: h samples=9 min=1 avg=2 max=3 '
                       'overflows=0\n# hist-begin: cut unit=ns bucket=1 cpus=1\n# 0 4\nok 1 a\n')
        first, second = report.histograms
        self.assertEqual(first['unit'], 'cycles')
        self.assertTrue(first['complete'])
        self.assertFalse(second['complete'])
        self.assertTrue(has_problem(report, '1 counts for 2 cpus'))
        self.assertTrue(has_problem(report, 'buckets hold 3 samples'))
        self.assertTrue(has_problem(report, 'no hist-end'))
        self.assertEqual(report.verdict, ktap.PASS)    # measurement problems only warn

    def test_metric_with_odd_value(self):
        report = parse('KTAP version 1\n1..1\n# metric: a.b -1.5e3 cycles\n'
                       '# metric: a.c n/a ns\nok 1 a\n')
        self.assertEqual(report.metrics[0]['value'], -1500.0)
        self.assertEqual(report.metrics[1]['value'], 'n/a')
        self.assertEqual(report.metrics[0]['test'], 'a')

    def test_events_for_live_use(self):
        parser = ktap.Parser()
        events = []
        for t, line in enumerate(['noise', 'KTAP version 1', '1..1', '  KTAP version 1',
                                  '  # Subtest: boot', '  1..1',
                                  '  # running: boot.x timeout_ms=250', '  ok 1 x', 'ok 1 boot',
                                  '# locklab: end verdict=pass']):
            events.extend(e[:2] if e[0] == 'result' else e for e in parser.feed(line, t))
        self.assertEqual(events, [('start',), ('plan', 0, 1), ('plan', 1, 1),
                                  ('running', 'boot.x', 250), ('result', 1), ('result', 0),
                                  ('end', 'pass')])
        report = parser.finish()
        self.assertEqual(report.tests[0].duration, 1)


class Hostile(unittest.TestCase):
    """Whatever arrives on the serial port, the parser answers with a verdict."""

    def check(self, data, require_end=True):
        report = ktap.parse_text(data, require_end=require_end)
        self.assertIn(report.verdict, (ktap.PASS, ktap.FAIL, ktap.INCOMPLETE))
        ktap.junit_tree(report)
        json.dumps(report.to_dict())
        return report

    def test_random_bytes(self):
        rng = random.Random(20261126)
        for round_ in range(60):
            size = rng.randrange(0, 6000)
            blob = bytes(rng.randrange(256) for _ in range(size))
            if round_ % 2:
                blob = b'KTAP version 1\n' + blob
            report = self.check(blob)
            self.assertEqual(report.verdict, ktap.INCOMPLETE)

    def test_random_ktap_like_lines(self):
        rng = random.Random(7)
        pieces = ['KTAP version 1', '1..3', '1..0', 'ok 1 a', 'not ok 2 b # XFAIL x',
                  'ok 3 # SKIP', '# Subtest: s', '# running: s.a timeout_ms=1',
                  '# hist-begin: h unit=ns bucket=1 cpus=1', '# 0 1', '# hist-end: h samples=1',
                  '# metric: m 1 ns', 'Bail out!', '# Totals: pass:1', 'x\x1b[1m', '']
        for _ in range(200):
            lines = [' ' * rng.choice((0, 1, 2, 4, 8)) + rng.choice(pieces)
                     for _ in range(rng.randrange(40))]
            self.check('\n'.join(lines), require_end=False)

    def test_cut_at_every_line_boundary(self):
        for name in SAMPLES:
            with open(os.path.join(DATA, name), 'rb') as log:
                lines = log.read().split(b'\n')
            for cut in range(len(lines) + 1):
                prefix = b'\n'.join(lines[:cut])
                report = self.check(prefix)
                if END_MARKER not in prefix:
                    self.assertEqual(report.verdict, ktap.INCOMPLETE, (name, cut))

    def test_cut_inside_lines(self):
        rng = random.Random(3)
        for name in SAMPLES:
            with open(os.path.join(DATA, name), 'rb') as log:
                data = log.read()
            for _ in range(40):
                prefix = data[:rng.randrange(len(data) + 1)]
                report = self.check(prefix)
                if END_MARKER not in prefix:
                    self.assertEqual(report.verdict, ktap.INCOMPLETE, (name, len(prefix)))

    def test_ten_megabyte_lines(self):
        # CPU time of this process, not wall time: a loaded host must not fail it; a parser
        # quadratic in the line length takes minutes of CPU here, a linear one about a second.
        huge = 'x' * (10 << 20)
        started = time.process_time()
        for text in (huge + '\nKTAP version 1\n1..1\nok 1 a\n',
                     'KTAP version 1\n1..1\n# ' + huge + '\nnot ok 1 a\n',
                     'KTAP version 1\n1..1\nok 1 ' + huge + '\n',
                     'KTAP version 1\n1..1\n  ' + huge):
            report = self.check(text, require_end=False)
            self.assertLess(len(json.dumps(report.to_dict())), 100000)
        self.assertLess(time.process_time() - started, 15)


class Writers(unittest.TestCase):
    def test_junit_round_trip(self):
        report = sample('fail.log')
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, 'out.xml')
            ktap.write_junit(report, path, properties={'accel': 'tcg'})
            root = ET.parse(path).getroot()
        cases = root.findall('.//testcase')
        self.assertEqual(len(cases), len(report.tests))
        self.assertEqual(root.get('failures'), '2')
        failure = [c for c in cases if c.get('name') == 'ticket_exclusion'][0].find('failure')
        self.assertIn('counter is 997, expected 1000', failure.get('message'))
        self.assertIn('counter is 997, expected 1000', failure.text)
        classnames = {c.get('classname') for c in cases}
        self.assertEqual(classnames, {'boot', 'lock'})

    def test_junit_skip_xfail_and_nested_classname(self):
        tree = ktap.junit_tree(sample('pass_nested2.log'))
        root = ET.fromstring(ET.tostring(tree.getroot()))
        cases = {(c.get('classname'), c.get('name')): c for c in root.iter('testcase')}
        self.assertIsNotNone(cases[('boot', 'x2apic')].find('skipped'))
        self.assertIn('XFAIL', cases[('lock', 'broken_lock_detected')].find('system-out').text)
        self.assertIn(('tlb.sync', 'broadcast'), cases)
        self.assertEqual(root.get('skipped'), '1')
        self.assertEqual(root.get('failures'), '0')

    def test_junit_incomplete_run_has_an_error_case(self):
        root = ktap.junit_tree(sample('truncated.log')).getroot()
        names = [c.get('name') for c in root.iter('testcase')]
        self.assertIn('ktap-stream', names)
        self.assertGreaterEqual(int(root.get('errors')), 2)

    def test_junit_survives_control_characters(self):
        report = parse('KTAP version 1\n1..1\nnot ok 1 a\n')
        report.tests[0].diagnostics.append('bad \x01\x02 \ud800 chars')
        buffer = io.BytesIO()
        ktap.junit_tree(report).write(buffer, encoding='utf-8')
        ET.fromstring(buffer.getvalue())

    def test_json(self):
        report = sample('pass_nested2.log')
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, 'out.json')
            ktap.write_json(report, path, extra={'run': {'accel': 'tcg'}})
            with open(path) as data:
                loaded = json.load(data)
        self.assertEqual(loaded['verdict'], 0)
        self.assertEqual(loaded['verdict_name'], 'pass')
        self.assertEqual(len(loaded['tests']), 9)
        self.assertEqual(loaded['histograms'][0]['buckets'][0], [0, [10, 12, 9, 11]])
        self.assertEqual(loaded['run'], {'accel': 'tcg'})
        self.assertEqual(len(loaded['metrics']), 3)


class CommandLine(unittest.TestCase):
    def run_cli(self, *args):
        out = io.StringIO()
        saved = sys.stdout
        sys.stdout = out
        try:
            code = ktap.main(list(args))
        finally:
            sys.stdout = saved
        return code, out.getvalue()

    def test_exit_codes(self):
        for name, code in (('pass_nested2.log', 0), ('fail.log', 1), ('truncated.log', 2),
                           ('bail.log', 2)):
            got, out = self.run_cli(os.path.join(DATA, name))
            self.assertEqual(got, code, name)
            self.assertIn('verdict: %d' % code, out)

    def test_summary_names_failures(self):
        _, out = self.run_cli(os.path.join(DATA, 'fail.log'))
        self.assertIn('not ok lock.ticket_exclusion', out)
        self.assertIn('counter is 997', out)

    def test_plain_ktap_without_end_marker(self):
        code, _ = self.run_cli('--no-end-marker', os.path.join(DATA, 'plan_mismatch.log'))
        self.assertEqual(code, 2)

    def test_missing_file(self):
        saved = sys.stderr
        sys.stderr = io.StringIO()
        try:
            code, _ = self.run_cli('/nonexistent/log')
        finally:
            sys.stderr = saved
        self.assertEqual(code, 4)


if __name__ == '__main__':
    unittest.main()
