"""bench_report: aggregation and report of the benchmark matrix (`make bench`, scripts/bench).

The bench command (bench.py) boots the kernel once per leg and repeat (scripts/run-qemu --json)
and runs the host peers; this module and the bench_*.py modules beside it turn what they wrote
into build/bench/: report.json, report.html, cyclictest-format histogram files and gnuplot PNGs.

The work is split by subject: bench_results reads the runs and summarises the repeats,
bench_scenarios computes the scenario ratios, bench_locks the lock matrix and the host pthread
table, bench_peers runs and reads the Linux peers, bench_plots draws the gnuplot figures and
bench_html writes the page.  This module holds what the bench command calls itself: the host's
facts and build(), which puts the parts together.  Callers import each name from the module
that defines it.

Nothing in these modules knows a complete list of metric names.  Figures are discovered in the
runs' JSON: a metric is identified by its leg (group, vCPUs, kernel options), the test that
printed it, its path and the attributes that tell its lines apart (cpus=, locks=, section_us=,
... and any key that varies between the lines of one path in one run, such as a swept
threshold=).  Values of the same identity from the repeats are summarised as median, min/max
and IQR.  The scenario ratios look their metrics up by pattern; a missing one is reported as
"not measured (no metric X in this run)" and never stops the report.
"""

import datetime
import json
import os
import platform
import re
import shutil
import subprocess

from . import report_hist
from .paths import REPO

from .bench_results import (Results, hist_stats, histfile_as_block, leg_label, parse_histfile,
                            read_text, run_clock)
from .stats import isnum
from .bench_scenarios import (SCENARIOS, WAKEUP_HIST, _load_of, _load_order, _model_of,
                              _model_order, not_measured)
from .bench_locks import host_brk, host_lock_results, lock_matrix, peer_table
from .bench_plots import Plots, draw_plots
from .bench_html import write_clock_index, write_html
from . import bench_peers

SCHEMA = 'locklab-bench/1'


# -- environment ---------------------------------------------------------------------------

def cpu_model(cpuinfo='/proc/cpuinfo'):
    text = read_text(cpuinfo) or ''
    m = re.search(r'^model name\s*:\s*(.+)$', text, re.MULTILINE)
    return m.group(1).strip() if m else platform.processor() or 'unknown'


def host_cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def command_first_line(argv):
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, timeout=20)
        text = proc.stdout.decode('utf-8', 'replace').strip()
        return text.splitlines()[0] if text else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def git_commit(repo=REPO):
    head = command_first_line(['git', '-C', repo, 'rev-parse', 'HEAD'])
    if not head or not re.match(r'^[0-9a-f]{7,}$', head):
        return None
    try:
        proc = subprocess.run(['git', '-C', repo, 'status', '--porcelain', '--untracked-files=no'],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=20)
        dirty = bool(proc.stdout.strip())
    except (OSError, subprocess.TimeoutExpired):
        dirty = False
    return head + ('-dirty' if dirty else '')


