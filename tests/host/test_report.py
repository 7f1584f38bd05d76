"""Tests of scripts/report: cyclictest-format histogram files, the JSON, the HTML page and the
gnuplot PNGs, on a synthetic serial log (data/report_sample.log) and small edge cases."""

import contextlib
import io
import json
import os
import re
import shutil
import tempfile
import unittest

from support import DATA
from locklab import report, report_hist, report_plots

SAMPLE = os.path.join(DATA, 'report_sample.log')
HAVE_GNUPLOT = shutil.which('gnuplot') is not None


ktap = report.ktap

# What the sample log holds.
SAMPLE_LEAVES = ['boot.cmdline', 'boot.multiboot', 'boot.x2apic', 'smp.ipi_roundtrip',
                 'smp.tsc_skew', 'smp.nmi_backtrace', 'lock.tas_throughput',
                 'lock.ticket_throughput', 'lock.mcs_throughput', 'lock.ticket_latency',
                 'tlb.sync_shootdown', 'tlb.lazy_shootdown']

ROW = re.compile(r'^(-?\d{6,}) (\d{6,}(?:\t\d{6,})*)$')


def hist_blocks(path):
    """{hist path: (header attrs, [(start, counts)], end attrs)} read straight from a log."""
    blocks, current = {}, None
    with open(path, encoding='utf-8', errors='replace') as log:
        for line in log:
            text = line.strip()
            m = re.match(r'# hist-begin: (\S+)(.*)$', text)
            if m:
                current = m.group(1)
                blocks[current] = (dict(kv.split('=') for kv in m.group(2).split()), [], {})
                continue
            m = re.match(r'# hist-end: (\S+)(.*)$', text)
            if m and current:
                blocks[current][2].update(kv.split('=') for kv in m.group(2).split())
                current = None
                continue
            m = re.match(r'# (-?\d+)((?: \d+)+)$', text)
            if m and current:
                blocks[current][1].append((int(m.group(1)), [int(c) for c in m.group(2).split()]))
    return blocks


def read_histfile(path):
    """A histfile read the way latency-plot scripts read cyclictest's: data rows are the
    lines not starting with '#', footer fields by their '# Name:' prefix."""
    rows, footer = [], {}
    with open(path, encoding='utf-8') as src:
        lines = src.read().split('\n')
    for line in lines:
        if not line or line.startswith('#'):
            m = re.match(r'# (Total|Min Latencies|Avg Latencies|Max Latencies|'
                         r'Histogram Overflows):(.*)$', line)
            if m:
                footer[m.group(1)] = m.group(2).split()
            continue
        fields = line.split()
        rows.append((int(fields[0]), [int(f) for f in fields[1:]]))
    return lines, rows, footer


