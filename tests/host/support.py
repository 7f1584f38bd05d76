"""What the host tests share: scripts/ on sys.path (so they import the `locklab` package, as
the commands in scripts/ do), the repository's paths, and whole run-qemu runs against the
stand-in QEMU (tests/host/fake_qemu.py)."""

import os
import shlex
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, 'data')
REPO = os.path.dirname(os.path.dirname(HERE))
SCRIPTS = os.path.join(REPO, 'scripts')
RUN_QEMU = os.path.join(SCRIPTS, 'run-qemu')
FAKE_QEMU = os.path.join(HERE, 'fake_qemu.py')

if SCRIPTS not in sys.path:
    sys.path.insert(0, SCRIPTS)

# Settings of the stand-in QEMU that a test sets only when it asks for them.
FAKE_QEMU_KNOBS = ('FAKE_QEMU_LOG', 'FAKE_QEMU_HANG', 'FAKE_QEMU_STDERR', 'FAKE_QEMU_REFUSE_CPU',
                   'FAKE_QEMU_FEATURE_WARNINGS')


def option_after(argv, flag):
    return argv[argv.index(flag) + 1]


def fake_qemu_run(tmp, args=(), log=None, exit_status=1, hang=False, stderr_text=None,
                  qemu=None, timeout=60, env_extra=None, smp=1):
    """scripts/run-qemu on tmp/locklab.iso (the caller makes it), with fake_qemu.py in QEMU's place: it replays
    log (a file of tests/host/data, or an absolute path), exits with exit_status and records
    its argv in tmp/argv.json and every start in tmp/starts.json; the serial log goes to
    tmp/serial.log.  TCG unless args choose an accelerator.  (process, seconds it took)."""
    iso = os.path.join(tmp, 'locklab.iso')
    env = dict(os.environ, CI='1',
               LOCKLAB_QEMU=qemu or shlex.join([sys.executable, FAKE_QEMU]),
               FAKE_QEMU_EXIT=str(exit_status),
               FAKE_QEMU_ARGV=os.path.join(tmp, 'argv.json'),
               FAKE_QEMU_STARTS=os.path.join(tmp, 'starts.json'))
    for key in FAKE_QEMU_KNOBS:
        env.pop(key, None)
    env.update(env_extra or {})
    if log:
        env['FAKE_QEMU_LOG'] = os.path.join(DATA, log)   # absolute paths stay as they are
    if hang:
        env['FAKE_QEMU_HANG'] = '1'
    if stderr_text:
        env['FAKE_QEMU_STDERR'] = stderr_text
    accel = [] if '--accel' in args else ['--accel', 'tcg']
    command = [sys.executable, RUN_QEMU, '--iso', iso, '--smp', str(smp),
               '--log', os.path.join(tmp, 'serial.log')] + accel + list(args)
    started = time.monotonic()
    proc = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout, text=True)
    return proc, time.monotonic() - started

