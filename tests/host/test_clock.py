"""Tests of scripts/run-qemu --clock real|virtual (docs/clock.md): the QEMU options each clock
asks for, the refusal of virtual time under KVM, and what reaches the kernel's command line."""

import contextlib
import io
import json
import os
import shlex
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, 'data')
REPO = os.path.dirname(os.path.dirname(HERE))
RUN_QEMU = os.path.join(REPO, 'scripts', 'run-qemu')
FAKE_QEMU = os.path.join(HERE, 'fake_qemu.py')

sys.path.insert(0, os.path.join(REPO, 'scripts'))
from scriptload import load_script  # noqa: E402

rq = load_script('run-qemu', 'run_qemu')


def option_after(argv, flag):
    return argv[argv.index(flag) + 1]


class ClockOptions(unittest.TestCase):
    def parse_error(self, argv):
        with contextlib.redirect_stderr(io.StringIO()) as err:
            with self.assertRaises(SystemExit) as raised:
                rq.parse_args(argv)
        return raised.exception.code, err.getvalue()

    def test_default_is_real(self):
        self.assertEqual(rq.parse_args([]).clock, 'real')
        self.assertEqual(rq.parse_args(['--clock', 'virtual']).clock, 'virtual')

    def test_bad_values_exit_4(self):
        for argv in (['--clock', 'icount'], ['--clock', 'Virtual'], ['--clock']):
            code, err = self.parse_error(argv)
            self.assertEqual(code, 4, argv)
            self.assertIn('run-qemu: error:', err)

    def test_virtual_refuses_kvm(self):
        code, err = self.parse_error(['--clock', 'virtual', '--accel', 'kvm'])
        self.assertEqual(code, 4)
        self.assertIn('--clock virtual needs TCG', err)
        # auto and tcg are fine: virtual time always picks TCG.
        for accel in ('auto', 'tcg'):
            self.assertEqual(rq.parse_args(['--clock', 'virtual', '--accel', accel]).accel, accel)


class ClockCommand(unittest.TestCase):
    def command(self, *argv, accel='tcg'):
        with tempfile.TemporaryDirectory() as tmp:
            iso = os.path.join(tmp, 'a.iso')
            open(iso, 'w').close()
            opts = rq.parse_args(['--iso', iso] + list(argv))
            return rq.build_command(['qemu'], opts, accel, '', tmp)

    def test_virtual_is_single_threaded_icount(self):
        argv = self.command('--clock', 'virtual', '--smp', '4')
        self.assertEqual(option_after(argv, '-accel'), 'tcg,thread=single')
        icount = dict(kv.split('=') for kv in option_after(argv, '-icount').split(','))
        self.assertEqual(icount, {'shift': str(rq.ICOUNT_SHIFT), 'sleep': 'off',
                                  'align': 'off'})
        self.assertEqual(argv.count('-accel'), 1)

    def test_real_has_no_icount(self):
        for argv, accel, want in (((), 'tcg', 'tcg,thread=multi'),
                                  (('--clock', 'real'), 'tcg', 'tcg,thread=multi'),
                                  ((), 'kvm', 'kvm')):
            command = self.command(*argv, accel=accel)
            self.assertEqual(option_after(command, '-accel'), want)
            self.assertNotIn('-icount', command)

    def test_kernel_cmdline(self):
        self.assertEqual(rq.kernel_cmdline('tcg', 2, 'tests=lock.*', 'virtual'),
                         'exit=qemu accel=tcg host_cpus=2 clock=virtual tests=lock.*')
        # Real time is the kernel's default and is not passed, so kernels older than the
        # clock= option still boot under the same runner.
        self.assertEqual(rq.kernel_cmdline('tcg', 2, '', 'real'),
                         'exit=qemu accel=tcg host_cpus=2')
        self.assertEqual(rq.kernel_cmdline('kvm', 8), 'exit=qemu accel=kvm host_cpus=8')


class ClockRuns(unittest.TestCase):
    """Whole runs against the stand-in QEMU."""

    def run_qemu(self, *args):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        iso = os.path.join(tmp.name, 'locklab.iso')
        open(iso, 'w').close()
        self.argv_file = os.path.join(tmp.name, 'argv.json')
        env = dict(os.environ, CI='1', LOCKLAB_QEMU=shlex.join([sys.executable, FAKE_QEMU]),
                   FAKE_QEMU_EXIT='1', FAKE_QEMU_ARGV=self.argv_file,
                   FAKE_QEMU_LOG=os.path.join(DATA, 'pass_nested2.log'))
        env.pop('FAKE_QEMU_HANG', None)
        command = [sys.executable, RUN_QEMU, '--iso', iso, '--smp', '2',
                   '--log', os.path.join(tmp.name, 'serial.log'),
                   '--json', os.path.join(tmp.name, 'run.json')] + list(args)
        proc = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=60, text=True)
        self.json_file = os.path.join(tmp.name, 'run.json')
        return proc

    def test_virtual_run(self):
        proc = self.run_qemu('--clock', 'virtual', '--accel', 'auto')
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn('run-qemu: accel=tcg (clock=virtual', proc.stderr)
        self.assertRegex(proc.stderr.strip().splitlines()[-1],
                         r'\(bios, smp=2, tcg clock=virtual, ')
        with open(self.argv_file) as recorded:
            argv = json.load(recorded)
        self.assertIn('-icount', argv)
        self.assertIn(' clock=virtual', option_after(argv, '-fw_cfg'))
        with open(self.json_file) as report:
            self.assertEqual(json.load(report)['run']['clock'], 'virtual')

    def test_real_run(self):
        proc = self.run_qemu('--accel', 'tcg')
        self.assertEqual(proc.returncode, 0, proc.stderr)
        with open(self.argv_file) as recorded:
            argv = json.load(recorded)
        self.assertNotIn('-icount', argv)
        self.assertNotIn('clock=', option_after(argv, '-fw_cfg'))
        with open(self.json_file) as report:
            self.assertEqual(json.load(report)['run']['clock'], 'real')

    def test_virtual_with_kvm_is_a_setup_error(self):
        proc = self.run_qemu('--clock', 'virtual', '--accel', 'kvm')
        self.assertEqual(proc.returncode, 4)
        self.assertFalse(os.path.exists(self.argv_file), 'QEMU must not start')


if __name__ == '__main__':
    unittest.main()
