"""Tests of scripts/deps.sh's decisions against fixture apt roots (tests/host/data/apt/), with
stubs for apt-get, dpkg-query, qemu-system-x86_64 and id: no network, no root, nothing on the
real system touched.  Each case runs on a copy of a fixture and compares the apt files after the
run with what apt must be left with."""

import os
import shutil
import subprocess
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, 'data', 'apt')
DEPS = os.path.join(os.path.dirname(os.path.dirname(HERE)), 'scripts', 'deps.sh')
OURS = 'etc/apt/sources.list.d/locklab-bookworm-backports'

# What the stubs do, driven by files in $FAKE_STATE: 'installed' (one package a line),
# 'qemu' (the installed QEMU's version), 'candidate' (the version a plain install of
# qemu-system-x86 brings); every apt-get call is appended to 'calls'.
STUBS = {
    'apt-get': r'''#!/bin/sh
echo "apt-get $*" >> "$FAKE_STATE/calls"
for a in "$@"; do
	case $a in
	update)
		# As apt does: an unreachable mirror is a warning, exit 0.
		if [ -n "${FAKE_APT_FAIL_UPDATE:-}" ]; then
			echo "W: Failed to fetch $FAKE_APT_FAIL_UPDATE  Could not connect" >&2
			echo "W: Some index files failed to download. They have been ignored, or old ones used instead." >&2
			exit "${FAKE_APT_UPDATE_RC:-0}"
		fi
		touch "$FAKE_STATE/updated"
		exit 0 ;;
	install) break ;;
	esac
done
backports=0
case " $* " in *" -t bookworm-backports "*) backports=1 ;; esac
if [ $backports = 1 ] && [ -n "${FAKE_APT_FAIL_BACKPORTS:-}" ]; then
	echo "E: Unable to correct problems, you have held broken packages." >&2
	exit 100
fi
if [ $backports = 1 ] && ! grep -rqs 'bookworm-backports' "$LOCKLAB_APT_ROOT/etc/apt"; then
	echo "E: The value 'bookworm-backports' is invalid for APT::Default-Release" >&2
	exit 100
fi
for a in "$@"; do
	case $a in
	-*|*=*|install|bookworm-backports) ;;
	*)
		echo "$a" >> "$FAKE_STATE/installed"
		if [ "$a" = qemu-system-x86 ]; then
			if [ $backports = 1 ]; then echo 10.0 > "$FAKE_STATE/qemu"
			else cp "$FAKE_STATE/candidate" "$FAKE_STATE/qemu"; fi
		fi ;;
	esac
done
''',
    'apt-cache': r'''#!/bin/sh
[ "$1" = policy ] || exit 100
if [ $# = 1 ]; then
	# Release lines; bookworm-backports only when it is configured and could be fetched.
	echo "Package files:"
	if [ -f "$FAKE_STATE/updated" ] && [ -z "${FAKE_APT_FAIL_UPDATE:-}" ] &&
		grep -rqs 'bookworm-backports' "$LOCKLAB_APT_ROOT/etc/apt"; then
		echo " 100 http://deb.debian.org/debian bookworm-backports/main amd64 Packages"
		echo "     release o=Debian Backports,a=oldstable-backports,n=bookworm-backports,l=Debian Backports,c=main,b=amd64"
	fi
	exit 0
fi
echo "$2:"
echo "  Installed: (none)"
if grep -qx "$2" "$FAKE_STATE/unavailable" 2>/dev/null; then
	echo "  Candidate: (none)"
else
	echo "  Candidate: 1.0-1"
fi
''',
    'dpkg-query': r'''#!/bin/sh
for p; do :; done
grep -qx "$p" "$FAKE_STATE/installed" 2>/dev/null || { echo "dpkg-query: no packages found matching $p" >&2; exit 1; }
echo "install ok installed"
''',
    'qemu-system-x86_64': r'''#!/bin/sh
[ -f "$FAKE_STATE/qemu" ] || exit 127
echo "QEMU emulator version $(cat "$FAKE_STATE/qemu") (Debian 1:$(cat "$FAKE_STATE/qemu")+dfsg-1)"
''',
    'id': r'''#!/bin/sh
echo "${FAKE_UID:-0}"
''',
}


