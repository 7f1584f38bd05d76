"""Run two or more kernels' benchmark legs interleaved in one session, and the command line of
the comparison (scripts/bench --compare, --compare-run; make compare).

Interleaving.  For every repeat and every leg of the plan, each kernel boots once before the
next leg starts, so a change in the host's load between two boots hits both sides alike.  The
order of the sides turns round each repeat (A B, then B A, ...), so a steady drift of the host
does not favour the side that always ran first.  Repeat r of every side is therefore one pair
that ran back to back: the manifests share a session id and locklab.compare pairs them.

Each side gets a scripts/bench output directory of its own (OUT/NAME/: runs/, report.json,
report.html), so the sides can be compared again later (--compare DIR_A DIR_B) or read alone.
The host peers and cyclictest are not run: they do not depend on the kernel.
"""

import argparse
import copy
import json
import os
import shutil
import sys
import time
import uuid

from . import bench
from . import compare
from .bench_plan import MODES, PROG, RUN_TIMEOUT_S, Leg, fmt_time, plan
from .bench_run import Bench
from .paths import REPO

EXIT_OK, EXIT_WORSE, EXIT_BAD_INPUT = 0, 1, 2
# Repeats of a comparison, both modes: three pairs are the fewest whose t interval (t = 4.3)
# can show a change that the repeats do not all agree on to a few percent (locklab.compare).
COMPARE_REPEAT = {'full': 3, 'quick': 3}


class Side:
    def __init__(self, name, iso, out, opts, commit=None):
        self.name, self.iso, self.commit = name, iso, commit
        side_opts = copy.copy(opts)
        side_opts.iso, side_opts.out = iso, os.path.join(out, name)
        self.bench = Bench(side_opts)
        self.dir = side_opts.out


def run_sides(sides, legs, repeat, opts, progress_prefix='compare'):
    """Boot every leg of every side, interleaved; write each side's manifest and report."""
    session = uuid.uuid4().hex[:12]
    started = time.monotonic()
    for side in sides:
        for sub in ('runs', 'peers'):
            shutil.rmtree(os.path.join(side.dir, sub), ignore_errors=True)
        os.makedirs(os.path.join(side.dir, 'runs'))
    lead = sides[0].bench
    total = repeat * len(legs) * len(sides)
    step = 0
    for rep in range(1, repeat + 1):
        order = sides if rep % 2 else list(reversed(sides))
        for leg in legs:
            if leg.skip_reason:
                continue
            for side in order:
                step += 1
                entry, data = side.bench.run_leg(leg, rep)
                lead.progress.line('%s: [%d/%d] %s r%d %s: %s, %s tests, %.1f s  (elapsed %s)%s'
                                   % (progress_prefix, step, total, leg.label(), rep, side.name,
                                      entry.get('verdict'), entry.get('tests', '?'),
                                      entry['seconds'], fmt_time(time.monotonic() - started),
                                      '  ' + '; '.join(entry['notes']) if entry['notes']
                                      else ''))
                if entry.get('verdict') == 'setup-error':
                    raise compare.CompareError('run-qemu could not start for %s: %s' % (
                        side.name, '; '.join(entry['notes'])))
                if side is order[0]:
                    # One side decides what the later runs select, so both run the same tests.
                    if rep == 1:
                        side.bench._after_first(leg, legs, data)
                    elif leg.selected:
                        side.bench._check_narrowed(leg, data)
    seconds = round(time.monotonic() - started, 1)
    for side in sides:
        manifest = {'mode': opts.mode, 'repeat': repeat, 'repeats_done': repeat,
                    'host_cpus': side.bench.host_cpus, 'iso': side.iso, 'clock': opts.clock,
                    'session': session, 'commit': side.commit, 'seconds': seconds,
                    'notes': lead.notes + ['one side of an interleaved comparison (session %s)'
                                           % session],
                    'host_problem': 'not measured (a comparison runs the kernels only)',
                    'runs': side.bench.manifest, 'host_outputs': [], 'cyclictest': []}
        with open(os.path.join(side.dir, 'runs', 'manifest.json'), 'w',
                  encoding='utf-8') as f:
            json.dump(manifest, f, indent=1)
            f.write('\n')
        side_opts = copy.copy(side.bench.opts)
        try:
            bench.write_report(side_opts, manifest, [], [], seconds)
        except Exception as err:  # noqa: BLE001  (the comparison needs the runs only)
            lead.progress.line('%s: %s: report not written: %s' % (progress_prefix, side.name,
                                                                  err))
    return seconds


