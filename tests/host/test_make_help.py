"""`make help`: every target and user variable of the Makefile with its description and default,
read from the Makefile's own `##` texts, so the list cannot drift from what make does."""

import os
import re
import shutil
import subprocess
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@unittest.skipUnless(shutil.which('make'), 'make is not installed')
class MakeHelp(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        proc = subprocess.run(['make', '--no-print-directory', '-s', 'help'], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=60)
        cls.returncode, cls.out, cls.err = proc.returncode, proc.stdout, proc.stderr
        targets, variables, section = {}, {}, None
        for line in proc.stdout.splitlines():
            if not line.startswith('  '):
                section = targets if line.startswith('Targets') else variables
                continue
            name, _, text = line.strip().partition(' ')
            section[name] = text.strip()
        cls.targets = targets
        cls.variables = {n.split('=', 1)[0]: (n.split('=', 1)[1], d)
                         for n, d in variables.items()}

    def test_lists_the_main_targets(self):
        self.assertEqual(self.returncode, 0, self.err)
        for target in ('run', 'test', 'bench', 'report', 'pxe', 'test-pxe', 'test-lava',
                       'deps', 'help', 'all'):
            self.assertIn(target, self.targets)
            self.assertTrue(self.targets[target], target)

    def test_variables_with_defaults(self):
        for name, default in (('SMP', '4'), ('ACCEL', 'auto'), ('FW', 'bios'),
                              ('MACHINE', 'q35'), ('MEM', ''), ('CMDLINE', ''),
                              ('VERBOSE', ''), ('BENCH', 'full'), ('BUILD', 'build')):
            self.assertIn(name, self.variables)
            self.assertEqual(self.variables[name][0], default, name)
            self.assertTrue(self.variables[name][1], name)

    def test_every_phony_target_is_described(self):
        """A target added without `##` would be missing from make help: say which."""
        with open(os.path.join(REPO, 'Makefile')) as makefile:
            text = makefile.read()
        phony = set()
        for match in re.finditer(r'^\.PHONY:(.*)$', text, re.M):
            phony.update(match.group(1).split())
        defined = set(re.findall(r'^([a-z][a-z0-9-]*):', text, re.M))
        missing = sorted((phony & defined) - set(self.targets))
        self.assertEqual(missing, [], 'targets without a ## description: %s' % missing)


if __name__ == '__main__':
    unittest.main()
