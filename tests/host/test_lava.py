"""Tests of scripts/lava: the monitors LAVA uses to read the KTAP console, run through a small
model of LAVA's monitor loop (no lava-dispatcher needed), and the job templates."""

import os
import random
import re
import unittest

from support import DATA
from locklab import ktap
from locklab import lava as lavalib


try:
    import yaml
except ImportError:      # python3-yaml comes with lava-dispatcher
    yaml = None


class MonitorModel:
    """What LAVA's lava-test-monitor does with a console (lava_dispatcher/actions/test/
    monitor.py over pexpect): monitors run in order; each waits for its start regex, then
    repeatedly takes the earliest match among [end, pattern] (a tie goes to end) in what has
    arrived so far, dropping the text up to the match's end, until end matches.  Data arrives
    in chunks, so a pattern can see part of a line."""

    WINDOW = 4000          # pexpect's searchwindowsize in LAVA's ShellCommand

    def __init__(self, monitors, chunks):
        self.monitors = monitors
        self.chunks = list(chunks)
        self.buffer = ''
        self.results = []

    def _search(self, patterns, text):
        best = None
        for index, regex in enumerate(patterns):
            m = regex.search(text)
            if m and (best is None or m.start() < best[1].start()):
                best = (index, m)
        return best

    def _expect(self, patterns):
        # pexpect 4's Expecter: search what is left, then each new chunk together with the
        # last WINDOW characters before it; text that slides out of the window is dropped.
        text = self.buffer[-self.WINDOW:]
        while True:
            best = self._search(patterns, text)
            if best:
                self.buffer = text[best[1].end():]
                return best
            if not self.chunks:
                return None, None
            data = self.chunks.pop(0)
            if len(data) >= self.WINDOW or not text:
                text = data[-self.WINDOW:]
            else:
                text = (text + data)[-self.WINDOW:]

    def run(self):
        for mon in self.monitors:
            start = re.compile(mon['start'], re.DOTALL)
            if self._expect([start])[0] is None:
                return 'no start for %s' % mon['name']
            end = re.compile(mon['end'], re.DOTALL)
            pattern = re.compile(mon['pattern'], re.DOTALL)
            while True:
                index, m = self._expect([end, pattern])
                if index is None:
                    return 'no end for %s' % mon['name']
                if index == 0:
                    break
                self._record(mon, m.groupdict())
        return None

    def _record(self, mon, match):
        # lava_dispatcher TestMonitorAction.check_patterns
        if 'result' in match:
            fix = mon.get('fixupdict') or {}
            if match['result'] in fix:
                match['result'] = fix[match['result']]
            if match['result'] not in ('pass', 'fail', 'skip', 'unknown'):
                self.results.append({'bad': match['result']})
                return
            result = {'definition': mon['name'].replace(' ', '-').lower(),
                      'case': re.sub(r'\W+', '_', match['test_case_id'].strip().lower()),
                      'result': match['result']}
            if 'measurement' in match:
                result['measurement'] = match['measurement']
            if 'units' in match:
                result['units'] = match['units']
            self.results.append(result)


def chunked(text, rng, largest=200):
    out, pos = [], 0
    while pos < len(text):
        size = rng.randint(1, largest)
        out.append(text[pos:pos + size])
        pos += size
    return out


def console(name, crlf=True):
    with open(os.path.join(DATA, name), encoding='utf-8', errors='replace') as src:
        text = src.read()
    return text.replace('\n', '\r\n') if crlf else text