class SampleReport(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='locklab-report-')
        cls.out = os.path.join(cls.tmp, 'report')
        with contextlib.redirect_stdout(io.StringIO()):
            cls.code = report.main([SAMPLE, '--out', cls.out])
        with open(os.path.join(cls.out, 'report.json'), encoding='utf-8') as src:
            cls.json = json.load(src)
        with open(os.path.join(cls.out, 'index.html'), encoding='utf-8') as src:
            cls.html = src.read()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_exit_code(self):
        self.assertEqual(self.code, 0)

    # -- histfiles ---------------------------------------------------------------------------

    def test_one_histfile_per_block(self):
        self.assertEqual(sorted(os.listdir(os.path.join(self.out, 'hist'))),
                         ['lock.ticket.acquire_cycles.hist', 'smp.ipi_roundtrip.hist'])
        files = {h['path']: h['file'] for h in self.json['report']['histfiles']}
        self.assertEqual(files['smp.ipi_roundtrip'], 'hist/smp.ipi_roundtrip.hist')

    def test_histfile_layout(self):
        """rt-tests' layout: '# Histogram', '%06d ' bucket then tab-separated '%06lu' counts,
        then the footer lines in cyclictest's order and formats."""
        lines, rows, footer = read_histfile(os.path.join(self.out, 'hist',
                                                         'smp.ipi_roundtrip.hist'))
        self.assertEqual(lines[0], '# Histogram')
        data = [l for l in lines if l and not l.startswith('#')]
        for line in data:
            self.assertRegex(line, ROW)
            self.assertEqual(len(line.split('\t')), 4, line)
        self.assertTrue(data[0].startswith('001250 000007\t'), data[0])
        order = [l.split(':')[0] for l in lines if l.startswith('# ') and ':' in l
                 and not l.startswith('# locklab')]
        self.assertEqual(order, ['# Total', '# Min Latencies', '# Avg Latencies',
                                 '# Max Latencies', '# Histogram Overflows',
                                 '# Histogram Overflow at cycle number', '# Thread 0',
                                 '# Thread 1', '# Thread 2', '# Thread 3'])
        self.assertTrue(all(re.match(r'^\d{9}$', f) for f in footer['Total']))
        for key in ('Min Latencies', 'Avg Latencies', 'Max Latencies', 'Histogram Overflows'):
            self.assertTrue(all(re.match(r'^\d{5,}$', f) for f in footer[key]), footer[key])
        # cyclictest ends the block with an empty line
        end = lines.index('# Thread 3:')
        self.assertEqual(lines[end + 1], '')

    def test_histfile_counts_match_the_log(self):
        blocks = hist_blocks(SAMPLE)
        for path, name in (('smp.ipi_roundtrip', 'smp.ipi_roundtrip.hist'),
                           ('lock.ticket.acquire_cycles', 'lock.ticket.acquire_cycles.hist')):
            header, log_rows, end = blocks[path]
            _, rows, footer = read_histfile(os.path.join(self.out, 'hist', name))
            self.assertEqual(rows, log_rows, path)
            cpus = int(header['cpus'])
            totals = [sum(counts[c] for _, counts in log_rows) for c in range(cpus)]
            self.assertEqual([int(t) for t in footer['Total']], totals)
            self.assertEqual(sum(totals) + int(end['overflows']), int(end['samples']))

    def test_histfile_footer_values(self):
        _, rows, footer = read_histfile(os.path.join(self.out, 'hist', 'smp.ipi_roundtrip.hist'))
        # one overflow in the block, not attributed to a CPU: per-CPU 0 plus the all-CPU
        # count, and the overall max after the per-CPU ones (cyclictest --histofall style)
        self.assertEqual(footer['Histogram Overflows'], ['00000'] * 4 + ['00001'])
        self.assertEqual(footer['Max Latencies'][-1], '187342')
        self.assertEqual(len(footer['Max Latencies']), 5)
        self.assertEqual(len(footer['Min Latencies']), 4)
        # per-CPU minima are the first non-empty bucket of each CPU, not below the overall min
        self.assertEqual(int(footer['Min Latencies'][0]), 1375)
        self.assertEqual(int(footer['Min Latencies'][3]), 1750)
        for cpu in range(4):
            self.assertLessEqual(int(footer['Min Latencies'][cpu]),
                                 int(footer['Avg Latencies'][cpu]))
            self.assertLessEqual(int(footer['Avg Latencies'][cpu]),
                                 int(footer['Max Latencies'][cpu]))
        _, rows, footer = read_histfile(os.path.join(self.out, 'hist',
                                                     'lock.ticket.acquire_cycles.hist'))
        self.assertEqual(footer['Histogram Overflows'], ['00000'] * 4)
        self.assertEqual(len(footer['Max Latencies']), 4)
        self.assertEqual(rows[0][0], 16)       # log2 buckets start at powers of two

    # -- JSON --------------------------------------------------------------------------------

    def test_json_is_ktap_json(self):
        data = self.json
        self.assertEqual(data['verdict_name'], 'fail')
        self.assertEqual(data['counts'], {'pass': 10, 'fail': 1, 'skip': 1, 'xfail': 0,
                                          'total': 12})
        self.assertEqual([t['path'] for t in data['tests']], SAMPLE_LEAVES)
        failed = [t for t in data['tests'] if t['status'] == 'fail']
        self.assertEqual([t['path'] for t in failed], ['smp.tsc_skew'])
        self.assertIn('CPU 5 TSC is ahead of CPU 0 by 1840 ns (uncertainty 40 ns)',
                      failed[0]['diagnostics'])
        self.assertEqual(len(data['metrics']), 24)
        throughput = [m for m in data['metrics'] if m['path'] == 'lock.mcs.throughput']
        self.assertEqual([m['attrs']['cpus'] for m in throughput], [1, 2, 4, 8])
        self.assertEqual(throughput[0]['test'], 'lock.mcs_throughput')
        hists = {h['path']: h for h in data['histograms']}
        self.assertEqual(hists['smp.ipi_roundtrip']['samples'], 20000)
        self.assertEqual(hists['smp.ipi_roundtrip']['overflows'], 1)
        self.assertEqual(hists['lock.ticket.acquire_cycles']['bucket'], 'log2')
        self.assertTrue(all(h['complete'] for h in data['histograms']))

    def test_json_lists_the_report_files(self):
        section = self.json['report']
        self.assertEqual(section['index'], 'index.html')
        kinds = sorted(p['kind'] for p in section['plots'])
        self.assertEqual(kinds, ['latency', 'latency', 'shootdown', 'throughput'])
        series = {p['kind']: p['series'] for p in section['plots'] if p['kind'] != 'latency'}
        self.assertEqual(sorted(series['throughput']), ['mcs', 'tas', 'ticket'])
        self.assertEqual(sorted(series['shootdown']), ['lazy', 'sync'])

    # -- HTML --------------------------------------------------------------------------------

    def test_html_has_every_leaf_and_its_status(self):
        for path in SAMPLE_LEAVES:
            self.assertIn('<code>%s</code>' % path, self.html)
        rows = re.findall(r'<tr class="(\w+)"><td><code>([^<]+)</code></td>', self.html)
        self.assertEqual([p for _, p in rows], SAMPLE_LEAVES)
        status = dict((p, c) for c, p in rows)
        self.assertEqual(status['smp.tsc_skew'], 'fail')
        self.assertEqual(status['boot.x2apic'], 'skip')
        self.assertEqual(status['boot.cmdline'], 'pass')

    def test_html_shows_failure_diagnostics_and_skip_reasons(self):
        self.assertIn('tests/kernel/smp_tests.c:391: expected skew &lt;= 1000, got 1840 &gt; '
                      '1000', self.html)
        self.assertIn('x2APIC not offered by this CPU model', self.html)
        self.assertIn('class="verdict v-fail"', self.html)

    def test_html_links_histfiles_and_json(self):
        self.assertIn('href="hist/smp.ipi_roundtrip.hist"', self.html)
        self.assertIn('href="report.json"', self.html)

    # -- plots -------------------------------------------------------------------------------

    @unittest.skipUnless(HAVE_GNUPLOT, 'gnuplot is not installed (make deps)')
    def test_pngs_drawn_and_shown(self):
        plots = os.path.join(self.out, 'plots')
        names = sorted(f for f in os.listdir(plots) if f.endswith('.png'))
        self.assertEqual(names, ['hist-lock.ticket.acquire_cycles.png',
                                 'hist-smp.ipi_roundtrip.png', 'shootdown.png',
                                 'throughput.png'])
        for name in names:
            with open(os.path.join(plots, name), 'rb') as png:
                data = png.read()
            self.assertTrue(data.startswith(b'\x89PNG\r\n\x1a\n'), name)
            self.assertGreater(len(data), 5000, name)
            self.assertIn('src="plots/%s"' % name, self.html)
        self.assertNotIn('Plots not drawn', self.html)

    def test_plot_sources_kept(self):
        src = os.path.join(self.out, 'plots', 'src')
        with open(os.path.join(src, 'hist-smp.ipi_roundtrip.gp'), encoding='utf-8') as gp:
            script = gp.read()
        self.assertIn('set logscale y', script)
        self.assertIn('with steps', script)
        self.assertEqual(script.count('title "CPU'), 4)


class EdgeCases(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='locklab-report-')

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_report(self, text, gnuplot='gnuplot'):
        log = os.path.join(self.tmp, 'serial.log')
        with open(log, 'w', encoding='utf-8') as out:
            out.write(text)
        out_dir = os.path.join(self.tmp, 'out')
        summary = report.build_report(log, out_dir, gnuplot)
        with open(os.path.join(out_dir, 'index.html'), encoding='utf-8') as page:
            html = page.read()
        with open(os.path.join(out_dir, 'report.json'), encoding='utf-8') as src:
            data = json.load(src)
        return out_dir, summary, html, data

    def test_log_without_histograms(self):
        out, summary, html, data = self.run_report(
            'KTAP version 1\n1..1\n  KTAP version 1\n  # Subtest: boot\n  1..1\n'
            '  ok 1 cmdline\nok 1 boot\n# locklab: end verdict=pass\n')
        self.assertEqual(data['verdict_name'], 'pass')
        self.assertEqual(summary['histfiles'], [])
        self.assertFalse(os.path.exists(os.path.join(out, 'hist')))
        self.assertIn('<code>boot.cmdline</code>', html)
        self.assertIn('No histogram blocks in this log', html)

    def test_empty_log(self):
        out, summary, html, data = self.run_report('')
        self.assertEqual(data['verdict_name'], 'incomplete')
        self.assertIn('The log has no test results', html)

    def one_bucket(self, cpus=1):
        return ('KTAP version 1\n1..1\n  KTAP version 1\n  # Subtest: smp\n  1..1\n'
                '  # running: smp.one timeout_ms=100\n'
                '# hist-begin: smp.one unit=ns bucket=100 cpus=%d\n'
                '# 300 %s\n'
                '# hist-end: smp.one samples=%d min=310 avg=350 max=399 overflows=2\n'
                '  ok 1 one\nok 1 smp\n# locklab: end verdict=pass\n'
                % (cpus, ' '.join(['5'] * cpus), 5 * cpus + 2))

    def test_one_bucket_one_cpu_is_exact(self):
        out, summary, html, data = self.run_report(self.one_bucket(), gnuplot='no-gnuplot')
        lines, rows, footer = read_histfile(os.path.join(out, 'hist', 'smp.one.hist'))
        self.assertEqual(rows, [(300, [5])])
        self.assertEqual(footer['Total'], ['000000005'])
        self.assertEqual(footer['Min Latencies'], ['00310'])
        self.assertEqual(footer['Avg Latencies'], ['00350'])
        self.assertEqual(footer['Max Latencies'], ['00399'])
        self.assertEqual(footer['Histogram Overflows'], ['00002'])
        self.assertIn('# Thread 0: # 00002 others', lines)

    @unittest.skipUnless(HAVE_GNUPLOT, 'gnuplot is not installed (make deps)')
    def test_one_bucket_still_plots(self):
        out, summary, html, data = self.run_report(self.one_bucket(cpus=2))
        png = os.path.join(out, 'plots', 'hist-smp.one.png')
        self.assertTrue(os.path.isfile(png))
        self.assertGreater(os.path.getsize(png), 1000)
        self.assertIsNone(summary['plot_problem'])

    def test_without_gnuplot(self):
        out, summary, html, data = self.run_report(self.one_bucket(), gnuplot='no-gnuplot')
        self.assertIn('Plots not drawn: gnuplot is not installed', html)
        self.assertTrue(os.path.isfile(os.path.join(out, 'hist', 'smp.one.hist')))
        self.assertTrue(os.path.isfile(os.path.join(out, 'plots', 'src', 'hist-smp.one.gp')))
        self.assertFalse(any(f.endswith('.png') for f in os.listdir(os.path.join(out, 'plots'))))

    def test_log_cut_inside_a_histogram(self):
        with open(SAMPLE, encoding='utf-8') as src:
            text = src.read()
        cut = text.index('# 5000 ')
        out, summary, html, data = self.run_report(text[:cut])
        self.assertEqual(data['verdict_name'], 'incomplete')
        self.assertEqual(len(summary['histfiles']), 1)
        with open(os.path.join(out, 'hist', 'smp.ipi_roundtrip.hist'), encoding='utf-8') as h:
            self.assertIn('incomplete (no hist-end line)', h.read())
        self.assertIn('(incomplete)', html)

    def test_hostile_names_are_escaped(self):
        out, summary, html, data = self.run_report(
            'KTAP version 1\n1..1\n  KTAP version 1\n  # Subtest: x\n  1..1\n'
            '  # <script>alert(1)</script>\n  not ok 1 a<b>\nnot ok 1 x\n'
            '# hist-begin: ../../etc/passwd unit=ns bucket=1 cpus=1\n# 1 1\n'
            '# hist-end: ../../etc/passwd samples=1 min=1 avg=1 max=1 overflows=0\n'
            '# locklab: end verdict=fail\n', gnuplot='no-gnuplot')
        self.assertNotIn('<script>', html)
        self.assertIn('&lt;script&gt;', html)
        self.assertEqual(os.listdir(os.path.join(out, 'hist')), ['etc_passwd.hist'])

    def test_cli_missing_log(self):
        with contextlib.redirect_stderr(io.StringIO()) as err:
            code = report.main([os.path.join(self.tmp, 'nothing.log')])
        self.assertEqual(code, report.SETUP_ERROR)
        self.assertIn('no log at', err.getvalue())


