"""The terminal view of scripts/run-qemu (scripts/termview.py) as a person sees it: whole runs
against tests/host/fake_qemu.py inside a tmux pane, the screen captured during and after the
run; and the view's figures as functions."""

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

from support import HERE, DATA, REPO
from locklab import termview

RUN_QEMU = os.path.join(REPO, 'scripts', 'run-qemu')
FAKE_QEMU = os.path.join(HERE, 'fake_qemu.py')
COLUMNS, ROWS = 120, 40


class Figures(unittest.TestCase):
    HIST = {'path': 'smp.ipi_roundtrip', 'unit': 'ns', 'max': 9100,
            'buckets': [[1000, [10, 10]], [2000, [60, 20]], [3000, [0, 0]], [9000, [0, 1]]]}

    def test_quantiles(self):
        # 101 samples: the 51st is in the 2000 bucket, the 100th too, the 101st at 9000.
        self.assertEqual(termview.hist_quantiles(self.HIST), (2000, 2000))
        tail = dict(self.HIST, buckets=[[0, [1]], [5, [1]]])
        self.assertEqual(termview.hist_quantiles(tail), (0, 5))
        self.assertIsNone(termview.hist_quantiles(dict(self.HIST, buckets=[])))

    def test_sparkline(self):
        line = termview.sparkline(self.HIST, width=8)
        self.assertEqual(len(line), 8)
        self.assertEqual(line[0], termview.SPARK_UTF8[-1])      # 1000 and 2000: the tallest
        self.assertNotEqual(line[-1], ' ')                      # one sample still shows
        self.assertEqual(set(termview.sparkline(self.HIST, utf8=False)) -
                         set(termview.SPARK_ASCII), set())

    def test_one_line_per_histogram(self):
        line = termview.hist_line(self.HIST)
        self.assertNotIn('\n', line)
        self.assertIn('p50 2000 p99 2000 max 9100 ns', line)

    def test_telling_figure_prefers_ratios(self):
        metrics = [{'path': 'lock.pv.ops', 'value': 14.7, 'unit': 'ops/ms', 'attrs': {}},
                   {'path': 'lock.pv.speedup_vs_ticket', 'value': 5.4, 'unit': 'x',
                    'attrs': {'cpus': 4}}]
        self.assertEqual(termview.telling_figure(metrics, []),
                         'lock.pv.speedup_vs_ticket 5.4 x cpus=4  (+1)')
        self.assertEqual(termview.telling_figure(metrics[:1], []), 'lock.pv.ops 14.7 ops/ms')
        self.assertEqual(termview.telling_figure([], []), '')


