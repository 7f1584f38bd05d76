"""Tests of scripts/run-qemu that need no QEMU: its decisions as functions, and whole runs
against tests/host/fake_qemu.py."""

import contextlib
import io
import json
import os
import shlex
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

from support import DATA, FAKE_QEMU, fake_qemu_run
from locklab import ktap, runner_console, runner_options, runner_qemu


def qemu_split(option):
    """QEMU's own reading of 'a=b,c=d' option strings (',,' is a literal comma)."""
    parts, current, i = [], '', 0
    while i < len(option):
        if option[i] == ',':
            if option[i + 1:i + 2] == ',':
                current += ','
                i += 2
                continue
            parts.append(current)
            current = ''
        else:
            current += option[i]
        i += 1
    parts.append(current)
    return dict(p.split('=', 1) for p in parts)


class Options(unittest.TestCase):
    def exit_code(self, argv):
        with contextlib.redirect_stderr(io.StringIO()) as err:
            with self.assertRaises(SystemExit) as raised:
                runner_options.parse_args(argv)
        return raised.exception.code, err.getvalue()

    def test_bad_options_exit_4(self):
        for argv in (['--smp', '0'], ['--smp', 'four'], ['--accel', 'hvf'], ['--bogus'],
                     ['--firmware', 'coreboot'], ['--machine', 'isapc'], ['--timeout', '0'],
                     ['--memory', '1'], ['--iso', 'a', '--pxe', 'b'], ['stray'],
                     ['--apic-ids', '1,2'], ['--apic-ids', '0,3,3'], ['--apic-ids', '0,x'],
                     ['--apic-ids', '0,4096'], ['--apic-ids', '0,-1'],
                     ['--apic-ids', '0,1', '--smp', '2'],
                     ['--apic-ids', '0,300', '--machine', 'pc']):
            code, err = self.exit_code(argv)
            self.assertEqual(code, 4, argv)
            self.assertIn('run-qemu: error:', err)

    def test_help_exits_0(self):
        with contextlib.redirect_stdout(io.StringIO()):
            with self.assertRaises(SystemExit) as raised:
                runner_options.parse_args(['--help'])
        self.assertEqual(raised.exception.code, 0)

    def test_defaults(self):
        opts = runner_options.parse_args([])
        self.assertEqual((opts.smp, opts.accel, opts.firmware, opts.machine, opts.timeout),
                         (4, 'auto', 'bios', 'q35', 300.0))


