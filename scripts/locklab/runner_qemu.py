"""The QEMU command line of a run-qemu run, and the host facts it depends on.

Which accelerator (KVM if usable, else TCG), which CPU model when KVM refuses the default,
firmware, boot media, CPU topology, consoles and the clock (--clock virtual: -icount); the
time allowance a slow accelerator needs; where QEMU and OVMF are.
"""

import os
import re
import shlex
import shutil

from .runner_options import SetupError
from .paths import REPO

# --clock virtual: guest time follows QEMU's instruction counter, 2**ICOUNT_SHIFT ns per
# guest instruction (docs/clock.md).  5 (32 ns, about 31 million instructions per guest
# second, shared by all vCPUs) keeps a guest second shorter than a host second on a
# single-threaded TCG, so tests written in guest milliseconds take no longer than in real
# time, while a 10 ms tick still spans some 300,000 instructions.
ICOUNT_SHIFT = 5

# Seconds added to every per-test deadline: covers the time between the kernel's "running"
# line and the test's own start, and host scheduling hiccups.
TEST_GRACE_S = 5.0

PXE_BOOTFILES = {'bios': 'boot/grub/i386-pc/core.0', 'uefi': 'boot/grub/x86_64-efi/core.efi'}

# UEFI firmware: (code, vars) pairs; vars None means a single combined image.
OVMF_CANDIDATES = [
    ('/usr/share/OVMF/OVMF_CODE_4M.fd', '/usr/share/OVMF/OVMF_VARS_4M.fd'),
    ('/usr/share/OVMF/OVMF_CODE.fd', '/usr/share/OVMF/OVMF_VARS.fd'),
    ('/usr/share/edk2/ovmf/OVMF_CODE.fd', '/usr/share/edk2/ovmf/OVMF_VARS.fd'),
    ('/usr/share/edk2-ovmf/x64/OVMF_CODE.fd', '/usr/share/edk2-ovmf/x64/OVMF_VARS.fd'),
    ('/usr/share/qemu/edk2-x86_64-code.fd', '/usr/share/qemu/edk2-i386-vars.fd'),
    ('/usr/share/ovmf/OVMF.fd', None),
    ('/usr/share/qemu/OVMF.fd', None),
]


def qemu_opt_escape(text):
    """QEMU's option syntax separates with ','; a literal comma is written ',,'."""
    return text.replace(',', ',,')


def host_cpu_count():
    """CPUs this process may run on (a container's limit, not the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def kernel_cmdline(accel, host_cpus, user='', clock='real'):
    line = 'exit=qemu accel=%s host_cpus=%d' % (accel, host_cpus)
    if clock != 'real':
        # Only when it is not the kernel's default, so older kernels (make compare
        # BASE=...) still boot in real-clock mode.
        line += ' clock=%s' % clock
    user = user.strip()
    return line + ' ' + user if user else line


def fw_cfg_arg(cmdline):
    return 'name=opt/locklab/cmdline,string=' + qemu_opt_escape(cmdline)


def kvm_status(sysfs='/sys', dev_kvm=None):
    """(fast, openable, reason): whether KVM is hardware-backed and usable here."""
    dev_kvm = dev_kvm or os.environ.get('LOCKLAB_DEV_KVM') or '/dev/kvm'   # tests: a stand-in
    try:
        os.close(os.open(dev_kvm, os.O_RDWR | os.O_CLOEXEC))
    except OSError as err:
        return False, False, '%s cannot be opened (%s)' % (dev_kvm, err.strerror)

    def loaded(module):
        return os.path.isdir(os.path.join(sysfs, 'module', module))
    # kvm_pvm runs guests under a software hypervisor nested in another VM: it "works" but is
    # hundreds of times slower than TCG, so it must never be chosen automatically.
    if loaded('kvm_pvm'):
        return False, True, 'kvm_pvm is a nested software hypervisor'
    for module in ('kvm_intel', 'kvm_amd'):
        if loaded(module):
            return True, True, 'hardware-backed (%s)' % module
    return False, True, 'neither kvm_intel nor kvm_amd is loaded'


def choose_accel(requested, sysfs='/sys', dev_kvm=None):
    """(accel, reason) for --accel auto|kvm|tcg."""
    if requested == 'tcg':
        return 'tcg', 'requested'
    fast, openable, reason = kvm_status(sysfs, dev_kvm)
    if requested == 'kvm':
        if not openable:
            raise SetupError('--accel kvm: ' + reason)
        return 'kvm', 'requested' + ('' if fast else ' (warning: %s)' % reason)
    return ('kvm' if fast else 'tcg'), reason


# QEMU's words when KVM refuses the vCPU it was asked to build: an MSR the host will not set
# (kvm_pvm and IA32_ARCH_CAPABILITIES, 0x10a, say), CPUID it will not take.  Warnings about
# features a named model wants and the host lacks are not refusals: QEMU drops those and runs.
CPU_REFUSED = re.compile(r'failed to (?:set|get) MSR|kvm_(?:buf_set|put|get)_msrs|'
                         r'KVM_SET_CPUID|kvm_init_vcpu|kvm_arch_init_vcpu', re.IGNORECASE)
CPU_FEATURE_DROPPED = re.compile(r"warning: host doesn't support requested feature")
# The retry's models: a named model sets only the features it lists, where `max` under KVM
# asks for everything KVM reports, the same set `host` passes and the host just refused.  Each
# vendor's oldest model that has x2APIC and the TSC deadline timer; plus what the kernel reads
# under KVM (kvmclock, steal time, PV unhalt: include/kvm.h) and the invariant-TSC bit.
CPU_FALLBACK_MODELS = {'GenuineIntel': 'Skylake-Client', 'AuthenticAMD': 'EPYC',
                       'HygonGenuine': 'Dhyana'}
CPU_FALLBACK_FEATURES = '+x2apic,+kvmclock,+kvm-steal-time,+kvm-pv-unhalt,+invtsc'


def host_cpu_vendor(cpuinfo='/proc/cpuinfo'):
    try:
        with open(cpuinfo) as info:
            for line in info:
                if line.startswith('vendor_id'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_fallback(accel, explicit_cpu, guest_output, qemu_errors, vendor):
    """The -cpu to retry with when KVM refused `-cpu host` before the guest said anything,
    else None.  An explicit --cpu is the user's choice and is never replaced."""
    if accel != 'kvm' or explicit_cpu or guest_output:
        return None
    if not any(CPU_REFUSED.search(line) for line in qemu_errors
               if not CPU_FEATURE_DROPPED.search(line)):
        return None
    model = CPU_FALLBACK_MODELS.get(vendor, 'qemu64')
    return model + ',' + CPU_FALLBACK_FEATURES


