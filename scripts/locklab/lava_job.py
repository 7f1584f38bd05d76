"""make-job: write a LAVA job definition for locklab.

    scripts/lava/make-job qemu --iso-url URL [options]       the ISO under LAVA's qemu type
    scripts/lava/make-job pxe-grub --kernel-url URL [options] a real x86 machine, TFTP + GRUB

The job gets one monitor per top-level KTAP suite, in the order the kernel runs them.  The
suites come from --suites, else from the tests= option of --cmdline when it names its suites
(tests=boot.*,smp.*), else from a serial log of the same kernel and options (--from-log, e.g.
build/last.log after `make run`).  A monitor waits for its suite, so a job listing a suite
the kernel does not run waits until its timeout.  See docs/lava.md.
"""

import argparse
import sys

from . import ktap
from . import lava as lavalib

PROG = 'make-job'


def grub_word(token):
    """A GRUB script word: quoted when it has characters GRUB would interpret."""
    if all(c.isalnum() or c in '=._,:/+-@%' for c in token):
        return token
    return "'%s'" % token.replace("'", "'\\''")


def resolve_suites(args, cmdline):
    if args.suites:
        return [s for s in args.suites.split(',') if s]
    if args.from_log:
        report = ktap.parse_file(args.from_log)
        suites = lavalib.suites_from_report(report)
        if not suites:
            raise ValueError('%s has no KTAP suites' % args.from_log)
        return suites
    suites = lavalib.suites_from_tests(cmdline)
    if suites:
        return suites
    raise ValueError('which suites will run?  Give --suites boot,smp,..., a tests= option '
                     'naming its suites, or --from-log LOG of a run with the same options')


def qemu_job(args):
    cmdline = ('exit=qemu ' + args.cmdline).strip()
    values = {
        'JOB_NAME': args.name or 'locklab qemu smp=%d' % args.smp,
        'JOB_MINUTES': args.minutes,
        'MEMORY': args.memory,
        'SMP': args.smp,
        'FW_CFG': lavalib.fw_cfg_option(cmdline),
        'ISO_URL': args.iso_url,
    }
    return lavalib.render(lavalib.template('qemu-job.yaml.in'), values,
                          resolve_suites(args, cmdline))


def pxe_grub_job(args):
    cmdline = ('exit=halt ' + args.cmdline).strip()
    options = ' '.join(grub_word(t) for t in cmdline.split())
    values = {
        'JOB_NAME': args.name or 'locklab on %s' % args.device_type,
        'JOB_MINUTES': args.minutes,
        'DEVICE_TYPE': args.device_type,
        'KERNEL_URL': args.kernel_url,
        'KERNEL_OPTIONS': options.replace("'", "''"),     # inside a YAML '...' string
    }
    return lavalib.render(lavalib.template('pxe-grub-job.yaml.in'), values,
                          resolve_suites(args, cmdline))


def main(argv=None):
    parser = argparse.ArgumentParser(prog='scripts/lava/make-job',
                                     description='Write a LAVA job definition for locklab.')
    sub = parser.add_subparsers(dest='kind', required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument('--cmdline', default='',
                        help="kernel options (e.g. 'tests=lock.* bench=1'); exit= is set "
                             "for you (qemu, or halt on hardware)")
    common.add_argument('--suites', help='comma-separated top-level suites, in run order')
    common.add_argument('--from-log', metavar='LOG',
                        help='take the suites from a serial log of the same kernel')
    common.add_argument('--name', help='job name')
    common.add_argument('--minutes', type=int, default=15, help='job timeout (default 15)')
    common.add_argument('-o', '--output', help='write here instead of stdout')
    qemu = sub.add_parser('qemu', parents=[common], help='the ISO under the qemu device type')
    qemu.add_argument('--iso-url', required=True, help='where LAVA downloads locklab.iso')
    qemu.add_argument('--smp', type=int, default=2, help='CPUs (default 2)')
    qemu.add_argument('--memory', type=int, default=512, help='MB (default 512)')
    pxe = sub.add_parser('pxe-grub', parents=[common],
                         help='a real x86 machine: TFTP deploy, GRUB boot')
    pxe.add_argument('--kernel-url', required=True,
                     help='where LAVA downloads locklab.elf (build/pxe/boot/locklab.elf)')
    pxe.add_argument('--device-type', default='x86-grub',
                     help="the lab's device type for such machines (default x86-grub)")
    args = parser.parse_args(argv)
    try:
        text = qemu_job(args) if args.kind == 'qemu' else pxe_grub_job(args)
    except (ValueError, KeyError, OSError) as err:
        print('%s: %s' % (PROG, err), file=sys.stderr)
        return 2
    if args.output:
        with open(args.output, 'w', encoding='utf-8') as out:
            out.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
