"""The bench command's runs: each leg of the plan booted through run-qemu --json with its
repeats interleaved, the host pthread benchmark, the Linux peers and cyclictest beside them, and
the manifest of what ran."""

import json
import os
import re
import resource
import shutil
import subprocess
import sys
import threading
import time

from . import bench_peers
from . import bench_report as benchlib
from .bench_html import NARROW_NOTE
from .bench_results import read_text
from .paths import REPO, SCRIPTS
from .bench_plan import (CYCLIC_HIST_US, CYCLIC_INTERVAL_US, MODES, PROG, SETUP_ERROR, Progress,
                         estimate_seconds, fmt_time, plan)


# The boot line of a kernel built with LOCK_SLOWDOWN (kernel/lock_slowdown.c).
SLOWDOWN_LINE = re.compile(r'# lock slowdown: (\S+ \+\d+ ns)')


def registered_test(path):
    """The test a KTAP path belongs to, as tests= names it.  A test is registered as suite.name
    (KTEST(suite, name): no dot in either) and a subtest's path adds its own name
    (lock.fairness.ticket); tests= selects registered tests only, and a glob that matches none
    is a config error."""
    return '.'.join(path.split('.')[:2])


class Bench:
    def __init__(self, opts):
        self.opts = opts
        self.out = opts.out
        self.runs_dir = os.path.join(self.out, 'runs')
        self.peers_dir = os.path.join(self.out, 'peers')
        self.host_cpus = benchlib.host_cpu_count()
        self.progress = Progress()
        self.manifest = []
        self.host_outputs = []
        self.notes = []
        self.durations = {}          # leg label -> seconds of its last run
        self.step = 0
        self.total_steps = 0
        self.pending_estimate = 0.0   # seconds of work still ahead, for the status line

    # status ----------------------------------------------------------------------------

    def status(self, what, extra=''):
        left = self.remaining_estimate()
        self.progress.update('%s: [%d/%d] %s%s  (elapsed %s, ~%s left)' % (
            PROG, self.step, self.total_steps, what, extra, fmt_time(self.progress.elapsed()),
            fmt_time(left)))

    def remaining_estimate(self):
        return max(0.0, self.pending_estimate)

    # QEMU legs -----------------------------------------------------------------------

    def run_leg(self, leg, rep):
        name = leg.name(rep)
        paths = {k: os.path.join(self.runs_dir, name + ext)
                 for k, ext in (('log', '.log'), ('json', '.json'), ('out', '.out'))}
        for p in paths.values():
            if os.path.exists(p):
                os.unlink(p)
        argv = [os.path.join(SCRIPTS, 'run-qemu'), '--iso', self.opts.iso, '--smp', str(leg.smp),
                '--accel', self.opts.accel, '--clock', self.clock(), '--cmdline', leg.cmdline,
                '--quiet', '--timeout', str(self.opts.run_timeout), '--log', paths['log'],
                '--json', paths['json']]
        started = time.monotonic()
        what = '%s r%d' % (leg.label(), rep)
        running, offset = '', 0
        with open(paths['out'], 'wb') as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT)
            try:
                while True:
                    try:
                        code = proc.wait(timeout=0.5)
                        break
                    except subprocess.TimeoutExpired:
                        pass
                    running, offset = self._follow(paths['log'], offset, running)
                    self.status(what, ' %s %.0f s' % (running or 'booting',
                                                       time.monotonic() - started))
            except BaseException:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                raise
        seconds = round(time.monotonic() - started, 1)
        entry = {'name': name, 'group': leg.group, 'smp': leg.smp, 'rep': rep,
                 'options': leg.options, 'cmdline': leg.cmdline, 'exit': code,
                 'seconds': seconds, 'log': os.path.relpath(paths['log'], self.out),
                 'json': os.path.relpath(paths['json'], self.out),
                 'out': os.path.relpath(paths['out'], self.out), 'notes': [],
                 'clock': self.clock()}
        slowed = SLOWDOWN_LINE.search(read_text(paths['log']) or '')
        if slowed:     # a LOCK_SLOWDOWN kernel: never to be taken for a normal one
            entry['slowdown'] = slowed.group(1)
            entry['notes'].append('SLOWED BUILD: lock slowdown %s' % slowed.group(1))
        data = None
        try:
            with open(paths['json'], encoding='utf-8') as f:
                data = json.load(f)
        except (OSError, ValueError):
            pass
        if data is None:
            tail = read_text(paths['out']) or ''
            entry['notes'].append('no run-qemu JSON (exit %s): %s' % (
                code, ' / '.join(tail.strip().splitlines()[-2:])))
            entry['verdict'] = 'setup-error' if code == SETUP_ERROR else 'no result'
        else:
            entry['verdict'] = data.get('verdict_name')
            entry['tests'] = (data.get('counts') or {}).get('total')
            failed = [t['path'] for t in data.get('tests', []) if t.get('status') == 'fail']
            if failed:
                entry['notes'].append('failed: ' + ', '.join(failed[:8]))
            run = data.get('run') or {}
            if run.get('timeout'):
                entry['notes'].append(run['timeout'])
        self.manifest.append(entry)
        self.durations[leg.label()] = seconds
        return entry, data

    def clock(self):
        """The guest clock of every leg (--clock, CLOCK): real or virtual."""
        return getattr(self.opts, 'clock', None) or 'real'

    @staticmethod
    def _follow(path, offset, running):
        """The test the kernel is running, from the serial log written so far."""
        try:
            with open(path, 'rb') as f:
                f.seek(offset)
                chunk = f.read()
        except OSError:
            return running, offset
        if not chunk:
            return running, offset
        end = chunk.rfind(b'\n')
        if end < 0:
            return running, offset
        for line in chunk[:end].decode('utf-8', 'replace').splitlines():
            marker = line.find('# running: ')
            if marker >= 0:
                running = line[marker + len('# running: '):].split()[0]
        return running, offset + end + 1

    # host peers ----------------------------------------------------------------------

    def host_bench(self, rep, threads, ms):
        path = os.path.join(self.peers_dir, 'host-locks-r%d.txt' % rep)
        argv = [self.opts.host_bin, '--bench', '--threads=%d' % threads, '--ms=%d' % ms]
        if threads > self.host_cpus:
            argv.append('--yield=128')     # as the host suite does when oversubscribed
        self.status('host pthread benchmark r%d' % rep, ' (%d threads, %d ms per point)'
                    % (threads, ms))
        started = time.monotonic()
        text, status, err = bench_peers.run_output(argv, 600)
        if err is not None:
            text = ''
            self.notes.append('host benchmark run %d: %s' % (rep, err))
        elif status != 0:
            self.notes.append('host benchmark run %d exited %d' % (rep, status))
        with open(path, 'w', encoding='utf-8') as f:
            f.write(text)
        self.host_outputs.append(text)
        self.durations['host-bench'] = time.monotonic() - started
        return text

    def cyclictest(self, label, seconds, load=False):
        """One cyclictest run; returns {label, policy, text, notes, problem}."""
        result = {'label': label, 'policy': None, 'text': None, 'notes': [],
                  'seconds': seconds, 'load': load, 'tool': 'cyclictest'}
        exe = shutil.which('cyclictest')
        if not exe:
            result['problem'] = 'not measured (cyclictest not installed: make deps installs ' \
                'rt-tests)'
            result['policy'] = 'n/a'
            return result
        path = os.path.join(self.peers_dir, 'cyclictest-%s.hist' % label)
        base = [exe, '-q', '-S', '-i', str(CYCLIC_INTERVAL_US), '-h', str(CYCLIC_HIST_US),
                '-D', '%ds' % seconds, '--histfile=' + path]
        attempts = []
        if os.geteuid() == 0:
            attempts.append(('SCHED_FIFO prio 80', base + ['-m', '-p', '80']))
        else:
            # Without root, RLIMIT_RTPRIO may still allow SCHED_FIFO up to its hard limit.
            try:
                soft, hard = resource.getrlimit(resource.RLIMIT_RTPRIO)
                if hard == resource.RLIM_INFINITY or hard > 0:
                    prio = 80 if hard == resource.RLIM_INFINITY else min(80, hard)
                    resource.setrlimit(resource.RLIMIT_RTPRIO, (prio if soft != hard
                                                                else soft, hard))
                    attempts.append(('SCHED_FIFO prio %d (RLIMIT_RTPRIO)' % prio,
                                     base + ['-p', str(prio)]))
            except (OSError, ValueError):
                pass
        attempts.append(('SCHED_OTHER', base))
        stop = threading.Event()
        loader = None
        if load:
            loader = threading.Thread(target=self._lock_load, args=(stop,), daemon=True)
            loader.start()
        try:
            for policy, argv in attempts:
                self.status('cyclictest %s' % label, ' (%s, %d s)' % (policy, seconds))
                if os.path.exists(path):
                    os.unlink(path)
                text, code, err = bench_peers.run_output(argv, seconds + 60)
                if err is not None:
                    text, code = str(err), -1
                else:
                    text = text.strip()
                hist = read_text(path)
                if code == 0 and hist:
                    result['policy'] = policy
                    result['text'] = hist
                    break
                result['notes'].append('cyclictest with %s failed (exit %s): %s' % (
                    policy, code, text.splitlines()[-1] if text else 'no output'))
        finally:
            stop.set()
            if loader:
                loader.join(timeout=30)
        if result['text'] is None and os.geteuid() != 0:
            # rt-tests checks for real-time privileges even when asked for SCHED_OTHER: measure
            # the same way (absolute-deadline sleeps, 1 us buckets) in a timer loop of our own.
            self.status('host timer loop %s' % label, ' (SCHED_OTHER, %d s)' % seconds)
            stop.clear()
            if load:
                loader = threading.Thread(target=self._lock_load, args=(stop,), daemon=True)
                loader.start()
            try:
                result['text'] = benchlib.timer_loop_histogram(seconds, CYCLIC_INTERVAL_US,
                                                               CYCLIC_HIST_US)
                result['policy'] = 'SCHED_OTHER'
                result['tool'] = 'timer loop'
                with open(path, 'w', encoding='utf-8') as f:
                    f.write(result['text'])
                result['notes'].append(
                    'cyclictest refused to run without real-time privileges (not root, '
                    'RLIMIT_RTPRIO 0): the host %s series is a SCHED_OTHER timer loop in Python '
                    '(one process per CPU, an absolute-deadline sleep every %d us, 1 us '
                    'buckets), which adds a few microseconds of interpreter overhead to each '
                    'sample' % (label, CYCLIC_INTERVAL_US))
            except Exception as err:  # noqa: BLE001
                result['notes'].append('host timer loop failed: %s' % err)
            finally:
                stop.set()
                if loader:
                    loader.join(timeout=30)
        if result['text'] is None:
            result['problem'] = 'not measured (cyclictest failed; see notes)'
            result['policy'] = 'n/a'
        elif result['policy'] == 'SCHED_OTHER' and result.get('tool') != 'timer loop':
            why = 'not root' if os.geteuid() != 0 else 'SCHED_FIFO refused'
            result['notes'].append('cyclictest %s ran under SCHED_OTHER (%s: SCHED_FIFO needs '
                                   'root or CAP_SYS_NICE); its latencies include ordinary '
                                   'time-sharing with other tasks' % (label, why))
        return result

    def _lock_load(self, stop):
        """The host lock benchmark in a loop, one thread per host CPU, as cyclictest's load."""
        if not os.access(self.opts.host_bin, os.X_OK):
            return
        while not stop.is_set():
            try:
                proc = subprocess.Popen([self.opts.host_bin, '--bench',
                                         '--threads=%d' % self.host_cpus, '--ms=50'],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
            except OSError:
                return
            while proc.poll() is None:
                if stop.wait(0.2):
                    proc.terminate()
                    try:
                        proc.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                    return

    # the matrix ----------------------------------------------------------------------

    def execute(self):
        opts = self.opts
        settings = MODES[opts.mode]
        repeat = opts.repeat or settings['repeat']
        budget = settings['budget'] if opts.budget is None else opts.budget
        legs = plan(opts.mode, self.host_cpus, opts.smp, opts.scenario_smp)
        # Spinning user-space threads beyond the host's CPUs measure the host scheduler (and
        # take minutes): the peer runs on at most as many threads as there are host CPUs.
        threads = opts.host_threads or min(16, self.host_cpus,
                                           max(l.smp for l in legs if l.group == 'lock'))
        cyclic_s = opts.cyclic_seconds or settings['cyclic_s']
        have_host = os.access(opts.host_bin, os.X_OK)
        host_problem = None
        if not have_host:
            host_problem = 'not measured (no host benchmark binary at %s: make bench builds ' \
                'it)' % os.path.relpath(opts.host_bin, REPO)
        tail_s = 2 * cyclic_s + 15
        self.total_steps = repeat * (len(legs) + (1 if have_host else 0)) + 2
        self.pending_estimate = repeat * (sum(estimate_seconds(l) for l in legs) +
                                          (6 if have_host else 0)) + tail_s
        print('%s: %s matrix, %d repeat(s): %d legs per repeat on %d host CPU(s), results in %s'
              % (PROG, opts.mode, repeat, len(legs), self.host_cpus,
                 os.path.relpath(self.out)), file=sys.stderr)
        done_reps = 0
        over_budget = []
        for rep in range(1, repeat + 1):
            for leg in legs:
                if leg.skip_reason:
                    continue
                self.step += 1
                guess = self.durations.get(leg.label(), estimate_seconds(leg))
                # The first repeat always runs; a later run that would not fit is dropped.
                if rep > 1 and budget and \
                        self.progress.elapsed() + guess + tail_s > budget:
                    over_budget.append('%s r%d' % (leg.label(), rep))
                    self.pending_estimate -= guess
                    self.progress.line('%s: [%d/%d] %s r%d: skipped, about %d s more would '
                                       'exceed the time budget' % (
                                           PROG, self.step, self.total_steps, leg.label(), rep,
                                           guess))
                    continue
                entry, data = self.run_leg(leg, rep)
                self.pending_estimate -= guess
                self.progress.line('%s: [%d/%d] %s r%d: %s, %s tests, %.1f s  (elapsed %s)%s' % (
                    PROG, self.step, self.total_steps, leg.label(), rep, entry.get('verdict'),
                    entry.get('tests', '?'), entry['seconds'], fmt_time(self.progress.elapsed()),
                    '  ' + '; '.join(entry['notes']) if entry['notes'] else ''))
                if rep == 1:
                    self._after_first(leg, legs, data)
                elif leg.selected:
                    self._check_narrowed(leg, data)
                if entry.get('verdict') == 'setup-error' and rep == 1 and leg is legs[0]:
                    raise SetupFailure('run-qemu could not start: %s' % '; '.join(
                        entry['notes']))
            if have_host:
                self.step += 1
                self.host_bench(rep, threads, settings['host_ms'] if not opts.host_ms
                                else opts.host_ms)
                self.pending_estimate -= 6
                self.progress.line('%s: [%d/%d] host pthread benchmark r%d: %.1f s  (elapsed %s)'
                                   % (PROG, self.step, self.total_steps, rep,
                                      self.durations['host-bench'],
                                      fmt_time(self.progress.elapsed())))
            done_reps = rep
            self.write_manifest(repeat, done_reps, host_problem)
        if over_budget:
            self.notes.append('%d run(s) skipped to stay within the time budget of %d s '
                              '(BENCH_BUDGET; 0 = no limit): %s' % (
                                  len(over_budget), budget, ', '.join(over_budget)))
        bench_peers.run(self)   # same-algorithm peers and the debug kernel (bench_peers.py)
        cyclic = []
        for label, load in (('idle', False), ('lock-load', True)):
            self.step += 1
            c = self.cyclictest(label, cyclic_s, load)
            self.pending_estimate -= cyclic_s
            cyclic.append(c)
            self.progress.line('%s: [%d/%d] cyclictest %s: %s, %d s' % (
                PROG, self.step, self.total_steps, label, c.get('policy'), cyclic_s))
        self.cyclic = [{k: v for k, v in c.items() if k != 'text'} for c in cyclic]
        self.write_manifest(repeat, done_reps, host_problem)
        return repeat, done_reps, cyclic, host_problem, threads

    def _after_first(self, leg, legs, data):
        """After a leg's first run: drop legs that have nothing to measure in this kernel, and
        let the repeats run only the tests that printed figures (the suites' functional tests
        measure nothing and can take most of a boot)."""
        counts = (data or {}).get('counts') or {}
        paths = [m.get('path', '') for m in (data or {}).get('metrics') or []]
        if leg.group == 'tlb' and leg.options.get('shootdown') == 'sync':
            lazy = [l for l in legs if l.conditional]
            for l in lazy:
                if any(p.startswith('tlb.lazy.') for p in paths):
                    l.skip_reason = 'the shootdown=sync run measured both modes'
                elif data is not None and counts.get('total') == 0:
                    l.skip_reason = 'tests=%s matched no test in this kernel' % l.tests
                elif data is not None and not any(p.startswith('tlb.sync.') for p in paths):
                    l.skip_reason = 'the shootdown=sync run printed no shootdown figure (no ' \
                        'metric tlb.sync.*), so there is nothing for lazy to be compared with'
                if l.skip_reason:
                    self.notes.append('%s: not run: %s' % (l.label(), l.skip_reason))
                    self.pending_estimate -= self.opts_repeat() * estimate_seconds(l)
                    self.total_steps -= self.opts_repeat()
        leg.first_passed = {t.get('path') for t in (data or {}).get('tests') or []
                             if t.get('status') != 'fail'}
        producing = []
        for record in ((data or {}).get('metrics') or []) + \
                ((data or {}).get('histograms') or []):
            test = registered_test(record.get('test') or '')
            if test and test not in producing:
                producing.append(test)
        all_tests = []
        for t in (data or {}).get('tests') or []:
            test = registered_test(t.get('path') or '')
            if test not in all_tests:
                all_tests.append(test)
        selected = ','.join(sorted(producing, key=lambda t: all_tests.index(t)
                                   if t in all_tests else len(all_tests)))
        narrow = producing and len(set(producing)) < len(set(all_tests)) and \
            len(selected) < 1000 and not leg.selected
        if narrow and self.opts_repeat() > 1:
            leg.selected = selected
            self.notes.append('%s: %s the %d of %d tests that printed figures in the '
                              'first (tests=%s)' % (
                                  leg.label(), NARROW_NOTE, len(producing),
                                  len(set(all_tests)), selected))
        if narrow and self.opts.mode == 'quick':
            # Quick: the group's other legs (other kernel options) run only these tests.
            siblings = [l for l in legs if l.group == leg.group and l is not leg and
                        l.label() not in self.durations and not l.skip_reason]
            for sibling in siblings:
                sibling.selected = selected
                sibling.first_passed = set(leg.first_passed)
            if siblings:
                self.notes.append('%s: %s the %d of %d tests that printed figures in %s '
                                  '(quick mode; tests=%s)' % (
                                      ', '.join(l.label() for l in siblings),
                                      NARROW_NOTE.replace('repeats after the first',
                                                          'the runs'),
                                      len(producing), len(set(all_tests)), leg.label(),
                                      selected))
        if data is not None and counts.get('total') == 0:
            leg.skip_reason = 'tests=%s matched no test in this kernel' % leg.tests
            self.notes.append('%s: %s; its repeats were skipped' % (leg.label(),
                                                                     leg.skip_reason))
    def _check_narrowed(self, leg, data):
        """A test that passed in the leg's first (full) run and fails when run without the
        tests before it depends on them: the leg's later repeats run the whole suite again."""
        failed = [t.get('path') for t in (data or {}).get('tests') or []
                  if t.get('status') == 'fail' and t.get('path') in leg.first_passed]
        if failed:
            leg.selected = None
            self.notes.append('%s: %s failed when run without the tests before it (it passed '
                              'in the first run): later repeats ran tests=%s again'
                              % (leg.label(), ', '.join(failed), leg.tests))

    def opts_repeat(self):
        return self.opts.repeat or MODES[self.opts.mode]['repeat']

    def write_manifest(self, repeat, done, host_problem):
        with open(os.path.join(self.out, 'runs', 'manifest.json'), 'w', encoding='utf-8') as f:
            json.dump({'mode': self.opts.mode, 'clock': self.clock(), 'repeat': repeat,
                       'repeats_done': done,
                       'host_cpus': self.host_cpus, 'iso': self.opts.iso,
                       'notes': self.notes, 'host_problem': host_problem,
                       'host_outputs': ['peers/host-locks-r%d.txt' % (i + 1)
                                        for i in range(len(self.host_outputs))],
                       'cyclictest': getattr(self, 'cyclic', []),
                       'runs': self.manifest}, f, indent=1)
            f.write('\n')


class SetupFailure(Exception):
    pass
