"""test-lava: run locklab's LAVA QEMU job with a local lava-run and check what LAVA made of it.

    scripts/lava/test-lava [--iso build/locklab.iso] [--smp 1] [--cmdline 'bogus=1']

1. boots the ISO once with scripts/run-qemu to learn which suites this kernel runs with these
   options (a LAVA monitor waits for its suite, so the job must list exactly those);
2. renders the job (make-job's template) and a device dictionary for the local QEMU from the
   job's context, and runs `lava-run` (Debian's lava-dispatcher, no server needed);
3. reads lava-run's output (one YAML flow mapping per line), takes the serial console LAVA
   captured, parses it with scripts/ktap.py and checks that every KTAP test of that run is a
   LAVA test case with the same result (pass, fail, skip; XFAIL counts as pass), that no LAVA
   case is unexplained, and that every "# metric:" line is a LAVA measurement with its value
   and unit;
4. checks the real-hardware job (pxe-grub) with `lava-run --validate` against the example
   device dictionary scripts/lava/pxe-grub-device.yaml.

The default options make one run cover every result: with one CPU the multi-CPU tests SKIP,
bogus=1 makes boot.cmdline fail, boot.harness_xfail is an XFAIL, and smp.lapic_timer prints a
metric.  Files are kept in build/lava/.  Exit 0 when everything matched, 1 when something did
not (each mismatch is printed), 4 when a tool is missing (lava-run comes with the Debian
package lava-dispatcher: make deps).
"""

import argparse
import os
import shutil
import subprocess
import sys
import time

from . import ktap
from . import lava as lavalib
from .paths import REPO, SCRIPTS

HERE = os.path.join(SCRIPTS, 'lava')     # the job templates and device files

PROG = 'test-lava'
SETUP_ERROR = 4
LAVA_TIMEOUT_S = 600
# lava-run keeps each job's files in this directory, named by the job id.
LAVA_TMP = '/var/lib/lava/dispatcher/tmp'
# LAVA's tftp deploy reads its directory from tftpd-hpa's configuration; where there is none,
# the validation runs lava-run with that lookup pointed at a scratch directory.
TFTPD_CONFIG = '/etc/default/tftpd-hpa'
TFTP_SHIM = '''import os, runpy, sys
import lava_dispatcher.utils.filesystem as filesystem
filesystem.tftpd_dir = lambda: os.environ['LOCKLAB_TFTP_DIR']
path = sys.argv[1]
sys.argv = ['lava-run'] + sys.argv[2:]
runpy.run_path(path, run_name='__main__')
'''


class SetupError(Exception):
    pass


def say(text):
    print('%s: %s' % (PROG, text), flush=True)


def shown(path):
    """A path as short as it reads well."""
    rel = os.path.relpath(path)
    return path if rel.startswith('..') else rel


def need_tools(iso):
    if shutil.which('lava-run') is None:
        raise SetupError('lava-run not found: it comes with the Debian package lava-dispatcher '
                         '(make deps installs it; by hand: apt-get install '
                         '--no-install-recommends lava-dispatcher)')
    try:
        import yaml  # noqa: F401  (python3-yaml, a lava-dispatcher dependency)
    except ImportError:
        raise SetupError('python3-yaml is missing (it comes with lava-dispatcher)')
    if shutil.which('qemu-system-x86_64') is None:
        raise SetupError('qemu-system-x86_64 not found (make deps)')
    if not os.path.isfile(iso):
        raise SetupError('no ISO at %s (run make)' % iso)
    try:
        os.makedirs(LAVA_TMP, exist_ok=True)
    except OSError:
        pass
    if not os.access(LAVA_TMP, os.W_OK):
        raise SetupError('lava-run needs to write %s (run as root)' % LAVA_TMP)


