"""test-console: the console legs that need more than run-qemu's options.

  test-console spcr [--iso ISO]
      Builds an ACPI SPCR table naming COM2 (0x2f8, 115200) at test time,
      with its checksum, and boots with it and QEMU's COM1 unconnected
      (run-qemu --console com2 --acpitable): the kernel must find COM2 from
      the table alone.  Exits with run-qemu's code.

  test-console pxe-mac [--pxe DIR] [--firmware bios|uefi]
      Copies the PXE tree (make pxe) and gives it two option files: one for
      QEMU's NIC (locklab-options-52:54:00:12:34:56.cfg: GRUB and the kernel
      on COM2) and the fallback locklab-options.cfg (COM1).  The run must
      come out on COM2: GRUB picked the file by the booting NIC's MAC.

  test-console screen --firmware bios|uefi [--iso ISO]
      Boots with no serial port at all and QMP instead: polls QEMU's
      screendump until the verdict line appears, drawn in the kernel's font
      (scripts/screen.py reads each 8x16 cell back against the same font),
      and checks the coloured verdict banner.  The kernel holds the verdict
      on the screen for screen_hold= seconds, then ends QEMU through
      isa-debug-exit: the run must end on its own with the passing code.
      Exit 0 pass, 1 fail, 4 set-up error.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

from . import runner_options, runner_qemu, screen
from .paths import REPO, SCRIPTS

VERDICT_LINE = '# locklab: end verdict=pass'
PASS_GREEN = (0, 170, 0)       # the banner's band (VGA green), kernel/console/fbcon.c
HOLD_S = 4
TIMEOUT_S = 240


# -- SPCR -------------------------------------------------------------------------------------

def spcr_table(port=0x2f8, baud_code=7, interface=0, space_id=1, bit_width=8, access_size=1):
    """An ACPI SPCR table (revision 2, 80 bytes) for a 16550 at port, checksummed."""
    body = bytearray(80)
    body[0:4] = b'SPCR'
    body[4:8] = (80).to_bytes(4, 'little')
    body[8] = 2                                   # revision
    body[10:16] = b'LOCKLB'
    body[16:24] = b'LOCKSPCR'
    body[24:28] = (1).to_bytes(4, 'little')
    body[28:32] = b'LLAB'
    body[32:36] = (1).to_bytes(4, 'little')
    body[36] = interface                          # 0: full 16550
    body[40] = space_id                           # GAS: 1 = system I/O
    body[41] = bit_width
    body[42] = 0
    body[43] = access_size
    body[44:52] = port.to_bytes(8, 'little')
    body[52] = 1                                  # interrupt type: PC-AT 8259 IRQ
    body[53] = 3 if port == 0x2f8 else 4
    body[58] = baud_code                          # 7: 115200
    body[60] = 1                                  # one stop bit
    body[62] = 0                                  # VT100
    body[64:66] = b'\xff\xff'                     # not a PCI device
    body[66:68] = b'\xff\xff'
    body[9] = (-sum(body)) & 0xff
    assert sum(body) & 0xff == 0
    return bytes(body)


def run_spcr(args):
    os.makedirs(args.outdir, exist_ok=True)
    path = os.path.join(args.outdir, 'spcr-com2.bin')
    with open(path, 'wb') as f:
        f.write(spcr_table())
    cmd = [sys.executable, os.path.join(SCRIPTS, 'run-qemu'), '--iso', args.iso, '--smp', '2',
           '--console', 'com2', '--acpitable', path, '--cmdline', 'tests=boot.*',
           '--log', os.path.join(args.outdir, 'spcr.log')] + args.rest
    print('test-console: SPCR for COM2 in %s; %s' % (path, ' '.join(cmd[1:])), flush=True)
    return subprocess.call(cmd)


# -- per-machine PXE options ---------------------------------------------------------------

QEMU_MAC = '52:54:00:12:34:56'      # QEMU's first NIC without mac=


def run_pxe_mac(args):
    import shutil
    if not os.path.isdir(os.path.join(args.pxe, 'boot', 'grub')):
        print('test-console: no PXE tree at %s (make pxe)' % args.pxe, file=sys.stderr)
        return 4
    with tempfile.TemporaryDirectory(prefix='locklab-pxe-') as tmp:
        root = os.path.join(tmp, 'pxe')
        shutil.copytree(args.pxe, root)
        grub = os.path.join(root, 'boot', 'grub')
        with open(os.path.join(grub, 'locklab-options-%s.cfg' % QEMU_MAC), 'w') as f:
            f.write('set locklab_serial="--port=0x2f8"\nset locklab_options="console=com2"\n')
        with open(os.path.join(grub, 'locklab-options.cfg'), 'w') as f:
            f.write('set locklab_options="console=com1"\n')
        os.makedirs(args.outdir, exist_ok=True)
        cmd = [sys.executable, os.path.join(SCRIPTS, 'run-qemu'), '--pxe', root, '--smp', '2',
               '--firmware', args.firmware, '--console', 'com2', '--cmdline', 'tests=boot.*',
               '--log', os.path.join(args.outdir, 'pxe-mac.log')] + args.rest
        print('test-console: %s' % ' '.join(cmd[1:]), flush=True)
        return subprocess.call(cmd)


# -- screen -----------------------------------------------------------------------------------

class Qmp:
    def __init__(self, path, deadline):
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.file = self.sock.makefile('rw')
        self.read()                                   # greeting
        self.command('qmp_capabilities')

    def read(self):
        while True:
            line = self.file.readline()
            if not line:
                raise OSError('QMP closed')
            msg = json.loads(line)
            if 'event' not in msg:
                return msg

    def command(self, name, **arguments):
        self.file.write(json.dumps({'execute': name, 'arguments': arguments}) + '\n')
        self.file.flush()
        reply = self.read()
        if 'error' in reply:
            raise OSError('QMP %s: %s' % (name, reply['error'].get('desc')))
        return reply['return']

    def close(self):
        self.sock.close()


def screen_command(args, tmpdir, sock):
    opts = runner_options.parse_args(['--iso', args.iso, '--smp', '1', '--firmware',
                                      args.firmware, '--accel', 'tcg'])
    cmdline = runner_qemu.kernel_cmdline('tcg', runner_qemu.host_cpu_count(),
                                         'tests=%s screen_hold=%d' % (args.tests, HOLD_S))
    cmd = runner_qemu.build_command(runner_qemu.find_qemu(), opts, 'tcg', cmdline, tmpdir)
    # No serial port at all: drop the runner's -serial and talk QMP instead.
    out = []
    skip = False
    for i, a in enumerate(cmd):
        if skip:
            skip = False
            continue
        if a == '-serial':
            skip = True
            continue
        out.append(a)
    return out + ['-serial', 'none', '-qmp', 'unix:%s,server=on,wait=off' % sock]


def run_screen(args):
    glyphs = screen.font_glyphs()
    os.makedirs(args.outdir, exist_ok=True)
    shot = os.path.join(args.outdir, 'screen-%s.ppm' % args.firmware)
    with tempfile.TemporaryDirectory(prefix='locklab-screen-') as tmpdir:
        sock = os.path.join(tmpdir, 'qmp.sock')
        cmd = screen_command(args, tmpdir, sock)
        print('test-console: %s' % ' '.join(cmd), flush=True)
        started = time.monotonic()
        deadline = started + TIMEOUT_S
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        found = None
        lines = []
        try:
            qmp = Qmp(sock, deadline)
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    qmp.command('screendump', filename=os.path.join(tmpdir, 'shot.ppm'))
                except OSError:
                    break                              # QEMU went away
                image = screen.read_ppm(os.path.join(tmpdir, 'shot.ppm'))
                lines = screen.decode(image, glyphs)
                found = next(((r, line.find(VERDICT_LINE)) for r, line in enumerate(lines)
                              if VERDICT_LINE in line), None)
                if found:
                    os.replace(os.path.join(tmpdir, 'shot.ppm'), shot)
                    break
                time.sleep(0.5)
            qmp.close()
            if not found and os.path.exists(os.path.join(tmpdir, 'shot.ppm')):
                os.replace(os.path.join(tmpdir, 'shot.ppm'), shot)   # for a look
            code = proc.wait(timeout=max(1, deadline - time.monotonic()))
        except (OSError, subprocess.TimeoutExpired) as err:
            print('test-console: %s' % err)
            code = None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        output = proc.stdout.read().decode('utf-8', 'replace')
    seconds = time.monotonic() - started
    ok = True
    print('test-console: screen as read back (%s, %.1f s):' % (args.firmware, seconds))
    for line in lines:
        text = line.replace('\0', '~').rstrip()
        if text.strip('~ '):
            print('  | ' + text)
    if not found:
        print('test-console: FAIL: the verdict line %r never appeared in the kernel\'s font'
              % VERDICT_LINE)
        ok = False
    else:
        print('test-console: verdict line at row %d column %d, drawn in the kernel font'
              % found)
        above = lines[found[0] - 1] if found[0] > 0 else ''
        if not above.startswith('# Totals: pass:'):
            print('test-console: FAIL: the line above the verdict is %r, not the totals'
                  % above.rstrip())
            ok = False
        image = screen.read_ppm(shot)
        green = image.count(PASS_GREEN)
        print('test-console: banner: %d pixels of the pass colour %s (screenshot %s)'
              % (green, PASS_GREEN, shot))
        if green < 10000:
            print('test-console: FAIL: no large green verdict banner')
            ok = False
    # isa-debug-exit: QEMU exits with (code << 1) | 1; the kernel's 0 (pass) gives 1.
    if code != 1:
        print('test-console: FAIL: QEMU ended with %s, not 1 (kernel exit 0 through '
              'isa-debug-exit)%s' % (code, ': ' + output.strip()[-400:] if output.strip() else ''))
        ok = False
    else:
        print('test-console: QEMU ended by itself through isa-debug-exit (pass)')
    print('test-console: %s' % ('ok' if ok else 'FAILED'))
    return 0 if ok else 1


def main(argv=None):
    parser = argparse.ArgumentParser(prog='test-console', description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='what', required=True)
    spcr = sub.add_parser('spcr', help='COM2 chosen by an SPCR table alone')
    spcr.add_argument('rest', nargs='*', help='more run-qemu arguments (after --)')
    pxe = sub.add_parser('pxe-mac', help='PXE options chosen by the booting NIC\'s MAC')
    pxe.add_argument('--pxe', default=os.path.join(REPO, 'build', 'pxe'))
    pxe.add_argument('--firmware', choices=('bios', 'uefi'), default='bios')
    pxe.add_argument('rest', nargs='*', help='more run-qemu arguments (after --)')
    scr = sub.add_parser('screen', help='no serial: the verdict read back from the screen')
    scr.add_argument('--firmware', choices=('bios', 'uefi'), default='bios')
    scr.add_argument('--tests', default='boot.*', help='tests= for the run (default boot.*)')
    for p in (spcr, scr, pxe):
        p.add_argument('--iso', default=os.path.join(REPO, 'build', 'locklab.iso'))
        p.add_argument('--outdir', default=os.path.join(REPO, 'build', 'test-console'))
    args = parser.parse_args(argv)
    if args.what == 'pxe-mac':
        return run_pxe_mac(args)
    if not os.path.isfile(args.iso):
        print('test-console: no ISO at %s (run make)' % args.iso, file=sys.stderr)
        return 4
    return run_spcr(args) if args.what == 'spcr' else run_screen(args)


if __name__ == '__main__':
    sys.exit(main())