@unittest.skipUnless(shutil.which('tmux'), 'tmux is not installed (apt-get install tmux)')
class OnATerminal(unittest.TestCase):
    """run-qemu in a 120x40 tmux pane, as `make run` shows it to a person."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.iso = os.path.join(self.tmp.name, 'locklab.iso')
        open(self.iso, 'w').close()
        self.session = 'locklab-view-%d-%s' % (os.getpid(), self.id().rsplit('.', 1)[-1])
        self.socket = os.path.join(self.tmp.name, 'tmux.sock')   # a server of our own
        self.log = os.path.join(self.tmp.name, 'serial.log')
        self.done = os.path.join(self.tmp.name, 'exit')

    def tmux(self, *args):
        return subprocess.run(['tmux', '-S', self.socket] + list(args), check=True,
                              stdout=subprocess.PIPE, text=True, timeout=20).stdout

    def start(self, log, exit_status=1, hang=False, args=()):
        env = {'LOCKLAB_QEMU': shlex.join([sys.executable, FAKE_QEMU]),
               'FAKE_QEMU_LOG': log, 'FAKE_QEMU_EXIT': str(exit_status),
               'TERM': 'xterm-256color', 'LANG': 'C.UTF-8', 'NO_COLOR': '1'}
        if hang:
            env['FAKE_QEMU_HANG'] = '1'
        command = [sys.executable, RUN_QEMU, '--iso', self.iso, '--accel', 'tcg', '--smp', '1',
                   '--log', self.log] + list(args)
        script = 'env -u CI %s %s; echo $? > %s; sleep 60' % (
            ' '.join('%s=%s' % (k, shlex.quote(v)) for k, v in env.items()),
            shlex.join(command), shlex.quote(self.done))
        self.tmux('new-session', '-d', '-s', self.session, '-x', str(COLUMNS),
                  '-y', str(ROWS), script)
        self.addCleanup(lambda: subprocess.run(['tmux', '-S', self.socket, 'kill-server'],
                                               stderr=subprocess.DEVNULL))

    def screen(self):
        return self.tmux('capture-pane', '-p', '-t', self.session)

    def exit_code(self):
        """The runner's exit code once the shell in the pane wrote it, else None."""
        try:
            with open(self.done) as code:
                text = code.read().strip()
        except FileNotFoundError:
            return None
        return int(text) if text else None

    def wait_exit(self, limit=40):
        deadline = time.monotonic() + limit
        while self.exit_code() is None:
            self.assertLess(time.monotonic(), deadline, self.screen())
            time.sleep(0.2)
        time.sleep(0.3)
        return self.exit_code(), self.screen()

    def wait_for(self, text, limit=30):
        deadline = time.monotonic() + limit
        while True:
            screen = self.screen()
            if text in screen:
                return screen
            self.assertLess(time.monotonic(), deadline, screen)
            time.sleep(0.2)

    def assert_fits(self, screen):
        lines = screen.rstrip('\n').split('\n')
        self.assertLessEqual(len(lines), ROWS)
        self.assertTrue(all(len(line) < COLUMNS for line in lines), screen)

    def run_to_end(self, log_name, want_code, **start_args):
        """Run the view on DATA/log_name to its end, check its exit code and that the screen
        fits: what the tests of a finished run check first, written once."""
        self.start(os.path.join(DATA, log_name), **start_args)
        code, screen = self.wait_exit()
        self.assertEqual(code, want_code, screen)
        self.assert_fits(screen)
        return screen

    def test_passing_run(self):
        screen = self.run_to_end('pass_nested2.log', 0)
        self.assertNotIn('KTAP version 1', screen)         # not the raw console
        self.assertNotIn('hist-begin', screen)
        self.assertIn('PASS: 7 passed, 0 failed, 1 skipped, 1 xfail', screen)
        # Each suite that is over is one line.
        self.assertRegex(screen, r'(?m)^ok +lock +[0-9.]+ s +3 ok, 1 xfail$')
        self.assertNotRegex(screen, r'(?m)^ok +lock\.')
        self.assertIn('slowest: ', screen)
        self.assertIn('figure: lock.mcs_exclusion.acquire_ns.p99 812 ns cpus=4', screen)
        self.assertIn('log: %s' % self.log, screen)
        self.assertIn('run-qemu: verdict=pass exit=0', screen)
        self.assertEqual(screen.count('\n  cpus '), 0)      # no boot facts in this log
        with open(self.log) as log:                        # the full log is kept all the same
            self.assertIn('hist-begin', log.read())

    def test_failing_run(self):
        screen = self.run_to_end('fail.log', 1, exit_status=3)
        # The failed tests stay, with their assertion lines in full, under their suite line.
        self.assertRegex(screen, r'(?m)^FAIL +boot +[0-9.]+ s +1 ok, 1 FAIL$')
        self.assertRegex(screen, r'(?m)^FAIL +boot\.cmdline')
        self.assertIn('tests/kernel/boot_tests.c:42: 1 config error(s)', screen)
        self.assertIn('counter is 997, expected 1000', screen)
        summary = screen[screen.index('FAIL: '):]
        self.assertIn('failed:', summary)
        self.assertRegex(summary, r'boot\.cmdline +tests/kernel/boot_tests\.c:42: ')
        self.assertRegex(summary, r'lock\.ticket_exclusion +lock_ticket-torture: ')
        self.assertEqual(summary.count('config error: unknown key'), 1)

    def test_figures_and_boot_facts(self):
        screen = self.run_to_end('report_sample.log', 1, exit_status=3)
        self.assertRegex(screen, r'(?m)^  cpus +8 CPUs online')
        # A histogram is one line: its quantiles and a sparkline, not its 150 rows.
        self.assertNotRegex(screen, r'(?m)^# \d+ \d+')
        self.assertRegex(screen, r'(?m)^FAIL +smp\.tsc_skew .*smp\.tsc_skew_ns 1840 ns')
        self.assertIn('tests/kernel/smp_tests.c:391: expected skew <= 1000', screen)
        self.assertIn('figure: smp.ipi_roundtrip_ns.p99 6250 ns cpus=4', screen)

    def test_hang(self):
        hung = os.path.join(self.tmp.name, 'hang.log')
        with open(os.path.join(DATA, 'hang_real.log'), 'rb') as real, open(hung, 'wb') as out:
            out.write(real.read().replace(b'timeout_ms=2000', b'timeout_ms=100'))
        self.start(hung, hang=True)
        # During the run: the live line names the test, its time and its deadline.
        during = self.wait_for('boot.hang_demo')
        self.assertRegex(during, r"\.\. \[1/1\] boot\.hang_demo +[0-9.]+ s / 5\.4 s")
        code, screen = self.wait_exit()
        self.assertEqual(code, 3, screen)
        self.assert_fits(screen)
        self.assertRegex(screen, r'(?m)^HANG +boot\.hang_demo +[0-9.]+ s +deadline 5\.4 s')
        self.assertIn('TIMEOUT: ', screen)
        self.assertIn('timeout: test boot.hang_demo did not finish within 5.4 s', screen)

    def test_verbose_streams_the_console(self):
        self.start(os.path.join(DATA, 'pass_nested2.log'), args=['--verbose'])
        code, screen = self.wait_exit()
        self.assertEqual(code, 0, screen)
        self.assertIn('# Totals:', screen)
        self.assertNotIn('PASS: ', screen)


class NotATerminal(unittest.TestCase):
    def test_pipe_gets_the_raw_console(self):
        with tempfile.TemporaryDirectory() as tmp:
            iso = os.path.join(tmp, 'locklab.iso')
            open(iso, 'w').close()
            env = dict(os.environ, LOCKLAB_QEMU=shlex.join([sys.executable, FAKE_QEMU]),
                       FAKE_QEMU_LOG=os.path.join(DATA, 'report_sample.log'),
                       FAKE_QEMU_EXIT='3')
            env.pop('CI', None)
            proc = subprocess.run([sys.executable, RUN_QEMU, '--iso', iso, '--accel', 'tcg',
                                   '--smp', '1', '--log', os.path.join(tmp, 'x.log')],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, timeout=60)
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertIn('KTAP version 1', proc.stdout)
        self.assertIn('# hist-begin: smp.ipi_roundtrip', proc.stdout)
        self.assertNotIn('PASS: ', proc.stdout)


if __name__ == '__main__':
    unittest.main()
