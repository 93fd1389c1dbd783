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
#      of a WAV, all as arm64 code under qemu;
#   4. the unit tests (tests/unit) on arm64, in the build root: a dev venv made from the lock as
#      the Makefile's venv target makes it (build.txt, then dev.txt hash-checked with --no-deps
#      --no-build-isolation, the project editable, devtools through a .pth, pip check), the
#      tools the unit tests run (espeak-ng, ffmpeg, mosquitto, npm) from apt, devtools/assets'
#      npm ci (as `make node`), then pytest.
#
# Known traps handled here: binfmt_misc may need mounting; a TLS-intercepting proxy on the build
# host needs its CA inside the chroots (the host's /usr/local/share/ca-certificates are copied);
# onnxruntime (its cpuinfo library) parses /proc/cpuinfo, finds the host's x86 text and dies
# with SIGSEGV, so each root gets an arm64 (Cortex-A72, as on a Pi 4) cpuinfo bound over its
# /proc/cpuinfo (and the CPU count in its unmounted /sys), and qemu emulates that CPU
# (QEMU_CPU=cortex-a72).
# Work directory: ARM64_WORK (default /var/tmp/edge-recorder-arm64); the build root is reused
# when present (`rm -rf` it to start over), and so is its dev venv (/dev-venv) while the lock is
# unchanged; the clean root is made anew every run. Output: dist/edge-recorder_<version>_arm64.deb.
set -euo pipefail

REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${ARM64_WORK:-/var/tmp/edge-recorder-arm64}
MIRROR=${ARM64_MIRROR:-http://deb.debian.org/debian}
BUILD_ROOT=$WORK/build-root
CLEAN_ROOT=$WORK/clean-root
BUILD_DEPS="python3 python3-venv python3-dev gcc pkg-config libasound2-dev libsystemd-dev libopus0 dpkg-dev binutils ca-certificates"
# What the unit tests need besides Python (fixtures speak with espeak-ng, ffmpeg decodes what the
# encoders wrote, fleet tests start a real mosquitto, and the vendored uPlot is compared with the
# npm-locked package, which `make node` installs with npm ci); the rest of the Makefile's
# APT_PACKAGES serve the integration, contract and browser tests.
TEST_DEPS="espeak-ng ffmpeg mosquitto nodejs npm"
DEV_VENV=/dev-venv
# qemu-user reads this at every exec of an arm64 binary: the CPU the cpuinfo below describes.
export QEMU_CPU=cortex-a72

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
    if ! mountpoint -q "$root/proc"; then
        mount --bind /proc "$root/proc"
        # so that the cpuinfo mounted on it below never propagates to the host's /proc
        mount --make-private "$root/proc"
    fi
    mountpoint -q "$root/proc/cpuinfo" || mount --bind "$WORK/cpuinfo" "$root/proc/cpuinfo"
    # cpuinfo also counts the CPUs in sysfs, which the roots do not mount: plain files will do.
    if ! mountpoint -q "$root/sys"; then
        mkdir -p "$root/sys/devices/system/cpu"
        echo 0-3 >"$root/sys/devices/system/cpu/possible"
        echo 0-3 >"$root/sys/devices/system/cpu/present"
    fi
}

# /proc/cpuinfo of a Raspberry Pi 4 (4 x Cortex-A72, r0p3) running a 64-bit kernel.
write_cpuinfo() {
    local n
    for n in 0 1 2 3; do
        printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n' "$n"
        printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\n'
        printf 'CPU part\t: 0xd08\nCPU revision\t: 3\n\n'
    done
    printf 'Revision\t: c03111\nSerial\t\t: 100000000000a72f\n'
    printf 'Model\t\t: Raspberry Pi 4 Model B Rev 1.1\n'
}

in_root() { local root=$1; shift; chroot "$root" /usr/bin/env DEBIAN_FRONTEND=noninteractive "$@"; }

unmount_root() {
    local root=$1 mnt
    for mnt in "$root/proc/cpuinfo" "$root/proc"; do
        if mountpoint -q "$mnt" 2>/dev/null; then umount "$mnt" || umount -l "$mnt"; fi
    done
}

