"""run-qemu: boot locklab in QEMU, stream its serial console and exit with the verdict.

Exit codes (the project's contract):
  0  every test ok (SKIP and XFAIL allowed)
  1  at least one test not ok
  2  the kernel bailed out, crashed, reset or stopped without finishing its plan
  3  timeout (the message names the test that was running)
  4  set-up error (missing tool or ISO, bad option)

The KTAP log is the source of truth; QEMU's own exit status (isa-debug-exit turns the kernel's
value v into (v << 1) | 1) is cross-checked against it and the worse of the two wins.

Environment: LOCKLAB_QEMU overrides the QEMU command (e.g. a stand-in for tests);
LOCKLAB_OVMF_CODE / LOCKLAB_OVMF_VARS select UEFI firmware files; CI set means no live
status line.

The code is split by subject: runner_options (the command line), runner_qemu (QEMU's command
line and the host facts it depends on), runner_console (the run itself and its verdict); this
module puts them together.
"""

import copy
import os
import signal
import sys
import tempfile

from . import ktap
from .runner_console import Run, combine_verdicts, _on_sigterm
from .runner_options import (EXIT_PASS, EXIT_SETUP, EXIT_TIMEOUT, OVMF_MAX_APIC_ID, PROG,
                             SetupError, parse_args)
from .runner_qemu import (CPU_REFUSED, ICOUNT_SHIFT, build_command, choose_accel, cpu_fallback,
                          find_qemu, host_cpu_count, host_cpu_vendor, kernel_cmdline, kvm_status,
                          memory_mb, repo_path, timeout_factor)


def prepare(opts, tmpdir):
    """Everything that can fail before QEMU starts, as SetupError."""
    if any(ord(c) < 32 for c in opts.cmdline):
        raise SetupError('--cmdline must be one line of printable text')
    qemu = find_qemu()
    if opts.clock == 'virtual':
        accel, reason = 'tcg', 'clock=virtual: single-threaded TCG, -icount shift=%d' % (
            ICOUNT_SHIFT)
    else:
        accel, reason = choose_accel(opts.accel)
    print('%s: accel=%s (%s)' % (PROG, accel, reason), file=sys.stderr)
    host_cpus = host_cpu_count()
    cmdline = kernel_cmdline(accel, host_cpus, opts.cmdline, opts.clock)
    command = build_command(qemu, opts, accel, cmdline, tmpdir)
    if opts.firmware == 'uefi' and opts.apic_ids and max(opts.apic_ids) > OVMF_MAX_APIC_ID:
        print('%s: warning: APIC IDs above %d make more possible CPUs than OVMF 2022.11 '
              'boots with (it fails with 2048); there may be no KTAP output'
              % (PROG, OVMF_MAX_APIC_ID), file=sys.stderr)
    memory = memory_mb(opts.memory, opts.smp)
    if opts.memory and memory != opts.memory:
        print('%s: --memory raised to %d MB for %d vCPUs' % (PROG, memory, opts.smp),
              file=sys.stderr)
    log_path = repo_path(opts.log, 'build/last.log')
    for path in (log_path, opts.junit, opts.json):
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    factor = timeout_factor(accel, opts.smp, host_cpus,
                            fast_kvm=accel != 'kvm' or kvm_status()[0])
    return command, accel, factor, log_path, (qemu, cmdline)


def write_reports(opts, report, info):
    code = info['exit']
    if opts.junit:
        properties = {key: '; '.join(value) if isinstance(value, list) else value
                      for key, value in info.items() if value not in (None, [], '')}
        # A run that ended badly for reasons outside the log (timeout, QEMU's status) must
        # still show up as an error in CI.
        run_error = None
        if code != report.verdict and code != EXIT_PASS:
            run_error = [info['timeout'] or ''] + info['notes']
        ktap.write_junit(report, opts.junit, properties=properties,
                         run_error=[e for e in run_error if e] if run_error else None)
    if opts.json:
        ktap.write_json(report, opts.json, extra={
            'verdict': code, 'verdict_name': ktap.VERDICT_NAMES[code],
            'ktap_verdict': report.verdict, 'run': info})