class Monitors(unittest.TestCase):
    def check_log(self, name, seed):
        text = console(name)
        report = ktap.parse_text(text)
        suites = lavalib.suites_from_report(report)
        rng = random.Random(seed)
        # LAVA reads at most spawn_maxread characters at a time (2048 in test-lava's device)
        for chunks in (chunked(text, rng, 2048), chunked(text, rng), chunked(text, rng, 7)):
            model = MonitorModel(lavalib.monitors(suites), chunks)
            self.assertIsNone(model.run(), name)
            self.assertFalse([r for r in model.results if 'bad' in r], name)
            problems = lavalib.compare(report, ktap, model.results)
            self.assertEqual(problems, [], name)
        return report, model.results

    def test_sample_logs(self):
        for seed, name in enumerate(('report_sample.log', 'pass_nested2.log', 'fail.log',
                                     'uefi_real.log')):
            self.check_log(name, seed)

    def test_results_of_the_sample(self):
        report, results = self.check_log('report_sample.log', 42)
        cases = {(r['definition'], r['case']): r for r in results
                 if r.get('measurement') is None}
        self.assertEqual(cases[('boot', 'x2apic')]['result'], 'skip')
        self.assertEqual(cases[('smp', 'tsc_skew')]['result'], 'fail')
        self.assertEqual(cases[('boot', 'cmdline')]['result'], 'pass')
        self.assertEqual(cases[('locklab', 'totals')]['result'], 'fail')
        self.assertEqual(cases[('boot', 'cmdline')]['units'], '')
        measurements = [r for r in results if r.get('measurement') is not None]
        self.assertEqual(len(measurements), len(report.metrics))
        first = [r for r in measurements if r['case'] == 'lock_mcs_throughput'][0]
        self.assertEqual(
            (first['definition'], first['measurement'], first['units'], first['result']),
            ('lock', '35100000', 'acq/s', 'pass'))

    def test_xfail_and_nested_suites(self):
        report, results = self.check_log('pass_nested2.log', 7)
        cases = {(r['definition'], r['case']): r['result'] for r in results}
        self.assertEqual(cases[('lock', 'broken_lock_detected')], 'pass')     # XFAIL
        self.assertEqual(cases[('tlb', 'sync')], 'pass')                      # nested suite
        self.assertEqual(cases[('tlb', 'broadcast')], 'pass')

    def test_compare_finds_mismatches(self):
        text = console('report_sample.log')
        report = ktap.parse_text(text)
        model = MonitorModel(lavalib.monitors(lavalib.suites_from_report(report)),
                             chunked(text, random.Random(1)))
        model.run()
        results = [dict(r) for r in model.results]
        skip = [r for r in results if r['case'] == 'x2apic'][0]
        skip['result'] = 'pass'
        results.remove([r for r in results if r['case'] == 'nmi_backtrace'][0])
        results.remove([r for r in results if r['case'] == 'tlb_lazy_initiator_ns'][0])
        results.append({'definition': 'boot', 'case': 'ghost', 'result': 'pass',
                        'measurement': None})
        problems = '\n'.join(lavalib.compare(report, ktap, results))
        self.assertIn('boot/x2apic: result pass, KTAP says skip', problems)
        self.assertIn('KTAP test smp.nmi_backtrace (pass) is missing', problems)
        self.assertIn('metric tlb/tlb_lazy_initiator_ns = 1980 ns is missing', problems)
        self.assertIn('boot/ghost (pass) matches no KTAP result line', problems)

    def test_pattern_needs_whole_lines(self):
        rx = re.compile(lavalib.PATTERN, re.DOTALL)
        self.assertIsNone(rx.search('\n  ok 5 fairn'))
        self.assertIsNone(rx.search('\n# metric: a.b 12'))
        m = rx.search('\n  ok 5 fairness # SKIP needs 2 CPUs\r\n')
        self.assertEqual((m.group('test_case_id'), m.group('result')), ('fairness', 'SKIP'))
        m = rx.search('\n  not ok 2 tsc_skew\n')
        self.assertEqual((m.group('test_case_id'), m.group('result')), ('tsc_skew', 'not ok'))
        m = rx.search('# metric: smp.tsc_skew_ns -9 ns cpus=2 uncertainty_ns=40\n')
        self.assertEqual(m.group('test_case_id', 'measurement', 'units', 'result'),
                         ('smp.tsc_skew_ns', '-9', 'ns', ''))
        self.assertIsNone(rx.search('ok 1 boot\n'))           # a suite's own line ends it
        self.assertIsNone(rx.search('# metric: x.y n/a ns\n'))


class Templates(unittest.TestCase):
    def test_suites_from_tests(self):
        self.assertEqual(lavalib.suites_from_tests('exit=qemu tests=smp.*,boot.cmdline'),
                         ['boot', 'smp'])
        self.assertIsNone(lavalib.suites_from_tests('tests=*.cmdline'))
        self.assertIsNone(lavalib.suites_from_tests('bench=1'))

    def test_fw_cfg_option(self):
        self.assertEqual(lavalib.fw_cfg_option('exit=qemu'),
                         '-fw_cfg name=opt/locklab/cmdline,string=exit=qemu')
        self.assertEqual(lavalib.fw_cfg_option('exit=qemu tests=a.*,b.*'),
                         '-fw_cfg "name=opt/locklab/cmdline,string=exit=qemu tests=a.*,,b.*"')

    def test_render_rejects_unknown_placeholders(self):
        with self.assertRaises(KeyError):
            lavalib.render('a: @NOPE@\n', {})

    @unittest.skipIf(yaml is None, 'python3-yaml is not installed (comes with lava-dispatcher)')
    def test_jobs_are_valid_yaml_with_the_monitors(self):
        qemu = lavalib.render(lavalib.template('qemu-job.yaml.in'), {
            'JOB_NAME': 'x', 'JOB_MINUTES': 10, 'MEMORY': 512, 'SMP': 2,
            'FW_CFG': lavalib.fw_cfg_option('exit=qemu tests=boot.*'),
            'ISO_URL': 'https://example.org/locklab.iso'}, ['boot'])
        job = yaml.safe_load(qemu)
        self.assertEqual(job['context']['arch'], 'x86_64')
        self.assertIn('-device isa-debug-exit,iobase=0xf4,iosize=0x04',
                      job['context']['extra_options'])
        self.assertIn('-no-reboot', job['context']['extra_options'])
        self.assertEqual(job['actions'][0]['deploy']['images']['iso']['image_arg'],
                         '-cdrom {iso}')
        monitors = job['actions'][2]['test']['monitors']
        self.assertEqual([m['name'] for m in monitors], ['boot', 'locklab'])
        self.assertEqual(monitors[0]['pattern'], lavalib.PATTERN)
        self.assertEqual(monitors[0]['fixupdict'][''], 'pass')
        starts = [m['start'] for m in monitors]
        self.assertEqual(len(set(starts)), len(starts))
        pxe = lavalib.render(lavalib.template('pxe-grub-job.yaml.in'), {
            'JOB_NAME': 'x', 'JOB_MINUTES': 10, 'DEVICE_TYPE': 'x86-grub',
            'KERNEL_URL': 'https://example.org/locklab.elf',
            'KERNEL_OPTIONS': "exit=halt ''tests=lock.*''"}, ['boot', 'lock'])
        job = yaml.safe_load(pxe)
        boot = job['actions'][1]['boot']
        self.assertEqual(boot['method'], 'grub')
        self.assertEqual(boot['commands'][1],
                         "multiboot2 (tftp,{SERVER_IP})/{KERNEL} $locklab_options exit=halt "
                         "'tests=lock.*'")
        self.assertEqual(job['actions'][0]['deploy']['to'], 'tftp')


if __name__ == '__main__':
    unittest.main()