cleanup() {
    local root
    for root in "$BUILD_ROOT" "$CLEAN_ROOT"; do unmount_root "$root"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

host_tools
mkdir -p "$WORK"
write_cpuinfo >"$WORK/cpuinfo"

make_root "$BUILD_ROOT"
say "build dependencies in the build root"
in_root "$BUILD_ROOT" sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends $BUILD_DEPS $TEST_DEPS >/dev/null && update-ca-certificates >/dev/null"
rm -rf "$BUILD_ROOT/src" "$BUILD_ROOT/out"
git clone -q "$REPO" "$BUILD_ROOT/src"
mkdir -p "$BUILD_ROOT/out"
say "building the arm64 .deb under qemu"
in_root "$BUILD_ROOT" sh -c "cd /src && python3 -m devtools.deb.build --out /out --compression zstd"
deb=$(cd "$BUILD_ROOT/out" && ls edge-recorder_*_arm64.deb)
mkdir -p "$REPO/dist"
cp "$BUILD_ROOT/out/$deb" "$REPO/dist/$deb"

# The install is proven on a root that never saw a build: made anew every run.
unmount_root "$CLEAN_ROOT"
rm -rf "$CLEAN_ROOT"
make_root "$CLEAN_ROOT"
in_root "$CLEAN_ROOT" sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends ca-certificates >/dev/null && update-ca-certificates >/dev/null"
cp "$BUILD_ROOT/out/$deb" "$CLEAN_ROOT/tmp/$deb"
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
unmount_root "$CLEAN_ROOT"

# The unit tests on arm64, in the build root (it has the compilers the sdists need) against the
# clone of HEAD built above. The dev venv is the Makefile's, made anew when the lock changes.
lock_id=$(cd "$BUILD_ROOT/src" && cat pyproject.toml uv.lock devtools/requirements/*.txt | sha256sum)
if [ "$(cat "$BUILD_ROOT$DEV_VENV/.installed" 2>/dev/null)" != "$lock_id" ]; then
    say "dev venv from the lock in the build root ($DEV_VENV)"
    in_root "$BUILD_ROOT" sh -ec "
        cd /src
        python3 -m venv --clear $DEV_VENV
        $DEV_VENV/bin/python -m pip install -q --require-hashes -r devtools/requirements/build.txt
        $DEV_VENV/bin/python -m pip install -q --require-hashes --no-deps --no-build-isolation -r devtools/requirements/dev.txt"
fi
rm -f "$BUILD_ROOT$DEV_VENV/.installed"
in_root "$BUILD_ROOT" sh -ec "
    cd /src
    $DEV_VENV/bin/python -m pip install -q --no-deps --no-build-isolation -e .
    echo /src > \"\$($DEV_VENV/bin/python -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])')/edge_recorder_devtools.pth\"
    $DEV_VENV/bin/python -m pip check"
printf '%s\n' "$lock_id" >"$BUILD_ROOT$DEV_VENV/.installed"

# onnxruntime under qemu: imports (the cpuinfo trap) and runs the shipped Silero model.
in_root "$BUILD_ROOT" "$DEV_VENV/bin/python" -c '
import numpy as np
from edge_recorder.audio.vad_engines.silero import SileroVad
p = SileroVad().probabilities(np.zeros((2, 512), np.float32))
assert p.shape == (2,) and ((p >= 0) & (p <= 1)).all(), p
print("arm64-check: onnxruntime runs Silero under qemu:", p.round(3).tolist())'

# `make node`'s npm ci for devtools/assets (the unit tests check static/vendor against it; the
# contract tests' tests/contract install is not needed here). A TLS-intercepting proxy's CA
# (copied in above) is in the system store, which node reads only when told.
in_root "$BUILD_ROOT" NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt sh -c \
    "cd /src/devtools/assets && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error"

say "unit tests (tests/unit) on arm64 under qemu"
start=$SECONDS
# PYTHONDONTWRITEBYTECODE (if the host sets it) would make every subprocess the tests start
# recompile the package under qemu; pytest's tmp dirs are those of the root's /tmp.
# (The first run found a real arm64 difference: Dsp's meters summed float32 squares in float32,
# which rounds differently on a Cortex-A72; they sum in float64 now, and test_dsp's tolerance
# is 1e-9 dB.)
in_root "$BUILD_ROOT" env -u PYTHONDONTWRITEBYTECODE -u VIRTUAL_ENV -u PYTHONPATH sh -c \
    "cd /src && exec $DEV_VENV/bin/python -m pytest tests/unit -q -p no:cacheprovider"
say "ok: the unit tests pass on arm64 under qemu ($((SECONDS - start)) s; $SECONDS s in all)"
