#!/usr/bin/env python3
"""A stand-in for qemu-system-x86_64, for testing scripts/run-qemu without a VM.

run-qemu runs it through LOCKLAB_QEMU.  It accepts any arguments and is steered by
environment variables:
  FAKE_QEMU_LOG     file whose bytes are written to stdout (the "serial console")
  FAKE_QEMU_EXIT    exit status afterwards (default 1, i.e. the guest wrote 0 to isa-debug-exit)
  FAKE_QEMU_HANG    if set, sleep instead of exiting (like a hung guest)
  FAKE_QEMU_STDERR  text written to stderr first (like a QEMU error message)
  FAKE_QEMU_ARGV    file to record the arguments in, as JSON
  FAKE_QEMU_STARTS  file to append each start's arguments to, one JSON line per start
  FAKE_QEMU_REFUSE_CPU  a -cpu model refused the way KVM refuses one (an MSR it will not set,
                    then QEMU's assertion and abort), before any serial output
  FAKE_QEMU_FEATURE_WARNINGS  this many "host doesn't support requested feature" warnings
                    first, as QEMU prints for a named model on a host that lacks features
"""

import json
import os
import sys
import time


def main():
    if os.environ.get('FAKE_QEMU_ARGV'):
        with open(os.environ['FAKE_QEMU_ARGV'], 'w') as out:
            json.dump(sys.argv[1:], out)
    if os.environ.get('FAKE_QEMU_STARTS'):
        with open(os.environ['FAKE_QEMU_STARTS'], 'a') as out:
            out.write(json.dumps(sys.argv[1:]) + '\n')
    args = sys.argv[1:]
    cpu = args[args.index('-cpu') + 1] if '-cpu' in args else ''
    for i in range(int(os.environ.get('FAKE_QEMU_FEATURE_WARNINGS') or 0)):
        sys.stderr.write("qemu-system-x86_64: warning: host doesn't support requested "
                         "feature: CPUID.01H:ECX.fake%d [bit %d]\n" % (i, i))
    if os.environ.get('FAKE_QEMU_REFUSE_CPU') and \
            cpu.split(',')[0] == os.environ['FAKE_QEMU_REFUSE_CPU']:
        sys.stderr.write('qemu-system-x86_64: error: failed to set MSR 0x10a to 0x2000c04\n'
                         'qemu-system-x86_64: ../../target/i386/kvm/kvm.c:3185: '
                         'kvm_buf_set_msrs: Assertion `ret == cpu->kvm_msr_buf->nmsrs\' '
                         'failed.\n')
        sys.stderr.flush()
        os.abort()
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
