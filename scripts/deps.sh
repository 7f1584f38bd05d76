#!/bin/sh
# Install what locklab needs from Debian/Ubuntu packages, when missing.
# Quiet and fast when everything is there; as root it installs with
# apt-get, otherwise it prints the exact command and fails.
set -e

PACKAGES="nasm grub-pc-bin grub-efi-amd64-bin grub-common xorriso mtools qemu-system-x86 ovmf \
ipxe-qemu python3 gnuplot-nox lava-dispatcher rt-tests"

missing=""
for p in $PACKAGES; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
	echo "deps: missing:$missing (this script knows only apt-get; install them by hand)" >&2
	exit 1
fi
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing:$missing" >&2
	echo "deps: run as root:  apt-get update && apt-get install -y --no-install-recommends$missing" >&2
	exit 1
fi
echo "deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
