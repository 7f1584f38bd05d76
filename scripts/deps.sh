#!/bin/sh
# Install what locklab needs from Debian/Ubuntu packages, when missing.
#
# Quiet and fast when everything is there.  As root it installs with
# apt-get; otherwise it prints what it would do and fails, having done
# nothing.  On Debian 12, whose QEMU (7.2) has no x2APIC under TCG, it
# adds bookworm-backports from the mirror and keyring apt already uses.
#
# It must never leave apt broken: every apt sources file is checked before
# anything is written (a malformed one stops it, untouched, with the file
# and line named), the backports entry it writes is checked the same way,
# and if a later step fails the file it wrote is removed again.
#
# For tests: LOCKLAB_APT_ROOT moves /etc/apt and /etc/os-release under
# another directory; apt-get, dpkg-query, qemu-system-x86_64 and id are
# taken from PATH, so stubs can stand in for them.
set -eu

PACKAGES="gcc libc6-dev make binutils nasm clang-format git \
grub-pc-bin grub-efi-amd64-bin grub-common xorriso mtools \
qemu-system-x86 ovmf ipxe-qemu \
python3 python3-yaml gnuplot-nox rt-tests libck-dev tmux"
# Not in every release (Debian 13 has no LAVA): installed where apt has it;
# without it the LAVA leg and make test-lava cannot run.
OPTIONAL="lava-dispatcher"

# QEMU's TCG emulates x2APIC from 8.1 on.  LOCKLAB_KEEP_QEMU=1 keeps an
# older system QEMU (the x2APIC legs then fail).
QEMU_MIN=8.1

ROOT=${LOCKLAB_APT_ROOT:-}
APT=$ROOT/etc/apt
OURS=$APT/sources.list.d/locklab-bookworm-backports

say() { echo "deps: $*"; }
die() {
	echo "deps: $*" >&2
	exit 1
}

qemu_version() {
	qemu-system-x86_64 --version 2>/dev/null |
		sed -n 's/^QEMU emulator version \([0-9]*\.[0-9]*\).*/\1/p'
}

# Is version $1 at least $2?  (major.minor)
version_ge() {
	[ "$(printf '%s\n%s\n' "$2" "$1" | sort -t. -k1,1n -k2,2n | head -n1)" = "$2" ]
}

# Another apt on the machine holds the lock for a while: wait for it.
apt_get() { apt-get -o DPkg::Lock::Timeout=300 "$@"; }

# Has apt a version of $1 to install?  (From the lists it has now.)
has_candidate() {
	apt-cache policy "$1" 2>/dev/null | grep -q '^ *Candidate: [^(]'
}

installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"
}