def reexec_for_yaml(argv):
    """Run under lava-run's own Python when this one lacks PyYAML (a python3 earlier on the
    PATH than the system's): that one has it, as lava-dispatcher depends on python3-yaml."""
    try:
        import yaml  # noqa: F401
        return
    except ImportError:
        pass
    lava = shutil.which('lava-run')
    other = script_interpreter(lava) if lava else None
    if other and os.path.realpath(other) != os.path.realpath(sys.executable) \
            and not os.environ.get('LOCKLAB_TEST_LAVA_REEXEC'):
        os.environ['LOCKLAB_TEST_LAVA_REEXEC'] = '1'
        args = sys.argv[1:] if argv is None else list(argv)
        os.execv(other, [other, os.path.join(HERE, 'test-lava')] + args)


def discover_suites(args, outdir):
    """Boot once with run-qemu: the suites this kernel runs with these options."""
    log = os.path.join(outdir, 'discover.log')
    command = [sys.executable, os.path.join(SCRIPTS, 'run-qemu'), '--quiet', '--iso', args.iso,
               '--smp', str(args.smp), '--accel', 'tcg', '--timeout', '120', '--log', log]
    if args.cmdline:
        command += ['--cmdline', args.cmdline]
    proc = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, cwd=REPO, timeout=LAVA_TIMEOUT_S)
    report = ktap.parse_file(log)
    suites = lavalib.suites_from_report(report)
    if not suites or report.verdict == ktap.INCOMPLETE:
        raise SetupError('the discovery boot did not finish (run-qemu exit %d): %s\n%s'
                         % (proc.returncode, '; '.join(report.verdict_reasons),
                            proc.stdout.decode('utf-8', 'replace')[-2000:]))
    return suites


def device_dictionary(job_text, yaml):
    """The local stand-in for a lab's qemu device: options from the job's context."""
    context = yaml.safe_load(job_text).get('context', {})
    extra = context.get('extra_options', [])
    if isinstance(extra, str):
        extra = [extra]
    lines = '\n'.join('          - %s' % lavalib._yaml_quote(opt) for opt in extra)
    return lavalib.render(lavalib.template('qemu-device.yaml.in'), {
        'QEMU': shutil.which('qemu-system-x86_64'),
        'MACHINE': context.get('machine', 'q35'),
        'CPU': context.get('cpu', 'max'),
        'MEMORY': context.get('memory', 512),
        'SPAWN_MAXREAD': 2048,
        'EXTRA_OPTIONS': lines,
    })


def lava_run(argv, log_path, env=None):
    """Run lava-run; its output goes to log_path.  Returns (exit code, output, seconds)."""
    started = time.monotonic()
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=LAVA_TIMEOUT_S, env=env)
        code, output = proc.returncode, proc.stdout.decode('utf-8', 'replace')
    except subprocess.TimeoutExpired as err:
        code, output = None, (err.stdout or b'').decode('utf-8', 'replace')
    with open(log_path, 'w', encoding='utf-8') as out:
        out.write(output)
    return code, output, time.monotonic() - started


