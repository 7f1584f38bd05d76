"""bench_peers.py - the bench report's same-algorithm peers (docs/bench.md, "Fast paths").

scripts/bench runs two things through this module, and the report builder reads them back:

* the host peer benchmark, build/host/locks/plain/peers (tests/host/locks/peers.c): every
  registered locklab lock beside Concurrency Kit, glibc and the atomic floor, in one process and
  one loop; its output is OUT/peers/peers.txt;
* the in-kernel uncontended bench on the *debug* kernel (the one `make test` boots), one short
  boot, so that the debug options' cost is a ratio to the bench kernel's figures; its serial log
  is OUT/runs/debug-uncontended.log.

section() turns them, with the guest's own floor figures (lock.<type>.uncontended_floor_x1000),
into report['peers']['same_algorithm']: each locklab lock beside the peers of its algorithm as
ratios with intervals, the targets met or missed, and the store-forwarding probe.  html() draws
it.  Ratios are "locklab over peer": for cost, below 1 locklab is cheaper; for throughput, above
1 it is faster.  A ratio's interval is the range of the per-repeat ratios (the peer benchmark
takes repeat r of every subject in one round, so repeat r of two subjects pair up), or, where
the figures cannot be paired, [min/max, max/min] of the two.
"""

import html as _html
import os
import re
import subprocess
import time

from .metric_lines import parse_metric_lines
from .paths import REPO, SCRIPTS

PEERS_BIN = os.path.join(REPO, 'build', 'host', 'locks', 'plain', 'peers')
DEBUG_ISO = os.path.join(REPO, 'build', 'locklab.iso')
PEERS_FILE = os.path.join('peers', 'peers.txt')
DEBUG_LOG = os.path.join('runs', 'debug-uncontended-smp%d.log')  # vCPUs of the lock leg it pairs
PREFIX = 'host.peers.'

# Peer benchmark settings per bench mode: repeats uncontended, repeats and ms per throughput point.
MODES = {'quick': {'reps': 11, 'treps': 3, 'ms': 60},
         'full': {'reps': 21, 'treps': 5, 'ms': 100}}

# locklab lock -> (algorithm, same-algorithm peers that set the target, peers shown beside them).
FAMILIES = {
    'tas': ('test-and-set', ['ck.fas'], ['ck.cas', 'glibc.spin']),
    'ticket': ('ticket', ['ck.ticket'], []),
    'spinlock': ('ticket (spinlock_t)', ['ck.ticket'], []),
    'raw_spinlock': ('ticket (raw_spinlock_t)', ['ck.ticket'], []),
    'breakable': ('ticket (breakable)', ['ck.ticket'], []),
    'pvticket': ('ticket (paravirtual)', ['ck.ticket'], []),
    'mcs': ('MCS queue', ['ck.mcs'], ['ck.clh', 'ck.anderson']),
    'mcs_node': ('MCS queue, caller-supplied node', ['ck.mcs'], ['ck.clh', 'ck.anderson']),
    'qspinlock': ('queued spinlock', ['ck.mcs'], ['ck.fas']),
    'pvqspinlock': ('queued spinlock (paravirtual)', ['ck.mcs'], ['ck.fas']),
    'rwlock': ('rwlock, writer', ['ck.rwlock.write', 'glibc.rwlock.write'], []),
    'rwlock.read': ('rwlock, reader', ['ck.rwlock.read', 'glibc.rwlock.read'], []),
    'seqlock': ('seqlock, writer', ['ck.sequence.write'], []),
    'seqlock.read': ('seqlock, reader', ['ck.sequence.read'], []),
}
# Peers that are not FIFO: a releasing thread may take them straight back.
UNFAIR_PEERS = ('ck.fas', 'ck.cas', 'ck.sequence.write', 'glibc.spin', 'glibc.mutex',
                'ck.rwlock.write', 'glibc.rwlock.write')
