"""Tests of scripts/test-matrix: the matrix file format and whole runs with a fake QEMU."""

import os
import shlex
import subprocess
import sys
import tempfile
import unittest

from support import HERE, DATA, REPO
from locklab import matrix as tm

TEST_MATRIX = os.path.join(REPO, 'scripts', 'test-matrix')
FAKE_QEMU = os.path.join(HERE, 'fake_qemu.py')


class MatrixFile(unittest.TestCase):
    def test_project_matrix_parses(self):
        with open(os.path.join(REPO, 'tests', 'matrix.txt')) as matrix:
            legs = tm.parse_matrix(matrix.read())
        names = [leg.name for leg in legs]
        self.assertIn('bios-smp1', names)
        crash = legs[names.index('crash-demo')]
        self.assertEqual(crash.expected, 2)
        self.assertEqual(crash.args, ['--smp', '1', '--cmdline', 'tests=boot.crash_demo'])
        self.assertTrue(crash.regex.search('#  #0  ffffffff8020d3ea crash_demo_fault+0xa'))
        self.assertFalse(crash.regex.search('# cmdline: tests=boot.crash_demo'))

    def test_format(self):
        legs = tm.parse_matrix(
            '# comment | 1 | x\n'
            '\n'
            'a | | --smp 1\n'
            '  # indented comment\n'
            "b | 1 | --cmdline 'x=1 y=2' | # config error\n"
            'c | 2 | --smp 2 | one|two # not a comment\n')
        self.assertEqual([(l.name, l.expected) for l in legs], [('a', 0), ('b', 1), ('c', 2)])
        self.assertEqual(legs[1].args, ['--cmdline', 'x=1 y=2'])
        self.assertEqual(legs[1].regex.pattern, '# config error')
        self.assertEqual(legs[2].regex.pattern, 'one|two # not a comment')
        self.assertIsNone(legs[0].regex)

    def test_bad_lines(self):
        for text in ('just a name\n', 'a | x | --smp 1\n', 'a b | 0 | x\n',
                     'a | 0 | x\na | 0 | y\n', "a | 0 | --cmdline 'open\n", 'a | 0 | x | (\n'):
            with self.assertRaises(tm.MatrixError, msg=text):
                tm.parse_matrix(text)

    def test_select(self):
        legs = tm.parse_matrix('bios-smp1|0|x\nbios-smp4|0|x\nuefi-smp1|0|x\n')
        self.assertEqual([l.name for l in tm.select(legs, ['bios-*'])], ['bios-smp1', 'bios-smp4'])
        self.assertEqual([l.name for l in tm.select(legs, ['*smp1,uefi*'])],
                         ['bios-smp1', 'uefi-smp1'])
        self.assertEqual(tm.select(legs, None), legs)


class MatrixRuns(unittest.TestCase):
    def run_matrix(self, matrix_text, *args):
        with tempfile.TemporaryDirectory() as tmp:
            iso = os.path.join(tmp, 'locklab.iso')
            open(iso, 'w').close()
            matrix = os.path.join(tmp, 'matrix.txt')
            with open(matrix, 'w') as out:
                out.write(matrix_text.replace('ISO', iso))
            env = dict(os.environ, CI='1',
                       LOCKLAB_QEMU=shlex.join([sys.executable, FAKE_QEMU]))
            for key in ('FAKE_QEMU_HANG', 'FAKE_QEMU_STDERR', 'FAKE_QEMU_ARGV'):
                env.pop(key, None)
            env['FAKE_QEMU_LOG'] = os.path.join(DATA, 'fail.log')
            env['FAKE_QEMU_EXIT'] = '3'
            proc = subprocess.run([sys.executable, TEST_MATRIX, '--matrix', matrix,
                                   '--outdir', os.path.join(tmp, 'out')] + list(args),
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, timeout=60)
            self.outputs = sorted(os.listdir(os.path.join(tmp, 'out'))) \
                if os.path.isdir(os.path.join(tmp, 'out')) else []
        return proc

    def test_all_pass(self):
        proc = self.run_matrix('fails | 1 | --iso ISO --accel tcg | # config error\n'
                               'torture | 1 | --iso ISO --accel tcg | Fail: 3 !!!\n')
        lines = proc.stdout.splitlines()
        self.assertEqual(proc.returncode, 0, proc.stdout)
        self.assertRegex(lines[0], r'^PASS fails \(exit 1, [0-9.]+ s\)$')
        self.assertEqual(lines[-1], '2 passed, 0 failed')
        self.assertEqual(self.outputs, ['fails.log', 'fails.log.raw', 'fails.xml', 'torture.log',
                                        'torture.log.raw', 'torture.xml'])

    def test_failures_show_the_log_tail(self):
        proc = self.run_matrix('wrong-exit | 0 | --iso ISO --accel tcg\n'
                               'no-match | 1 | --iso ISO --accel tcg | no such text\n'
                               'ok | 1 | --iso ISO --accel tcg\n')
        lines = proc.stdout.splitlines()
        self.assertEqual(proc.returncode, 1)
        self.assertEqual(lines[-1], '1 passed, 2 failed')
        self.assertTrue(lines[0].startswith('FAIL wrong-exit: expected exit 0, got 1 \u2014 '))
        self.assertIn('verdict=fail', lines[0])
        self.assertIn('    | # locklab: end verdict=fail', lines)
        self.assertTrue(any(l.startswith('FAIL no-match: expected exit 1, got 1 \u2014 no match')
                            for l in lines))

    def test_host_leg(self):
        proc = self.run_matrix('host-ok | 0 | !true\n'
                               'host-bad | 0 | !sh -c "echo broken; exit 3"\n')
        lines = proc.stdout.splitlines()
        self.assertRegex(lines[0], r'^PASS host-ok \(exit 0, [0-9.]+ s\)$')
        self.assertEqual(lines[1], 'FAIL host-bad: expected exit 0, got 3 \u2014 '
                         "sh -c 'echo broken; exit 3' exited 3")
        self.assertIn('    | broken', lines)
        self.assertEqual(lines[-1], '1 passed, 1 failed')

    def test_only_and_list(self):
        text = 'a1 | 1 | --iso ISO\na2 | 1 | --iso ISO\nb1 | 1 | --iso ISO\n'
        listed = self.run_matrix(text, '--list', '--only', 'a*')
        self.assertEqual([l.split()[0] for l in listed.stdout.splitlines()], ['a1', 'a2'])
        proc = self.run_matrix(text, '--only', 'b1')
        self.assertEqual(proc.stdout.splitlines()[-1], '1 passed, 0 failed')

    def test_unreadable_matrix(self):
        proc = subprocess.run([sys.executable, TEST_MATRIX, '--matrix', '/nonexistent'],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.assertEqual(proc.returncode, 4)


if __name__ == '__main__':
    unittest.main()