def check_qemu_job(args, outdir, yaml):
    problems = []
    say('discovering the suites (one boot with run-qemu, smp=%d, cmdline %r)'
        % (args.smp, args.cmdline))
    suites = discover_suites(args, outdir)
    say('suites: %s' % ', '.join(suites))
    cmdline = ('exit=qemu accel=tcg host_cpus=%d %s' % (os.cpu_count() or 1, args.cmdline)).strip()
    job = lavalib.render(lavalib.template('qemu-job.yaml.in'), {
        'JOB_NAME': 'locklab qemu (test-lava)',
        'JOB_MINUTES': 10,
        'MEMORY': 512,
        'SMP': args.smp,
        'FW_CFG': lavalib.fw_cfg_option(cmdline),
        'ISO_URL': 'file://' + os.path.abspath(args.iso),
    }, suites)
    job_path = os.path.join(outdir, 'qemu-job.yaml')
    device_path = os.path.join(outdir, 'qemu-device.yaml')
    with open(job_path, 'w', encoding='utf-8') as out:
        out.write(job)
    with open(device_path, 'w', encoding='utf-8') as out:
        out.write(device_dictionary(job, yaml))
    job_id = str(os.getpid())
    say('lava-run --job-id %s --device %s %s' % (job_id, shown(device_path), shown(job_path)))
    code, output, seconds = lava_run(
        ['lava-run', '--job-id', job_id, '--output-dir', os.path.join(outdir, 'qemu-out'),
         '--device', device_path, job_path], os.path.join(outdir, 'qemu-lava.log'))
    lava = lavalib.LavaLog(output, yaml)
    with open(os.path.join(outdir, 'qemu-console.log'), 'w', encoding='utf-8') as out:
        out.write(lava.console())
    if code is None:
        problems.append('lava-run did not finish within %d s' % LAVA_TIMEOUT_S)
    elif code != 0:
        problems.append('lava-run exited %d' % code)
    job_result = lava.lava_result('job')
    if job_result is None or job_result.get('result') != 'pass':
        problems.append('LAVA job result: %s%s' % (
            job_result.get('result') if job_result else 'none',
            ' (%s)' % '; '.join(lava.errors[-3:]) if lava.errors else ''))
    monitor = lava.lava_result('lava-test-monitor')
    if monitor is None or monitor.get('result') != 'pass':
        problems.append('LAVA test monitor: %s' % (monitor or 'no result'))

    report = ktap.parse_text(lava.console())
    if not report.started:
        problems.append('the console LAVA captured has no KTAP report')
        return problems, None
    if report.verdict == ktap.INCOMPLETE:
        problems.append('the KTAP report LAVA captured is incomplete: %s'
                        % '; '.join(report.verdict_reasons))
    ran = lavalib.suites_from_report(report)
    if ran != suites:
        problems.append('suites in the LAVA run %s differ from the discovery boot %s'
                        % (ran, suites))
    problems += lavalib.compare(report, ktap, lava.test_results())
    results = lava.test_results()
    summary = {
        'seconds': seconds,
        'tests': len(report.tests),
        'counts': report.counts(),
        'cases': sum(1 for r in results if r.get('measurement') is None),
        'measurements': sum(1 for r in results if r.get('measurement') is not None),
        'metrics': len(report.metrics),
    }
    return problems, summary


def script_interpreter(path):
    """The interpreter a script's #! line names (lava-run's python has lava_dispatcher)."""
    try:
        with open(path, 'rb') as script:
            first = script.readline().decode('utf-8', 'replace')
    except OSError:
        first = ''
    words = first[2:].split() if first.startswith('#!') else []
    if words and os.path.basename(words[0]) == 'env' and len(words) > 1:
        return shutil.which(words[1]) or sys.executable
    return words[0] if words else sys.executable