# Locks whose uncontended cost is also held to the xchg + release-store floor.
FLOOR_TARGET = ('tas', 'qspinlock', 'pvqspinlock')
UNCONTENDED_MAX = 1.10   # x the fastest same-algorithm peer, and x the TAS floor
PV_MAX = 1.05            # pvticket x ticket when nobody sleeps
THROUGHPUT_MIN = 0.90    # x the same-algorithm peer at 2 threads


# ---- running ------------------------------------------------------------------------------

def add_arguments(parser):
    parser.add_argument('--peers-bin', default=PEERS_BIN,
                        help='host peer benchmark (tests/host/locks/peers.c)')
    parser.add_argument('--peers-oversub', type=int, default=0,
                        help='also run the peers with this many threads, spinners yielding '
                        '(more than the host CPUs; default: not run)')
    parser.add_argument('--debug-iso', default=DEBUG_ISO,
                        help='the debug kernel (make test\'s), whose uncontended figures are '
                        'reported as a ratio to the bench kernel\'s (default build/locklab.iso)')


def run_output(argv, timeout):
    """Run a host benchmark with no input and return (its stdout and stderr as text, its exit
    status, None), or (None, None, the error) when it could not start or ran out of time: the
    bench's host programs are all run and read this one way."""
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as err:
        return None, None, err
    return proc.stdout.decode('utf-8', 'replace'), proc.returncode, None


def run(bench):
    """Run the peer benchmark and the debug kernel's uncontended bench (scripts/bench's Bench)."""
    opts = bench.opts
    settings = MODES.get(opts.mode, MODES['quick'])
    out = os.path.join(bench.out, PEERS_FILE)
    if os.access(opts.peers_bin, os.X_OK):
        argv = [opts.peers_bin, '--reps=%d' % settings['reps'], '--treps=%d' % settings['treps'],
                '--ms=%d' % settings['ms'], '--threads=%d' % bench.host_cpus]
        if opts.peers_oversub > bench.host_cpus:
            argv.append('--oversub=%d' % opts.peers_oversub)
        elif opts.peers_oversub:
            bench.notes.append('--peers-oversub=%d ignored: not more threads than the %d host '
                               'CPUs' % (opts.peers_oversub, bench.host_cpus))
        bench.status('host peer benchmark', ' (Concurrency Kit, glibc, floor)')
        started = time.monotonic()
        text, status, err = run_output(argv, 900)
        if err is not None:
            text = '# peers: not run: %s\n' % err
            bench.notes.append('host peer benchmark: %s' % err)
        elif status != 0:
            bench.notes.append('host peer benchmark exited %d' % status)
        with open(out, 'w', encoding='utf-8') as f:
            f.write('# argv: %s\n' % ' '.join([os.path.relpath(argv[0], REPO)] + argv[1:]) + text)
        bench.progress.line('bench: host peer benchmark: %.1f s' % (time.monotonic() - started))
    else:
        with open(out, 'w', encoding='utf-8') as f:
            f.write('# peers: not run: no binary at %s (make bench builds it)\n'
                    % os.path.relpath(opts.peers_bin, REPO))
    # As many vCPUs as the smallest lock leg, whose figures it is compared with: under TCG one
    # vCPU runs without the atomics that several need, and a lock xadd costs a fraction.
    smp = min([r['smp'] for r in bench.manifest if r.get('group') == 'lock'] or [1])
    log = os.path.join(bench.out, DEBUG_LOG % smp)
    if not os.path.isfile(opts.debug_iso):
        with open(log, 'w', encoding='utf-8') as f:
            f.write('# peers: not run: no debug kernel at %s (make bench builds it)\n'
                    % os.path.relpath(opts.debug_iso, REPO))
        return
    bench.status('debug kernel, uncontended', '')
    argv = [os.path.join(SCRIPTS, 'run-qemu'), '--iso', opts.debug_iso, '--smp', str(smp),
            '--accel', opts.accel, '--clock', getattr(opts, 'clock', None) or 'real',
            '--cmdline', 'tests=lock.bench_uncontended bench=1',
            '--quiet', '--timeout', '120', '--log', log]
    _, status, err = run_output(argv, 300)
    if err is not None:
        bench.notes.append('debug kernel uncontended run: %s' % err)
    elif status != 0:
        bench.notes.append('debug kernel uncontended run: run-qemu exited %d' % status)