# KVM on a nested software hypervisor (kvm_pvm): every exit is emulated, slower than TCG.
SOFTWARE_KVM_FACTOR = 10.0


def timeout_factor(accel, smp, host_cpus, fast_kvm=True):
    """How much slower than real hardware a test may run here: TCG emulation, a software
    KVM, and vCPUs sharing host CPUs when they outnumber them."""
    base = 4.0 if accel != 'kvm' else 1.0 if fast_kvm else SOFTWARE_KVM_FACTOR
    return base * max(1.0, smp / max(host_cpus, 1))


def test_allowance(timeout_ms, factor):
    """Seconds a test announced with timeout_ms may take before the runner gives up."""
    return timeout_ms / 1000.0 * factor + TEST_GRACE_S


def memory_mb(requested, smp):
    """Guest RAM: per-CPU stacks and data grow with the vCPU count."""
    floor = 32 * smp
    return max(requested if requested else 512, floor)


def find_ovmf(candidates=None, environ=None):
    """(code, vars) paths of UEFI firmware; vars is None for a combined image."""
    environ = os.environ if environ is None else environ
    if environ.get('LOCKLAB_OVMF_CODE'):
        code, variables = environ['LOCKLAB_OVMF_CODE'], environ.get('LOCKLAB_OVMF_VARS')
        if not os.path.isfile(code) or (variables and not os.path.isfile(variables)):
            raise SetupError('LOCKLAB_OVMF_CODE/LOCKLAB_OVMF_VARS name missing files')
        return code, variables or None
    for code, variables in (OVMF_CANDIDATES if candidates is None else candidates):
        if os.path.isfile(code) and (variables is None or os.path.isfile(variables)):
            return code, variables
    raise SetupError('no UEFI firmware (OVMF) found; install the "ovmf" package or set '
                     'LOCKLAB_OVMF_CODE and LOCKLAB_OVMF_VARS')


# -- set-up --------------------------------------------------------------------------------------

def find_qemu(environ=None):
    environ = os.environ if environ is None else environ
    override = environ.get('LOCKLAB_QEMU')
    command = shlex.split(override) if override else ['qemu-system-x86_64']
    path = shutil.which(command[0])
    if not path:
        raise SetupError('%s not found (install qemu-system-x86: make deps)' % command[0])
    return [path] + command[1:]


def repo_path(path, default):
    """User paths are relative to the working directory, defaults to the repository."""
    return os.path.abspath(path) if path else os.path.join(REPO, default)


def boot_media_args(opts):
    if opts.pxe:
        root = os.path.abspath(opts.pxe)
        bootfile = PXE_BOOTFILES[opts.firmware]
        if not os.path.isfile(os.path.join(root, bootfile)):
            raise SetupError('PXE tree %s has no %s (make pxe)' % (root, bootfile))
        netdev = 'user,id=n0,tftp=%s,bootfile=%s' % (qemu_opt_escape(root),
                                                     qemu_opt_escape(bootfile))
        return ['-netdev', netdev, '-device', 'virtio-net-pci,netdev=n0,bootindex=0']
    iso = repo_path(opts.iso, 'build/locklab.iso')
    if not os.path.isfile(iso):
        raise SetupError('no ISO at %s (run make)' % iso)
    # No NIC: its option ROM only slows the firmware down.
    return ['-net', 'none', '-cdrom', iso, '-boot', 'd']