# The apt sources files in the order apt reads them.
source_files() {
	[ -f "$APT/sources.list" ] && echo "$APT/sources.list"
	for f in "$APT"/sources.list.d/*.list "$APT"/sources.list.d/*.sources; do
		[ -f "$f" ] && echo "$f"
	done
	return 0
}

# Read apt sources files, one-line (.list) or deb822 (.sources), as apt
# would.  Prints one tab-separated record per enabled entry:
#   S  file  format  types  uri  suites  options  signed-by
# (lists space-separated; a multi-line Signed-By joined with \036), and
#   E  file:line: what is wrong
# for each entry apt would refuse.  POSIX awk: mawk is what Debian has.
parse_sources() {
	[ $# -gt 0 ] || return 0
	awk '
	function err(msg) { printf "E\t%s:%d: %s\n", FILENAME, FNR, msg }
	function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t]+$/, "", s); return s }
	function has_scheme(u) { return u ~ /^[a-z][a-z0-9+.-]*:[^ \t]/ }
	function emit(fmt, types, uri, suites, opts, sb) {
		printf "S\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", FILENAME, fmt, types, uri, suites, opts, sb
	}
	function oneline(line,    type, rest, opts, end, n, t, i, uri, sb) {
		sub(/#.*/, "", line)
		line = trim(line)
		if (line == "") return
		type = line; sub(/[ \t].*/, "", type)
		if (type != "deb" && type != "deb-src") { err("\"" type "\" is not deb or deb-src"); return }
		rest = trim(substr(line, length(type) + 1))
		opts = ""
		if (substr(rest, 1, 1) == "[") {
			end = index(rest, "]")
			if (end == 0) { err("option list \"[\" is not closed"); return }
			opts = trim(substr(rest, 2, end - 2))
			rest = trim(substr(rest, end + 1))
		}
		# A URI may hold blanks inside brackets: cdrom:[Debian GNU/Linux 12]/
		uri = ""
		if (match(rest, /^[a-z]+:\[[^]]*\][^ \t]*/)) {
			uri = substr(rest, 1, RLENGTH)
			rest = "x " trim(substr(rest, RLENGTH + 1))
		}
		n = split(rest, t, /[ \t]+/)
		if (uri != "") t[1] = uri
		if (n < 2) { err("needs a URI and a suite"); return }
		if (!has_scheme(t[1])) { err("\"" t[1] "\" is not a URI"); return }
		if (t[2] !~ /\/$/ && n < 3) { err("suite \"" t[2] "\" needs components"); return }
		sb = ""
		if (match(opts, /signed-by=[^ \t]+/)) sb = substr(opts, RSTART + 10, RLENGTH - 10)
		emit("list", type, t[1], t[2], opts, sb)
	}
	function flush(    n, u, i, s, ns, k, ok) {
		if (!nf) return
		if (tolower(f["enabled"]) != "no") {
			if (f["types"] == "" || f["uris"] == "" || f["suites"] == "") {
				printf "E\t%s:%d: entry without Types, URIs or Suites\n", FILENAME, start
			} else {
				ns = split(f["suites"], s, /[ \t]+/)
				ok = 1
				for (k = 1; k <= ns; k++) if (s[k] !~ /\/$/ && f["components"] == "") ok = 0
				if (!ok) printf "E\t%s:%d: entry without Components\n", FILENAME, start
				n = split(f["uris"], u, /[ \t]+/)
				for (i = 1; i <= n; i++) {
					if (!has_scheme(u[i])) {
						printf "E\t%s:%d: \"%s\" is not a URI\n", FILENAME, start, u[i]
						ok = 0
					}
				}
				if (ok) for (i = 1; i <= n; i++)
					emit("sources", f["types"], u[i], f["suites"], "", f["signed-by"])
			}
		}
		split("", f); nf = 0; last = ""
	}
	FNR == 1 { flush(); deb822 = FILENAME ~ /\.sources$/ }
	!deb822 { oneline($0); next }
	/^#/ { next }
	/^[ \t]*$/ { flush(); next }
	/^[ \t]/ {
		if (last == "") { err("continuation line outside a field"); next }
		f[last] = f[last] (last == "signed-by" ? "\036" : " ") trim($0)
		next
	}
	/^[A-Za-z][A-Za-z0-9-]*:/ {
		if (!nf) start = FNR
		last = tolower(substr($0, 1, index($0, ":") - 1))
		f[last] = trim(substr($0, index($0, ":") + 1))
		nf++
		next
	}
	{ err("not a \"Field: value\" line") }
	END { flush() }
	' "$@"
}

# --- What this system has and needs ---------------------------------------

[ -f "$ROOT/etc/os-release" ] && OS_RELEASE=$ROOT/etc/os-release || OS_RELEASE=$ROOT/usr/lib/os-release
os_id=$(. "$OS_RELEASE" 2>/dev/null && echo "${ID:-}") || os_id=
codename=$(. "$OS_RELEASE" 2>/dev/null && echo "${VERSION_CODENAME:-}") || codename=

command -v dpkg-query >/dev/null 2>&1 ||
	die "this script knows only apt-get (Debian, Ubuntu); install by hand: $PACKAGES"

missing=""
for p in $PACKAGES; do
	installed "$p" || missing="$missing $p"
done
for p in $OPTIONAL; do
	installed "$p" || ! has_candidate "$p" || missing="$missing $p"
done