# ---- parsing and arithmetic -----------------------------------------------------------------

def parse_peers(texts):
    """The peer benchmark's outputs: {(subject, what, loop, threads, mode): entry}.  Each entry
    has the samples in the order of their rounds; several outputs are concatenated."""
    if isinstance(texts, str):
        texts = [texts]
    entries = {}
    for text in texts:
        for m in parse_metric_lines(text, typed=False):
            path, value, unit, attrs = m['path'], m['value'], m['unit'], m['attrs']
            if not path.startswith(PREFIX):
                continue
            name, _, what = path[len(PREFIX):].rpartition('.')
            key = (name, what, attrs.get('loop', 'tight'), attrs.get('threads'),
                   attrs.get('mode', 'spin'))
            try:
                samples = [float(x) for x in attrs['samples'].split(',')]
            except (KeyError, ValueError):
                samples = [value]
            e = entries.setdefault(key, {'name': name, 'what': what, 'unit': unit,
                                         'source': attrs.get('source'), 'loop': key[2],
                                         'threads': key[3], 'mode': key[4], 'samples': []})
            e['samples'].extend(samples)
    for e in entries.values():
        e['stats'] = stats(e['samples'])
    return entries


def _quantile(ordered, q):
    pos = q * (len(ordered) - 1)
    i = int(pos)
    if i + 1 < len(ordered):
        return ordered[i] + (pos - i) * (ordered[i + 1] - ordered[i])
    return ordered[i]


def stats(samples):
    s = sorted(samples)
    if not s:
        return None
    return {'median': _quantile(s, 0.5), 'min': s[0], 'max': s[-1], 'q1': _quantile(s, 0.25),
            'q3': _quantile(s, 0.75), 'n': len(s)}


def ratio(a, b):
    """a / b from two sample lists: the ratio of the medians and the interval of the repeats."""
    sa, sb = stats(a), stats(b)
    if not sa or not sb or sb['median'] <= 0 or sb['min'] <= 0:
        return None
    r = {'ratio': sa['median'] / sb['median'], 'n': min(sa['n'], sb['n'])}
    if len(a) == len(b):
        per = stats([x / y for x, y in zip(a, b) if y > 0])
        r.update(lo=per['min'], hi=per['max'], q1=per['q1'], q3=per['q3'], paired=True)
    else:
        r.update(lo=sa['min'] / sb['max'], hi=sa['max'] / sb['min'], paired=False)
    return r


def ratio_text(r):
    if not r:
        return 'n/a'
    return '%.2fx [%.2f-%.2f]' % (r['ratio'], r['lo'], r['hi'])


def _target(text, r, limit, at_most=True):
    """A target's verdict: met or missed by the median ratio; 'clear' when the whole interval
    of the repeats is on the same side of the limit."""
    if not r:
        return {'target': text, 'limit': limit, 'status': 'not measured', 'ratio': None}
    ok = r['ratio'] <= limit if at_most else r['ratio'] >= limit
    clear = (r['hi'] <= limit if at_most else r['lo'] >= limit) if ok else \
        (r['lo'] > limit if at_most else r['hi'] < limit)
    return {'target': text, 'limit': limit, 'ratio': r, 'status': 'met' if ok else 'missed',
            'clear': clear}


# ---- the section -----------------------------------------------------------------------------

def _read(path):
    try:
        with open(path, encoding='utf-8', errors='replace') as f:
            return f.read()
    except OSError:
        return None


def family_of(lock):
    if lock in FAMILIES:
        return FAMILIES[lock]
    base = lock.split('.')[0]
    if base.startswith('pv') and 'qspin' in base:
        return FAMILIES['pvqspinlock']
    if 'qspin' in base:
        return FAMILIES['qspinlock']
    return ('(no peer of this algorithm)', [], [])


