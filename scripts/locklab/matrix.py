"""test-matrix: boot locklab once per leg of tests/matrix.txt and check each outcome.

A leg is one line of the matrix file:

    name | expected exit code | run-qemu arguments | optional regex

Lines whose first non-blank character is '#' are comments.  The regex is everything after the
third '|' (so it may itself contain '|' and '#'); it must match somewhere in the leg's serial
log or in run-qemu's own output.  Legs run one after another: QEMU's multi-threaded TCG already
uses every host CPU.

The last line of output is always "N passed, N failed"; the exit status is 0 when every leg
passed, 1 otherwise, 4 when the matrix cannot be read.
"""

import argparse
import fnmatch
import os
import re
import shlex
import subprocess
import sys
import time
from collections import namedtuple

from . import ktap
from .paths import REPO, SCRIPTS

Leg = namedtuple('Leg', 'name expected args regex line')
NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.+-]*$')
TAIL_LINES = 30
# run-qemu enforces its own timeouts; this only guards against the runner itself hanging.
GUARD_S = 3600


class MatrixError(Exception):
    pass


def parse_matrix(text):
    """Legs of a matrix file, in order."""
    legs, seen = [], set()
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith('#'):
            continue
        fields = line.split('|', 3)
        if len(fields) < 3:
            raise MatrixError('line %d: expected "name | exit | args [| regex]"' % number)
        name, expected, args = (f.strip() for f in fields[:3])
        if not NAME.match(name):
            raise MatrixError('line %d: bad leg name %r' % (number, name))
        if name in seen:
            raise MatrixError('line %d: leg %s appears twice' % (number, name))
        seen.add(name)
        expected = expected or '0'
        if not expected.isdigit():
            raise MatrixError('line %d: exit code %r is not a number' % (number, expected))
        try:
            argv = shlex.split(args)
        except ValueError as err:
            raise MatrixError('line %d: %s' % (number, err))
        regex = fields[3].strip() if len(fields) > 3 else ''
        try:
            compiled = re.compile(regex, re.MULTILINE) if regex else None
        except re.error as err:
            raise MatrixError('line %d: bad regex %r: %s' % (number, regex, err))
        legs.append(Leg(name, int(expected), argv, compiled, number))
    return legs


def select(legs, patterns):
    """Legs whose name matches any of the glob patterns (comma-separated allowed)."""
    if not patterns:
        return legs
    globs = [g for p in patterns for g in p.split(',') if g]
    return [leg for leg in legs if any(fnmatch.fnmatchcase(leg.name, g) for g in globs)]


def tail(path, count=TAIL_LINES):
    """The last lines of a serial log, cleaned of escape codes."""
    try:
        with open(path, 'rb') as log:
            log.seek(0, os.SEEK_END)
            size = log.tell()
            log.seek(max(0, size - 256 * 1024))
            data = log.read()
    except OSError:
        return []
    lines = [seg for raw in data.split(b'\n') for seg in ktap.clean_segments(raw)]
    while lines and not lines[-1]:
        lines.pop()
    return lines[-count:]


def read_text(path):
    try:
        with open(path, 'rb') as log:
            return log.read().decode('utf-8', 'replace')
    except OSError:
        return ''


def run_leg(leg, runner, outdir):
    """Run one leg; returns (passed, exit code, seconds, reason, log path, runner output)."""
    log = os.path.join(outdir, leg.name + '.log')
    junit = os.path.join(outdir, leg.name + '.xml')
    if leg.args and leg.args[0].startswith('!'):
        # A host command leg ("!cmd args..."): its output is the log.
        command = [leg.args[0][1:]] + leg.args[1:]
    else:
        command = [sys.executable, runner, '--quiet', '--log', log, '--junit', junit] + leg.args
    started = time.monotonic()
    try:
        proc = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=GUARD_S, cwd=REPO)
        code, output = proc.returncode, proc.stdout.decode('utf-8', 'replace')
        if command[0] != sys.executable:
            with open(log, 'w', encoding='utf-8') as out:
                out.write(output)
    except subprocess.TimeoutExpired as err:
        code = None
        output = (err.stdout or b'').decode('utf-8', 'replace')
    except OSError as err:
        return False, None, 0.0, 'cannot run %s: %s' % (command[0], err.strerror), log, ''
    seconds = time.monotonic() - started
    if code is None:
        return False, code, seconds, 'run-qemu did not return within %d s' % GUARD_S, log, output
    if code != leg.expected:
        if command[0] != sys.executable:
            return False, code, seconds, '%s exited %d' % (shlex.join(command), code), log, output
        return False, code, seconds, runner_reason(output), log, output
    if leg.regex and not (leg.regex.search(output) or leg.regex.search(read_text(log))):
        return (False, code, seconds, 'no match for /%s/ in the log or the runner output'
                % leg.regex.pattern, log, output)
    return True, code, seconds, '', log, output


def runner_reason(output):
    """The most telling line run-qemu printed about its verdict."""
    lines = [l for l in output.splitlines() if l.startswith('run-qemu:')]
    for line in reversed(lines):
        if 'timeout:' in line or 'error:' in line:
            return line[len('run-qemu: '):]
    for line in reversed(lines):
        if 'verdict=' in line:
            return line[len('run-qemu: '):]
    return lines[-1][len('run-qemu: '):] if lines else 'no verdict from run-qemu'


def main(argv=None):
    parser = argparse.ArgumentParser(description='Run the locklab boot matrix.')
    parser.add_argument('--matrix', default=os.path.join(REPO, 'tests', 'matrix.txt'),
                        help='matrix file (default tests/matrix.txt)')
    parser.add_argument('--only', action='append', metavar='PATTERN',
                        help='run only legs whose name matches this glob (repeatable)')
    parser.add_argument('--list', action='store_true', help='list the legs and exit')
    parser.add_argument('--runner', default=os.path.join(SCRIPTS, 'run-qemu'),
                        help=argparse.SUPPRESS)
    parser.add_argument('--outdir', default=os.path.join(REPO, 'build', 'matrix'),
                        help='per-leg logs and JUnit files (default build/matrix)')
    args = parser.parse_args(argv)
    try:
        with open(args.matrix, encoding='utf-8') as matrix:
            legs = select(parse_matrix(matrix.read()), args.only)
    except (OSError, MatrixError) as err:
        print('test-matrix: %s: %s' % (args.matrix, err), file=sys.stderr)
        return 4
    if args.list:
        for leg in legs:
            print('%-14s exit %d  %s%s' % (leg.name, leg.expected, shlex.join(leg.args),
                                            '  /%s/' % leg.regex.pattern if leg.regex else ''))
        return 0
    os.makedirs(args.outdir, exist_ok=True)
    passed = failed = 0
    for leg in legs:
        ok, code, seconds, reason, log, output = run_leg(leg, args.runner, args.outdir)
        if ok:
            passed += 1
            print('PASS %s (exit %d, %.1f s)' % (leg.name, code, seconds), flush=True)
            continue
        failed += 1
        print('FAIL %s: expected exit %d, got %s \u2014 %s'
              % (leg.name, leg.expected, 'none' if code is None else code, reason))
        lines = tail(log) or output.splitlines()[-TAIL_LINES:]
        for line in lines:
            print('    | ' + line)
        print('    (log: %s)' % os.path.relpath(log), flush=True)
    print('%d passed, %d failed' % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == '__main__':
    sys.exit(main())