have=""
installed qemu-system-x86 && have=$(qemu_version)
if installed qemu-system-x86 && [ -z "$have" ]; then
	die "qemu-system-x86_64 --version says nothing we can read"
fi

# Debian 12's QEMU is too old; its backports carry a new one.  Other
# releases (Debian 13, Ubuntu 24.04) ship 8.1 or later, checked below.
backports=0
if [ "$os_id" = debian ] && [ "$codename" = bookworm ] && [ "${LOCKLAB_KEEP_QEMU:-0}" != 1 ]; then
	if [ -z "$have" ] || ! version_ge "$have" "$QEMU_MIN"; then
		backports=1
	fi
fi
if [ -n "$have" ] && ! version_ge "$have" "$QEMU_MIN" && [ $backports = 0 ]; then
	if [ "${LOCKLAB_KEEP_QEMU:-0}" = 1 ]; then
		echo "deps: keeping QEMU $have (LOCKLAB_KEEP_QEMU=1); the x2APIC legs (smp-x2apic, smp-apic-ids*) need $QEMU_MIN and will fail" >&2
	else
		echo "deps: QEMU $have is older than $QEMU_MIN (no x2APIC under TCG) and this is not Debian 12;" >&2
		die "install qemu-system-x86 $QEMU_MIN or later, or set LOCKLAB_KEEP_QEMU=1 to go on without the x2APIC legs"
	fi
fi

[ -z "$missing" ] && [ $backports = 0 ] && exit 0

# --- Plan: check every sources file, find or make the backports entry ------

# A malformed file of ours (an older deps.sh could write one) is ours to
# remove; anyone else's stops us, untouched: apt refuses them all anyway.
for f in "$OURS.list" "$OURS.sources"; do
	if [ -f "$f" ] && parse_sources "$f" | grep -q '^E'; then
		parse_sources "$f" | awk -F'\t' '$1 == "E" { print "deps: " $2 }' >&2
		if [ "$(id -u)" != 0 ]; then
			die "$f (written by an older make deps) breaks apt; as root: rm $f && make deps"
		fi
		say "removing $f: written by an older make deps, and apt cannot read it"
		rm -f "$f"
	fi
done
# shellcheck disable=SC2046 # file names from source_files have no blanks
records=$(parse_sources $(source_files))
errors=$(printf '%s\n' "$records" | awk -F'\t' '$1 == "E" { print "deps: " $2 }')
if [ -n "$errors" ]; then
	echo "$errors" >&2
	die "apt cannot read its sources (above); fix them first, nothing was changed"
fi