def host_rows(entries, threads='2'):
    """One row per locklab subject: its figures and its ratios to its peers and to the floor."""
    def get(name, what='uncontended_ns', loop='tight', th=None, mode='spin'):
        e = entries.get((name, what, loop, th, mode))
        return e['samples'] if e else None

    locks = sorted({e['name'] for e in entries.values() if e['source'] == 'locklab'})
    rows = []
    for full in locks:
        lock = full[len('locklab.'):] if full.startswith('locklab.') else full
        algo, same, also = family_of(lock)
        row = {'lock': lock, 'subject': full, 'algorithm': algo, 'peers': [], 'targets': [],
               'uncontended_ns': {l: stats(get(full, loop=l) or []) for l in ('tight', 'work')},
               'throughput_2': stats(get(full, 'throughput', 'tight', threads) or []),
               'over_xadd': ratio(get(full) or [], get('floor.xadd') or []),
               'over_xchg_store': ratio(get(full) or [], get('floor.xchg_store') or [])}
        for peer in same + also:
            if not get(peer):
                continue
            row['peers'].append({
                'peer': peer, 'role': 'same' if peer in same else 'shown',
                'uncontended': ratio(get(full) or [], get(peer) or []),
                'uncontended_work': ratio(get(full, loop='work') or [],
                                          get(peer, loop='work') or []),
                'throughput': ratio(get(full, 'throughput', 'tight', threads) or [],
                                    get(peer, 'throughput', 'tight', threads) or []),
                'throughput_work': ratio(get(full, 'throughput', 'work', threads) or [],
                                         get(peer, 'throughput', 'work', threads) or [])})
        targets = [p for p in row['peers'] if p['role'] == 'same']
        if targets:
            fastest = min(targets, key=lambda p: stats(get(p['peer']))['median'])
            row['targets'].append(_target('uncontended <= %.2fx the fastest same-algorithm peer '
                                          '(%s)' % (UNCONTENDED_MAX, fastest['peer']),
                                          fastest['uncontended'], UNCONTENDED_MAX))
            with_thr = [p for p in targets if p['throughput']]
            if with_thr:
                best = max(with_thr, key=lambda p: stats(
                    get(p['peer'], 'throughput', 'tight', threads))['median'])
                row['targets'].append(_target('throughput at %s threads >= %.2fx the '
                                              'same-algorithm peer (%s)' % (
                                                  threads, THROUGHPUT_MIN, best['peer']),
                                              best['throughput'], THROUGHPUT_MIN, False))
        if lock in FLOOR_TARGET or 'qspin' in lock:
            row['targets'].append(_target('uncontended <= %.2fx the xchg + release-store floor'
                                          % UNCONTENDED_MAX, row['over_xchg_store'],
                                          UNCONTENDED_MAX))
        if lock == 'pvticket':
            row['targets'].append(_target('uncontended <= %.2fx the plain ticket lock (host)'
                                          % PV_MAX, ratio(get(full) or [],
                                                          get('locklab.ticket') or []), PV_MAX))
        for t in row['targets']:
            if t['status'] == 'missed' and t['ratio']:
                t['why'] = _why(lock, t, row, get)
        rows.append(row)
    return rows


