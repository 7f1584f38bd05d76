"""A run-qemu run in progress: QEMU started, its serial console read line by line into the
KTAP parser and the log, deadlines watched, and the verdict from the log and QEMU's status.
"""

import os
import selectors
import shutil
import signal
import subprocess
import sys
import time

from . import ktap, termview
from .runner_options import EXIT_FAIL, EXIT_INCOMPLETE, EXIT_PASS, PROG, SetupError
from .runner_qemu import CPU_FEATURE_DROPPED, test_allowance

# After the end marker the kernel writes isa-debug-exit at once; if QEMU is still alive after
# this long, the exit port did not work and waiting longer tells nothing new.
END_GRACE_S = 10.0
# GRUB prints "error: ..." when it cannot load the kernel (missing or corrupt
# image), then falls back to its menu and tries again forever; give it this long
# to recover, then call the boot failed instead of waiting for --timeout.
LOADER_ERROR_GRACE_S = 5.0
# A partial line longer than this is handed on as if it ended (a runaway print without newline).
MAX_PARTIAL = 1 << 20


def qemu_status_verdict(returncode):
    """(code, explanation) from QEMU's exit status alone."""
    if returncode < 0:
        return EXIT_INCOMPLETE, 'QEMU was killed by signal %d' % -returncode
    if returncode == 0:
        return EXIT_INCOMPLETE, ('QEMU exited 0: the kernel never wrote isa-debug-exit '
                                 '(reset, triple fault or shutdown)')
    if returncode & 1:
        value = returncode >> 1
        if value in (EXIT_PASS, EXIT_FAIL, EXIT_INCOMPLETE):
            return value, 'the kernel wrote %d to isa-debug-exit' % value
        return EXIT_INCOMPLETE, 'the kernel wrote unexpected value %d to isa-debug-exit' % value
    return EXIT_INCOMPLETE, 'QEMU exited with status %d' % returncode


def combine_verdicts(report, returncode):
    """The exit code from the parsed log and QEMU's status, plus notes on disagreements."""
    ktap_code = report.verdict
    if returncode is None:         # QEMU killed by us after the end marker
        return ktap_code, ['QEMU did not exit after the end marker (isa-debug-exit missing?)']
    qemu_code, why = qemu_status_verdict(returncode)
    if qemu_code == ktap_code:
        return ktap_code, []
    if returncode == 0 and report.end_verdict is not None and ktap_code != EXIT_INCOMPLETE:
        return ktap_code, [why + '; the KTAP log is complete, so it decides']
    worse = max(ktap_code, qemu_code)
    return worse, ['KTAP says %s but %s; reporting %s' % (
        ktap.VERDICT_NAMES[ktap_code], why, ktap.VERDICT_NAMES[worse])]


# -- the run ---------------------------------------------------------------------------------

class Status:
    """One self-updating status line on stderr, only for a person watching a terminal."""

    def __init__(self, enabled):
        self.enabled = enabled
        self.shown = None              # the text on screen, if any

    def clear(self):
        if self.enabled and self.shown is not None:
            sys.stderr.write('\r\x1b[K')
            sys.stderr.flush()
            self.shown = None

    def show(self, text):
        if self.enabled and text != self.shown:
            columns = shutil.get_terminal_size((80, 24)).columns
            sys.stderr.write('\r\x1b[K' + text[:max(columns - 1, 10)])
            sys.stderr.flush()
            self.shown = text


def _die_with_parent():
    """Child side of fork: have the kernel kill QEMU if the runner dies (no orphan VMs)."""
    try:
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)     # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001  (best effort, not portable)
        pass


