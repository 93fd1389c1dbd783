#!/usr/bin/env bash
# make arm64-check: build the arm64 .deb in a Debian 12 arm64 root under qemu-user-static and
# prove it installs and runs there, on any x86_64 build machine (as root).
#
#   1. qemu-user-static + binfmt (mounting binfmt_misc first when it is not), debootstrap;
#   2. a build root: debootstrap bookworm arm64, the build dependencies, this checkout (git
#      clone of HEAD), `python3 -m devtools.deb.build` -> the arm64 .deb;
#   3. a clean root (nothing but debootstrap's minbase): `apt-get install ./the.deb` pulls in
#      only runtime packages; then `edge-recorder --version`, `check` of the shipped example
#      config (must refuse it with exit 78: it names no service credentials), and `analyze`
#      of a WAV, all as arm64 code under qemu.
#
# Known traps handled here: binfmt_misc may need mounting; a TLS-intercepting proxy on the build
# host needs its CA inside the chroots (the host's /usr/local/share/ca-certificates are copied).
# Work directory: ARM64_WORK (default /var/tmp/edge-recorder-arm64); the build root is reused
# when present (`rm -rf` it to start over), the clean root is made anew every run. Output: dist/edge-recorder_<version>_arm64.deb.
set -euo pipefail

REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${ARM64_WORK:-/var/tmp/edge-recorder-arm64}
MIRROR=${ARM64_MIRROR:-http://deb.debian.org/debian}
BUILD_ROOT=$WORK/build-root
CLEAN_ROOT=$WORK/clean-root
BUILD_DEPS="python3 python3-venv python3-dev gcc pkg-config libasound2-dev libsystemd-dev libopus0 dpkg-dev binutils ca-certificates"

say() { printf 'arm64-check: %s\n' "$*"; }
die() { printf 'arm64-check: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (debootstrap and chroot need it)"

host_tools() {
    local missing=() pkg
    for pkg in qemu-user-static binfmt-support debootstrap; do
        dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null | grep -qx installed \
            || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
    if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    fi
    update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
    grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null \
        || die "qemu-aarch64 is not registered with binfmt_misc"
}

# A Debian 12 arm64 minbase root, with the host's extra CAs and DNS, /proc mounted.
make_root() {
    local root=$1
    if [ ! -x "$root/usr/bin/apt-get" ]; then
        say "debootstrap arm64 bookworm -> $root"
        rm -rf "$root"
        debootstrap --arch=arm64 --variant=minbase bookworm "$root" "$MIRROR" >/dev/null
    fi
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
        mkdir -p "$root/usr/local/share/ca-certificates"
        cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    fi
    mountpoint -q "$root/proc" || mount --bind /proc "$root/proc"
}

in_root() { local root=$1; shift; chroot "$root" /usr/bin/env DEBIAN_FRONTEND=noninteractive "$@"; }

cleanup() {
    for root in "$BUILD_ROOT" "$CLEAN_ROOT"; do
        mountpoint -q "$root/proc" 2>/dev/null && umount "$root/proc" || true
    done
}
trap cleanup EXIT

host_tools
mkdir -p "$WORK"

make_root "$BUILD_ROOT"
say "build dependencies in the build root"
in_root "$BUILD_ROOT" sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends $BUILD_DEPS >/dev/null && update-ca-certificates >/dev/null"
rm -rf "$BUILD_ROOT/src" "$BUILD_ROOT/out"
git clone -q "$REPO" "$BUILD_ROOT/src"
mkdir -p "$BUILD_ROOT/out"
say "building the arm64 .deb under qemu"
in_root "$BUILD_ROOT" sh -c "cd /src && python3 -m devtools.deb.build --out /out --compression zstd"
deb=$(cd "$BUILD_ROOT/out" && ls edge-recorder_*_arm64.deb)
mkdir -p "$REPO/dist"
cp "$BUILD_ROOT/out/$deb" "$REPO/dist/$deb"

# The install is proven on a root that never saw a build: made anew every run.
mountpoint -q "$CLEAN_ROOT/proc" 2>/dev/null && umount "$CLEAN_ROOT/proc"
rm -rf "$CLEAN_ROOT"
make_root "$CLEAN_ROOT"
in_root "$CLEAN_ROOT" sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends ca-certificates >/dev/null && update-ca-certificates >/dev/null"
cp "$REPO/dist/$deb" "$CLEAN_ROOT/tmp/$deb"
say "installing $deb in a clean arm64 root"
in_root "$CLEAN_ROOT" apt-get install -y -qq "/tmp/$deb" >/dev/null
# (gcc-12-base is libgcc-s1's runtime base, not a compiler)
dev=$(in_root "$CLEAN_ROOT" dpkg-query -W -f='${Package}\n' \
    | grep -E -- '-dev$|^(gcc|cpp|g\+\+)(-[0-9]+)?$|^binutils' || true)
[ -z "$dev" ] || die "the clean root gained build packages: $dev"
version=$(in_root "$CLEAN_ROOT" edge-recorder --version)
say "runs: $version ($(in_root "$CLEAN_ROOT" uname -m))"
set +e
in_root "$CLEAN_ROOT" edge-recorder check --config /etc/edge-recorder/config.toml >/dev/null 2>&1
rc=$?
set -e
[ "$rc" = 78 ] || die "check of the example config exited $rc, expected 78 (needs configuring)"
in_root "$CLEAN_ROOT" /opt/edge-recorder/venv/bin/python -c \
    "import numpy, soundfile; soundfile.write('/tmp/tone.wav', (numpy.sin(numpy.arange(32000) / 5) * 8000).astype('int16'), 16000)"
report=$(in_root "$CLEAN_ROOT" edge-recorder analyze /tmp/tone.wav --json)
case "$report" in
    *'"duration_s": 2.0'*) ;;
    *) die "analyze gave: $report" ;;
esac
say "ok: $deb installs on a clean Debian 12 arm64 root with runtime packages only; --version, check (78 on the example config) and analyze run"