def _why(lock, target, row, get):
    """What the measurements say about a miss (figures, not a guess)."""
    parts = []
    if 'plain ticket lock' in target['target']:
        pv, tk = stats(get(row['subject']) or []), stats(get('locklab.ticket') or [])
        xadd, none = stats(get('floor.xadd') or []), stats(get('floor.none') or [])
        if pv and tk and xadd and none:
            extra, one = pv['median'] - tk['median'], xadd['median'] - none['median']
            parts.append('pvticket - ticket = %.2f ns, %.1f times what one lock xadd adds to '
                         'the empty loop (%.2f ns): the PV unlock is a locked add, which orders '
                         'its head update before its read of the slow-path flag so that no '
                         'halting waiter is missed, where the ticket lock\'s unlock is a plain '
                         'store' % (extra, extra / one if one > 0 else float('nan'), one))
        return '; '.join(parts)
    if 'uncontended' in target['target']:
        peer = target['target'].rsplit('(', 1)[-1].rstrip(')')
        work = ratio(get(row['subject'], loop='work') or [], get(peer, loop='work') or []) \
            if peer in [p['peer'] for p in row['peers']] else None
        if work:
            parts.append('with work between acquisitions the ratio is %s' % ratio_text(work))
        over = row['over_xadd']
        if over:
            parts.append('%s costs %s one lock xadd in the tight loop' % (lock, ratio_text(over)))
    elif 'throughput' in target['target']:
        peer = target['target'].rsplit('(', 1)[-1].rstrip(')')
        p = next((p for p in row['peers'] if p['peer'] == peer), None)
        r = target['ratio']
        parts.append('per-repeat ratios %.2f-%.2f (IQR %.2f-%.2f): two spinning threads on a '
                     'shared 2-CPU host' % (r['lo'], r['hi'], r.get('q1', r['lo']),
                                            r.get('q3', r['hi'])))
        if p and p.get('throughput_work'):
            parts.append('with work between acquisitions the ratio is %s'
                         % ratio_text(p['throughput_work']))
        fifo = ratio(get('ck.ticket', 'throughput', 'tight', row_threads(target)) or [],
                     get('ck.fas', 'throughput', 'tight', row_threads(target)) or [])
        if fifo and peer in UNFAIR_PEERS and row['lock'] != 'tas':
            parts.append('%s lets the releasing thread take the lock again; a FIFO hand-over '
                         'on every release costs that: ck.ticket over ck.fas is %s'
                         % (peer, ratio_text(fifo)))
    return '; '.join(parts)


def row_threads(target):
    m = re.search(r'at (\d+) threads', target['target'])
    return m.group(1) if m else '2'


def store_forwarding(entries):
    """Is a ticket lock's tight-loop cost a store-forwarding artefact?  The probes' ratios to a
    lone lock xadd, and the packed (16-bit head store into the xadd's word) ticket lock over the
    split one (head and tail in separate words), tight and with work."""
    def s(name, loop='tight'):
        e = entries.get((name, 'uncontended_ns', loop, None, 'spin'))
        return e['samples'] if e else []

    out = {'rows': []}
    for name, what in (('probe.xadd_store8', 'lock xadd, then an 8-bit store into its word'),
                       ('probe.xadd_store16', 'lock xadd, then a 16-bit store into its word '
                        '(a ticket unlock)'),
                       ('probe.xadd_store32', 'lock xadd, then a 32-bit store to its word'),
                       ('probe.xadd_store16_other', 'lock xadd, then a 16-bit store to the next '
                        'word of the line'),
                       ('floor.xchg_store', 'xchg, then a 32-bit release store (TAS)'),
                       ('probe.ticket_packed', 'ticket lock, head and tail in one word'),
                       ('probe.ticket_split', 'ticket lock, head and tail in two words'),
                       ('locklab.ticket', 'locklab ticket lock'),
                       ('ck.ticket', 'Concurrency Kit ticket lock')):
        if s(name):
            out['rows'].append({'subject': name, 'what': what,
                                'tight': ratio(s(name), s('floor.xadd')),
                                'work': ratio(s(name, 'work'), s('floor.xadd', 'work'))})
    packed = ratio(s('probe.ticket_packed'), s('probe.ticket_split'))
    packed_w = ratio(s('probe.ticket_packed', 'work'), s('probe.ticket_split', 'work'))
    same16 = ratio(s('probe.xadd_store16'), s('floor.xadd'))
    other16 = ratio(s('probe.xadd_store16_other'), s('floor.xadd'))
    width = ratio(s('probe.xadd_store16'), s('probe.xadd_store32'))
    out.update(packed_over_split=packed, packed_over_split_work=packed_w)
    if not (packed and same16 and other16 and width):
        out['verdict'] = 'not measured (probe figures missing)'
        return out
    artefact = packed['ratio'] > 1.15 and (not packed_w or packed_w['ratio'] < packed['ratio'])
    out['artefact'] = artefact
    out['verdict'] = (
        'Packed over split ticket lock: %s in the tight loop, %s with work between '
        'acquisitions. A release store into the word the next lock xadd reads costs %s one xadd, '
        'a 16-bit store to the next word %s; 16-bit over 32-bit store %s, so %s. %s' % (
            ratio_text(packed), ratio_text(packed_w), ratio_text(same16), ratio_text(other16),
            ratio_text(width),
            'the width of the store does not matter, its address does' if abs(width['ratio'] - 1)
            < 0.1 else 'the width of the store matters',
            'The ticket locks\' extra tight-loop cost is a store-to-locked-load artefact of '
            'back-to-back acquisitions of one word, which a layout with head and tail in '
            'separate words removes and work between acquisitions %s.' % (
                'removes too' if packed_w and packed_w['ratio'] < 1.1 else
                'reduces (to %s here)' % ratio_text(packed_w)) if artefact else
            'The probes do not show a store-forwarding artefact on this host.'))
    return out


