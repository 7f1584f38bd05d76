#!/bin/sh
# Install what locklab needs from Debian/Ubuntu packages, when missing.
# Quiet and fast when everything is there; as root it installs with
# apt-get, otherwise it prints the exact command and fails.
set -e

PACKAGES="nasm grub-pc-bin grub-efi-amd64-bin grub-common xorriso mtools qemu-system-x86 ovmf \
ipxe-qemu python3 gnuplot-nox lava-dispatcher rt-tests"

# QEMU's TCG emulates x2APIC from 8.1 on; Debian 12 ships 7.2, and its
# backports carry a newer one.  LOCKLAB_KEEP_QEMU=1 keeps the system's.
QEMU_MIN=8.1

need_root() {
	if [ "$(id -u)" != 0 ]; then
		echo "deps: $1" >&2
		echo "deps: run as root:  $2" >&2
		exit 1
	fi
}

qemu_version() {
	qemu-system-x86_64 --version 2>/dev/null | sed -n 's/^QEMU emulator version \([0-9]*\.[0-9]*\).*/\1/p'
}

# The Debian mirror apt already uses for bookworm (a lab may have its own),
# from one-line (.list) or deb822 (.sources) entries; deb.debian.org else.
debian_mirror() {
	{
		sed -n 's/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\) bookworm .*/\2/p' \
			/etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true
		awk 'function flush() { if (uri != "" && hit) print uri; uri = ""; hit = 0 }
			/^[ \t]*$/ { flush(); next }
			/^URIs:/ { uri = $2 }
			/^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") hit = 1 }
			END { flush() }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true
		echo http://deb.debian.org/debian
	} | head -n1
}

# Is version $1 at least $2?  (major.minor)
version_ge() {
	[ "$(printf '%s\n%s\n' "$2" "$1" | sort -t. -k1,1n -k2,2n | head -n1)" = "$2" ]
}

missing=""
for p in $PACKAGES; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done

if [ -n "$missing" ]; then
	if ! command -v apt-get >/dev/null 2>&1; then
		echo "deps: missing:$missing (this script knows only apt-get; install them by hand)" >&2
		exit 1
	fi
	need_root "missing:$missing" "apt-get update && apt-get install -y --no-install-recommends$missing"
	echo "deps: installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

have=$(qemu_version)
if [ -z "$have" ]; then
	echo "deps: qemu-system-x86_64 --version says nothing we can read" >&2
	exit 1
fi
version_ge "$have" "$QEMU_MIN" && exit 0
if [ "${LOCKLAB_KEEP_QEMU:-0}" = 1 ]; then
	echo "deps: keeping QEMU $have (LOCKLAB_KEEP_QEMU=1); the x2APIC legs (smp-x2apic, smp-apic-ids*) need $QEMU_MIN and will fail" >&2
	exit 0
fi
codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
if [ "$codename" != bookworm ]; then
	echo "deps: QEMU $have is older than $QEMU_MIN (no x2APIC under TCG); install a newer qemu-system-x86," >&2
	echo "deps: or set LOCKLAB_KEEP_QEMU=1 to go on without the x2APIC legs" >&2
	exit 1
fi
list=/etc/apt/sources.list.d/locklab-bookworm-backports.list
line="deb $(debian_mirror) bookworm-backports main"
need_root "QEMU $have is older than $QEMU_MIN (no x2APIC under TCG)" \
	"echo '$line' > $list && apt-get update && apt-get install -y --no-install-recommends -t bookworm-backports qemu-system-x86"
echo "deps: QEMU $have has no x2APIC under TCG; installing qemu-system-x86 from bookworm-backports"
# Already configured, one-line (.list) or deb822 (.sources) style?
grep -qsr '^[^#]*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/ ||
	echo "$line" >"$list"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends -t bookworm-backports qemu-system-x86 >/dev/null
have=$(qemu_version)
version_ge "$have" "$QEMU_MIN" || { echo "deps: still QEMU $have after the backports install" >&2; exit 1; }
echo "deps: QEMU $have"
