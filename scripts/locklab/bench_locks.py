"""The lock matrix of the bench report (uncontended cost, throughput by CPUs, waits and
fairness per lock type) and the same locks in the host pthread benchmark, side by side."""

from .bench_results import _attr_key, _sig, summarize
from .stats import isnum
from .metric_lines import parse_metric_lines

# Host benchmark names -> the kernel's names for the same primitive.
HOST_NAMES = {'spin_lock': 'spinlock', 'brk': 'breakable', 'multi_sorted': 'multilock_sorted',
              'multi_global': 'multilock_global'}


# -- the lock matrix -----------------------------------------------------------------------

def lock_types(results):
    types = set()
    for regex in (r'^lock\.([^.]+)\.uncontended_cycles$', r'^lock\.([^.]+)\.throughput$'):
        for p in results.paths(regex):
            types.add(p.split('.')[1])
    for p in results.paths(r'^lock\.([^.]+)\.wait$', hists=True):
        types.add(p.split('.')[1])
    return sorted(types)


def lock_matrix(results):
    """Uncontended cost, throughput by CPUs, waits and fairness per lock type."""
    tsc = results.tsc_mhz()
    out = {'tsc_mhz': tsc, 'uncontended': [], 'throughput': {'cpus': [], 'rows': []},
           'wait': [], 'missing': []}
    unc = results.find(regex=r'^lock\.[^.]+\.uncontended_cycles$')
    if not unc:
        out['missing'].append('no metric lock.<type>.uncontended_cycles in this run')
    for name in sorted({e['path'].split('.')[1] for e in unc}):
        entries = [e for e in unc if e['path'].split('.')[1] == name]
        e = sorted(entries, key=lambda x: x['smp'])[0]     # fewest vCPUs: the quietest guest
        s = e['stats']
        ns = {k: s[k] * 1000.0 / tsc for k in ('median', 'min', 'max')} if tsc and s else None
        out['uncontended'].append({'type': name, 'cycles': s, 'ns': ns, 'smp': e['smp'],
                                   'metric': e['id'], 'debug': e['observed'].get('debug')})
    thr = results.find(regex=r'^lock\.[^.]+\.throughput$', test=None) or []
    thr = [e for e in thr if isnum(e['attrs'].get('cpus'))
           and not e['path'].startswith('lock.multilock_')]
    if not thr:
        out['missing'].append('no metric lock.<type>.throughput with cpus= in this run')
    cpus_all = sorted({e['attrs']['cpus'] for e in thr})
    out['throughput']['cpus'] = cpus_all
    for name in sorted({e['path'].split('.')[1] for e in thr}):
        row = {'type': name, 'cells': {}}
        for c in cpus_all:
            cands = [e for e in thr if e['path'].split('.')[1] == name and
                     e['attrs']['cpus'] == c]
            if not cands:
                continue
            exact = [e for e in cands if e['smp'] == c]
            e = exact[0] if exact else sorted(cands, key=lambda x: x['smp'])[-1]
            row['cells'][c] = {'stats': e['stats'], 'smp': e['smp'], 'unit': e['unit'],
                               'metric': e['id']}
        out['throughput']['rows'].append(row)
    waits = results.find_hists(regex=r'^lock\.[^.]+\.wait$')
    if not waits:
        out['missing'].append('no histogram lock.<type>.wait in this run')
    fair = results.find(regex=r'^lock\.[^.]+\.fairness_ratio_x1000$')
    for h in waits:
        name = h['path'].split('.')[1]
        f = [e for e in fair if e['path'].split('.')[1] == name and e['smp'] == h['smp']
             and e['test'] == h['test']]
        out['wait'].append({'type': name, 'smp': h['smp'], 'unit': h['unit'],
                            'stats': h['stats'], 'hist': h['id'],
                            'tail_in_overflow': any(p['tail_in_overflow']
                                                    for p in h['per_run']),
                            'fairness': f[0]['stats'] if f else None,
                            'fairness_metric': f[0]['id'] if f else None})
    out['wait'].sort(key=lambda w: (w['type'], w['smp']))
    for w, h in ((w, next(h for h in waits if h['id'] == w['hist'])) for w in out['wait']):
        w['beyond'] = sorted({k for p in h['per_run'] for k in p['beyond']})
        w['last_edge'] = h['per_run'][0]['last_edge'] if h['per_run'] else None
    # The kernel's own fairness test (FIFO locks, counted turns), where it ran.
    out['fairness_test'] = [{'type': e['path'].split('.')[1], 'smp': e['smp'],
                             'stats': e['stats'], 'test': e['test']}
                            for e in fair if not any(w['fairness_metric'] == e['id']
                                                     for w in out['wait'])]
    out['critical_section'] = critical_section_note(results)
    return out