def guest_rows(results, out_dir):
    """The in-kernel uncontended bench: cycles, the multiple of the lock xadd floor measured in
    the same boot, and the debug kernel's figure over the bench kernel's."""
    if results is None:
        return {'rows': [], 'note': 'no guest results'}
    cyc = [e for e in results.find(regex=r'^lock\.[^.]+\.uncontended_cycles$')
           if e.get('group') == 'lock']
    if not cyc:
        return {'rows': [], 'note': 'not measured (no lock.*.uncontended_cycles in this run)'}
    smp = min(e['smp'] for e in cyc)
    cyc = [e for e in cyc if e['smp'] == smp]
    debug_text = _read(os.path.join(out_dir, DEBUG_LOG % smp)) if out_dir else None
    floor = {e['path'].split('.')[1]: e for e in results.find(
        regex=r'^lock\.[^.]+\.uncontended_floor_x1000$') if e.get('group') == 'lock'
        and e['smp'] == smp}
    debug, debug_floor = {}, {}
    for line in parse_metric_lines(debug_text, typed=False):
        m = re.match(r'^lock\.([^.]+)\.uncontended_(cycles|floor_x1000)$', line['path'])
        if m and line['attrs'].get('debug') == '1':
            (debug if m.group(2) == 'cycles' else debug_floor)[m.group(1)] = line['value']
    rows = []
    for e in sorted(cyc, key=lambda e: e['stats']['median']):
        name = e['path'].split('.')[1]
        f = floor.get(name)
        row = {'type': name, 'cycles': e['stats'],
               'over_floor': {k: f['stats'][k] / 1000.0 for k in ('median', 'min', 'max')}
               if f else None, 'debug_cycles': debug.get(name)}
        if name in debug and e['stats']['median'] > 0:
            row['debug_over_bench_cycles'] = ratio([debug[name]], e['samples'])
            row['debug_over_bench'] = row['debug_over_bench_cycles']
        # Two boots run at the speed the host gave each; in multiples of each boot's own
        # floor the speed cancels out, so that ratio is the one reported when both have it.
        if name in debug_floor and f and f['stats']['min'] > 0:
            row['debug_over_bench'] = ratio([debug_floor[name]], f['samples'])
            row['debug_over_bench_basis'] = 'x floor'
        elif row.get('debug_over_bench'):
            row['debug_over_bench_basis'] = 'cycles'
        rows.append(row)
    by = {e['path'].split('.')[1]: e for e in cyc}
    pv = None
    if 'pvticket' in by and 'ticket' in by:
        a, b = by['pvticket'], by['ticket']
        pairs = {}
        for run, v in zip(a['runs'], a['samples']):
            pairs.setdefault(run, [None, None])[0] = v
        for run, v in zip(b['runs'], b['samples']):
            pairs.setdefault(run, [None, None])[1] = v
        xs = [p for p in pairs.values() if None not in p]
        pv = _target('pvticket uncontended <= %.2fx the plain ticket lock (guest, same boot)'
                     % PV_MAX, ratio([p[0] for p in xs], [p[1] for p in xs]), PV_MAX)
    note = 'Guest leg: lock smp=%s; floor: one lock xadd timed by the same loop in the same ' \
        'boot.' % smp
    if not debug:
        note += ' Debug kernel: not measured (%s).' % (
            (debug_text or '').strip().splitlines()[0][2:] if debug_text and
            debug_text.startswith('# peers: not run') else 'no debug=1 figures in %s'
            % (DEBUG_LOG % smp))
    return {'rows': rows, 'pv_target': pv, 'note': note, 'smp': smp}