def summary(code, report, info):
    counts = report.counts()
    timing = 'total %.1f s' % info['seconds']
    if info['boot_to_plan'] is not None:
        timing = 'boot-to-plan %.2f s, %s' % (info['boot_to_plan'], timing)
    return ('%s: verdict=%s exit=%d pass=%d fail=%d skip=%d xfail=%d (%s, smp=%d, %s, %s)'
            % (PROG, ktap.VERDICT_NAMES[code], code, counts['pass'], counts['fail'],
               counts['skip'], counts['xfail'], info['firmware'], info['smp'],
               info['accel'] + (' clock=virtual' if info.get('clock') == 'virtual' else ''),
               timing))


def finish(opts, run, returncode, accel):
    """Decide the exit code, print why, write the reports."""
    report = run.parser.finish()
    notes = []
    if run.timeout_message:
        code = EXIT_TIMEOUT
        for test in report.tests:
            if test.incomplete and run.timeout_message.startswith('test %s ' % test.path):
                test.reason = 'timeout: ' + run.timeout_message
    elif returncode == 1 and not run.parser.started and not run.serial_bytes and run.qemu_errors:
        code = EXIT_SETUP
        notes.append('QEMU failed to start: ' + run.qemu_errors[-1])
    else:
        code, notes = combine_verdicts(report, returncode)
        if code != EXIT_PASS:
            notes = report.verdict_reasons[:5] + notes
        if run.loader_error and not run.parser.started:
            notes = ['boot loader error, kernel never started: ' + run.loader_error] + [
                n for n in notes if 'end marker' not in n]
    info = {'exit': code, 'firmware': opts.firmware, 'smp': opts.smp, 'accel': accel,
            'clock': opts.clock,
            'machine': opts.machine, 'cmdline': opts.cmdline, 'qemu_status': returncode,
            'boot_to_plan': round(run.plan_at, 3) if run.plan_at is not None else None,
            'seconds': round(run.elapsed(), 3), 'timeout': run.timeout_message,
            'notes': notes, 'log': run.log_path,
            'cpu_fallback': getattr(run, 'cpu_fallback', None)}
    write_reports(opts, report, info)
    if run.view:
        run.view.finish(report, info, code, run.timeout_message)
    for note in notes:
        print('%s: %s' % (PROG, note), file=sys.stderr)
    print(summary(code, report, info), file=sys.stderr)
    if run.timeout_message:
        line = '%s: timeout: %s' % (PROG, run.timeout_message)
        print(line, file=sys.stderr)
        if not run.view:
            run.say(line)
    return code


def main(argv=None):
    opts = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    with tempfile.TemporaryDirectory(prefix='locklab-qemu-') as tmpdir:
        try:
            command, accel, factor, log_path, (qemu, cmdline) = prepare(opts, tmpdir)
            run = Run(opts, command, accel, factor, log_path)
            returncode = run.execute()
            cpu = cpu_fallback(accel, opts.cpu, run.serial_bytes, run.qemu_errors,
                               host_cpu_vendor())
            if cpu:
                refused = [l for l in run.qemu_errors if CPU_REFUSED.search(l)][0]
                print('%s: KVM refused -cpu host before any guest output (%s); retrying once '
                      'with -cpu %s' % (PROG, refused.strip(), cpu), file=sys.stderr)
                opts = copy.copy(opts)
                opts.cpu = cpu
                command = build_command(qemu, opts, accel, cmdline, tmpdir)
                run = Run(opts, command, accel, factor, log_path)
                run.cpu_fallback = cpu
                returncode = run.execute()
        except SetupError as err:
            print('%s: error: %s' % (PROG, err), file=sys.stderr)
            return EXIT_SETUP
        except OSError as err:
            print('%s: error: %s' % (PROG, err), file=sys.stderr)
            return EXIT_SETUP
        except KeyboardInterrupt:
            print('%s: interrupted' % PROG, file=sys.stderr)
            return 130
        return finish(opts, run, returncode, accel)


if __name__ == '__main__':
    sys.exit(main())