newfile=""
content=""
mirror=""
if [ $backports = 1 ]; then
	configured=$(printf '%s\n' "$records" | awk -F'\t' '
		$1 == "S" && (" " $4 " ") ~ / deb / && (" " $6 " ") ~ / bookworm-backports / { print $2; exit }')
	if [ -n "$configured" ]; then
		say "bookworm-backports: already in $configured"
	else
		# The entry apt has for bookworm itself: its mirror, format and keyring.
		entry=$(printf '%s\n' "$records" | awk -F'\t' '
			$1 == "S" && (" " $4 " ") ~ / deb / && (" " $6 " ") ~ / bookworm / && $5 !~ /^cdrom:/ {
				print; exit }')
		if [ -z "$entry" ]; then
			die "no apt entry for Debian bookworm to take the mirror from; add bookworm-backports to the apt sources by hand"
		fi
		fmt=$(printf '%s' "$entry" | cut -f3)
		mirror=$(printf '%s' "$entry" | cut -f5)
		opts=$(printf '%s' "$entry" | cut -f7)
		signedby=$(printf '%s' "$entry" | cut -f8 | tr '\036' '\n' | sed '2,$s/^/ /')
		if [ "$fmt" = sources ]; then
			newfile=$OURS.sources
			content="Types: deb
URIs: $mirror
Suites: bookworm-backports
Components: main${signedby:+
Signed-By: $signedby}"
		else
			newfile=$OURS.list
			content="deb ${opts:+[$opts] }$mirror bookworm-backports main"
		fi
		# Check what we write as apt would read it, before it is written.
		check=$(mktemp -d)
		printf '%s\n' "$content" >"$check/${newfile##*/}"
		verdict=$(parse_sources "$check/${newfile##*/}" | awk -F'\t' '
			$1 == "E" { print "bad: " $2; exit }
			$1 == "S" && $6 == "bookworm-backports" && $5 ~ /^[a-z][a-z0-9+.-]*:/ { n++ }
			END { if (n != 1) print "bad: not one bookworm-backports entry" }')
		rm -rf "$check"
		[ -z "$verdict" ] || die "refusing to write $newfile: $verdict; content was: $content"
	fi
fi

if [ "$(id -u)" != 0 ]; then
	echo "deps: missing:${missing:- none}${newfile:+; qemu-system-x86 must come from bookworm-backports (QEMU 7.2 of Debian 12 has no x2APIC under TCG)}" >&2
	echo "deps: run as root:  make deps   (it runs:)" >&2
	if [ -n "$newfile" ]; then
		printf "deps:   printf '%%s\\\\n' '%s' > %s\n" "$content" "$newfile" >&2
	fi
	later=$missing
	[ $backports = 1 ] && later=$(echo "$missing" | sed 's/ qemu-system-x86\b//')
	echo "deps:   apt-get update" >&2
	[ $backports = 1 ] &&
		echo "deps:   apt-get install -y --no-install-recommends -t bookworm-backports qemu-system-x86" >&2
	[ -z "$later" ] || echo "deps:   apt-get install -y --no-install-recommends$later" >&2
	exit 1
fi

# --- Do it; on any failure, take back the file we wrote ---------------------

wrote=""
cleanup() {
	if [ -n "$wrote" ]; then
		rm -f "$wrote"
		echo "deps: removed $wrote again: apt works as it did before" >&2
	fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

export DEBIAN_FRONTEND=noninteractive
if [ -n "$newfile" ]; then
	say "Debian 12's QEMU has no x2APIC under TCG; adding bookworm-backports in $newfile"
	printf '%s\n' "$content" >"$newfile"
	wrote=$newfile
fi
if ! apt_get update -qq; then
	[ -n "$newfile" ] && die "apt-get update failed with $newfile (is $mirror reachable?)"
	die "apt-get update failed"
fi
# apt-get update only warns when a mirror cannot be reached: ask apt
# whether it has the backports release now, before installing anything.
# By codename: its suite became oldstable-backports when Debian 13 came out.
if [ $backports = 1 ] && ! apt-cache policy 2>/dev/null | grep -q 'n=bookworm-backports,'; then
	die "apt could not fetch bookworm-backports${mirror:+ from $mirror} (unreachable?); nothing was installed"
fi
for p in $OPTIONAL; do
	case " $missing " in *" $p "*) continue ;; esac
	installed "$p" && continue
	if has_candidate "$p"; then
		missing="$missing $p"
	else
		say "$p is not in this release's archive: the LAVA leg and make test-lava cannot run"
	fi
done
# The backports QEMU first: lava-dispatcher depends on qemu-system-x86, so
# installing the rest first would unpack Debian 12's QEMU only to replace it.
if [ $backports = 1 ]; then
	say "installing qemu-system-x86 from bookworm-backports"
	apt_get install -y -qq --no-install-recommends -t bookworm-backports qemu-system-x86 >/dev/null ||
		die "apt-get install -t bookworm-backports qemu-system-x86 failed"
fi
rest=$missing
[ $backports = 1 ] && rest=$(echo "$missing" | sed 's/ qemu-system-x86\b//')
if [ -n "$rest" ]; then
	say "installing:$rest"
	apt_get install -y -qq --no-install-recommends $rest >/dev/null ||
		die "apt-get install failed:$rest"
fi
have=$(qemu_version)
if [ -z "$have" ] || ! version_ge "$have" "$QEMU_MIN"; then
	[ "${LOCKLAB_KEEP_QEMU:-0}" = 1 ] || die "QEMU is ${have:-not runnable} after the install; $QEMU_MIN or later is needed"
fi
wrote=""
say "done; QEMU $have"