class Helpers(unittest.TestCase):
    def test_common_affixes(self):
        self.assertEqual(report_plots.common_affixes(['lock.tas.throughput', 'lock.mcs.throughput']),
                         {'lock.tas.throughput': 'tas', 'lock.mcs.throughput': 'mcs'})
        self.assertEqual(report_plots.common_affixes(['a.b']), {'a.b': 'a.b'})

    def test_series_split_by_varying_keys(self):
        metrics = [{'path': 'lock.m.throughput', 'value': v, 'unit': 'ops/s',
                    'attrs': {'cpus': c, 'locks': l, 'debug': 1}}
                   for c, l, v in ((1, 2, 10), (2, 2, 8), (1, 8, 5), (2, 8, 4), (2, 8, 6))]
        series = report_plots.metric_series(metrics, 'cpus')
        self.assertEqual(series, {'ops/s': [('lock.m.throughput locks=2', [(1, 10), (2, 8)]),
                                            ('lock.m.throughput locks=8', [(1, 5), (2, 5)])]})

    def test_log2_bucket_edges(self):
        hist = {'bucket': 'log2', 'buckets': []}
        self.assertEqual([report_hist.bucket_end(hist, s) for s in (0, 1, 2, 64)], [1, 2, 4, 128])


if __name__ == '__main__':
    unittest.main()