class Run:
    def __init__(self, opts, command, accel, factor, log_path, out=None):
        self.opts = opts
        self.command = command
        self.accel = accel
        self.factor = factor
        self.log_path = log_path
        self.out = out or sys.stdout
        interactive = self.out.isatty() and sys.stderr.isatty() and not os.environ.get('CI')
        # A person at a terminal gets the per-test view; --verbose, pipes and CI the console.
        self.view = termview.TermView(self.out, log_path) if (
            interactive and not opts.verbose and not opts.quiet) else None
        self.status = Status(interactive and not self.view)
        self.suite_lines = opts.quiet and not interactive
        self.parser = ktap.Parser()
        self.pending = b''
        self.start = None
        self.plan_at = None            # seconds from start to the first top-level plan
        self.running = None            # (path, allowance seconds)
        self.test_deadline = None
        self.end_deadline = None
        self.last_done = None          # path of the last finished test
        self.timeout_message = None
        self.loader_error = None
        self.loader_deadline = None
        self.qemu_errors = []
        self.echo_ok = True
        self.serial_bytes = 0
        self.log = None                # the ConsoleLog while QEMU runs
        self.stderr_pending = ''
        self.features_dropped = []

    # output ---------------------------------------------------------------------------

    def say(self, text):
        """A line on stdout, tolerating a closed pipe (e.g. piped into head)."""
        if not self.echo_ok:
            return
        self.status.clear()
        try:
            self.out.write(text + '\n')
            self.out.flush()
        except (BrokenPipeError, ValueError):
            self.echo_ok = False

    def elapsed(self):
        return time.monotonic() - self.start

    def show_status(self):
        if self.view:
            self.view.tick(self.elapsed(), self.parser.started)
            return
        if not self.status.enabled:
            return
        plan = self.parser.top_plan
        done = '[%d/%s]' % (self.parser.top_done, plan if plan is not None else '?')
        if self.running:
            what = 'running ' + self.running[0]
        elif self.parser.started:
            what = 'kernel'
        else:
            what = 'firmware/boot'
        self.status.show('%s %s  %.1f s' % (done, what, self.elapsed()))

    # input ----------------------------------------------------------------------------

    def serial(self, data, log):
        """Bytes from the console: kept as they came in the .raw file, as lines below."""
        log.raw.write(data)
        log.raw.flush()
        self.serial_bytes += len(data)
        lines = (self.pending + data).split(b'\n')
        self.pending = lines.pop()
        for line in lines:
            self.line(line)
        if len(self.pending) > MAX_PARTIAL:
            self.line(self.pending)
            self.pending = b''

    def line(self, raw):
        now = self.elapsed()
        for text in ktap.clean_segments(raw):
            if self.log:
                self.log.text(text)
            if self.view:
                self.view.line(text)
            elif not self.opts.quiet:
                self.say(text)
            if (not self.parser.started and self.loader_error is None
                    and text.lstrip().startswith('error: ')):
                self.loader_error = text.strip()
                self.loader_deadline = time.monotonic() + LOADER_ERROR_GRACE_S
            for event in self.parser.feed(text, now):
                self.event(event, now)
                if self.view:
                    self.view.event(event, now, self.parser)
                    if event[0] == 'running' and self.running:
                        self.view.set_allowance(self.running[1])

    def event(self, event, now):
        kind = event[0]
        if kind == 'plan' and event[1] == 0 and self.plan_at is None:
            self.plan_at = now
        elif kind == 'running':
            path, timeout_ms = event[1], event[2]
            allowance = test_allowance(timeout_ms, self.factor) if timeout_ms else None
            self.running = (path, allowance)
            self.test_deadline = time.monotonic() + allowance if allowance else None
        elif kind == 'result':
            if self.running:
                self.last_done = self.running[0]
            self.running, self.test_deadline = None, None
            if event[1] == 0 and self.suite_lines:
                test = event[2]
                self.say('%s: %s %s %s (%.1f s)' % (
                    PROG, '[%d/%s]' % (self.parser.top_done, self.parser.top_plan or '?'),
                    'ok' if test.status != ktap.FAILED else 'not ok', test.name, now))
        elif kind == 'end':
            self.end_deadline = time.monotonic() + END_GRACE_S

    # timers ---------------------------------------------------------------------------

    def expired(self, overall_deadline):
        """A timeout message if a deadline has passed, else None."""
        now = time.monotonic()
        if self.test_deadline is not None and now >= self.test_deadline:
            return 'test %s did not finish within %.1f s' % self.running
        if now >= overall_deadline:
            if self.running:
                what = 'test ' + self.running[0]
            elif not self.parser.started:
                what = 'firmware/boot (no KTAP yet)'
            elif self.last_done:
                what = 'the kernel after test ' + self.last_done
            else:
                what = 'the kernel before its first test'
            return '%s did not finish within %g s (--timeout)' % (what, self.opts.timeout)
        return None

    def next_wakeup(self, overall_deadline):
        deadlines = [overall_deadline] + [d for d in (self.test_deadline, self.end_deadline)
                                          if d is not None]
        wait = min(deadlines) - time.monotonic()
        return max(0.0, min(wait, 0.25))

    # main loop ------------------------------------------------------------------------

    def execute(self):
        """Run QEMU to the end; returns its exit status, or None when we had to kill it."""
        self.start = time.monotonic()
        overall_deadline = self.start + self.opts.timeout
        try:
            proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    preexec_fn=_die_with_parent)
        except OSError as err:
            raise SetupError('cannot start %s: %s' % (self.command[0], err.strerror))
        selector = selectors.DefaultSelector()
        for stream in (proc.stdout, proc.stderr):
            os.set_blocking(stream.fileno(), False)
            selector.register(stream, selectors.EVENT_READ)
        killed = False
        try:
            with ConsoleLog(self.log_path) as log:
                self.log = log
                while selector.get_map():
                    for key, _ in selector.select(self.next_wakeup(overall_deadline)):
                        self.read(key.fileobj, proc, selector, log)
                    message = self.expired(overall_deadline)
                    if message:
                        self.timeout_message = message
                        killed = True
                        break
                    if self.end_deadline is not None and time.monotonic() >= self.end_deadline:
                        killed = True
                        break
                    if (self.loader_deadline is not None and not self.parser.started
                            and time.monotonic() >= self.loader_deadline):
                        killed = True
                        break
                    self.show_status()
                if self.pending:
                    self.line(self.pending)
                    self.pending = b''
                self.log = None
        finally:
            self.status.clear()
            if self.view:
                self.view.clear_live()
            selector.close()
            if killed or proc.poll() is None:
                stop(proc)
            proc.wait()
            proc.stdout.close()
            proc.stderr.close()
            self.qemu_stderr_end()
        return None if killed else proc.returncode

    def read(self, stream, proc, selector, log):
        try:
            data = os.read(stream.fileno(), 65536)
        except BlockingIOError:
            return
        if not data:
            selector.unregister(stream)
            return
        if stream is proc.stdout:
            self.serial(data, log)
        else:
            self.qemu_stderr(data)

    def qemu_stderr(self, data):
        """QEMU's own messages: pass them on and keep the last few for the verdict.  The
        warnings for each feature a named CPU model wants and the host lacks (dozens under a
        nested hypervisor) become one line at the end."""
        self.stderr_pending += data.decode('utf-8', 'replace')
        lines = self.stderr_pending.split('\n')
        self.stderr_pending = lines.pop()
        shown = []
        for line in lines:
            if CPU_FEATURE_DROPPED.search(line):
                self.features_dropped.append(line.split('feature:', 1)[-1].strip())
            else:
                shown.append(line)
        self.qemu_errors = (self.qemu_errors + lines)[-20:]
        if shown:
            self.status.clear()
            if self.view:
                self.view.external()
            sys.stderr.write('\n'.join(shown) + '\n')
            sys.stderr.flush()

    def qemu_stderr_end(self):
        if self.stderr_pending:
            self.qemu_stderr(b'\n')
        if self.features_dropped:
            print('%s: QEMU left out %d CPU features the host lacks (%s%s)' % (
                PROG, len(self.features_dropped), ', '.join(self.features_dropped[:3]),
                ', ...' if len(self.features_dropped) > 3 else ''), file=sys.stderr)


class ConsoleLog:
    """The console as text in PATH (LF endings, no control sequences: what grep and a pager
    want) and as the bytes QEMU gave in PATH.raw (for whoever needs them)."""

    def __init__(self, path):
        self.path = path
        self.raw_path = path + '.raw'

    def __enter__(self):
        self.raw = open(self.raw_path, 'wb')
        try:
            self.lines = open(self.path, 'w', encoding='utf-8', newline='\n')
        except OSError:
            self.raw.close()
            raise
        return self

    def text(self, line):
        self.lines.write(line + '\n')
        self.lines.flush()

    def __exit__(self, *exc):
        self.raw.close()
        self.lines.close()


def stop(proc):
    """End QEMU: politely first, it may flush nothing worth waiting for."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        proc.kill()


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt
