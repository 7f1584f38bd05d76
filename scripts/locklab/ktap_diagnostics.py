"""locklab's own '#' lines in a KTAP log: the running test, metrics, histograms, lock-torture
statistics, per-suite counts, config errors and the end marker.

KTAP says nothing about these lines: they are the kernel's own contract with the host tools and
grow whenever a test learns to print a new figure, so they live apart from the KTAP structure
parser.  They stay methods (a mixin of ktap.Parser) so that their code reads as it did there;
this module imports only ktap_report, so there is no import cycle.
"""

import re

from .ktap_report import clip

# Diagnostic formats, matched against the text after the leading '#'.
_RUNNING = re.compile(r'running:\s+(\S+)(?:\s+timeout_ms=(\d+))?')
_METRIC = re.compile(r'metric:\s+(\S+)\s+(\S+)\s+(\S+)((?:\s+\S+)*)\s*$')
_HIST_BEGIN = re.compile(r'hist-begin:\s+(\S+)((?:\s+\S+)*)\s*$')
_HIST_END = re.compile(r'hist-end:\s+(\S+)((?:\s+\S+)*)\s*$')
_HIST_ROW = re.compile(r'(-?\d+)((?:\s+\d+)+)\s*$')
_TORTURE = re.compile(r'(\S+)-torture:\s+(Writes|Reads):\s+Total:\s+(\d+)\s+'
                      r'Max/Min:\s+(\d+)/(\d+)\s*(\?\?\?)?\s+Fail:\s+(\d+)\s*(!!!)?')
_CONFIG_ERROR = re.compile(r'config error:\s*(.*)$')
_COUNTS = re.compile(r'(\S+):((?:\s+\w+:\d+)+)\s*$')
_END = re.compile(r'locklab:\s+end\s+verdict=(\w+)')


def _number(text):
    """An int or float from text, or None."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return None


def _key_values(text):
    """key=value tokens of a line; other tokens are returned separately."""
    pairs, other = {}, []
    for token in text.split():
        key, sep, value = token.partition('=')
        if sep and key:
            number = _number(value)
            pairs[key] = value if number is None else number
        else:
            other.append(token)
    return pairs, other


class DiagnosticLines:
    """The '#' line handlers of ktap.Parser, which is the only class meant to use them.

    They use the parser's report, running, hist, ended and line_no attributes and its
    _problem(), _innermost() and _add_diagnostic() methods."""

    def _add_record(self, kind_list, record):
        """Metrics, histograms and torture lines belong to the running test if the kernel
        said which one runs, else to the next result in the current list."""
        if self.running is not None:
            record['test'] = self.running[0]
        else:
            self._innermost().records.append(record)
        kind_list.append(record)

    def _diagnostic(self, text, t):
        if self.hist is not None:
            row = _HIST_ROW.match(text)
            if row:
                self._hist_row(row)
                return []
        for regex, handler in ((_RUNNING, self._running), (_METRIC, self._metric),
                               (_HIST_BEGIN, self._hist_begin), (_HIST_END, self._hist_end),
                               (_TORTURE, self._torture), (_END, self._end),
                               (_COUNTS, self._counts)):
            match = regex.match(text)
            if match:
                events = handler(match, t)
                if events is not None:
                    return events
                break
        config = _CONFIG_ERROR.match(text)
        if config:
            self.report.config_errors.append(clip(config.group(1), 1024))
        self._add_diagnostic(text)
        return []

    def _running(self, match, t):
        path = clip(match.group(1), 512)
        timeout_ms = int(match.group(2)) if match.group(2) else None
        self.running = (path, timeout_ms, self.line_no, t)
        return [('running', path, timeout_ms)]

    def _metric(self, match, t):
        path, value_text, unit, rest = match.groups()
        value = _number(value_text)
        if value is None:
            self._problem('warning', 'metric %s: value "%s" is not a number'
                          % (path, clip(value_text, 40)))
            value = value_text
        attrs, other = _key_values(rest)
        record = {'path': clip(path, 512), 'value': value, 'unit': clip(unit, 64),
                  'attrs': attrs, 'test': None, 'line': self.line_no}
        if other:
            record['extra'] = clip(' '.join(other), 512)
        self._add_record(self.report.metrics, record)
        return []

    def _hist_begin(self, match, t):
        if self.hist is not None:
            self._problem('warning', 'histogram %s has no hist-end line' % self.hist['path'])
            self.hist = None
        attrs, _ = _key_values(match.group(2))
        self.hist = {'path': clip(match.group(1), 512), 'unit': attrs.get('unit'),
                     'bucket': attrs.get('bucket'), 'cpus': attrs.get('cpus'),
                     'buckets': [], 'samples': None, 'min': None, 'avg': None, 'max': None,
                     'overflows': None, 'complete': False, 'test': None,
                     'line': self.line_no}
        self._add_record(self.report.histograms, self.hist)
        return []

    def _hist_row(self, match):
        counts = [int(c) for c in match.group(2).split()]
        cpus = self.hist['cpus']
        if isinstance(cpus, int) and len(counts) != cpus:
            self._problem('warning', 'histogram %s: %d counts for %d cpus'
                          % (self.hist['path'], len(counts), cpus))
        if len(self.hist['buckets']) < 1000000:
            self.hist['buckets'].append([int(match.group(1)), counts])

    def _hist_end(self, match, t):
        hist = self.hist
        path = match.group(1)
        if hist is None or hist['path'] != path:
            self._problem('warning', 'hist-end for %s without its hist-begin' % clip(path, 80))
            return []
        attrs, _ = _key_values(match.group(2))
        for key in ('samples', 'min', 'avg', 'max', 'overflows'):
            hist[key] = attrs.get(key)
        hist['complete'] = True
        counted = sum(sum(c) for _, c in hist['buckets'])
        if isinstance(hist['samples'], int) and isinstance(hist['overflows'], int) \
                and counted + hist['overflows'] != hist['samples']:
            self._problem('warning', 'histogram %s: buckets hold %d samples, hist-end says %d '
                          '(overflows %d)' % (path, counted, hist['samples'], hist['overflows']))
        self.hist = None
        return []

    def _torture(self, match, t):
        lock, kind, total, high, low, imbalance, fail, flagged = match.groups()
        record = {'lock': lock, 'kind': kind.lower(), 'total': int(total), 'max': int(high),
                  'min': int(low), 'imbalance': bool(imbalance), 'fail': int(fail),
                  'flagged': bool(flagged), 'test': None, 'line': self.line_no}
        self._add_record(self.report.torture, record)
        # Keep it as a diagnostic too: it explains a failing torture test.
        return None

    def _counts(self, match, t):
        name = match.group(1)
        counts = {key: int(value) for key, value in
                  (pair.split(':') for pair in match.group(2).split())}
        if name == 'Totals':
            self.report.totals = counts
        else:
            self.report.suite_counts[name] = counts
        return []

    def _end(self, match, t):
        self.report.end_verdict = match.group(1)
        self.ended = True
        return [('end', match.group(1))]