def section(out_dir, results=None):
    """report['peers']['same_algorithm']."""
    text = _read(os.path.join(out_dir, PEERS_FILE))
    entries = parse_peers(text or '')
    sec = {'host': host_rows(entries) if entries else [],
           'store_forwarding': store_forwarding(entries) if entries else None,
           'guest': guest_rows(results, out_dir),
           'floor': {k: stats(entries[(k, 'uncontended_ns', l, None, 'spin')]['samples'])
                     for k in ('floor.none', 'floor.xadd', 'floor.xchg_store')
                     for l in ('tight',) if (k, 'uncontended_ns', l, None, 'spin') in entries},
           'subjects': sorted({e['name'] for e in entries.values()}),
           'settings': next((l[len('# argv: '):] for l in (text or '').splitlines()
                             if l.startswith('# argv: ')), None),
           'load': [l[len('# peers: '):] for l in (text or '').splitlines()
                    if l.startswith('# peers: load average')]}
    oversub = sorted({e['threads'] for e in entries.values() if e['mode'] != 'spin'})
    sec['oversubscribed'] = [
        {'subject': e['name'], 'threads': e['threads'], 'mode': e['mode'],
         'ops_per_s': e['stats']} for e in entries.values() if e['mode'] != 'spin'] \
        if oversub else []
    if not entries:
        sec['problem'] = 'not measured (%s)' % ((text or '').strip().splitlines()[0].lstrip('# ')
                                                if text else 'no %s' % PEERS_FILE)
    sec['targets'] = [dict(t, lock=r['lock']) for r in sec['host'] for t in r['targets']]
    if sec['guest'].get('pv_target'):
        sec['targets'].append(dict(sec['guest']['pv_target'], lock='pvticket (guest)'))
    return sec


def summary_lines(report):
    """One line per target, for scripts/bench's closing summary."""
    sec = (report.get('peers') or {}).get('same_algorithm') or {}
    lines = []
    for t in sec.get('targets', []):
        lines.append('  %-18s %-7s %s: %s' % (t['lock'], t['status'], t['target'],
                                              ratio_text(t.get('ratio'))))
    return lines


# ---- HTML -----------------------------------------------------------------------------------

def _e(x):
    return _html.escape(str(x))


def _ns(s):
    return 'n/a' if not s else '%.3g [%.3g-%.3g]' % (s['median'], s['min'], s['max'])