def check_pxe_job(args, outdir, yaml):
    """lava-run --validate of the hardware job against the example device dictionary."""
    kernel = os.path.join(REPO, 'build', 'pxe', 'boot', 'locklab.elf')
    if not os.path.isfile(kernel):
        kernel = os.path.join(REPO, 'build', 'locklab.elf')
    if not os.path.isfile(kernel):
        return ['no kernel to validate the pxe-grub job with (run make)']
    job = lavalib.render(lavalib.template('pxe-grub-job.yaml.in'), {
        'JOB_NAME': 'locklab pxe-grub (test-lava validation)',
        'JOB_MINUTES': 15,
        'DEVICE_TYPE': 'x86-grub',
        'KERNEL_URL': 'file://' + kernel,
        'KERNEL_OPTIONS': 'exit=halt',
    }, lavalib.CONTRACT_SUITES)
    job_path = os.path.join(outdir, 'pxe-grub-job.yaml')
    with open(job_path, 'w', encoding='utf-8') as out:
        out.write(job)
    device = os.path.join(HERE, 'pxe-grub-device.yaml')
    argv = ['--validate', '--job-id', str(os.getpid()) + '1', '--output-dir',
            os.path.join(outdir, 'pxe-out'), '--device', device, job_path]
    # Validation runs nothing on the machine but checks that the lab's tools exist: the TFTP
    # server and the device's console and power commands.  Those missing here get
    # stand-ins on the PATH, and without tftpd-hpa's configuration LAVA's TFTP directory is
    # pointed at a scratch directory.
    env = dict(os.environ)
    stand_in = os.path.join(outdir, 'bin')
    with open(device, encoding='utf-8') as src:
        commands = yaml.safe_load(src).get('commands', {})
    tools = {'in.tftpd'} | {str(c).split()[0] for c in commands.values() if str(c).split()}
    for tool in sorted(t for t in tools if shutil.which(t) is None):
        os.makedirs(stand_in, exist_ok=True)
        fake = os.path.join(stand_in, tool)
        with open(fake, 'w') as out:
            out.write('#!/bin/sh\necho "%s: stand-in for lava-run --validate" >&2\nexit 1\n'
                      % tool)
        os.chmod(fake, 0o755)
    if os.path.isdir(stand_in):
        env['PATH'] = stand_in + os.pathsep + env.get('PATH', '')
    if os.path.exists(TFTPD_CONFIG):
        argv = ['lava-run'] + argv
    else:
        tftp = os.path.join(outdir, 'tftp')
        os.makedirs(tftp, exist_ok=True)
        env['LOCKLAB_TFTP_DIR'] = tftp
        lava = shutil.which('lava-run')
        argv = [script_interpreter(lava), '-c', TFTP_SHIM, lava] + argv
    code, output, _ = lava_run(argv, os.path.join(outdir, 'pxe-grub-validate.log'), env=env)
    if code != 0:
        tail = [l for l in output.splitlines() if 'error' in l.lower()][-5:]
        return ['lava-run --validate of the pxe-grub job exited %s: %s'
                % (code, ' | '.join(tail) or output[-500:])]
    return []


def main(argv=None):
    parser = argparse.ArgumentParser(prog='scripts/lava/test-lava', description=__doc__.split(
        '\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--iso', default=os.path.join(REPO, 'build', 'locklab.iso'))
    parser.add_argument('--smp', type=int, default=1)
    parser.add_argument('--cmdline', default='bogus=1',
                        help="extra kernel options (default 'bogus=1': boot.cmdline fails)")
    parser.add_argument('--outdir', default=os.path.join(REPO, 'build', 'lava'))
    args = parser.parse_args(argv)
    started = time.monotonic()
    reexec_for_yaml(argv)
    try:
        need_tools(args.iso)
        import yaml
        shutil.rmtree(args.outdir, ignore_errors=True)
        os.makedirs(args.outdir)
        problems, summary = check_qemu_job(args, args.outdir, yaml)
        problems += check_pxe_job(args, args.outdir, yaml)
    except SetupError as err:
        say('error: %s' % err)
        return SETUP_ERROR
    except (OSError, subprocess.SubprocessError) as err:
        say('error: %s' % err)
        return SETUP_ERROR
    if summary:
        c = summary['counts']
        say('%d KTAP tests (%d pass, %d fail, %d skip, %d xfail) -> %d LAVA test cases; '
            '%d metric lines -> %d LAVA measurements; lava-run %.1f s'
            % (summary['tests'], c['pass'], c['fail'], c['skip'], c['xfail'], summary['cases'],
               summary['metrics'], summary['measurements'], summary['seconds']))
        if not summary['metrics']:
            say('note: this run printed no metric lines, so measurements were not checked')
    for problem in problems:
        say('MISMATCH: %s' % problem)
    say('%s (%.1f s; files in %s)' % ('FAIL' if problems else 'ok', time.monotonic() - started,
                                      shown(args.outdir)))
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