def deps_packages():
    """The package list, read from the script itself."""
    with open(DEPS) as f:
        text = f.read()
    names = []
    for var in ('PACKAGES="', 'OPTIONAL="'):
        start = text.index(var) + len(var)
        names += text[start:text.index('"', start)].replace('\\\n', ' ').split()
    return names


def snapshot(root):
    """Every file under root/etc/apt, path -> content."""
    files = {}
    for dirpath, _, names in os.walk(os.path.join(root, 'etc', 'apt')):
        for name in names:
            path = os.path.join(dirpath, name)
            with open(path) as f:
                files[os.path.relpath(path, root)] = f.read()
    return files


class DepsCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='deps-test-')
        self.addCleanup(shutil.rmtree, self.tmp)
        self.bin = os.path.join(self.tmp, 'bin')
        self.state = os.path.join(self.tmp, 'state')
        os.makedirs(self.bin)
        os.makedirs(self.state)
        for name, text in STUBS.items():
            path = os.path.join(self.bin, name)
            with open(path, 'w') as f:
                f.write(text)
            os.chmod(path, 0o755)

    def fixture(self, name, installed='all', qemu=None, candidate='7.2', unavailable=()):
        """Copy fixture NAME; INSTALLED is 'all', 'none' or a list; QEMU the installed version."""
        self.root = os.path.join(self.tmp, 'root')
        shutil.copytree(os.path.join(FIXTURES, name), self.root)
        os.makedirs(os.path.join(self.root, 'etc', 'apt', 'sources.list.d'), exist_ok=True)
        pkgs = deps_packages() if installed == 'all' else [] if installed == 'none' else installed
        if 'qemu-system-x86' in pkgs and qemu is None:
            qemu = candidate
        with open(os.path.join(self.state, 'installed'), 'w') as f:
            f.write(''.join(p + '\n' for p in pkgs))
        if qemu:
            with open(os.path.join(self.state, 'qemu'), 'w') as f:
                f.write(qemu + '\n')
        with open(os.path.join(self.state, 'candidate'), 'w') as f:
            f.write(candidate + '\n')
        with open(os.path.join(self.state, 'unavailable'), 'w') as f:
            f.write(''.join(p + '\n' for p in unavailable))
        self.before = snapshot(self.root)

    def run_deps(self, **env):
        full = {'PATH': self.bin + ':' + os.environ.get('PATH', '/usr/bin:/bin'),
                'LOCKLAB_APT_ROOT': self.root, 'FAKE_STATE': self.state}
        full.update(env)
        calls = os.path.join(self.state, 'calls')
        if os.path.exists(calls):
            os.unlink(calls)
        p = subprocess.run(['sh', DEPS], env=full, capture_output=True, text=True, timeout=60)
        self.out = p.stdout + p.stderr
        self.calls = []
        if os.path.exists(calls):
            with open(calls) as f:
                self.calls = f.read().splitlines()
        return p.returncode

    def added(self):
        """Files the run added or changed, path -> content."""
        after = snapshot(self.root)
        return {k: v for k, v in after.items() if self.before.get(k) != v}

    def assert_ok(self, rc):
        self.assertEqual(rc, 0, self.out)

    def assert_backports_install(self):
        self.assertIn('apt-get install -y -qq --no-install-recommends -t bookworm-backports '
                      'qemu-system-x86', [c.replace(' -o DPkg::Lock::Timeout=300', '')
                                          for c in self.calls])

    def test_script_is_executable(self):
        # `make deps` runs it directly: without the mode bit every make target fails.
        self.assertTrue(os.access(DEPS, os.X_OK), DEPS + ' is not executable')

    # --- Debian 12: backports written in the system's own format -------------------------

    def test_deb822_only(self):
        self.fixture('bookworm-deb822', qemu='7.2')
        self.assert_ok(self.run_deps())
        self.assertEqual(self.added(), {OURS + '.sources': (
            'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\n'
            'Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n')})
        self.assert_backports_install()
        self.assertIn('QEMU 10.0', self.out)

    def test_oneline_only(self):
        self.fixture('bookworm-oneline', qemu='7.2')
        self.assert_ok(self.run_deps())
        self.assertEqual(self.added(), {
            OURS + '.list': 'deb http://deb.debian.org/debian bookworm-backports main\n'})
        self.assert_backports_install()

    def test_both_formats_take_the_first_debian_entry(self):
        self.fixture('bookworm-both', qemu='7.2')
        self.assert_ok(self.run_deps())
        self.assertEqual(self.added(), {
            OURS + '.list': 'deb http://ftp.de.debian.org/debian bookworm-backports main\n'})

    def test_options_are_kept(self):
        self.fixture('bookworm-signed-by', qemu='7.2')
        self.assert_ok(self.run_deps())
        self.assertEqual(self.added(), {OURS + '.list': (
            'deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] '
            'http://deb.debian.org/debian bookworm-backports main\n')})

    def test_lab_mirror_not_cdrom_nor_disabled(self):
        self.fixture('bookworm-mirror', qemu='7.2')
        self.assert_ok(self.run_deps())
        self.assertEqual(self.added(), {OURS + '.sources': (
            'Types: deb\nURIs: http://mirror.lab.example/debian\nSuites: bookworm-backports\n'
            'Components: main\nSigned-By: /etc/apt/keyrings/lab-debian.gpg\n')})

    def test_fresh_machine_installs_everything_qemu_from_backports(self):
        self.fixture('bookworm-deb822', installed='none')
        self.assert_ok(self.run_deps())
        self.assertIn(OURS + '.sources', self.added())
        plain = [c for c in self.calls if ' install ' in c and '-t ' not in c]
        self.assertEqual(len(plain), 1, self.calls)
        want = set(deps_packages()) - {'qemu-system-x86'}
        self.assertEqual(set(plain[0].split()) & set(deps_packages()), want)
        self.assert_backports_install()
        for p in ('gcc', 'libc6-dev', 'make', 'clang-format', 'git', 'libck-dev'):
            self.assertIn(p, deps_packages())

    def test_already_configured_backports_is_not_written_again(self):
        self.fixture('bookworm-configured', qemu='7.2')
        self.assert_ok(self.run_deps())
        self.assertEqual(self.added(), {})
        self.assert_backports_install()
        self.assertIn('already in', self.out)

    def test_idempotent(self):
        self.fixture('bookworm-deb822', installed='none')
        self.assert_ok(self.run_deps())
        first = snapshot(self.root)
        self.assert_ok(self.run_deps())
        self.assertEqual(snapshot(self.root), first)
        self.assertEqual(self.calls, [])
        self.assertEqual(self.out, '')

    def test_stale_file_of_an_older_deps_is_replaced(self):
        self.fixture('bookworm-stale', qemu='7.2')
        self.assert_ok(self.run_deps())
        after = snapshot(self.root)
        self.assertNotIn(OURS + '.list', after)
        self.assertIn('URIs: http://deb.debian.org/debian', after[OURS + '.sources'])
        self.assertIn('written by an older make deps', self.out)

    # --- Other releases: no backports ------------------------------------------------------

    def test_trixie_needs_no_backports(self):
        self.fixture('trixie', installed='none', candidate='10.0')
        self.assert_ok(self.run_deps())
        self.assertEqual(self.added(), {})
        self.assertFalse([c for c in self.calls if '-t ' in c], self.calls)
        self.assertIn('QEMU 10.0', self.out)

    def test_noble_needs_no_backports(self):
        self.fixture('noble', installed='none', candidate='8.2')
        self.assert_ok(self.run_deps())
        self.assertEqual(self.added(), {})
        self.assertFalse([c for c in self.calls if '-t ' in c], self.calls)
        self.assertIn('QEMU 8.2', self.out)

    def test_old_qemu_elsewhere_fails_clearly(self):
        self.fixture('noble', qemu='6.2')
        self.assertEqual(self.run_deps(), 1)
        self.assertIn('older than 8.1', self.out)
        self.assertEqual(self.calls, [])

    def test_keep_qemu(self):
        self.fixture('bookworm-deb822', qemu='7.2')
        self.assert_ok(self.run_deps(LOCKLAB_KEEP_QEMU='1'))
        self.assertEqual(self.added(), {})
        self.assertEqual(self.calls, [])
        self.assertIn('LOCKLAB_KEEP_QEMU=1', self.out)

    def test_nothing_missing_is_silent(self):
        self.fixture('bookworm-deb822', qemu='10.0')
        self.assert_ok(self.run_deps())
        self.assertEqual((self.out, self.calls, self.added()), ('', [], {}))

    # --- Failures leave apt as it was ------------------------------------------------------

    def test_broken_sources_fail_and_change_nothing(self):
        self.fixture('bookworm-broken', installed='none')
        self.assertEqual(self.run_deps(), 1)
        self.assertIn('vendor.sources:1: entry without Types, URIs or Suites', self.out)
        self.assertIn('nothing was changed', self.out)
        self.assertEqual(snapshot(self.root), self.before)
        self.assertEqual(self.calls, [])

    def test_unreachable_mirror_removes_the_written_file(self):
        # apt-get update exits 0 with only a warning: deps must notice all the same.
        self.fixture('bookworm-deb822', installed='none')
        rc = self.run_deps(FAKE_APT_FAIL_UPDATE='http://deb.debian.org/debian bookworm-backports')
        self.assertEqual(rc, 1)
        self.assertIn('could not fetch bookworm-backports from http://deb.debian.org/debian', self.out)
        self.assertIn('removed', self.out)
        self.assertEqual(snapshot(self.root), self.before)
        self.assertFalse([c for c in self.calls if ' install ' in c], self.calls)

    def test_update_error_removes_the_written_file(self):
        self.fixture('bookworm-deb822', qemu='7.2')
        rc = self.run_deps(FAKE_APT_FAIL_UPDATE='http://deb.debian.org/debian bookworm-backports',
                           FAKE_APT_UPDATE_RC='100')
        self.assertEqual(rc, 1)
        self.assertIn('apt-get update failed', self.out)
        self.assertEqual(snapshot(self.root), self.before)

    def test_release_without_lava_installs_the_rest(self):
        self.fixture('trixie', installed='none', candidate='10.0', unavailable=['lava-dispatcher'])
        self.assert_ok(self.run_deps())
        self.assertIn('lava-dispatcher is not in this release', self.out)
        install = [c for c in self.calls if ' install ' in c]
        self.assertEqual(len(install), 1, self.calls)
        self.assertNotIn('lava-dispatcher', install[0])
        self.assertIn('qemu-system-x86', install[0])
        # and the next run, as a user, has nothing to do
        self.assertEqual(self.run_deps(FAKE_UID='1000'), 0, self.out)
        self.assertEqual((self.out, self.calls), ('', []))

    def test_failed_backports_install_removes_the_written_file(self):
        self.fixture('bookworm-deb822', qemu='7.2')
        self.assertEqual(self.run_deps(FAKE_APT_FAIL_BACKPORTS='1'), 1)
        self.assertIn('bookworm-backports qemu-system-x86 failed', self.out)
        self.assertEqual(snapshot(self.root), self.before)

    def test_not_root_prints_the_commands_and_does_nothing(self):
        self.fixture('bookworm-deb822', installed=['nasm'])
        self.assertEqual(self.run_deps(FAKE_UID='1000'), 1)
        self.assertIn('run as root:  make deps', self.out)
        self.assertIn('apt-get install -y --no-install-recommends -t bookworm-backports '
                      'qemu-system-x86', self.out)
        self.assertIn('gcc', self.out)
        self.assertEqual(snapshot(self.root), self.before)
        self.assertEqual(self.calls, [])


if __name__ == '__main__':
    unittest.main()
