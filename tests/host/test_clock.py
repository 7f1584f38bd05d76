"""Tests of scripts/run-qemu --clock real|virtual (docs/clock.md): the QEMU options each clock
asks for, the refusal of virtual time under KVM, and what reaches the kernel's command line."""

import contextlib
import io
import json
import os
import tempfile
import unittest

from support import fake_qemu_run, option_after
from locklab import runner_options, runner_qemu


class ClockOptions(unittest.TestCase):
    def parse_error(self, argv):
        with contextlib.redirect_stderr(io.StringIO()) as err:
            with self.assertRaises(SystemExit) as raised:
                runner_options.parse_args(argv)
        return raised.exception.code, err.getvalue()

    def test_default_is_real(self):
        self.assertEqual(runner_options.parse_args([]).clock, 'real')
        self.assertEqual(runner_options.parse_args(['--clock', 'virtual']).clock, 'virtual')

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
            self.assertEqual(runner_options.parse_args(['--clock', 'virtual', '--accel', accel]).accel, accel)


class ClockCommand(unittest.TestCase):
    def command(self, *argv, accel='tcg'):
        with tempfile.TemporaryDirectory() as tmp:
            iso = os.path.join(tmp, 'a.iso')
            open(iso, 'w').close()
            opts = runner_options.parse_args(['--iso', iso] + list(argv))
            return runner_qemu.build_command(['qemu'], opts, accel, '', tmp)

    def test_virtual_is_single_threaded_icount(self):
        argv = self.command('--clock', 'virtual', '--smp', '4')
        self.assertEqual(option_after(argv, '-accel'), 'tcg,thread=single')
        icount = dict(kv.split('=') for kv in option_after(argv, '-icount').split(','))
        self.assertEqual(icount, {'shift': str(runner_qemu.ICOUNT_SHIFT), 'sleep': 'off',
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
        self.assertEqual(runner_qemu.kernel_cmdline('tcg', 2, 'tests=lock.*', 'virtual'),
                         'exit=qemu accel=tcg host_cpus=2 clock=virtual tests=lock.*')
        # Real time is the kernel's default and is not passed, so kernels older than the
        # clock= option still boot under the same runner.
        self.assertEqual(runner_qemu.kernel_cmdline('tcg', 2, '', 'real'),
                         'exit=qemu accel=tcg host_cpus=2')
        self.assertEqual(runner_qemu.kernel_cmdline('kvm', 8), 'exit=qemu accel=kvm host_cpus=8')


class ClockRuns(unittest.TestCase):
    """Whole runs against the stand-in QEMU."""

    def run_qemu(self, *args):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.argv_file = os.path.join(tmp.name, 'argv.json')
        self.json_file = os.path.join(tmp.name, 'run.json')
        open(os.path.join(tmp.name, 'locklab.iso'), 'w').close()
        proc, _ = fake_qemu_run(tmp.name, ['--json', self.json_file] + list(args),
                                log='pass_nested2.log', smp=2)
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
