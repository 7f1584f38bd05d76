"""The run-qemu command's options: its argument parser, exit codes and set-up error.

Bad options exit 4 (set-up error) with "run-qemu: error: ...", not argparse's usual 2, so a
caller tells a wrong command line from a failing kernel.
"""

import argparse
import sys

EXIT_PASS, EXIT_FAIL, EXIT_INCOMPLETE, EXIT_TIMEOUT, EXIT_SETUP = 0, 1, 2, 3, 4
PROG = 'run-qemu'
CONSOLES = ('com1', 'com2', 'pci')


class SetupError(Exception):
    """Anything that keeps the run from starting: exit code 4."""


class ArgParser(argparse.ArgumentParser):
    """argparse exits 2 on bad options, which the contract reserves for an incomplete run."""

    def error(self, message):
        self.print_usage(sys.stderr)
        sys.stderr.write('%s: error: %s\n' % (PROG, message))
        sys.exit(EXIT_SETUP)


def _int_range(low, high):
    def check(text):
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError('not a whole number: %r' % text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError('%d is outside %d..%d' % (value, low, high))
        return value
    return check


# The highest ID --apic-ids takes: QEMU 9.0 and later give q35 4096 possible CPUs
# (-smp maxcpus; 8.x allows 1024, and says so when asked for more).
MAX_APIC_ID = 4095
# Debian 12's OVMF boots with 1024 possible CPUs, resets before GRUB with 2048 and hangs
# with 4096 (docs/smp.md).
OVMF_MAX_APIC_ID = 1023


def _apic_ids(text):
    """--apic-ids: comma-separated, starting with 0 (the boot CPU), no repeats."""
    try:
        ids = [int(part, 10) for part in text.split(',')]
    except ValueError:
        raise argparse.ArgumentTypeError('not a comma-separated list of numbers: %r' % text)
    if ids[0] != 0:
        raise argparse.ArgumentTypeError('the first APIC ID is the boot CPU and must be 0')
    if len(set(ids)) != len(ids):
        raise argparse.ArgumentTypeError('an APIC ID is listed twice')
    if not all(0 <= i <= MAX_APIC_ID for i in ids):
        raise argparse.ArgumentTypeError('APIC IDs must be within 0..%d' % MAX_APIC_ID)
    if len(ids) > 255:
        raise argparse.ArgumentTypeError('at most 255 CPUs')
    return ids


def _positive_seconds(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError('not a number of seconds: %r' % text)
    if not value > 0:
        raise argparse.ArgumentTypeError('must be more than 0')
    return value


def build_arg_parser():
    parser = ArgParser(prog=PROG, description='Boot locklab in QEMU, stream the serial console '
                       'and exit with the verdict (0 pass, 1 fail, 2 incomplete, 3 timeout, '
                       '4 set-up error).')
    source = parser.add_mutually_exclusive_group()
    source.add_argument('--iso', metavar='PATH', help='ISO to boot (default build/locklab.iso)')
    source.add_argument('--pxe', metavar='DIR', help='boot over TFTP from this directory')
    count = parser.add_mutually_exclusive_group()
    count.add_argument('--smp', type=_int_range(1, 255), default=4, help='vCPUs (default 4)')
    count.add_argument('--apic-ids', type=_apic_ids, metavar='0,ID,...',
                       help='one vCPU per APIC ID, instead of --smp: sparse IDs, or IDs '
                       'above 254 (x2APIC only; q35)')
    parser.add_argument('--accel', choices=('auto', 'kvm', 'tcg'), default='auto')
    parser.add_argument('--clock', choices=('real', 'virtual'), default='real',
                        help='guest time: real (the host clock, default) or virtual '
                        '(single-threaded TCG with -icount: time advances with '
                        'instructions, independent of host load)')
    parser.add_argument('--firmware', choices=('bios', 'uefi'), default='bios')
    parser.add_argument('--machine', choices=('pc', 'q35'), default='q35')
    parser.add_argument('--memory', type=_int_range(16, 1 << 20), metavar='MB',
                        help='guest RAM (default 512, at least 32 MB per vCPU)')
    parser.add_argument('--cpu', metavar='MODEL',
                        help='QEMU CPU model (default max; host under KVM)')
    parser.add_argument('--cmdline', default='', metavar='STR',
                        help='appended to the kernel command line')
    parser.add_argument('--timeout', type=_positive_seconds, default=300.0, metavar='SECONDS',
                        help='overall limit (default 300)')
    parser.add_argument('--console', choices=CONSOLES, default='com1',
                        help='the port that carries the kernel console and that the runner '
                        'reads: com1 (default), com2 (COM1 present but unconnected) or pci '
                        '(a pci-serial device, no ISA serial ports)')
    parser.add_argument('--acpitable', action='append', default=[], metavar='FILE',
                        help='an extra ACPI table for the guest (QEMU -acpitable file=FILE); '
                        'may be repeated')
    parser.add_argument('--log', metavar='FILE', help='raw serial log (default build/last.log)')
    parser.add_argument('--junit', metavar='FILE', help='write a JUnit XML report')
    parser.add_argument('--json', metavar='FILE', help='write a JSON report')
    parser.add_argument('--verbose', action='store_true',
                        help='on a terminal too, stream the raw serial console instead of the '
                        'per-test view (pipes and CI always get the raw console)')
    parser.add_argument('--quiet', action='store_true',
                        help='do not echo the serial console')
    return parser


def parse_args(argv=None):
    parser = build_arg_parser()
    opts = parser.parse_args(argv)
    if opts.apic_ids:
        if opts.machine != 'q35' and max(opts.apic_ids) > 254:
            parser.error('--apic-ids above 254 need --machine q35 (an IOMMU with x2APIC '
                         'interrupt remapping)')
        opts.smp = len(opts.apic_ids)
    if opts.clock == 'virtual' and opts.accel == 'kvm':
        parser.error('--clock virtual needs TCG (-icount counts emulated instructions); '
                     'it cannot be combined with --accel kvm')
    return opts


# -- decisions (pure functions, unit-tested) ---------------------------------------------------