def critical_section_note(results):
    keys = set()
    for e in results.find(regex=r'^lock\.'):
        keys.update(k for k in e['attrs'] if k in ('cs', 'cs_ns', 'cs_us', 'section_ns',
                                                   'hold_ns'))
    if keys:
        return 'critical-section length swept by the kernel (%s=)' % ', '.join(sorted(keys))
    return ('critical-section length: the kernel has no knob for it (no cs= option or '
            'attribute); every figure uses the benchmark\'s fixed section (a read, a pause '
            'and a write of shared data)')


# -- the host pthread benchmark ------------------------------------------------------------

def host_lock_results(outputs):
    """The host pthread benchmark's repeats (their stdout) aggregated: {(kernel name, what,
    identity attrs): entry}.  Throughput is converted from ops/s to ops/ms."""
    entries = {}
    for rep, text in enumerate(outputs):
        for m in parse_metric_lines(text):
            parts = m['path'].split('.')
            if len(parts) < 4 or parts[0] != 'host' or parts[1] != 'lock':
                continue
            name = HOST_NAMES.get(parts[2], parts[2])
            what = '.'.join(parts[3:])
            ident = {k: v for k, v in m['attrs'].items() if k in ('threads', 'mode', 'k')}
            value, unit = m['value'], m['unit']
            if unit == 'ops/s':
                value, unit = value / 1000.0, 'ops/ms'
            key = (name, what, _attr_key(ident))
            e = entries.setdefault(key, {'type': name, 'host_name': parts[2], 'what': what,
                                         'attrs': ident, 'unit': unit, 'samples': [],
                                         'runs': [], 'observed': {}})
            e['samples'].append(value)
            e['runs'].append(rep)
            for k, v in m['attrs'].items():
                if k not in ident:
                    e['observed'].setdefault(k, []).append(v)
    for e in entries.values():
        e['stats'] = summarize(e['samples'])
    return entries


def peer_table(results, host, matrix):
    """One row per lock type: bare-metal (locklab) and Linux user-space (pthreads) figures and
    their noise side by side."""
    host_types = {e['type'] for e in host.values()}
    kernel_types = {u['type'] for u in matrix['uncontended']} | \
        {r['type'] for r in matrix['throughput']['rows']}
    common = sorted(host_types & kernel_types)
    threads_all = sorted({e['attrs'].get('threads') for e in host.values()
                          if e['what'] == 'throughput' and isnum(e['attrs'].get('threads'))})
    cpus_all = matrix['throughput']['cpus']
    both = sorted(set(threads_all) & set(cpus_all))
    columns = [both[0], both[-1]] if len(both) > 1 else both
    rows = []
    for name in common + sorted(kernel_types - host_types) + sorted(host_types - kernel_types):
        row = {'type': name, 'in_kernel': name in kernel_types, 'on_host': name in host_types}
        unc = [u for u in matrix['uncontended'] if u['type'] == name]
        row['kernel_uncontended_ns'] = unc[0]['ns'] if unc else None
        row['kernel_uncontended_cycles'] = unc[0]['cycles'] if unc else None
        h = host.get((name, 'uncontended_ns', ()))
        if h is None:
            h = next((e for e in host.values() if e['type'] == name and
                      e['what'] == 'uncontended_ns'), None)
        row['host_uncontended_ns'] = h['stats'] if h else None
        row['throughput'] = {}
        trow = next((r for r in matrix['throughput']['rows'] if r['type'] == name), None)
        for n in columns:
            k = trow['cells'].get(n) if trow else None
            he = next((e for e in host.values() if e['type'] == name and
                       e['what'] == 'throughput' and e['attrs'].get('threads') == n), None)
            row['throughput'][n] = {'kernel': k['stats'] if k else None,
                                    'kernel_smp': k['smp'] if k else None,
                                    'host': he['stats'] if he else None,
                                    'host_max_min': (he['observed'].get('max_min') or [None])[0]
                                    if he else None}
        waits = [w for w in matrix['wait'] if w['type'] == name]
        w = sorted(waits, key=lambda x: x['smp'])[-1] if waits else None
        row['kernel_wait'] = {'smp': w['smp'], 'p99': w['stats']['p99'],
                              'max': w['stats']['max'], 'unit': w['unit']} if w else None
        rows.append(row)
    return {'rows': rows, 'columns': columns,
            'note': 'Throughput in ops/ms (the host benchmark prints ops/s; divided by 1000). '
                    'Bare-metal uncontended cost is TSC cycles converted with the guest\'s '
                    'calibrated TSC rate (%s MHz).' % (_sig(matrix['tsc_mhz'], 5)
                                                       if matrix['tsc_mhz'] else '?')}


def host_brk(host):
    """The host benchmark's breakable-lock wait (max, by mode), as a peer of the walk."""
    out = []
    for e in host.values():
        if e['type'] == 'breakable' and e['what'] == 'wait_max_ns':
            out.append({'mode': e['attrs'].get('mode'), 'stats': e['stats'],
                        'threads': (e['observed'].get('threads') or [None])[0]})
    return sorted(out, key=lambda x: str(x['mode']))