def _timer_loop_worker(cpu, seconds, interval_us, hist_us, queue):
    """One CPU's share of timer_loop_histogram (runs in a child process)."""
    import time
    try:
        os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError):
        pass
    counts = [0] * hist_us
    lo, hi, total, n, over = None, 0, 0, 0, 0
    step = interval_us * 1000
    deadline = time.monotonic_ns() + int(seconds * 1e9)
    target = time.monotonic_ns() + step
    while target < deadline:
        delay = target - time.monotonic_ns()
        if delay > 0:
            time.sleep(delay / 1e9)
        late = max(0, time.monotonic_ns() - target) // 1000          # us, as cyclictest
        n += 1
        total += late
        lo = late if lo is None else min(lo, late)
        hi = max(hi, late)
        if late < hist_us:
            counts[late] += 1
        else:
            over += 1
        target += step
        now = time.monotonic_ns()
        if target < now:                       # missed periods: skip them, as cyclictest does
            target += ((now - target) // step + 1) * step
    queue.put((cpu, counts, lo or 0, hi, total // n if n else 0, over, n))


def timer_loop_histogram(seconds, interval_us=200, hist_us=10000, cpus=None):
    """cyclictest's measurement without its privilege check, for when it cannot run: one
    process per CPU sleeps to an absolute deadline every interval_us (SCHED_OTHER) and records
    how late it woke, in 1 us buckets.  Returns the histogram in cyclictest's --histfile
    layout.  The interpreter adds a few microseconds of its own to every sample."""
    import multiprocessing
    cpus = sorted(cpus if cpus is not None else os.sched_getaffinity(0))
    ctx = multiprocessing.get_context('fork')
    queue = ctx.Queue()
    procs = [ctx.Process(target=_timer_loop_worker, args=(c, seconds, interval_us, hist_us,
                                                          queue)) for c in cpus]
    for p in procs:
        p.start()
    results = {}
    for _ in procs:
        cpu, counts, lo, hi, avg, over, n = queue.get(timeout=seconds + 60)
        results[cpu] = (counts, lo, hi, avg, over, n)
    for p in procs:
        p.join(timeout=10)
    order = [results[c] for c in cpus]
    out = ['# Histogram']
    for us in range(hist_us):
        if any(r[0][us] for r in order):
            out.append('%06d %s' % (us, '\t'.join('%06d' % r[0][us] for r in order)))
    out.append('# Total:' + ''.join(' %09d' % sum(r[0]) for r in order))
    out.append('# Min Latencies:' + ''.join(' %05d' % r[1] for r in order))
    out.append('# Avg Latencies:' + ''.join(' %05d' % r[3] for r in order))
    out.append('# Max Latencies:' + ''.join(' %05d' % r[2] for r in order))
    out.append('# Histogram Overflows:' + ''.join(' %05d' % r[4] for r in order))
    out.append('# Histogram Overflow at cycle number:')
    for i in range(len(order)):
        out.append('# Thread %d:' % i)
    out.append('')
    out.append('# locklab: host timer loop (SCHED_OTHER, Python, clock_nanosleep to an '
               'absolute deadline every %d us), not cyclictest' % interval_us)
    return '\n'.join(out) + '\n'


def host_is_rt():
    if (read_text('/sys/kernel/realtime') or '').strip() == '1':
        return True
    return 'PREEMPT_RT' in platform.version()


def environment(results, extra=None):
    runs = results.runs
    accels = sorted({r.get('accel') for r in runs if r.get('accel')})
    reasons = sorted({r.get('accel_reason') for r in runs if r.get('accel_reason')})
    smps = sorted({r.get('smp') for r in runs if isnum(r.get('smp'))})
    debug = sorted({str(v) for e in results.metrics for v in e['observed'].get('debug', [])})
    env = {
        'accelerator': '/'.join(accels) if accels else 'unknown',
        'accelerator_reason': '; '.join(reasons) if reasons else None,
        'host_cpu_model': cpu_model(),
        'host_cpus': results.host_cpus,
        'host_cpus_online': os.cpu_count(),
        'vcpus': smps,
        'overcommit': {str(s): round(s / float(results.host_cpus), 2) for s in smps},
        'max_overcommit': round(max(smps) / float(results.host_cpus), 2) if smps else None,
        'guest_tsc_mhz': results.tsc_mhz(),
        'lock_debug': ('off (debug=0 on the figures)' if debug == ['0'] else
                       'ON (debug=1 on some figures: they include the debug options\' cost)'
                       if '1' in debug else 'unknown (no debug= attribute seen)'),
        'host_kernel': '%s %s' % (platform.system(), platform.release()),
        'host_kernel_rt': host_is_rt(),
        'python': platform.python_version(),
    }
    if extra:
        env.update(extra)
    return env


# -- the whole report ----------------------------------------------------------------------

def _strip_entry(e):
    return {'id': e['id'], 'clock': e.get('clock'), 'path': e['path'], 'test': e['test'],
            'group': e['group'],
            'smp': e['smp'], 'options': e['options'], 'attrs': e['attrs'], 'unit': e['unit'],
            'leg': leg_label(e['group'], e['smp'], e['options']), 'stats': e['stats'],
            'observed': {k: v for k, v in e['observed'].items()}}


def _strip_hist(h, histfile=None):
    return {'id': h['id'], 'clock': h.get('clock'), 'path': h['path'], 'test': h['test'],
            'group': h['group'],
            'smp': h['smp'], 'options': h['options'], 'unit': h['unit'],
            'leg': leg_label(h['group'], h['smp'], h['options']),
            'stats': h['stats'], 'per_run': h['per_run'], 'histfile': histfile}


def _safe(problems, name, fn, default):
    try:
        return fn()
    except Exception as err:  # noqa: BLE001  (a section must not take the report down)
        problems.append('%s: %s: %s' % (name, type(err).__name__, err))
        return default


def cyclictest_section(cyclic_runs, results, hist_names):
    """cyclictest runs ({label, policy, histfile text or None, problem}) and locklab's wakeup
    histograms, with their statistics."""
    out = {'runs': [], 'locklab': [], 'notes': []}
    for c in cyclic_runs or []:
        run = {k: v for k, v in c.items() if k not in ('text',)}
        if c.get('text'):
            parsed = parse_histfile(c['text'])
            block = histfile_as_block(parsed, 'cyclictest.' + c['label'])
            run['block'] = block
            st = hist_stats(block)
            st['max'] = parsed.get('max') if parsed.get('max') is not None else st['max']
            run['stats'] = st
        out['runs'].append(run)
        out['notes'].extend(c.get('notes') or [])
    for h in sorted(results.find_hists(regex=WAKEUP_HIST),
                    key=lambda h: (_load_order(_load_of(h)), _model_order(_model_of(h)))):
        out['locklab'].append({'path': h['path'], 'model': _model_of(h), 'load': _load_of(h),
                               'unit': h['unit'],
                               'leg': leg_label(h['group'], h['smp'], h['options']),
                               'stats': h['stats'], 'histfile': hist_names.get(h['id'])})
    return out


def build(out_dir, runs, host_outputs=None, cyclic_runs=None, meta=None, gnuplot='gnuplot',
          host_cpus=None):
    """Aggregate and write report.json, report.html, hist/ and plots/ into out_dir.  runs: the
    manifest entries (loaded with load_runs or with 'data' inline).  Returns the report dict.
    Runs of different clocks are never pooled: each clock gets a report of its own
    (build_by_clock)."""
    meta = dict(meta or {})
    by_clock = {}
    for run in runs:
        by_clock.setdefault(run_clock(run), []).append(run)
    if len(by_clock) > 1:
        return build_by_clock(out_dir, by_clock, host_outputs, cyclic_runs, meta, gnuplot,
                              host_cpus)
    problems = []
    host_cpus = host_cpus or meta.get('host_cpus') or host_cpu_count()
    results = Results(runs, host_cpus)
    os.makedirs(out_dir, exist_ok=True)
    for stale in ('hist', 'plots'):
        shutil.rmtree(os.path.join(out_dir, stale), ignore_errors=True)
    hist_dir = os.path.join(out_dir, 'hist')
    os.makedirs(hist_dir)

    # Merged histograms as cyclictest-format files (scripts/report's writer).
    hist_names, taken = {}, set()
    for h in results.hists:
        if not h['merged']:
            continue
        name = report_hist.file_name('%s-smp%s%s' % (h['path'], h['smp'], ''.join(
            '-%s' % v for _, v in sorted(h['options'].items()))), taken, '.hist')
        with open(os.path.join(hist_dir, name), 'w', encoding='utf-8') as f:
            f.write(report_hist.histfile_text(h['merged']))
        hist_names[h['id']] = 'hist/' + name
    for c in cyclic_runs or []:
        if c.get('text'):
            name = report_hist.file_name('cyclictest-' + c['label'], taken, '.hist')
            with open(os.path.join(hist_dir, name), 'w', encoding='utf-8') as f:
                f.write(c['text'])
            c['histfile'] = 'hist/' + name

    matrix = _safe(problems, 'lock matrix', lambda: lock_matrix(results),
                   {'tsc_mhz': None, 'uncontended': [], 'throughput': {'cpus': [], 'rows': []},
                    'wait': [], 'missing': ['the lock matrix could not be computed'],
                    'critical_section': '', 'fairness_test': []})
    scen = {}
    for key, fn in SCENARIOS:
        scen[key] = _safe(problems, 'scenario ' + key, lambda fn=fn: fn(results),
                          {'ratios': [not_measured(key, key, '', 'the scenario could not be '
                                                   'computed; see problems')], 'rows': []})
    host = _safe(problems, 'host peer', lambda: host_lock_results(host_outputs or []), {})
    peers = {'host_entries': host,
             'table': _safe(problems, 'peer table', lambda: peer_table(results, host, matrix),
                            {'rows': [], 'columns': [], 'note': ''}),
             'host_breakable': _safe(problems, 'host breakable', lambda: host_brk(host), []),
             'host_problem': meta.pop('host_problem', None),
             'host_note': meta.pop('host_note', None)}
    if not host and not peers['host_problem']:
        peers['host_problem'] = 'not measured (no host.lock.* metric from the host benchmark)'
    cyclic = _safe(problems, 'cyclictest', lambda: cyclictest_section(cyclic_runs, results,
                                                                     hist_names),
                   {'runs': [], 'locklab': [], 'notes': []})

    plots = Plots(out_dir, gnuplot)
    _safe(problems, 'plots', lambda: draw_plots(plots, results, matrix, scen, peers, cyclic,
                                                out_dir, hist_names), None)
    plot_problem = None
    if not plots.gnuplot:
        plot_problem = 'Plots not drawn: gnuplot is not installed (make deps installs ' \
            'gnuplot-nox); the gnuplot scripts are in plots/src/.'
    elif plots.errors:
        plot_problem = '; '.join(plots.errors)

    for v in scen.values():
        for r in v['ratios']:
            r.setdefault('clock', results.clock or 'real')
    headline = []
    for key, _ in SCENARIOS:
        rs = scen[key]['ratios']
        chosen = [r for r in rs if r.get('headline')]
        if not chosen:
            chosen = [r for r in rs if r['status'] != 'measured'][:1] or rs[:1]
        headline.extend(chosen)

    env = environment(results, meta.pop('environment', None))
    env['gnuplot'] = command_first_line([plots.gnuplot, '--version']) if plots.gnuplot else \
        'not installed'
    report = {
        'schema': SCHEMA,
        'clock': results.clock or 'real', 'clocks': [results.clock or 'real'],
        'written': datetime.datetime.now().strftime('%Y-%m-%d %H:%M:%S'),
        'mode': meta.get('mode'), 'repeat': meta.get('repeat'),
        'repeats_done': meta.get('repeats_done', meta.get('repeat')),
        'seconds': meta.get('seconds'), 'notes': meta.get('notes', []),
        'environment': env,
        'headline': headline,
        'locks': matrix,
        'scenarios': {k: dict({'ratios': v['ratios']},
                              **({'table': v['rows']} if k == 'wakeup' else {}))
                      for k, v in scen.items()},
        'peers': {'table': peers['table'], 'host_breakable': peers['host_breakable'],
                  'host_problem': peers['host_problem'], 'host_note': peers['host_note'],
                  'host_metrics': [{k: v for k, v in e.items() if k != 'runs'}
                                   for e in host.values()],
                  'cyclictest': {'runs': [{k: v for k, v in r.items() if k != 'block'}
                                          for r in cyclic['runs']],
                                 'locklab': cyclic['locklab'], 'notes': cyclic['notes']}},
        'runs': [{k: v for k, v in r.items() if k not in ('data',)} for r in runs],
        'metrics': [_strip_entry(e) for e in results.metrics],
        'histograms': [_strip_hist(h, hist_names.get(h['id'])) for h in results.hists],
        'plots': plots.made, 'plot_problem': plot_problem, 'problems': problems,
    }
    report['peers']['same_algorithm'] = _safe(problems, 'same-algorithm peers',
                                              lambda: bench_peers.section(out_dir, results), None)
    for r in report['runs']:
        data = next((x.get('data') for x in runs if x.get('name') == r.get('name')), None) or {}
        r.setdefault('verdict', data.get('verdict_name'))
        r.setdefault('tests', (data.get('counts') or {}).get('total'))
    with open(os.path.join(out_dir, 'report.json'), 'w', encoding='utf-8') as f:
        json.dump(report, f, indent=1, default=str)
        f.write('\n')
    report['peers']['cyclictest'] = cyclic
    by_name = {p['name']: p for p in plots.made}
    write_html(os.path.join(out_dir, 'report.html'), report, by_name)
    if not os.listdir(hist_dir):
        os.rmdir(hist_dir)
    return report


def build_by_clock(out_dir, by_clock, host_outputs, cyclic_runs, meta, gnuplot, host_cpus):
    """Runs of several clocks: a whole report per clock in out_dir/clock-<clock>/, and in
    out_dir a report.json and report.html with one section per clock (its headline and a link
    to its report).  Nothing is compared across clocks."""
    os.makedirs(out_dir, exist_ok=True)
    sections, merged = [], {'headline': [], 'metrics': [], 'histograms': [], 'plots': [],
                            'problems': [], 'runs': []}
    for clock in sorted(by_clock):
        sub_dir = 'clock-' + clock
        sub = build(os.path.join(out_dir, sub_dir), by_clock[clock], host_outputs,
                    [dict(c) for c in cyclic_runs or []], dict(meta), gnuplot, host_cpus)
        sections.append({'clock': clock, 'report': sub_dir + '/report.json',
                         'html': sub_dir + '/report.html', 'headline': sub['headline']})
        for key in merged:
            for item in sub[key]:
                item = dict(item)
                if key == 'plots' and item.get('file'):
                    item['file'] = sub_dir + '/' + item['file']
                if key == 'problems':
                    item = '%s: %s' % (clock, item)
                merged[key].append(item)
    report = dict(merged, schema=SCHEMA, clock=None, clocks=sorted(by_clock),
                  sections=sections,
                  written=datetime.datetime.now().strftime('%Y-%m-%d %H:%M:%S'),
                  mode=meta.get('mode'), repeat=meta.get('repeat'),
                  repeats_done=meta.get('repeats_done', meta.get('repeat')),
                  seconds=meta.get('seconds'), notes=meta.get('notes', []), plot_problem=None)
    with open(os.path.join(out_dir, 'report.json'), 'w', encoding='utf-8') as f:
        json.dump(report, f, indent=1, default=str)
        f.write('\n')
    write_clock_index(os.path.join(out_dir, 'report.html'), report)
    return report


def headline_lines(report):
    """The headline ratios as plain text lines (what scripts/bench prints at the end), each
    with its 95% interval or "no difference shown"; under a heading per clock when the runs
    had several."""
    lines = []
    several = len(report.get('clocks') or []) > 1
    for clock in (report.get('clocks') or [None]):
        if several:
            lines.append('  clock=%s:' % clock)
        for r in report['headline']:
            if several and r.get('clock') != clock:
                continue
            if r['status'] == 'measured':
                lines.append('  ' + r['statement'])
            else:
                lines.append('  %s: %s' % (r['title'], r['statement']))
    return lines
