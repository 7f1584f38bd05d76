"""test-kvm: the functional KVM leg (`make test-kvm`).

Boots locklab on /dev/kvm with 2 vCPUs, twice, one after the other: with the CPU model the runner
picks (no --cpu: `-cpu host`, or the runner's named fallback where KVM refuses it) and with a
model that claims the other CPU vendor than the host's (so the guest's hypercall instruction is
the wrong one and the host rewrites it).  Each runs the boot tests, smp.cpus_online, the time
tests and the PV lock tests (lock.pv_*).  Besides run-qemu's verdict, each log must show:

  - the TSC rate's source named (`# time: TSC source NAME`), and no GUESSED rate;
  - how PV kicks travel, and kicks counted that way on the lock.pvticket.kick_wake_ns figures:
    by hypercall (`PV locks kick by KVM_HC_KICK_CPU`, hc_kicks > 0, ipi_kicks = 0), or by IPI
    only when the kernel found that the host runs no hypercall instruction at all and said why
    (`no hypercall works (...)`: a NOTE, or a failure with --strict).

Figures are not compared: a nested or loaded KVM says nothing about lock performance.
Where /dev/kvm is missing or cannot be opened the leg is skipped: one "test-kvm: SKIP: reason"
line, exit 0.  Exit 1 when a boot or a check failed, 4 on a usage error.
"""

import argparse
import os
import re
import subprocess
import sys
import time

from .paths import REPO, SCRIPTS

PROG = 'test-kvm'

# lock.pv_*: the PV overcommit test (every PV lock type) and the PV ticket lock's kick tests.
TESTS = 'boot.*,smp.cpus_online,smp.time_source*,smp.tsc_vs_pm_timer,lock.pv_*'
PV_FEATURES = '+x2apic,+kvm-pv-unhalt,+kvmclock,+kvm-steal-time'
# A named model per vendor: qemu64 claims AMD, kvm64 claims Intel.
MODEL_OF_VENDOR = {'intel': 'kvm64', 'amd': 'qemu64'}
# A KVM boot here (a nested software hypervisor, a loaded host) can take minutes to the plan.
LEG_TIMEOUT_S = 900

TIME_SOURCE = re.compile(r'# time: TSC source ([A-Za-z-]+)')
KICK_HYPERCALL = re.compile(r'# kvm: PV unhalt: PV locks kick by KVM_HC_KICK_CPU, (.*)')
KICK_NONE = re.compile(r'# kvm: PV unhalt offered but no hypercall works \((.*)\): PV locks kick '
                       r'by IPI')
NO_PV_UNHALT = re.compile(r'# kvm: no PV unhalt')
KICK_FIGURE = re.compile(r'# metric: lock\.pvticket\.kick_wake_ns\.\S+ .*\bhc_kicks=(\d+) '
                         r'ipi_kicks=(\d+)')
STEAL = re.compile(r'\bsteal_ns=(\d+)')
PLAN = re.compile(r'boot-to-plan ([0-9.]+) s')


def host_vendor(cpuinfo='/proc/cpuinfo'):
    """'intel', 'amd' or None, from the host's /proc/cpuinfo."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith('vendor_id'):
                    v = line.split(':', 1)[1].strip()
                    if v == 'GenuineIntel':
                        return 'intel'
                    if v in ('AuthenticAMD', 'HygonGenuine'):
                        return 'amd'
                    return None
    except OSError:
        return None
    return None


def kvm_unusable(dev_kvm='/dev/kvm'):
    """Why KVM cannot be used here, or None when /dev/kvm opens read-write."""
    if not os.path.exists(dev_kvm):
        return '%s is missing (no KVM on this machine)' % dev_kvm
    try:
        os.close(os.open(dev_kvm, os.O_RDWR | os.O_CLOEXEC))
    except OSError as err:
        return '%s cannot be opened (%s)' % (dev_kvm, err.strerror)
    return None


def check_log(text, strict=False):
    """(problems, notes, facts) of one leg's serial log."""
    problems, notes, facts = [], [], {}
    if 'GUESSED' in text:
        problems.append('the TSC rate was GUESSED')
    m = TIME_SOURCE.search(text)
    if not m:
        problems.append('no "# time: TSC source" line: the time-source test did not run')
    else:
        facts['tsc_source'] = m.group(1)
        if m.group(1) == 'guessed':
            problems.append('TSC source is "guessed"')
    hc = ipi = 0
    figures = KICK_FIGURE.findall(text)
    for h, i in figures:
        hc, ipi = max(hc, int(h)), max(ipi, int(i))
    facts['hc_kicks'], facts['ipi_kicks'] = hc, ipi
    if not figures:
        problems.append('no lock.pvticket.kick_wake_ns figure with hc_kicks=')
    by_hc, by_none = KICK_HYPERCALL.search(text), KICK_NONE.search(text)
    if by_hc:
        facts['kick'] = 'by hypercall, ' + by_hc.group(1).strip()
        if figures and (hc == 0 or ipi != 0):
            problems.append('kicks chosen by hypercall, yet hc_kicks=%d ipi_kicks=%d' % (hc, ipi))
    elif by_none:
        facts['kick'] = 'by IPI: no hypercall works here'
        why = 'the host runs no hypercall instruction (%s)' % by_none.group(1)
        (problems if strict else notes).append(why)
        if figures and (ipi == 0 or hc != 0):
            problems.append('kicks by IPI, yet hc_kicks=%d ipi_kicks=%d' % (hc, ipi))
    elif NO_PV_UNHALT.search(text):
        problems.append('the guest saw no PV unhalt feature (asked for +kvm-pv-unhalt)')
    else:
        problems.append('no "# kvm:" line on how PV kicks travel (not on KVM?)')
    steals = [int(s) for s in STEAL.findall(text)]
    if steals:
        facts['max_steal_ns'] = max(steals)
    return problems, notes, facts


