#!/usr/bin/env python3
"""A stand-in for qemu-system-x86_64, for testing scripts/run-qemu without a VM.

run-qemu runs it through LOCKLAB_QEMU.  It accepts any arguments and is steered by
environment variables:
  FAKE_QEMU_LOG     file whose bytes are written to stdout (the "serial console")
  FAKE_QEMU_EXIT    exit status afterwards (default 1, i.e. the guest wrote 0 to isa-debug-exit)
  FAKE_QEMU_HANG    if set, sleep instead of exiting (like a hung guest)
  FAKE_QEMU_STDERR  text written to stderr first (like a QEMU error message)
  FAKE_QEMU_ARGV    file to record the arguments in, as JSON
"""

import json
import os
import sys
import time


def main():
    if os.environ.get('FAKE_QEMU_ARGV'):
        with open(os.environ['FAKE_QEMU_ARGV'], 'w') as out:
            json.dump(sys.argv[1:], out)
    if os.environ.get('FAKE_QEMU_STDERR'):
        sys.stderr.write(os.environ['FAKE_QEMU_STDERR'] + '\n')
        sys.stderr.flush()
    if os.environ.get('FAKE_QEMU_LOG'):
        with open(os.environ['FAKE_QEMU_LOG'], 'rb') as log:
            data = log.read()
        # Odd-sized chunks: the runner must put lines together across reads.
        for start in range(0, len(data), 777):
            sys.stdout.buffer.write(data[start:start + 777])
            sys.stdout.buffer.flush()
    if os.environ.get('FAKE_QEMU_HANG'):
        time.sleep(120)
    return int(os.environ.get('FAKE_QEMU_EXIT', '1'))


if __name__ == '__main__':
    sys.exit(main())
