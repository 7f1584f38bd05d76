"""Tests of scripts/test-kvm: what it demands of a KVM boot's log, and its SKIP without KVM."""

import os
import subprocess
import unittest

from support import REPO
from locklab import runner_qemu
from locklab import testkvm as tk

TIME = ('# time: TSC 2300.000 MHz (from kvmclock (the pvclock scale)), invariant TSC: no\n'
        '  # time: TSC source kvmclock, 2300.000 MHz\n')
BY_HC = '# kvm: PV unhalt: PV locks kick by KVM_HC_KICK_CPU, hypercall (vmcall)\n'
BY_NONE = ('# kvm: PV unhalt offered but no hypercall works (vmcall: the host re-ran it without '
           'end; vmmcall: the host re-ran it without end, rewritten to vmcall): PV locks kick '
           'by IPI\n')


def figure(hc, ipi):
    return ('# metric: lock.pvticket.kick_wake_ns.p50 7000 ns rounds=3 kicks=3 hc_kicks=%d '
            'ipi_kicks=%d steal_ns=1500\n' % (hc, ipi))


class CheckLog(unittest.TestCase):
    def test_hypercall_kicks_pass(self):
        problems, notes, facts = tk.check_log(TIME + BY_HC + figure(3, 0))
        self.assertEqual(problems, [])
        self.assertEqual(facts['tsc_source'], 'kvmclock')
        self.assertEqual(facts['hc_kicks'], 3)
        self.assertEqual(facts['max_steal_ns'], 1500)

    def test_hypercall_chosen_but_no_kick_by_it_fails(self):
        problems, _, _ = tk.check_log(TIME + BY_HC + figure(0, 3))
        self.assertTrue(any('hc_kicks=0' in p for p in problems))

    def test_guessed_tsc_fails(self):
        log = ('# time: TSC 4000.000 MHz (GUESSED: no CPUID frequency, no PIT, no PM timer)\n'
               '  # time: TSC source guessed, 4000.000 MHz\n') + BY_HC + figure(3, 0)
        problems, _, _ = tk.check_log(log)
        self.assertIn('the TSC rate was GUESSED', problems)
        self.assertIn('TSC source is "guessed"', problems)

    def test_time_source_missing_fails(self):
        problems, _, _ = tk.check_log(BY_HC + figure(3, 0))
        self.assertTrue(any('TSC source' in p for p in problems))

    def test_no_working_hypercall_is_a_note_or_strict_failure(self):
        log = TIME + BY_NONE + figure(0, 3)
        problems, notes, _ = tk.check_log(log)
        self.assertEqual(problems, [])
        self.assertEqual(len(notes), 1)
        problems, notes, _ = tk.check_log(log, strict=True)
        self.assertEqual(len(problems), 1)

    def test_no_pv_unhalt_fails(self):
        problems, _, _ = tk.check_log(TIME + '# kvm: no PV unhalt: PV locks kick by IPI\n' +
                                      figure(0, 3))
        self.assertTrue(any('PV unhalt' in p for p in problems))

    def test_not_on_kvm_fails(self):
        problems, _, _ = tk.check_log(TIME + figure(0, 3))
        self.assertTrue(any('not on KVM' in p for p in problems))


class RunnerAllowance(unittest.TestCase):
    def test_software_kvm_gets_more_time_than_tcg(self):
        self.assertEqual(runner_qemu.timeout_factor('kvm', 2, 2), 1.0)
        self.assertEqual(runner_qemu.timeout_factor('tcg', 2, 2), 4.0)
        self.assertEqual(runner_qemu.timeout_factor('kvm', 2, 2, fast_kvm=False), runner_qemu.SOFTWARE_KVM_FACTOR)
        self.assertGreater(runner_qemu.SOFTWARE_KVM_FACTOR, runner_qemu.timeout_factor('tcg', 2, 2))


class Skip(unittest.TestCase):
    def test_missing_dev_kvm_skips_with_exit_0(self):
        proc = subprocess.run([os.path.join(REPO, 'scripts', 'test-kvm'), '--dev-kvm',
                               '/nonexistent/kvm'], stdout=subprocess.PIPE,
                              universal_newlines=True)
        self.assertEqual(proc.returncode, 0)
        self.assertRegex(proc.stdout, r'^test-kvm: SKIP: /nonexistent/kvm is missing')

    def test_other_vendor(self):
        self.assertEqual(tk.MODEL_OF_VENDOR['amd'], 'qemu64')
        self.assertEqual(tk.MODEL_OF_VENDOR['intel'], 'kvm64')


if __name__ == '__main__':
    unittest.main()