def html(report):
    """The section as a list of HTML fragments (bench_html.write_html appends them)."""
    sec = (report.get('peers') or {}).get('same_algorithm')
    out = ['<h3 id="peers-same-algorithm">Same algorithm: Concurrency Kit, glibc, the atomic '
           'floor</h3>']
    if not sec:
        return out + ['<p class="nm">not measured</p>']
    if sec.get('problem'):
        out.append('<p class="nm">%s</p>' % _e(sec['problem']))
    out.append('<p>Host, one process, one loop, every lock called through the same function '
               'pointers (tests/host/locks/peers.c: %s). Ratios are locklab over the peer: '
               'cost below 1 and throughput above 1 favour locklab. In brackets: the range of '
               'the per-repeat ratios. The host is shared; the spread is part of the result.'
               '</p>' % _e(sec.get('settings') or 'settings unknown'))
    if sec.get('load'):
        out.append('<p>Host %s.</p>' % _e('; '.join(sec['load'])))
    fl = sec.get('floor') or {}
    if fl:
        out.append('<p>Floor, tight loop (ns): %s.</p>' % _e(', '.join(
            '%s %s' % (k, _ns(v)) for k, v in sorted(fl.items()))))
    out.append('<table><tr><th>lock</th><th>algorithm</th><th>uncontended ns, tight</th>'
               '<th>with work</th><th>x lock xadd</th><th>peer</th><th>uncontended, tight</th>'
               '<th>with work</th><th>throughput, 2 threads</th><th>with work</th></tr>')
    for r in sec.get('host', []):
        peers = r['peers'] or [None]
        for i, p in enumerate(peers):
            head = ('<td rowspan="%d">%s</td><td rowspan="%d">%s</td><td rowspan="%d">%s</td>'
                    '<td rowspan="%d">%s</td><td rowspan="%d">%s</td>' % (
                        len(peers), _e(r['lock']), len(peers), _e(r['algorithm']), len(peers),
                        _e(_ns(r['uncontended_ns']['tight'])), len(peers),
                        _e(_ns(r['uncontended_ns']['work'])), len(peers),
                        _e(ratio_text(r['over_xadd'])))) if i == 0 else ''
            if p is None:
                cells = '<td colspan="5">no peer of this algorithm</td>'
            else:
                cells = '<td>%s%s</td>%s' % (_e(p['peer']), '' if p['role'] == 'same' else
                                              ' (shown)', ''.join(
                                                  '<td>%s</td>' % _e(ratio_text(p[k])) for k in
                                                  ('uncontended', 'uncontended_work',
                                                   'throughput', 'throughput_work')))
            out.append('<tr>%s%s</tr>' % (head, cells))
    out.append('</table>')
    out.append('<h4>Targets</h4><table><tr><th>lock</th><th>target</th><th>ratio</th>'
               '<th>verdict</th><th>why (measured)</th></tr>')
    for t in sec.get('targets', []):
        verdict = t['status'] + ('' if t['status'] == 'not measured' else
                                 ' (whole interval)' if t.get('clear') else
                                 ' (interval straddles the limit)')
        out.append('<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>' % (
            _e(t['lock']), _e(t['target']), _e(ratio_text(t.get('ratio'))), _e(verdict),
            _e(t.get('why', ''))))
    out.append('</table>')
    sf = sec.get('store_forwarding')
    if sf:
        out.append('<h4>Is the ticket locks\' tight-loop cost store forwarding?</h4>')
        out.append('<table><tr><th>probe</th><th>what</th><th>x lock xadd, tight</th>'
                   '<th>x lock xadd, with work</th></tr>')
        for r in sf['rows']:
            out.append('<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>' % (
                _e(r['subject']), _e(r['what']), _e(ratio_text(r['tight'])),
                _e(ratio_text(r['work']))))
        out.append('</table><p>%s</p>' % _e(sf.get('verdict', '')))
    g = sec.get('guest') or {}
    out.append('<h4>In the guest: the lock xadd floor and the debug kernel</h4>')
    out.append('<p>%s</p>' % _e(g.get('note', '')))
    if g.get('rows'):
        out.append('<table><tr><th>type</th><th>cycles (bench kernel)</th><th>x lock xadd</th>'
                   '<th>cycles (debug kernel)</th><th>debug / bench (in multiples of each '
                   'boot\'s floor, else cycles)</th></tr>')
        for r in g['rows']:
            of = r.get('over_floor')
            out.append('<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>' % (
                _e(r['type']), _e(_ns(r['cycles'])),
                _e('%.2fx [%.2f-%.2f]' % (of['median'], of['min'], of['max']) if of else 'n/a'),
                _e('%g' % r['debug_cycles'] if r.get('debug_cycles') is not None else 'n/a'),
                _e(ratio_text(r.get('debug_over_bench')))))
        out.append('</table>')
    if sec.get('oversubscribed'):
        out.append('<h4>Oversubscribed (spinners yield; labelled mode=oversub-yield)</h4><table>'
                   '<tr><th>subject</th><th>threads</th><th>ops/s</th></tr>')
        for o in sec['oversubscribed']:
            out.append('<tr><td>%s</td><td>%s</td><td>%s</td></tr>' % (
                _e(o['subject']), _e(o['threads']), _e(_ns(o['ops_per_s']))))
        out.append('</table>')
    return out