class Decisions(unittest.TestCase):
    def test_comma_escaping(self):
        self.assertEqual(runner_qemu.qemu_opt_escape('a,b,,c'), 'a,,b,,,,c')
        line = runner_qemu.kernel_cmdline('tcg', 2, ' tests=boot.*,smp.* seed=3 ')
        self.assertEqual(line, 'exit=qemu accel=tcg host_cpus=2 tests=boot.*,smp.* seed=3')
        arg = runner_qemu.fw_cfg_arg(line)
        self.assertEqual(qemu_split(arg), {'name': 'opt/locklab/cmdline', 'string': line})

    def test_cmdline_without_user_part(self):
        self.assertEqual(runner_qemu.kernel_cmdline('kvm', 8), 'exit=qemu accel=kvm host_cpus=8')

    def fake_sysfs(self, tmp, modules, kvm_openable=True):
        for module in modules:
            os.makedirs(os.path.join(tmp, 'sys', 'module', module))
        dev = os.path.join(tmp, 'kvm')
        if kvm_openable:
            open(dev, 'w').close()
        return os.path.join(tmp, 'sys'), dev

    def test_accel_decision(self):
        cases = [
            (['kvm', 'kvm_intel'], True, 'kvm', 'kvm_intel'),
            (['kvm', 'kvm_amd'], True, 'kvm', 'kvm_amd'),
            (['kvm', 'kvm_pvm'], True, 'tcg', 'kvm_pvm is a nested software hypervisor'),
            (['kvm', 'kvm_intel', 'kvm_pvm'], True, 'tcg', 'kvm_pvm'),
            (['kvm'], True, 'tcg', 'neither kvm_intel nor kvm_amd'),
            (['kvm', 'kvm_intel'], False, 'tcg', 'cannot be opened'),
        ]
        for modules, openable, accel, words in cases:
            with tempfile.TemporaryDirectory() as tmp:
                sysfs, dev = self.fake_sysfs(tmp, modules, openable)
                got, reason = runner_qemu.choose_accel('auto', sysfs, dev)
                self.assertEqual(got, accel, modules)
                self.assertIn(words, reason)

    def test_cpu_fallback_decision(self):
        msr = ['qemu-system-x86_64: error: failed to set MSR 0x10a to 0x2000c04',
               'qemu-system-x86_64: kvm.c:3185: kvm_buf_set_msrs: Assertion failed.']
        feature = ["qemu-system-x86_64: warning: host doesn't support requested feature: "
                   "CPUID.01H:ECX.pni [bit 0]"]
        intel = runner_qemu.cpu_fallback('kvm', None, 0, msr, 'GenuineIntel')
        self.assertTrue(intel.startswith('Skylake-Client,'))
        for feature_name in ('+kvm-pv-unhalt', '+kvmclock', '+kvm-steal-time', '+x2apic'):
            self.assertIn(feature_name, intel.split(','))
        self.assertTrue(runner_qemu.cpu_fallback('kvm', None, 0, msr, 'AuthenticAMD').startswith('EPYC,'))
        self.assertTrue(runner_qemu.cpu_fallback('kvm', None, 0, msr, None).startswith('qemu64,'))
        self.assertTrue(runner_qemu.cpu_fallback('kvm', None, 0, ['kvm_init_vcpu failed: Invalid'],
                                        'GenuineIntel'))
        # Not a refusal of the CPU, or not ours to change: no retry.
        for accel, cpu, output, errors in (('tcg', None, 0, msr), ('kvm', 'host', 0, msr),
                                           ('kvm', None, 120, msr), ('kvm', None, 0, feature),
                                           ('kvm', None, 0, ['Could not access KVM kernel '
                                                             'module: No such file']),
                                           ('kvm', None, 0, [])):
            self.assertIsNone(runner_qemu.cpu_fallback(accel, cpu, output, errors, 'GenuineIntel'),
                              (accel, cpu, output, errors))

    def test_accel_requested(self):
        with tempfile.TemporaryDirectory() as tmp:
            sysfs, dev = self.fake_sysfs(tmp, ['kvm_pvm'])
            self.assertEqual(runner_qemu.choose_accel('tcg', sysfs, dev)[0], 'tcg')
            accel, reason = runner_qemu.choose_accel('kvm', sysfs, dev)
            self.assertEqual(accel, 'kvm')
            self.assertIn('warning', reason)
            with self.assertRaises(runner_options.SetupError):
                runner_qemu.choose_accel('kvm', sysfs, os.path.join(tmp, 'missing'))

    def test_timeout_factor(self):
        self.assertEqual(runner_qemu.timeout_factor('kvm', 4, 8), 1)
        self.assertEqual(runner_qemu.timeout_factor('tcg', 4, 8), 4)
        self.assertEqual(runner_qemu.timeout_factor('tcg', 4, 2), 8)
        self.assertEqual(runner_qemu.timeout_factor('kvm', 16, 4), 4)
        self.assertEqual(runner_qemu.timeout_factor('tcg', 1, 0), 4)
        self.assertAlmostEqual(runner_qemu.test_allowance(2000, 4), 13.0)
        self.assertAlmostEqual(runner_qemu.test_allowance(100, 1), 5.1)

    def test_memory(self):
        self.assertEqual(runner_qemu.memory_mb(None, 4), 512)
        self.assertEqual(runner_qemu.memory_mb(None, 32), 1024)
        self.assertEqual(runner_qemu.memory_mb(64, 1), 64)
        self.assertEqual(runner_qemu.memory_mb(64, 8), 256)

    def test_ovmf_search(self):
        with tempfile.TemporaryDirectory() as tmp:
            code, variables, single = (os.path.join(tmp, n) for n in ('C.fd', 'V.fd', 'O.fd'))
            missing = os.path.join(tmp, 'missing.fd')
            for path in (code, variables, single):
                open(path, 'w').close()
            self.assertEqual(runner_qemu.find_ovmf([(missing, variables), (code, variables)], {}),
                             (code, variables))
            self.assertEqual(runner_qemu.find_ovmf([(code, missing), (single, None)], {}), (single, None))
            with self.assertRaises(runner_options.SetupError):
                runner_qemu.find_ovmf([(missing, None)], {})
            env = {'LOCKLAB_OVMF_CODE': code, 'LOCKLAB_OVMF_VARS': variables}
            self.assertEqual(runner_qemu.find_ovmf([], env), (code, variables))

    def test_qemu_status(self):
        self.assertEqual(runner_console.qemu_status_verdict(1)[0], 0)
        self.assertEqual(runner_console.qemu_status_verdict(3)[0], 1)
        self.assertEqual(runner_console.qemu_status_verdict(5)[0], 2)
        self.assertEqual(runner_console.qemu_status_verdict(7)[0], 2)
        self.assertEqual(runner_console.qemu_status_verdict(0)[0], 2)
        self.assertEqual(runner_console.qemu_status_verdict(-9)[0], 2)

    def test_combined_verdict(self):
        complete = ktap.parse_text('KTAP version 1\n1..1\nok 1 a\n# locklab: end verdict=pass\n')
        cut = ktap.parse_text('KTAP version 1\n1..2\nok 1 a\n')
        self.assertEqual(runner_console.combine_verdicts(complete, 1), (0, []))
        self.assertEqual(runner_console.combine_verdicts(complete, 3)[0], 1)      # QEMU's worse word wins
        self.assertEqual(runner_console.combine_verdicts(complete, 0)[0], 0)      # log complete: it decides
        self.assertEqual(runner_console.combine_verdicts(cut, 0)[0], 2)
        self.assertEqual(runner_console.combine_verdicts(cut, 1)[0], 2)           # the log's worse word wins
        code, notes = runner_console.combine_verdicts(complete, None)             # killed after the end
        self.assertEqual(code, 0)
        self.assertIn('did not exit', notes[0])

    def test_command_line(self):
        with tempfile.TemporaryDirectory() as tmp:
            iso = os.path.join(tmp, 'x,y.iso')
            open(iso, 'w').close()
            opts = runner_options.parse_args(['--iso', iso, '--smp', '2', '--cmdline', 'tests=a,b'])
            command = runner_qemu.build_command(['qemu'], opts, 'tcg', 'exit=qemu tests=a,b', tmp)
        joined = ' '.join(command)
        self.assertIn('-accel tcg,thread=multi', joined)
        self.assertIn('-cpu max', joined)
        self.assertIn('-no-reboot', joined)
        self.assertIn('-device isa-debug-exit,iobase=0xf4,iosize=0x04', joined)
        self.assertIn('-fw_cfg name=opt/locklab/cmdline,string=exit=qemu tests=a,,b', joined)
        self.assertEqual(command[command.index('-cdrom') + 1], iso)

    def test_kvm_uses_host_cpu_unless_told(self):
        with tempfile.TemporaryDirectory() as tmp:
            iso = os.path.join(tmp, 'a.iso')
            open(iso, 'w').close()
            for extra, cpu in (([], 'host'), (['--cpu', 'max,+x2apic'], 'max,+x2apic')):
                opts = runner_options.parse_args(['--iso', iso] + extra)
                command = runner_qemu.build_command(['qemu'], opts, 'kvm', '', tmp)
                self.assertEqual(command[command.index('-cpu') + 1], cpu)
                self.assertEqual(command[command.index('-accel') + 1], 'kvm')

    def test_console_wiring(self):
        with tempfile.TemporaryDirectory() as tmp:
            iso = os.path.join(tmp, 'a.iso')
            open(iso, 'w').close()
            table = os.path.join(tmp, 'SPCR,1.dat')
            open(table, 'w').close()

            def command(*extra):
                return runner_qemu.build_command(['qemu'], runner_options.parse_args(['--iso', iso] + list(extra)),
                                        'tcg', '', tmp)
            # com1, the default: the first ISA port is ours, as it always was.
            default = command()
            self.assertEqual(default, command('--console', 'com1'))
            self.assertEqual(default.count('-serial'), 1)
            self.assertEqual(default[default.index('-serial') + 1], 'stdio')
            # com2: the first -serial (COM1) goes nowhere, the second (COM2) is ours.
            com2 = command('--console', 'com2')
            serials = [com2[i + 1] for i, a in enumerate(com2) if a == '-serial']
            self.assertEqual(serials, ['null', 'stdio'])
            # pci: no ISA serial port at all, a pci-serial device carries the stdio chardev.
            pci = command('--console', 'pci')
            serials = [pci[i + 1] for i, a in enumerate(pci) if a == '-serial']
            self.assertEqual(serials, ['none'])
            chardev = qemu_split('backend=' + pci[pci.index('-chardev') + 1])
            self.assertEqual(chardev['backend'], 'stdio')
            devices = [pci[i + 1] for i, a in enumerate(pci) if a == '-device']
            self.assertIn('pci-serial,chardev=%s' % chardev['id'], devices)
            # An extra ACPI table (an SPCR naming COM2, say) is handed to QEMU as it is.
            with_table = command('--console', 'com2', '--acpitable', table)
            self.assertEqual(qemu_split(with_table[with_table.index('-acpitable') + 1]),
                             {'file': table})
            with self.assertRaises(runner_options.SetupError):
                command('--acpitable', os.path.join(tmp, 'missing.dat'))
        code, err = Options.exit_code(self, ['--console', 'com3'])
        self.assertEqual(code, 4)
        self.assertIn('--console', err)

    def test_apic_ids_topology(self):
        opts = runner_options.parse_args(['--apic-ids', '0,1,256,4095'])
        self.assertEqual(opts.smp, 4)
        self.assertEqual(runner_qemu.topology_args([0, 1, 256, 4095], 'max,+x2apic'), [
            '-smp', 'cpus=1,maxcpus=4096,sockets=16,cores=256,threads=1',
            '-device', 'intel-iommu,intremap=on,eim=on',
            '-device', 'max-x86_64-cpu,socket-id=0,core-id=1,thread-id=0',
            '-device', 'max-x86_64-cpu,socket-id=1,core-id=0,thread-id=0',
            '-device', 'max-x86_64-cpu,socket-id=15,core-id=255,thread-id=0'])
        # Below 255 one socket is enough, and QEMU needs no IOMMU.
        self.assertEqual(runner_qemu.topology_args([0, 3, 17], 'host'), [
            '-smp', 'cpus=1,maxcpus=18,sockets=1,cores=18,threads=1',
            '-device', 'host-x86_64-cpu,socket-id=0,core-id=3,thread-id=0',
            '-device', 'host-x86_64-cpu,socket-id=0,core-id=17,thread-id=0'])
        self.assertIn('eim=on', ' '.join(runner_qemu.topology_args([0, 255], 'max')))
        self.assertEqual(runner_qemu.topology_args([0], 'max'),
                         ['-smp', 'cpus=1,maxcpus=1,sockets=1,cores=1,threads=1'])

    def test_apic_ids_command(self):
        with tempfile.TemporaryDirectory() as tmp:
            iso = os.path.join(tmp, 'a.iso')
            open(iso, 'w').close()
            opts = runner_options.parse_args(['--iso', iso, '--apic-ids', '0,300'])
            for accel, machine in (('tcg', 'q35'), ('kvm', 'q35,kernel-irqchip=split')):
                command = runner_qemu.build_command(['qemu'], opts, accel, '', tmp)
                self.assertEqual(command[command.index('-machine') + 1], machine)
                self.assertEqual(command.count('-smp'), 1)

    def test_pxe_command(self):
        with tempfile.TemporaryDirectory() as tmp:
            for firmware, bootfile in runner_qemu.PXE_BOOTFILES.items():
                opts = runner_options.parse_args(['--pxe', tmp, '--firmware', firmware])
                with self.assertRaises(runner_options.SetupError):
                    runner_qemu.boot_media_args(opts)
                os.makedirs(os.path.dirname(os.path.join(tmp, bootfile)), exist_ok=True)
                open(os.path.join(tmp, bootfile), 'w').close()
                args = runner_qemu.boot_media_args(opts)
                netdev = qemu_split(args[args.index('-netdev') + 1].replace('user,', 'type=user,'))
                self.assertEqual((netdev['tftp'], netdev['bootfile']), (tmp, bootfile))
                self.assertIn('virtio-net-pci,netdev=n0,bootindex=0', args)


