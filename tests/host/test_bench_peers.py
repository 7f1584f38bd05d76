"""Tests of the same-algorithm peers table (scripts/bench_peers.py) on canned peer-benchmark
output, and of the peer benchmark binary itself when it is built: its exclusion check must
fail on a lock that excludes nobody."""

import os
import shutil
import subprocess
import tempfile
import unittest

import support  # noqa: F401  (puts scripts/ on sys.path)
from locklab import bench_peers


def line(name, what, samples, unit='ns', **attrs):
    s = sorted(samples)
    attrs.setdefault('loop', 'tight')
    extra = ' '.join('%s=%s' % kv for kv in attrs.items())
    return '# metric: host.peers.%s.%s %g %s %s reps=%d min=%g max=%g samples=%s' % (
        name, what, s[len(s) // 2], unit, extra, len(s), s[0], s[-1],
        ','.join('%g' % x for x in samples))


def canned(ticket=(10, 11, 12), pv=(10.2, 11.1, 12.3), packed=(15, 15, 16), split=(10, 10, 11),
           packed_work=(30, 31, 30), split_work=(30, 30, 31)):
    """A peer-benchmark output: the floor, two locklab locks, CK's ticket, the probes."""
    rows = [
        line('floor.none', 'uncontended_ns', [3, 3, 3], source='floor'),
        line('floor.xadd', 'uncontended_ns', [5, 5, 6], source='floor'),
        line('floor.xadd', 'uncontended_ns', [25, 25, 26], source='floor', loop='work'),
        line('floor.xchg_store', 'uncontended_ns', [6, 6, 7], source='floor'),
        line('locklab.ticket', 'uncontended_ns', list(ticket), source='locklab'),
        line('locklab.ticket', 'uncontended_ns', [30, 30, 30], source='locklab', loop='work'),
        line('locklab.pvticket', 'uncontended_ns', list(pv), source='locklab'),
        line('locklab.tas', 'uncontended_ns', [6.2, 6.1, 7], source='locklab'),
        line('ck.fas', 'uncontended_ns', [6, 6, 7], source='ck'),
        line('ck.ticket', 'uncontended_ns', [10, 10, 10], source='ck'),
        line('ck.ticket', 'uncontended_ns', [30, 30, 30], source='ck', loop='work'),
        line('locklab.ticket', 'throughput', [8e6, 9e6, 10e6], 'ops/s', threads=2,
             source='locklab'),
        line('ck.ticket', 'throughput', [10e6, 10e6, 10e6], 'ops/s', threads=2, source='ck'),
        line('probe.xadd_store16', 'uncontended_ns', [7.5, 7.5, 9], source='probe'),
        line('probe.xadd_store32', 'uncontended_ns', [7.5, 7.5, 9], source='probe'),
        line('probe.xadd_store16_other', 'uncontended_ns', [5, 5, 6], source='probe'),
        line('probe.ticket_packed', 'uncontended_ns', list(packed), source='probe'),
        line('probe.ticket_split', 'uncontended_ns', list(split), source='probe'),
        line('probe.ticket_packed', 'uncontended_ns', list(packed_work), source='probe',
             loop='work'),
        line('probe.ticket_split', 'uncontended_ns', list(split_work), source='probe',
             loop='work'),
    ]
    return '# peers: canned\n' + '\n'.join(rows) + '\n'


class FakeResults:
    """The two queries guest_rows makes of bench_results.Results."""

    def __init__(self, metrics):
        self.metrics = metrics

    def find(self, regex=None, **_):
        import re
        return [m for m in self.metrics if re.search(regex, m['path'])]


def guest_metric(path, samples, runs):
    return {'path': path, 'group': 'lock', 'smp': 1, 'samples': samples, 'runs': runs,
            'stats': bench_peers.stats(samples)}


class Arithmetic(unittest.TestCase):
    def test_paired_ratio_and_interval(self):
        r = bench_peers.ratio([10, 20, 30], [10, 10, 10])
        self.assertAlmostEqual(r['ratio'], 2.0)
        self.assertEqual((r['lo'], r['hi'], r['paired']), (1.0, 3.0, True))

    def test_unpaired_ratio_uses_extremes(self):
        r = bench_peers.ratio([10, 20], [5, 10, 20])
        self.assertFalse(r['paired'])
        self.assertAlmostEqual(r['lo'], 0.5)
        self.assertAlmostEqual(r['hi'], 4.0)

    def test_no_ratio_without_figures(self):
        self.assertIsNone(bench_peers.ratio([], [1]))
        self.assertEqual(bench_peers.ratio_text(None), 'n/a')

    def test_target_verdicts(self):
        met = bench_peers._target('t', bench_peers.ratio([10, 10], [10, 10]), 1.1)
        self.assertEqual((met['status'], met['clear']), ('met', True))
        missed = bench_peers._target('t', bench_peers.ratio([13, 12], [10, 10]), 1.1)
        self.assertEqual((missed['status'], missed['clear']), ('missed', True))
        straddle = bench_peers._target('t', bench_peers.ratio([10, 13, 10], [10, 10, 10]), 1.1)
        self.assertEqual((straddle['status'], straddle['clear']), ('met', False))
        thr = bench_peers._target('t', bench_peers.ratio([8, 8], [10, 10]), 0.9, at_most=False)
        self.assertEqual(thr['status'], 'missed')


class Table(unittest.TestCase):
    def section(self, text, results=None, debug=None):
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        os.makedirs(os.path.join(d, 'peers'))
        os.makedirs(os.path.join(d, 'runs'))
        with open(os.path.join(d, bench_peers.PEERS_FILE), 'w') as f:
            f.write(text)
        if debug is not None:
            with open(os.path.join(d, bench_peers.DEBUG_LOG % 1), 'w') as f:
                f.write(debug)
        return bench_peers.section(d, results)

    def targets(self, sec):
        return {(t['lock'], t['target'].split(' (')[0]): t for t in sec['targets']}

    def test_rows_pair_locks_with_their_algorithm(self):
        sec = self.section(canned())
        rows = {r['lock']: r for r in sec['host']}
        self.assertEqual(sorted(rows), ['pvticket', 'tas', 'ticket'])
        self.assertEqual([p['peer'] for p in rows['ticket']['peers']], ['ck.ticket'])
        self.assertAlmostEqual(rows['ticket']['peers'][0]['uncontended']['ratio'], 1.1)
        self.assertAlmostEqual(rows['ticket']['over_xadd']['ratio'], 11 / 5.0)

    def test_targets_met_and_missed(self):
        t = self.targets(self.section(canned()))
        self.assertEqual(t[('ticket', 'uncontended <= 1.10x the fastest same-algorithm peer')]
                         ['status'], 'met')
        self.assertEqual(t[('ticket', 'throughput at 2 threads >= 0.90x the same-algorithm '
                            'peer')]['status'], 'met')
        self.assertEqual(t[('pvticket', 'uncontended <= 1.05x the plain ticket lock')]
                         ['status'], 'met')
        self.assertEqual(t[('tas', 'uncontended <= 1.10x the xchg + release-store floor')]
                         ['status'], 'met')
        # A PV lock 30% dearer than the ticket lock misses, and says what it measured.
        slow = self.targets(self.section(canned(pv=(13, 14.3, 15.6))))
        miss = slow[('pvticket', 'uncontended <= 1.05x the plain ticket lock')]
        self.assertEqual(miss['status'], 'missed')
        self.assertIn('lock xadd', miss['why'])

    def test_store_forwarding_verdict_follows_the_figures(self):
        sf = self.section(canned())['store_forwarding']
        self.assertTrue(sf['artefact'])
        self.assertIn('its address does', sf['verdict'])
        sf = self.section(canned(packed=(10, 10, 11)))['store_forwarding']
        self.assertFalse(sf['artefact'])
        self.assertIn('do not show', sf['verdict'])

    def test_guest_floor_and_debug_ratio(self):
        results = FakeResults([
            guest_metric('lock.ticket.uncontended_cycles', [100, 110], [0, 1]),
            guest_metric('lock.pvticket.uncontended_cycles', [104, 113], [0, 1]),
            guest_metric('lock.ticket.uncontended_floor_x1000', [20000, 22000], [0, 1]),
        ])
        debug = '# metric: lock.ticket.uncontended_cycles 220 cycles debug=1\n'
        g = self.section(canned(), results, debug)['guest']
        rows = {r['type']: r for r in g['rows']}
        self.assertAlmostEqual(rows['ticket']['over_floor']['median'], 21.0)
        self.assertAlmostEqual(rows['ticket']['debug_over_bench']['ratio'], 220 / 105.0)
        self.assertEqual(rows['ticket']['debug_over_bench_basis'], 'cycles')
        # With the debug boot's own floor multiple, the boots' speeds cancel out.
        debug += '# metric: lock.ticket.uncontended_floor_x1000 84000 x1000 debug=1\n'
        g = self.section(canned(), results, debug)['guest']
        rows = {r['type']: r for r in g['rows']}
        self.assertAlmostEqual(rows['ticket']['debug_over_bench']['ratio'], 84000 / 21000.0)
        self.assertEqual(rows['ticket']['debug_over_bench_basis'], 'x floor')
        self.assertIsNone(rows['pvticket']['over_floor'])
        self.assertEqual(g['pv_target']['status'], 'met')

    def test_missing_output_is_not_measured(self):
        sec = self.section('# peers: not run: no binary\n')
        self.assertIn('not measured', sec['problem'])
        self.assertEqual(sec['targets'], [])
        self.assertIn('not measured', ''.join(bench_peers.html({'peers': {
            'same_algorithm': sec}})))

    def test_html_has_every_lock_and_verdict(self):
        page = '\n'.join(bench_peers.html({'peers': {'same_algorithm': self.section(canned())}}))
        for word in ('ck.ticket', 'pvticket', 'met', 'store forwarding', 'lock xadd'):
            self.assertIn(word, page)


class Run(unittest.TestCase):
    """bench_peers.run with nothing built: both parts say why they did not run."""

    def test_missing_binary_and_kernel_are_not_measured(self):
        import types
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        os.makedirs(os.path.join(d, 'peers'))
        os.makedirs(os.path.join(d, 'runs'))
        opts = types.SimpleNamespace(mode='quick', peers_bin=os.path.join(d, 'no-peers'),
                                     peers_oversub=0, debug_iso=os.path.join(d, 'no.iso'),
                                     accel='tcg')
        bench = types.SimpleNamespace(opts=opts, out=d, host_cpus=2, notes=[],
                                      manifest=[{'group': 'lock', 'smp': 4}],
                                      status=lambda *a: None)
        bench_peers.run(bench)
        sec = bench_peers.section(d)
        self.assertIn('not measured', sec['problem'])
        with open(os.path.join(d, bench_peers.DEBUG_LOG % 4)) as f:
            self.assertIn('not run: no debug kernel', f.read())


@unittest.skipUnless(os.access(bench_peers.PEERS_BIN, os.X_OK),
                     'peer benchmark not built (make -f tests/host/locks/host.mk '
                     'build/host/locks/plain/peers)')
class Binary(unittest.TestCase):
    def run_peers(self, *args):
        return subprocess.run([bench_peers.PEERS_BIN] + list(args), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=120, universal_newlines=True)

    def test_exclusion_check_fails_on_no_lock(self):
        # Up to 8 runs of 200 ms: the two threads must overlap at some point even on a host
        # busy enough to run them in turns for a while; the first lost update ends it.
        p = self.run_peers('--only=broken', '--include-broken', '--reps=1', '--treps=8',
                           '--ms=200', '--work=0')
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn('# peers: FAIL broken.nolock', p.stdout)

    def test_floor_figures_parse(self):
        p = self.run_peers('--only=floor.', '--reps=3', '--iters=20000', '--no-throughput')
        self.assertEqual(p.returncode, 0, p.stdout)
        e = bench_peers.parse_peers(p.stdout)
        xadd = e[('floor.xadd', 'uncontended_ns', 'tight', None, 'spin')]
        self.assertEqual(len(xadd['samples']), 3)
        self.assertGreater(xadd['stats']['median'], 0)

    def test_bad_option_is_an_error(self):
        for bad in ('--reps=0', '--threads=x', '--oversub=1', '--bogus'):
            p = self.run_peers(bad)
            self.assertEqual(p.returncode, 2, bad)


if __name__ == '__main__':
    unittest.main()
