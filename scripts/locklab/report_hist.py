"""Histograms of the report command: the kernel's histogram blocks as rows, per-CPU
statistics, and rt-tests' cyclictest --histfile text, for existing latency-plot tooling."""

import re


def is_log2(hist):
    return str(hist.get('bucket')).lower() == 'log2'


def bucket_width(hist):
    """The linear bucket width: the block's bucket=, else the smallest gap between rows."""
    width = hist.get('bucket')
    if isinstance(width, (int, float)) and width > 0:
        return width
    starts = sorted({start for start, _ in hist['buckets']})
    gaps = [b - a for a, b in zip(starts, starts[1:]) if b > a]
    return min(gaps) if gaps else 1


def bucket_end(hist, start):
    """First value past the bucket that starts at `start`."""
    if is_log2(hist):
        return 1 if start <= 0 else start * 2
    return start + bucket_width(hist)


def hist_cpus(hist):
    """Number of CPU columns: the block's cpus=, else the widest row."""
    cpus = hist.get('cpus')
    widest = max((len(counts) for _, counts in hist['buckets']), default=0)
    if isinstance(cpus, int) and cpus > 0:
        return max(cpus, widest)
    return max(widest, 1)


def hist_rows(hist):
    """(start, [count per CPU]) sorted by start, rows of the same start merged, short rows
    padded with zeros."""
    cpus = hist_cpus(hist)
    merged = {}
    for start, counts in hist['buckets']:
        row = merged.setdefault(start, [0] * cpus)
        for cpu, count in enumerate(counts[:cpus]):
            row[cpu] += count
    return sorted(merged.items())


def number(value):
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def cpu_stats(hist):
    """Per-CPU Total/Min/Avg/Max/Overflows for the histfile footer, and notes on what had to
    be estimated.  The block gives bucket counts per CPU but min/avg/max/overflows only for all
    CPUs together, so per CPU: Total is exact, Min and Max are the edges of the CPU's first and
    last non-empty bucket (clamped by the overall min and max), Avg is the bucket-midpoint
    mean.  With one CPU everything comes from hist-end and is exact."""
    rows = hist_rows(hist)
    cpus = hist_cpus(hist)
    gmin, gavg, gmax = (number(hist.get(k)) for k in ('min', 'avg', 'max'))
    govf = number(hist.get('overflows'))
    stats = []
    for cpu in range(cpus):
        counted = [(start, counts[cpu]) for start, counts in rows if counts[cpu]]
        total = sum(c for _, c in counted)
        if not counted:
            stats.append({'total': 0, 'min': 0, 'avg': 0, 'max': 0, 'overflows': 0})
            continue
        low = counted[0][0]
        high = bucket_end(hist, counted[-1][0]) - 1
        if gmin is not None and gmin > low:
            low = gmin
        if gmax is not None and gmax < high:
            high = gmax
        high = max(high, low)
        mean = sum((start + bucket_end(hist, start) - 1) / 2.0 * c for start, c in counted)
        stats.append({'total': total, 'min': low, 'avg': mean / total, 'max': high,
                      'overflows': 0})
    notes = []
    split_known = True
    if cpus == 1 and stats[0]['total'] + (govf or 0) > 0:
        for key, value in (('min', gmin), ('avg', gavg), ('max', gmax), ('overflows', govf)):
            if value is not None:
                stats[0][key] = value
    elif govf:
        split_known = False
        notes.append('the kernel reports %d overflow(s) for all CPUs together: per-CPU '
                     'Overflows are 0 and the all-CPU count and maximum follow as an extra '
                     'field, as cyclictest --histofall writes them' % govf)
    if cpus > 1:
        notes.append('per-CPU Min/Avg/Max are estimated from the buckets')
    return stats, split_known, notes


def _fmt(value, width):
    """cyclictest's %0Nlu for a value that may be a float or negative."""
    return '%0*d' % (width, int(round(value)))


def histfile_text(hist):
    """The block in rt-tests' cyclictest --histfile layout.

    cyclictest prints '# Histogram', one row per non-empty bucket ('%06d ' bucket, then one
    '%06lu' count per thread, tab-separated), and a footer of '# Total:' (%09llu), '# Min
    Latencies:', '# Avg Latencies:', '# Max Latencies:', '# Histogram Overflows:' (%05lu),
    '# Histogram Overflow at cycle number:' with one '# Thread N:' line each, and a blank line.
    cyclictest's bucket is its 1 us latency class; here the first column is the bucket's start
    value in the block's unit (ns or cycles; for bucket=log2 buckets start at 0, 1, 2, 4, ...).
    A last comment line says what the unit is and what hist-end said."""
    rows = hist_rows(hist)
    cpus = hist_cpus(hist)
    stats, split_known, notes = cpu_stats(hist)
    out = ['# Histogram']
    for start, counts in rows:
        out.append(_fmt(start, 6) + ' ' + '\t'.join(_fmt(c, 6) for c in counts))
    out.append('# Total:' + ''.join(' ' + _fmt(s['total'], 9) for s in stats))
    out.append('# Min Latencies:' + ''.join(' ' + _fmt(s['min'], 5) for s in stats))
    out.append('# Avg Latencies:' + ''.join(' ' + _fmt(s['avg'], 5) for s in stats))
    line = '# Max Latencies:' + ''.join(' ' + _fmt(s['max'], 5) for s in stats)
    gmax = number(hist.get('max'))
    if not split_known and gmax is not None:
        line += ' ' + _fmt(gmax, 5)
    out.append(line)
    line = '# Histogram Overflows:' + ''.join(' ' + _fmt(s['overflows'], 5) for s in stats)
    if not split_known:
        line += ' ' + _fmt(hist.get('overflows'), 5)
    out.append(line)
    out.append('# Histogram Overflow at cycle number:')
    for cpu in range(cpus):
        overflows = stats[cpu]['overflows']
        out.append('# Thread %d:%s' % (cpu, ' # %05d others' % overflows if overflows else ''))
    out.append('')
    fields = ['path=%s' % hist['path'], 'unit=%s' % hist.get('unit'),
              'bucket=%s' % hist.get('bucket'), 'cpus=%d' % cpus]
    for key in ('samples', 'min', 'avg', 'max', 'overflows'):
        fields.append('%s=%s' % (key, '?' if hist.get(key) is None else hist.get(key)))
    if not hist.get('complete'):
        fields.append('incomplete (no hist-end line)')
    out.append('# locklab: ' + ' '.join(fields))
    for note in notes:
        out.append('# locklab: ' + note)
    return '\n'.join(out) + '\n'


def file_name(path, taken, suffix):
    """A file name for a test path, unique among `taken`."""
    base = re.sub(r'[^A-Za-z0-9._-]+', '_', path or 'unnamed').strip('._') or 'unnamed'
    name, n = base + suffix, 1
    while name in taken:
        n += 1
        name = '%s-%d%s' % (base, n, suffix)
    taken.add(name)
    return name