class FakeQemuRuns(unittest.TestCase):
    """Whole runs of scripts/run-qemu with a stand-in QEMU that replays a log."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.iso = os.path.join(self.tmp.name, 'locklab.iso')
        open(self.iso, 'w').close()

    def run_qemu(self, log=None, exit_status=1, hang=False, args=(), stderr_text=None,
                 qemu=None, timeout=60, env_extra=None):
        proc, self.seconds = fake_qemu_run(self.tmp.name, args, log, exit_status, hang,
                                           stderr_text, qemu, timeout, env_extra)
        return proc

    def argv(self, start=None):
        """The arguments of the last QEMU start, or of start number `start`."""
        if start is not None:
            with open(os.path.join(self.tmp.name, 'starts.json')) as recorded:
                return json.loads(recorded.readlines()[start])
        with open(os.path.join(self.tmp.name, 'argv.json')) as recorded:
            return json.load(recorded)

    def starts(self):
        with open(os.path.join(self.tmp.name, 'starts.json')) as recorded:
            return len(recorded.readlines())

    def test_pass(self):
        proc = self.run_qemu('pass_nested2.log', 1)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn('KTAP version 1', proc.stdout)
        self.assertNotIn('\x1b', proc.stdout)
        self.assertIn('run-qemu: accel=tcg (requested)', proc.stderr)
        summary = proc.stderr.strip().splitlines()[-1]
        self.assertRegex(summary, r'^run-qemu: verdict=pass exit=0 pass=7 fail=0 skip=1 xfail=1 '
                                  r'\(bios, smp=1, tcg, boot-to-plan [0-9.]+ s, total [0-9.]+ s\)$')
        with open(os.path.join(self.tmp.name, 'serial.log.raw'), 'rb') as serial:
            with open(os.path.join(DATA, 'pass_nested2.log'), 'rb') as original:
                self.assertEqual(serial.read(), original.read())

    def test_log_is_text_raw_beside_it(self):
        # Firmware noise as OVMF and GRUB send it: CR LF endings, colour and cursor sequences,
        # a line redrawn with a bare CR, a NUL.
        noisy = os.path.join(self.tmp.name, 'noisy.log')
        with open(os.path.join(DATA, 'pass_nested2.log'), 'rb') as original:
            body = original.read()
        raw = (b'\x1b[2J\x1b[01;01H\x1b[0m\x1b[37m\x1b[40mBdsDxe: loading\r\n'
               b'Loading 10%\rLoading 100%\r\n\x00GRUB\r\n' + body.replace(b'\n', b'\r\n'))
        with open(noisy, 'wb') as out:
            out.write(raw)
        proc = self.run_qemu(noisy, 1)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        log = os.path.join(self.tmp.name, 'serial.log')
        with open(log + '.raw', 'rb') as kept:
            self.assertEqual(kept.read(), raw)
        with open(log, 'rb') as text:
            data = text.read()
        for byte in (b'\r', b'\x1b', b'\x00'):
            self.assertNotIn(byte, data)
        lines = data.decode().split('\n')
        self.assertEqual(lines[:4], ['BdsDxe: loading', 'Loading 10%', 'Loading 100%', 'GRUB'])
        self.assertEqual(lines[-1], '')                   # ends with a newline
        self.assertEqual(lines.count('KTAP version 1'), 1)
        # What a line tool sees: the top-level results and the nested ones.
        self.assertEqual(len([l for l in lines if l.startswith('ok ')]), 3)
        self.assertGreater(len([l for l in lines if l.startswith('  ok ')]), 0)
        # ktap.py reads both forms alike.
        text_report, raw_report = ktap.parse_file(log), ktap.parse_file(log + '.raw')
        self.assertEqual(text_report.counts(), raw_report.counts())
        self.assertEqual(text_report.verdict, 0)

    def test_fw_cfg_reaches_qemu_intact(self):
        self.run_qemu('pass_nested2.log', 1, args=['--cmdline', 'tests=boot.*,smp.* seed=7'])
        argv = self.argv()
        fw_cfg = qemu_split(argv[argv.index('-fw_cfg') + 1])
        self.assertEqual(fw_cfg['name'], 'opt/locklab/cmdline')
        self.assertRegex(fw_cfg['string'],
                         r'^exit=qemu accel=tcg host_cpus=\d+ tests=boot\.\*,smp\.\* seed=7$')

    def test_failure(self):
        proc = self.run_qemu('fail.log', 3)
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertIn('verdict=fail exit=1', proc.stderr)

    def test_stopped_mid_plan(self):
        proc = self.run_qemu('truncated.log', 0)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn('smp.ipi_storm', proc.stderr)

    def test_crash(self):
        junit = os.path.join(self.tmp.name, 'out.xml')
        proc = self.run_qemu('crash_real.log', 5, args=['--junit', junit])
        self.assertEqual(proc.returncode, 2, proc.stderr)
        root = ET.parse(junit).getroot()
        crash = [c for c in root.iter('testcase') if c.get('name') == 'crash_demo'][0]
        self.assertIn('crash_demo_fault', crash.find('error').get('message'))

    def test_qemu_status_disagrees(self):
        proc = self.run_qemu('pass_nested2.log', 3)
        self.assertEqual(proc.returncode, 1)
        self.assertIn('KTAP says pass but the kernel wrote 1 to isa-debug-exit', proc.stderr)

    def test_complete_log_but_qemu_exit_0(self):
        proc = self.run_qemu('pass_nested2.log', 0)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn('the KTAP log is complete', proc.stderr)

    def test_hang_names_the_test(self):
        json_path = os.path.join(self.tmp.name, 'out.json')
        hung = os.path.join(self.tmp.name, 'hang.log')
        with open(os.path.join(DATA, 'hang_real.log'), 'rb') as real, open(hung, 'wb') as log:
            # A shorter announced timeout keeps the test quick.
            log.write(real.read().replace(b'timeout_ms=2000', b'timeout_ms=100'))
        proc = self.run_qemu(hung, hang=True, args=['--json', json_path])
        self.assertEqual(proc.returncode, 3, proc.stderr)
        # timeout_ms=100 under TCG: 0.1 s * 4 + 5 s of grace.
        message = 'run-qemu: timeout: test boot.hang_demo did not finish within 5.4 s'
        self.assertEqual(proc.stdout.strip().splitlines()[-1], message)
        self.assertIn(message, proc.stderr)
        self.assertLess(self.seconds, 30)
        with open(json_path) as data:
            report = json.load(data)
        self.assertEqual((report['verdict'], report['ktap_verdict']), (3, 2))
        self.assertIn('timeout', report['tests'][0]['reason'])

    def test_hang_before_ktap(self):
        proc = self.run_qemu(None, hang=True, args=['--timeout', '1'])
        self.assertEqual(proc.returncode, 3)
        self.assertEqual(proc.stdout.strip().splitlines()[-1],
                         'run-qemu: timeout: firmware/boot (no KTAP yet) did not finish '
                         'within 1 s (--timeout)')

    def test_loader_error_fails_fast(self):
        # GRUB cannot load the kernel and would retry forever: exit 2 well before --timeout.
        proc = self.run_qemu('loader_error.log', hang=True, args=['--timeout', '60'])
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn('boot loader error, kernel never started: error: no multiboot header',
                      proc.stderr)
        self.assertLess(self.seconds, 20)

    def test_quiet_prints_one_line_per_suite(self):
        proc = self.run_qemu('pass_nested2.log', 1, args=['--quiet'])
        self.assertEqual(proc.returncode, 0)
        self.assertEqual([l.split(' (')[0] for l in proc.stdout.splitlines()],
                         ['run-qemu: [1/3] ok boot', 'run-qemu: [2/3] ok lock',
                          'run-qemu: [3/3] ok tlb'])

    def test_qemu_fails_to_start(self):
        proc = self.run_qemu(None, 1, stderr_text='qemu-system-x86_64: -accel kvm: failed')
        self.assertEqual(proc.returncode, 4)
        self.assertIn('QEMU failed to start', proc.stderr)

    def kvm_env(self, **extra):
        dev = os.path.join(self.tmp.name, 'kvm')
        open(dev, 'w').close()
        return dict(extra, LOCKLAB_DEV_KVM=dev)

    def test_kvm_refusing_cpu_host_retries_once(self):
        env = self.kvm_env(FAKE_QEMU_REFUSE_CPU='host', FAKE_QEMU_FEATURE_WARNINGS='40')
        proc = self.run_qemu('pass_nested2.log', 1, args=['--accel', 'kvm'], env_extra=env)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(self.starts(), 2)
        first, second = self.argv(0), self.argv(1)
        self.assertEqual(first[first.index('-cpu') + 1], 'host')
        expected = runner_qemu.cpu_fallback('kvm', None, 0, ['failed to set MSR 0x10a'],
                                   runner_qemu.host_cpu_vendor())
        self.assertEqual(second[second.index('-cpu') + 1], expected)
        self.assertIn('run-qemu: KVM refused -cpu host before any guest output '
                      '(qemu-system-x86_64: error: failed to set MSR 0x10a to 0x2000c04); '
                      'retrying once with -cpu ' + expected, proc.stderr)
        # The feature warnings of each start are one line, not 40.
        self.assertNotIn("host doesn't support", proc.stderr)
        self.assertEqual(proc.stderr.count('QEMU left out 40 CPU features the host lacks'), 2)

    def test_explicit_cpu_is_never_replaced(self):
        env = self.kvm_env(FAKE_QEMU_REFUSE_CPU='host')
        proc = self.run_qemu('pass_nested2.log', 1, args=['--accel', 'kvm', '--cpu', 'host'],
                             env_extra=env)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertEqual(self.starts(), 1)
        self.assertNotIn('retrying', proc.stderr)
        self.assertIn('failed to set MSR 0x10a', proc.stderr)

    def test_fallback_refused_too_is_not_retried_again(self):
        # A QEMU that refuses every model: exactly one retry, then the failure is reported.
        stub = os.path.join(self.tmp.name, 'refuse_all.py')
        with open(stub, 'w') as out:
            out.write('import os, sys\n'
                      "os.environ['FAKE_QEMU_REFUSE_CPU'] = "
                      "sys.argv[sys.argv.index('-cpu') + 1].split(',')[0]\n"
                      'exec(open(%r).read())\n' % FAKE_QEMU)
        proc = self.run_qemu('pass_nested2.log', 1, args=['--accel', 'kvm'],
                             env_extra=self.kvm_env(), qemu=shlex.join([sys.executable, stub]))
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertEqual(self.starts(), 2)
        self.assertEqual(proc.stderr.count('retrying once'), 1)

    def test_missing_qemu(self):
        proc = self.run_qemu('pass_nested2.log', qemu='/nonexistent/qemu-system-x86_64')
        self.assertEqual(proc.returncode, 4)
        self.assertIn('not found', proc.stderr)

    def test_missing_iso(self):
        os.unlink(self.iso)
        proc = self.run_qemu('pass_nested2.log')
        self.assertEqual(proc.returncode, 4)
        self.assertIn('no ISO', proc.stderr)

    def test_uefi_uses_a_private_vars_copy(self):
        code = os.path.join(self.tmp.name, 'CODE.fd')
        variables = os.path.join(self.tmp.name, 'VARS.fd')
        for path in (code, variables):
            with open(path, 'w') as firmware:
                firmware.write('x')
        os.environ['LOCKLAB_OVMF_CODE'], os.environ['LOCKLAB_OVMF_VARS'] = code, variables
        try:
            proc = self.run_qemu('pass_nested2.log', 1, args=['--firmware', 'uefi'])
        finally:
            del os.environ['LOCKLAB_OVMF_CODE'], os.environ['LOCKLAB_OVMF_VARS']
        self.assertEqual(proc.returncode, 0, proc.stderr)
        drives = [qemu_split(a) for a in self.argv() if a.startswith('if=pflash')]
        self.assertEqual(drives[0]['file'], code)
        self.assertEqual(drives[0]['readonly'], 'on')
        self.assertNotEqual(drives[1]['file'], variables)
        self.assertTrue(drives[1]['file'].endswith('OVMF_VARS.fd'))


if __name__ == '__main__':
    unittest.main()