def read(path):
    try:
        with open(path, errors='replace') as f:
            return f.read()
    except OSError:
        return ''


def start_leg(name, cpu, opts):
    log = os.path.join(opts.logdir, 'kvm-%s.log' % name)
    out = open(os.path.join(opts.logdir, 'kvm-%s.out' % name), 'w+')
    cmd = [os.path.join(SCRIPTS, 'run-qemu'), '--iso', opts.iso, '--accel', 'kvm', '--smp', '2',
           '--timeout', str(opts.timeout), '--cmdline', 'tests=' + opts.tests, '--log', log]
    if cpu:
        cmd += ['--cpu', cpu]
    print('%s: %s: %s' % (PROG, name, ' '.join(cmd[1:])), flush=True)
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    return {'name': name, 'proc': proc, 'out': out, 'log': log, 't0': time.monotonic()}


def finish_leg(leg, strict):
    """Wait for one leg and check it; True when it passed."""
    name = leg['name']
    rc = leg['proc'].wait()
    secs = time.monotonic() - leg['t0']
    leg['out'].seek(0)
    out = leg['out'].read()
    leg['out'].close()
    problems, notes, facts = check_log(read(leg['log']), strict)
    if rc != 0:
        problems.insert(0, 'run-qemu exited %d' % rc)
    plan = PLAN.search(out)
    print('%s: %s: %s in %.0f s (boot to plan %s s); TSC source %s; kicks %s: %d by hypercall, '
          '%d by IPI%s'
          % (PROG, name, 'FAIL' if problems else 'PASS', secs, plan.group(1) if plan else '?',
             facts.get('tsc_source', '?'), facts.get('kick', '?'), facts.get('hc_kicks', 0),
             facts.get('ipi_kicks', 0),
             '; max steal_ns=%d' % facts['max_steal_ns'] if 'max_steal_ns' in facts else ''),
          flush=True)
    for line in out.splitlines():
        if 'retrying' in line or 'verdict=' in line:
            print('%s: %s:   %s' % (PROG, name, line.strip()))
    for n in notes:
        print('%s: %s:   NOTE: %s' % (PROG, name, n))
    for p in problems:
        print('%s: %s:   %s (log: %s)' % (PROG, name, p, leg['log']))
    if problems:
        for line in out.splitlines()[-15:]:
            print('%s: %s: | %s' % (PROG, name, line))
    return not problems


def main(argv=None):
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split('\n')[0])
    ap.add_argument('--iso', default=os.path.join(REPO, 'build', 'locklab.iso'))
    ap.add_argument('--tests', default=TESTS, help='tests= for both boots (default %(default)s)')
    ap.add_argument('--logdir', default=os.path.join(REPO, 'build'),
                    help='where kvm-runner.log and kvm-other-vendor.log go (default build/)')
    ap.add_argument('--timeout', type=int, default=LEG_TIMEOUT_S,
                    help='run-qemu --timeout per boot (default %(default)s s)')
    ap.add_argument('--strict', action='store_true',
                    help='fail, not note, when the host runs no hypercall instruction')
    ap.add_argument('--dev-kvm', default='/dev/kvm', help=argparse.SUPPRESS)
    opts = ap.parse_args(argv)

    why = kvm_unusable(opts.dev_kvm)
    if why:
        print('%s: SKIP: %s' % (PROG, why))
        return 0
    if not os.path.exists(opts.iso):
        print('%s: %s does not exist (make all first)' % (PROG, opts.iso), file=sys.stderr)
        return 4
    vendor = host_vendor()
    if vendor is None:
        print('%s: SKIP: host CPU vendor unknown: no model of the other vendor to pick' % PROG)
        return 0
    other = 'amd' if vendor == 'intel' else 'intel'
    other_model = MODEL_OF_VENDOR[other] + ',' + PV_FEATURES
    os.makedirs(opts.logdir, exist_ok=True)
    t0 = time.monotonic()
    # One after the other: two 2-vCPU guests at once would overcommit a 2-CPU host.
    ok = finish_leg(start_leg('runner', None, opts), opts.strict)
    ok = finish_leg(start_leg('other-vendor', other_model, opts), opts.strict) and ok
    print('%s: %s: 2 boots on /dev/kvm (host %s; other vendor: %s), %.0f s in all'
          % (PROG, 'PASS' if ok else 'FAIL', vendor, other_model, time.monotonic() - t0))
    return 0 if ok else 1

