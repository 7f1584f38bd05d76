"""bench: run the benchmark matrix and write build/bench/ (report.html, report.json, plots).

    scripts/bench [--mode full|quick] [--repeat N] [--iso PATH] [--out DIR] ...
    scripts/bench --reuse [--out DIR]          re-aggregate the runs already in DIR

`make bench` builds the kernel without the lock debug options (LOCK_DEBUG=0, in
build/bench-kernel/) and the host pthread benchmark, then runs this.  Each leg of the matrix is
one boot through scripts/run-qemu --json; legs are repeated (BENCH_REPEAT, default 3 for the full
matrix, 2 for quick) with the repeats interleaved, so a change in the host's load spreads over
all legs instead of hitting one.  The peers run on the host in the same session: the lock
algorithms as a pthread benchmark (tests/host/locks torture --bench) and cyclictest (rt-tests).

Environment (the make variables of the same names): BENCH (full|quick), BENCH_REPEAT,
BENCH_SMP (comma-separated vCPU counts of the lock legs), BENCH_SCENARIO_SMP (vCPUs of the TLB
and scheduler legs, default 4), BENCH_BUDGET (seconds; repeats that would not fit are dropped
and the report says so; 0 = no limit), ACCEL (auto|kvm|tcg), CLOCK (real|virtual).

    scripts/bench --compare DIR_A DIR_B        judge B's figures against A's (locklab.compare)
    scripts/bench --compare-run ISO_A ISO_B    run both kernels' legs interleaved, then judge

Exit status: 0 when the report was written (whatever the kernel's verdicts: a failing test is
listed in the report), 4 on a set-up error (no ISO, runner missing, output not writable).
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import sys
import time

from . import bench_peers
from . import bench_report as benchlib
from .bench_results import load_runs, read_text
from .paths import REPO
from .bench_plan import HOST_BENCH, MODES, PROG, RUN_TIMEOUT_S, SETUP_ERROR, fmt_time
from .bench_run import Bench, SetupFailure


def qemu_version():
    command = os.environ.get('LOCKLAB_QEMU', 'qemu-system-x86_64').split()
    return benchlib.command_first_line(command + ['--version'])


def write_report(opts, manifest, host_outputs, cyclic, seconds):
    runs = load_runs(manifest['runs'], opts.out)
    env = {'qemu_version': qemu_version(), 'kernel_commit': benchlib.git_commit(),
           'iso': os.path.relpath(manifest.get('iso') or opts.iso, REPO),
           'loadavg': ' '.join('%.2f' % x for x in os.getloadavg())
           if hasattr(os, 'getloadavg') else None}
    notes = list(manifest.get('notes') or [])
    slowed = sorted({r['slowdown'] for r in manifest['runs'] if r.get('slowdown')})
    if slowed:
        env['lock_slowdown'] = ', '.join(slowed)
        notes.insert(0, 'SLOWED BUILD: this kernel was built with LOCK_SLOWDOWN (%s): its '
                     'figures are for testing comparisons, not measurements of the locks'
                     % env['lock_slowdown'])
    if not benchlib.host_is_rt():
        notes.append('The host runs %s, not a PREEMPT_RT kernel: cyclictest measures an '
                     'ordinary kernel.' % platform.release())
    for c in cyclic:
        notes.extend(n for n in c.get('notes') or [] if n not in notes)
    meta = {'mode': manifest.get('mode'), 'repeat': manifest.get('repeat'),
            'repeats_done': manifest.get('repeats_done'), 'seconds': seconds,
            'notes': notes, 'environment': env, 'host_problem': manifest.get('host_problem'),
            'host_cpus': manifest.get('host_cpus'),
            'host_note': 'Host benchmark: %s.' % manifest['host_args']
            if manifest.get('host_args') else None}
    return benchlib.build(opts.out, runs, host_outputs, cyclic, meta, gnuplot=opts.gnuplot,
                          host_cpus=manifest.get('host_cpus'))


def env_default(name, default=None):
    value = os.environ.get(name)
    return value if value not in (None, '') else default


def parse_smp_list(text):
    if not text:
        return None
    try:
        values = sorted({int(x) for x in text.replace(' ', ',').split(',') if x})
    except ValueError:
        raise argparse.ArgumentTypeError('BENCH_SMP: a comma-separated list of vCPU counts')
    if not values or any(v < 1 or v > 255 for v in values):
        raise argparse.ArgumentTypeError('vCPU counts must be 1..255')
    return values


def build_parser():
    p = argparse.ArgumentParser(prog='scripts/bench', description='Run the locklab benchmark '
                                'matrix and write build/bench/ (report.html, report.json, '
                                'plots).')
    p.add_argument('--mode', choices=sorted(MODES), default=env_default('BENCH', 'full'),
                   help='full (default) or quick (env BENCH)')
    p.add_argument('--repeat', type=int, default=int(env_default('BENCH_REPEAT', 0)) or None,
                   help='repeats per leg (env BENCH_REPEAT; default 3 full, 2 quick)')
    p.add_argument('--smp', type=parse_smp_list, default=env_default('BENCH_SMP'),
                   help='vCPU counts of the lock legs, e.g. 1,2,4,8 (env BENCH_SMP)')
    p.add_argument('--scenario-smp', type=int,
                   default=int(env_default('BENCH_SCENARIO_SMP', 0)) or None,
                   help='vCPUs of the TLB and scheduler legs (default 4; quick: 4 or the '
                   'host CPU count if smaller, at least 2)')
    p.add_argument('--budget', type=int,
                   default=int(env_default('BENCH_BUDGET')) if env_default('BENCH_BUDGET')
                   else None, help='time budget in seconds (default 570 full, 540 quick; 0: '
                   'none)')
    p.add_argument('--accel', choices=('auto', 'kvm', 'tcg'),
                   default=env_default('ACCEL', 'auto'))
    p.add_argument('--clock', choices=('real', 'virtual'), default=env_default('CLOCK', 'real'),
                   help='guest time of every leg: real or virtual (env CLOCK; docs/clock.md); '
                   'recorded with every run')
    p.add_argument('--iso', default=os.path.join(REPO, 'build', 'bench-kernel', 'locklab.iso'),
                   help='kernel ISO (default build/bench-kernel/locklab.iso, LOCK_DEBUG=0)')
    p.add_argument('--host-bin', default=HOST_BENCH, help='host pthread benchmark binary')
    p.add_argument('--host-ms', type=int, help='host benchmark ms per point')
    p.add_argument('--host-threads', type=int,
                   default=int(env_default('BENCH_HOST_THREADS', 0)) or None,
                   help='host benchmark threads (default: the largest lock leg, at most the '
                   'host CPU count; beyond it spinners yield every 128 spins)')
    p.add_argument('--cyclic-seconds', type=int, help='seconds per cyclictest run')
    p.add_argument('--run-timeout', type=float, default=RUN_TIMEOUT_S,
                   help='run-qemu --timeout per boot (default %d)' % RUN_TIMEOUT_S)
    p.add_argument('--out', default=os.path.join(REPO, 'build', 'bench'))
    p.add_argument('--reuse', action='store_true',
                   help='do not run anything: rebuild the report from OUT/runs/manifest.json')
    p.add_argument('--gnuplot', default='gnuplot', help=argparse.SUPPRESS)
    bench_peers.add_arguments(p)
    return p


def print_summary(report, out):
    print('%s: headline (factor > 1: the "after" side is better):' % PROG)
    for line in benchlib.headline_lines(report):
        print(line)
    for line in bench_peers.summary_lines(report):
        print(line)
    drawn = [p for p in report['plots'] if p.get('file')]
    print('%s: %d runs, %d metrics, %d histograms, %d plot(s)%s' % (
        PROG, len(report['runs']), len(report['metrics']), len(report['histograms']),
        len(drawn), '; problems: ' + '; '.join(report['problems']) if report['problems'] else ''))
    if report.get('plot_problem'):
        print('%s: warning: %s' % (PROG, report['plot_problem']), file=sys.stderr)
    print('%s: %s' % (PROG, os.path.relpath(os.path.join(out, 'report.html'))))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if '--compare' in argv or '--compare-run' in argv:
        from . import compare_run   # A/B comparison: its own options (docs/bench.md)
        return compare_run.main(argv)
    opts = build_parser().parse_args(argv)
    if isinstance(opts.smp, str):
        opts.smp = parse_smp_list(opts.smp)
    opts.out = os.path.abspath(opts.out)
    opts.iso = os.path.abspath(opts.iso)
    started = time.monotonic()
    manifest_path = os.path.join(opts.out, 'runs', 'manifest.json')
    if opts.reuse:
        try:
            with open(manifest_path, encoding='utf-8') as f:
                manifest = json.load(f)
        except (OSError, ValueError) as err:
            print('%s: cannot read %s: %s' % (PROG, manifest_path, err), file=sys.stderr)
            return SETUP_ERROR
        host_outputs = [read_text(os.path.join(opts.out, p)) or ''
                        for p in manifest.get('host_outputs', [])]
        cyclic = []
        for c in manifest.get('cyclictest', []):
            c = dict(c)
            c['text'] = read_text(os.path.join(opts.out, 'peers', 'cyclictest-%s.hist'
                                               % c['label']))
            cyclic.append(c)
        report = write_report(opts, manifest, host_outputs, cyclic, manifest.get('seconds'))
        print_summary(report, opts.out)
        return 0

    if not os.path.isfile(opts.iso):
        print('%s: no kernel ISO at %s (make bench builds it)' % (PROG, opts.iso),
              file=sys.stderr)
        return SETUP_ERROR
    try:
        for d in ('runs', 'peers'):
            shutil.rmtree(os.path.join(opts.out, d), ignore_errors=True)
            os.makedirs(os.path.join(opts.out, d))
    except OSError as err:
        print('%s: %s' % (PROG, err), file=sys.stderr)
        return SETUP_ERROR
    bench = Bench(opts)
    try:
        repeat, done, cyclic, host_problem, threads = bench.execute()
    except SetupFailure as err:
        bench.progress.line('%s: error: %s' % (PROG, err))
        return SETUP_ERROR
    except KeyboardInterrupt:
        bench.progress.line('%s: interrupted; the runs so far are in %s' % (
            PROG, os.path.relpath(bench.runs_dir)))
        return 130
    seconds = round(time.monotonic() - started, 1)
    host_ms = opts.host_ms or MODES[opts.mode]['host_ms']
    manifest = {'mode': opts.mode, 'clock': opts.clock, 'repeat': repeat,
                'repeats_done': done, 'host_cpus': bench.host_cpus, 'iso': opts.iso,
                'notes': bench.notes,
                'host_problem': host_problem, 'runs': bench.manifest, 'seconds': seconds,
                'host_outputs': ['peers/host-locks-r%d.txt' % (i + 1)
                                 for i in range(len(bench.host_outputs))],
                'host_args': '%s --bench --threads=%d --ms=%d%s, %d repeat(s)' % (
                    os.path.relpath(opts.host_bin, REPO), threads, host_ms,
                    ' --yield=128' if threads > bench.host_cpus else '',
                    len(bench.host_outputs)),
                'cyclictest': bench.cyclic}
    with open(manifest_path, 'w', encoding='utf-8') as f:
        json.dump(manifest, f, indent=1)
        f.write('\n')
    bench.progress.update('%s: writing the report' % PROG)
    try:
        report = write_report(opts, manifest, bench.host_outputs, cyclic, seconds)
    except OSError as err:
        bench.progress.line('%s: %s' % (PROG, err))
        return SETUP_ERROR
    bench.progress.line('%s: done in %s (%s)' % (PROG, fmt_time(time.monotonic() - started),
                                                 datetime.datetime.now().strftime('%H:%M:%S')))
    print_summary(report, opts.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
