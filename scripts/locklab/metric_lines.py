"""'# metric:' lines in any program's output.

The kernel prints them inside KTAP (ktap_diagnostics reads those); the host benchmarks (the
pthread lock benchmark, the peer benchmarks) print the same format on their own, and this is
the one reader for them.
"""

import re

_METRIC_LINE = re.compile(r'#\s*metric:\s+(\S+)\s+(\S+)\s+(\S+)((?:\s+\S+)*)\s*$')


def _number_or_text(text):
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def parse_metric_lines(text, typed=True):
    """{path, value, unit, attrs} of every '# metric:' line of text, wherever it starts on its
    line.  typed: a value written without a point is an int and attribute values are numbers
    where they read as numbers; otherwise the value is a float and attributes stay strings
    (callers that compare them with text).  A line whose value is not a number is skipped."""
    out = []
    for line in (text or '').splitlines():
        m = _METRIC_LINE.search(line.strip())
        if not m:
            continue
        try:
            value = float(m.group(2))
        except ValueError:
            continue
        if typed and value.is_integer() and '.' not in m.group(2):
            value = int(value)
        attrs = {}
        for token in m.group(4).split():
            k, sep, v = token.partition('=')
            if sep:
                attrs[k] = _number_or_text(v) if typed else v
        out.append({'path': m.group(1), 'value': value, 'unit': m.group(3), 'attrs': attrs})
    return out
