"""make test-compare: the comparison proven both ways, on kernels built from this tree.

Three kernels' legs run interleaved in one session: A (the bench kernel), A again (the same
ISO, booted as a side of its own), and S (the same tree built with LOCK_SLOWDOWN=TYPE:NS).

  A/A       A against its second copy: no guarded figure may be reported worse, and at least
            95% of the judged figures must be "no change".
  slowdown  A against S: every cost and throughput figure of TYPE must be reported worse, and
            no figure of any other lock type, nor any figure outside the lock types, may be.

Either check failing makes the exit status 1 (2 for bad input).  The legs are one lock leg of
the uncontended and throughput benchmarks (2 vCPUs), the figures the slowdown acts on and
enough other types' figures for the "not on unrelated ones" half.  The default clock is
virtual: guest time then counts instructions, so two boots of one kernel give the same figures
to a few parts in 10^5 whatever else the host runs, and the A/A check tests the comparison's
logic, not the host's weather (CLOCK=real runs it in real time, where a loaded 2-CPU host can
make the A/A check fail for load alone).
"""

import argparse
import os
import sys
import time

from . import compare
from .compare_run import Side, bench_opts, legs_for, run_sides
from .paths import REPO

PROG = 'test-compare'
TESTS = 'lock.bench_uncontended,lock.bench_throughput'
AA_SHARE = 0.95


def check_aa(result):
    """(ok, message) of the A/A comparison."""
    s = result['summary']
    share = s['no_change_share']
    ok = not s['guarded_worse'] and share is not None and share >= AA_SHARE and \
        s['with_interval'] > 0
    why = []
    if s['guarded_worse']:
        why.append('guarded figures reported worse: ' + ', '.join(s['guarded_worse']))
    if share is None or share < AA_SHARE:
        why.append('"no change" on %s of the judged figures, below %d%%' % (
            '-' if share is None else '%.1f%%' % (100 * share), 100 * AA_SHARE))
    if not s['with_interval']:
        why.append('no figure had an interval (a single repeat shows nothing)')
    return ok, 'A/A: %d figures judged, %d no change (%s), %d worse (%d guarded), %d better%s' % (
        s['judged'], s['no_change'], '-' if share is None else '%.1f%%' % (100 * share),
        s['worse'], len(s['guarded_worse']), s['better'], ': ' + '; '.join(why) if why else '')


def lock_type_of(row):
    """The lock type a figure belongs to (lock.<type>.*), or None."""
    parts = row['path'].split('.')
    return parts[1] if len(parts) > 2 and parts[0] == 'lock' else None


def check_slowdown(result, slowed):
    """(ok, message, lines) of the comparison against the slowed build."""
    rows = [r for r in result['figures'] if r['verdict'] in (compare.WORSE, compare.BETTER,
                                                              compare.SAME)]
    mine = [r for r in rows if lock_type_of(r) == slowed and r['kind'] in ('cost', 'throughput')]
    others_worse = [r for r in rows if lock_type_of(r) != slowed and r['verdict'] == compare.WORSE]
    missed = [r for r in mine if r['verdict'] != compare.WORSE]
    ok = bool(mine) and not missed and not others_worse
    why = []
    if not mine:
        why.append('no cost or throughput figure of %s was measured' % slowed)
    if missed:
        why.append('not reported worse: ' + ', '.join('%s (%s)' % (r['id'], r['verdict'])
                                                      for r in missed))
    if others_worse:
        why.append('unrelated figures reported worse: ' + ', '.join(r['id']
                                                                    for r in others_worse))
    lines = ['  %-8s %-60s %s' % (r['verdict'], r['id'], compare.factor_text(r)) for r in mine]
    return ok, 'slowdown %s: %d of %d %s cost/throughput figures worse, %d unrelated figures ' \
        'worse%s' % (result['b'].get('slowdown') or '(no slowdown line in the log!)',
                     len(mine) - len(missed), len(mine), slowed, len(others_worse),
                     ': ' + '; '.join(why) if why else ''), lines


def build_parser():
    p = argparse.ArgumentParser(prog='scripts/test-compare', description='Prove the A/B '
                                'comparison: A/A shows no change, a known slowdown is seen.')
    p.add_argument('--iso', required=True, help='the bench kernel (LOCK_DEBUG=0)')
    p.add_argument('--slow-iso', required=True, help='the same tree with LOCK_SLOWDOWN')
    p.add_argument('--slowdown', required=True, metavar='TYPE:NS',
                   help='what the slowed kernel was built with')
    p.add_argument('--clock', choices=('real', 'virtual'), default='virtual')
    p.add_argument('--repeat', type=int, default=2)
    p.add_argument('--smp', type=int, default=2)
    p.add_argument('--tests', default=TESTS)
    p.add_argument('--accel', choices=('auto', 'kvm', 'tcg'), default='auto')
    p.add_argument('--run-timeout', type=float, default=300)
    p.add_argument('--out', default=os.path.join(REPO, 'build', 'compare', 'test'))
    return p


def main(argv=None):
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return 2 if exc.code else 0
    slowed = args.slowdown.partition(':')[0]
    for iso in (args.iso, args.slow_iso):
        if not os.path.isfile(iso):
            print('%s: error: %s: no kernel ISO there' % (PROG, iso), file=sys.stderr)
            return 2
    if args.repeat < 2:
        print('%s: error: --repeat: at least 2 (one repeat gives no interval)' % PROG,
              file=sys.stderr)
        return 2
    started = time.monotonic()
    out = os.path.abspath(args.out)
    opts = bench_opts(args, 'quick', args.repeat, args.clock)
    sides = [Side('a', os.path.abspath(args.iso), out, opts),
             Side('a2', os.path.abspath(args.iso), out, opts),
             Side('slow', os.path.abspath(args.slow_iso), out, opts)]
    legs = legs_for('quick', sides[0].bench.host_cpus, args.tests, args.smp)
    print('%s: %d repeat(s) of tests=%s on %d vCPUs, clock=%s, kernels A, A, A+%s interleaved'
          % (PROG, args.repeat, args.tests, args.smp, args.clock, args.slowdown))
    try:
        run_sides(sides, legs, args.repeat, opts, PROG)
        aa = compare.run(sides[0].dir, sides[1].dir, os.path.join(out, 'aa'))
        slow = compare.run(sides[0].dir, sides[2].dir, os.path.join(out, 'slowdown'))
    except compare.CompareError as err:
        print('%s: error: %s' % (PROG, err), file=sys.stderr)
        return 2
    ok_aa, msg_aa = check_aa(aa)
    ok_slow, msg_slow, lines = check_slowdown(slow, slowed)
    print('%s: %s  %s' % (PROG, 'PASS' if ok_aa else 'FAIL', msg_aa))
    print('%s: %s  %s' % (PROG, 'PASS' if ok_slow else 'FAIL', msg_slow))
    for line in lines:
        print(line)
    print('%s: %s in %.0f s; tables: %s, %s' % (
        PROG, 'PASS' if ok_aa and ok_slow else 'FAIL', time.monotonic() - started,
        os.path.relpath(os.path.join(out, 'aa', 'compare.txt')),
        os.path.relpath(os.path.join(out, 'slowdown', 'compare.txt'))))
    return 0 if ok_aa and ok_slow else 1