def firmware_args(firmware, tmpdir):
    if firmware == 'bios':
        return []
    code, variables = find_ovmf()
    if variables is None:
        return ['-bios', code]
    # The variable store is written by the firmware: give each run its own copy.
    private = os.path.join(tmpdir, 'OVMF_VARS.fd')
    shutil.copyfile(variables, private)
    return ['-drive', 'if=pflash,format=raw,unit=0,readonly=on,file=' + qemu_opt_escape(code),
            '-drive', 'if=pflash,format=raw,unit=1,file=' + qemu_opt_escape(private)]


def topology_args(apic_ids, cpu):
    """-smp and -device options that give the vCPUs exactly these APIC IDs.

    QEMU numbers APIC IDs from the topology: with one thread per core and a
    power-of-two core count per socket, a CPU's ID is socket * cores + core.
    The boot CPU (ID 0) comes from -smp cpus=1; the others are cold-plugged
    as CPU devices at their socket and core.  Past ID 254 QEMU wants an IOMMU
    with x2APIC interrupt remapping (EIM) before it will start at all.
    """
    top = max(apic_ids)
    if top < 255:
        sockets, cores = 1, top + 1
    else:
        sockets, cores = top // 256 + 1, 256
    args = ['-smp', 'cpus=1,maxcpus=%d,sockets=%d,cores=%d,threads=1'
            % (sockets * cores, sockets, cores)]
    if sockets * cores > 255:
        args += ['-device', 'intel-iommu,intremap=on,eim=on']
    model = cpu.split(',')[0] + '-x86_64-cpu'
    for apic_id in apic_ids[1:]:
        args += ['-device', '%s,socket-id=%d,core-id=%d,thread-id=0'
                 % (model, apic_id // cores, apic_id % cores)]
    return args


# Where the kernel's console is: QEMU's serial options for each --console choice.  The
# runner always reads QEMU's stdout, so "ours" is the stdio chardev on that port.


def console_args(console):
    """QEMU options that put our chardev (stdio) on the chosen port.

    com1: the first ISA serial port, as before.  com2: the first -serial is COM1 (0x3f8),
    connected to nothing, the second is COM2 (0x2f8, IRQ 3) and ours: a kernel that still
    writes COM1 is heard by nobody.  pci: -serial none creates no ISA serial port at all (I/O
    port 0x3f8 reads as all ones), and a pci-serial device (1b36:0002, one 16550 behind an I/O
    BAR) carries ours.
    """
    if console == 'com1':
        return ['-serial', 'stdio']
    if console == 'com2':
        return ['-serial', 'null', '-serial', 'stdio']
    if console == 'pci':
        return ['-serial', 'none', '-chardev', 'stdio,id=console0',
                '-device', 'pci-serial,chardev=console0']
    raise SetupError('unknown --console %r' % console)


def acpitable_args(paths):
    args = []
    for path in paths:
        if not os.path.isfile(path):
            raise SetupError('--acpitable %s: no such file' % path)
        args += ['-acpitable', 'file=' + qemu_opt_escape(os.path.abspath(path))]
    return args


def accel_args(accel, clock):
    """-accel (and -icount) for the accelerator and the clock."""
    if accel == 'kvm':
        return ['-accel', 'kvm']
    if clock == 'virtual':
        # One host thread runs every vCPU in turn (-icount needs it); sleep=off lets time
        # jump over idle periods instead of waiting for the host; align=off never slows
        # the guest down to the host's clock.
        return ['-accel', 'tcg,thread=single',
                '-icount', 'shift=%d,sleep=off,align=off' % ICOUNT_SHIFT]
    return ['-accel', 'tcg,thread=multi']


def build_command(qemu, opts, accel, cmdline, tmpdir):
    cpu = opts.cpu or ('host' if accel == 'kvm' else 'max')
    machine = opts.machine
    if opts.apic_ids:
        cpus = topology_args(opts.apic_ids, cpu)
        if accel == 'kvm' and max(opts.apic_ids) > 254:
            machine += ',kernel-irqchip=split'   # KVM remaps interrupts only with QEMU's IOAPIC
    else:
        cpus = ['-smp', str(opts.smp)]
    return (list(qemu) + [
        '-machine', machine,
    ] + accel_args(accel, getattr(opts, 'clock', 'real')) + cpus + [
        '-m', str(memory_mb(opts.memory, opts.smp)),
        '-cpu', cpu,
        '-display', 'none',
        '-no-reboot',
    ] + console_args(opts.console) + [
        '-monitor', 'none',
        '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04',
        '-fw_cfg', fw_cfg_arg(cmdline),
    ] + acpitable_args(opts.acpitable) + firmware_args(opts.firmware, tmpdir)
        + boot_media_args(opts))