def build_parser():
    p = argparse.ArgumentParser(
        prog='scripts/bench --compare', description='Compare two builds\' benchmark results: '
        'stored (--compare DIR_A DIR_B) or run now, interleaved (--compare-run ISO_A ISO_B). '
        'Exit 0: no guarded figure worse; 1: a guarded figure worse beyond its threshold; 2: '
        'bad input.')
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument('--compare', nargs=2, metavar=('DIR_A', 'DIR_B'),
                      help='compare two scripts/bench output directories (B against A)')
    what.add_argument('--compare-run', nargs=2, metavar=('ISO_A', 'ISO_B'),
                      help='run both kernels\' legs interleaved, then compare (B against A)')
    p.add_argument('--out', default=os.path.join(REPO, 'build', 'compare'),
                   help='output directory (default build/compare): compare.json, .html, .txt; '
                   'with --compare-run also a directory per side')
    p.add_argument('--names', default='a,b', help='--compare-run: the sides\' names, A,B '
                   '(directories under OUT; default a,b)')
    p.add_argument('--commits', default=',', help='--compare-run: the sides\' commits, A,B '
                   '(recorded in their manifests)')
    p.add_argument('--guard', action='append', metavar='GLOB',
                   help='figures (fnmatch over figure ids) whose "worse" fails the comparison; '
                   'repeatable; default: the headline figures (env GUARD, space-separated)')
    p.add_argument('--threshold', action='append', metavar='KIND=PERCENT',
                   help='band of no change per kind (%s, or all); defaults %s' % (
                       ', '.join(compare.KINDS), ', '.join('%s=%g' % (k, 100 * v) for k, v in
                                                           compare.THRESHOLDS.items())))
    p.add_argument('--all', action='store_true', help='print every figure, not only the '
                   'guarded and changed ones')
    p.add_argument('--mode', choices=sorted(MODES), default=os.environ.get('BENCH') or 'full',
                   help='--compare-run: the bench matrix, full or quick (env BENCH)')
    p.add_argument('--repeat', type=int, default=int(os.environ.get('BENCH_REPEAT') or 0) or
                   None, help='--compare-run: repeats (default 3; env BENCH_REPEAT)')
    p.add_argument('--clock', choices=('real', 'virtual'),
                   default=os.environ.get('CLOCK') or 'real', help='--compare-run: guest time '
                   '(env CLOCK)')
    p.add_argument('--accel', choices=('auto', 'kvm', 'tcg'),
                   default=os.environ.get('ACCEL') or 'auto')
    p.add_argument('--run-timeout', type=float, default=RUN_TIMEOUT_S)
    return p


def legs_for(mode, host_cpus, tests=None, smp=None):
    """The plan of bench --mode, or one lock leg of the given tests."""
    if tests:
        return [Leg('lock', smp or 2, tests)]
    return plan(mode, host_cpus)


def bench_opts(args, mode, repeat, clock):
    """The options a Bench object reads, for runs that only boot kernels."""
    return argparse.Namespace(mode=mode, repeat=repeat, accel=args.accel, clock=clock,
                              run_timeout=args.run_timeout, budget=0, gnuplot='gnuplot',
                              iso=None, out=None, smp=None, scenario_smp=None)


def main(argv):
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return EXIT_BAD_INPUT if exc.code else EXIT_OK
    guards = args.guard or (os.environ.get('GUARD') or '').split() or None
    try:
        thresholds = compare.parse_thresholds(args.threshold)
        out = os.path.abspath(args.out)
        if args.compare:
            dir_a, dir_b = args.compare
            name_a = name_b = None
        else:
            names = args.names.split(',')
            commits = (args.commits.split(',') + ['', ''])[:2]
            if len(names) != 2 or not all(names) or names[0] == names[1]:
                raise compare.CompareError('--names: two different names, A,B')
            for iso in args.compare_run:
                if not os.path.isfile(iso):
                    raise compare.CompareError('%s: no kernel ISO there' % iso)
            repeat = args.repeat or COMPARE_REPEAT[args.mode]
            if repeat < 1:
                raise compare.CompareError('--repeat: at least 1')
            opts = bench_opts(args, args.mode, repeat, args.clock)
            sides = [Side(n, os.path.abspath(i), out, opts, c or None)
                     for n, i, c in zip(names, args.compare_run, commits)]
            legs = legs_for(args.mode, sides[0].bench.host_cpus)
            print('%s --compare-run: %s matrix, %d repeat(s), clock=%s: %d legs x 2 kernels '
                  'interleaved, results in %s' % (PROG, args.mode, repeat, args.clock,
                                                 len(legs), os.path.relpath(out)),
                  file=sys.stderr)
            if repeat < 2:
                print('%s: one repeat gives no interval: every figure will be "no change"'
                      % PROG, file=sys.stderr)
            run_sides(sides, legs, repeat, opts)
            dir_a, dir_b = sides[0].dir, sides[1].dir
            name_a, name_b = names
        result = compare.run(dir_a, dir_b, out, guards, thresholds, name_a=name_a,
                             name_b=name_b)
    except compare.CompareError as err:
        print('%s: error: %s' % (PROG, err), file=sys.stderr)
        return EXIT_BAD_INPUT
    for line in compare.text_table(result, everything=args.all):
        print(line)
    print('compare: %s (every figure: %s)' % (
        os.path.relpath(os.path.join(out, 'compare.html')),
        os.path.relpath(os.path.join(out, 'compare.txt'))))
    return result['exit']
