#!/usr/bin/env bash
# edge-recorder installer for a Raspberry Pi (64-bit Raspberry Pi OS bookworm / Debian 12+).
#
#   sudo systemd/install.sh [--start] [--extras LIST]
#                                                install or upgrade (idempotent), enable;
#                                                LIST: optional extras, comma-separated
#                                                (default "pi"; e.g. "pi,aws" for the AWS
#                                                services, "onnx" for onnxruntime Silero)
#   sudo systemd/install.sh --dashboard [--start]
#                                                the fleet dashboard host instead of a device:
#                                                the venv with the `dashboard` extra,
#                                                edge-recorder-fleet.service and its user,
#                                                /etc/edge-recorder-fleet/fleet.toml; the
#                                                device unit is not installed
#   sudo systemd/install.sh --uninstall          remove unit, venv, sysusers/tmpfiles entries;
#                                                KEEP /var/lib/edge-recorder and /etc config
#   sudo systemd/install.sh --uninstall --purge [--force]
#                                                also remove config, secrets and state; refused
#                                                while the spool holds undelivered audio
#                                                unless --force
#
# Testing and image building: --root DIR (or EDGE_RECORDER_INSTALL_ROOT=DIR) installs into DIR
# instead of /; apt-get and systemctl act on the running system, so they are skipped there.
# --no-apt, --no-venv, --no-systemctl skip those steps anywhere.
#
# Python packages: exactly the versions in the project's lock (uv.lock, exported to
# devtools/requirements/*.txt), each checked against its sha256 by pip; the build tools are
# locked too, so sources build without fetching anything unpinned. Every install builds a new
# venv under /opt/edge-recorder/venvs/ and switches the /opt/edge-recorder/venv symlink to it
# only once it works, so a failed upgrade leaves the old version in place.
#
# "Undelivered audio" rule (for --purge): any segment file (*.seg) below the spool directory
# (`[spool] dir` of the installed config, default /var/lib/edge-recorder/spool). The daemon
# deletes a segment only after the service confirmed every byte in it.
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
SOURCE_DIR=$(cd -- "$SCRIPT_DIR/.." && pwd)

# Runtime subset of APT_PACKAGES in the Makefile (a test keeps it so): python3-venv (pulls in
# python3), headers and gcc/pkg-config to build pyalsaaudio and systemd-python (no aarch64
# wheels), the ALSA plugins and tools, Opus.
APT_RUNTIME_PACKAGES=(
    python3-venv python3-dev gcc pkg-config libasound2-dev libasound2-plugins
    alsa-utils libsystemd-dev systemd libopus0 ca-certificates openssl
)

UNIT_NAME=edge-recorder.service
SERVICE_USER=edge-recorder
UNIT_DIR=/etc/systemd/system
SYSUSERS_FILE=/etc/sysusers.d/edge-recorder.conf
TMPFILES_FILE=/etc/tmpfiles.d/edge-recorder.conf
APP_DIR=/opt/edge-recorder
VENV_DIR=$APP_DIR/venv
VENVS_DIR=$APP_DIR/venvs
LOCK_DIR=$SOURCE_DIR/devtools/requirements
CONFIG_DIR=/etc/edge-recorder
CONFIG_FILE=$CONFIG_DIR/config.toml
CREDSTORE=/etc/credstore
CREDENTIALS=(aas-client-secret mqtt-password spool-key corti-client-secret dice-password)
SPOOL_KEY=$CREDSTORE/edge-recorder.spool-key
STATE_DIR=/var/lib/edge-recorder
SPOOL_DIR=$STATE_DIR/spool
# The fleet dashboard (--dashboard): its own unit, user and config directory.
FLEET_UNIT_NAME=edge-recorder-fleet.service
FLEET_USER=edge-recorder-fleet
FLEET_SYSUSERS_FILE=/etc/sysusers.d/edge-recorder-fleet.conf
FLEET_CONFIG_DIR=/etc/edge-recorder-fleet
FLEET_CONFIG_FILE=$FLEET_CONFIG_DIR/fleet.toml

ROOT=${EDGE_RECORDER_INSTALL_ROOT:-/}
MODE=install
DO_APT=1
DO_VENV=1
DO_SYSTEMCTL=1
START=0
PURGE=0
FORCE=0
EXTRAS=pi
EXTRAS_GIVEN=0
DASHBOARD=0

say() { printf 'edge-recorder install: %s\n' "$*"; }
die() { printf 'edge-recorder install: error: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
    case "$1" in
        --start) START=1 ;;
        --uninstall) MODE=uninstall ;;
        --purge) PURGE=1 ;;
        --force) FORCE=1 ;;
        --root) [ $# -ge 2 ] || die "--root needs a directory"; ROOT=$2; shift ;;
        --root=*) ROOT=${1#--root=} ;;
        --extras) [ $# -ge 2 ] || die "--extras needs a list"; EXTRAS=$2; EXTRAS_GIVEN=1; shift ;;
        --extras=*) EXTRAS=${1#--extras=}; EXTRAS_GIVEN=1 ;;
        --dashboard) DASHBOARD=1 ;;
        --no-apt) DO_APT=0 ;;
        --no-venv) DO_VENV=0 ;;
        --no-systemctl) DO_SYSTEMCTL=0 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
    shift
done

[ "$PURGE" = 0 ] || [ "$MODE" = uninstall ] || die "--purge only goes with --uninstall"
if [ "$DASHBOARD" = 1 ]; then
    # A dashboard host needs the dashboard extra, not the Pi's GPIO one (unless asked for).
    if [ "$EXTRAS_GIVEN" = 0 ]; then
        EXTRAS=dashboard
    elif [[ ",$EXTRAS," != *,dashboard,* ]]; then
        EXTRAS=$EXTRAS,dashboard
    fi
    UNIT_NAME=$FLEET_UNIT_NAME
fi
[ "$FORCE" = 0 ] || [ "$PURGE" = 1 ] || die "--force only goes with --uninstall --purge"
[ "$(id -u)" = 0 ] || die "run as root (sudo $0 ...): it creates a system user and owns files"
[ -d "$ROOT" ] || die "root directory $ROOT does not exist"
ROOT=$(cd -- "$ROOT" && pwd)
if [ "$ROOT" != / ]; then
    # apt and systemctl would change the running system, not the tree being built.
    DO_APT=0
    DO_SYSTEMCTL=0
fi

# A path inside the target root.
at() { if [ "$ROOT" = / ]; then printf '%s' "$1"; else printf '%s%s' "$ROOT" "$1"; fi; }
ROOT_ARGS=()
if [ "$ROOT" != / ]; then ROOT_ARGS=("--root=$ROOT"); fi

# Numeric gid of a group in the target root's /etc/group (what systemd-sysusers wrote), so
# ownership is right even when the target is not the running system.
gid_of() {
    local gid
    gid=$(awk -F: -v g="$1" '$1 == g { print $3; exit }' "$(at /etc/group)" 2>/dev/null || true)
    [ -n "$gid" ] || die "group $1 not found in $(at /etc/group)"
    printf '%s' "$gid"
}

have_systemd() { [ "$DO_SYSTEMCTL" = 1 ] && [ -d /run/systemd/system ]; }

install_apt() {
    [ "$DO_APT" = 1 ] || { say "skipping apt packages"; return; }
    local missing=() pkg
    for pkg in "${APT_RUNTIME_PACKAGES[@]}"; do
        dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null | grep -qx installed \
            || missing+=("$pkg")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        say "apt packages already installed"
        return
    fi
    say "installing apt packages: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# The lock exports to install: the core, then each requested extra's additions (fills the
# array REQUIREMENTS with pip's -r arguments; dies on an unknown extra before anything changes).
REQUIREMENTS=()
locked_requirements() {
    local extra wanted=()
    REQUIREMENTS=(-r "$LOCK_DIR/device.txt")
    IFS=, read -ra wanted <<< "$EXTRAS"
    for extra in "${wanted[@]}"; do
        [ -n "$extra" ] || continue
        [ -f "$LOCK_DIR/extra-$extra.txt" ] || die "unknown extra '$extra' (known: \
$(cd "$LOCK_DIR" && ls extra-*.txt | sed 's/^extra-//; s/\.txt$//' | paste -sd, -))"
        REQUIREMENTS+=(-r "$LOCK_DIR/extra-$extra.txt")
    done
}

install_venv() {
    [ "$DO_VENV" = 1 ] || { say "skipping the Python venv"; return; }
    local name venv link file
    [ -f "$LOCK_DIR/device.txt" ] || die "no lock exports in $LOCK_DIR"
    locked_requirements
    name=$(date -u +%Y%m%dT%H%M%SZ).$$
    venv=$(at "$VENVS_DIR/$name")
    link=$(at "$VENV_DIR")
    say "creating venv $VENVS_DIR/$name (extras: ${EXTRAS:-none})"
    mkdir -p "$(at "$VENVS_DIR")"
    python3 -m venv "$venv"
    # Hash-checked, no dependency resolution on the device, no build isolation: exactly the lock.
    "$venv/bin/python" -m pip install -q --require-hashes -r "$LOCK_DIR/build.txt" \
        || { rm -rf "$venv"; die "installing the locked build tools failed; nothing changed"; }
    "$venv/bin/python" -m pip install -q --require-hashes --no-deps --no-build-isolation \
        "${REQUIREMENTS[@]}" \
        || { rm -rf "$venv"; die "installing the locked packages failed; nothing changed"; }
    # Not editable: the service must not depend on the checkout staying where it is.
    "$venv/bin/python" -m pip install -q --no-deps --no-build-isolation "$SOURCE_DIR" \
        && "$venv/bin/python" -m pip check >/dev/null \
        && "$venv/bin/edge-recorder" --version >/dev/null \
        || { rm -rf "$venv"; die "the new venv does not work; nothing changed"; }
    # Switch atomically (a relative link, valid inside an image built with --root too). The
    # previous venv stays until the next install: a daemon still running from it may yet
    # import a module lazily.
    local previous=""
    if [ -L "$link" ]; then
        previous=$(at "$APP_DIR")/$(readlink "$link")
    elif [ -d "$link" ]; then
        rm -rf "$link"  # the layout before versioned venvs
    fi
    ln -sfn "venvs/$name" "$link.new"
    mv -Tf "$link.new" "$link"
    for file in "$(at "$VENVS_DIR")"/*; do
        [ "$file" = "$venv" ] || [ "$file" = "$previous" ] || rm -rf "$file"
    done
    say "installed $("$venv/bin/edge-recorder" --version) from the lock into $VENV_DIR"
}

install_systemd_files() {
    install -D -m 0644 "$SCRIPT_DIR/edge-recorder.service" "$(at "$UNIT_DIR/$UNIT_NAME")"
    install -D -m 0644 "$SCRIPT_DIR/sysusers.d/edge-recorder.conf" "$(at "$SYSUSERS_FILE")"
    install -D -m 0644 "$SCRIPT_DIR/tmpfiles.d/edge-recorder.conf" "$(at "$TMPFILES_FILE")"
    systemd-sysusers "${ROOT_ARGS[@]}" "$(at "$SYSUSERS_FILE")"
    systemd-tmpfiles "${ROOT_ARGS[@]}" --create "$(at "$TMPFILES_FILE")"
    say "installed $UNIT_NAME, user $SERVICE_USER, directories"
}

install_dashboard_files() {
    install -D -m 0644 "$SCRIPT_DIR/edge-recorder-fleet.service" "$(at "$UNIT_DIR/$FLEET_UNIT_NAME")"
    install -D -m 0644 "$SCRIPT_DIR/sysusers.d/edge-recorder-fleet.conf" "$(at "$FLEET_SYSUSERS_FILE")"
    systemd-sysusers "${ROOT_ARGS[@]}" "$(at "$FLEET_SYSUSERS_FILE")"
    say "installed $FLEET_UNIT_NAME, user $FLEET_USER"
}

# /etc/edge-recorder-fleet (0750 root:edge-recorder-fleet) with fleet.toml from the example
# (0640): the dashboard reads it, nobody else but root. An existing file is kept.
install_dashboard_config() {
    local dir config gid
    gid=$(gid_of "$FLEET_USER")
    dir=$(at "$FLEET_CONFIG_DIR")
    config=$(at "$FLEET_CONFIG_FILE")
    install -d -m 0750 -o 0 -g "$gid" "$dir"
    if [ -e "$config" ]; then
        say "keeping existing $FLEET_CONFIG_FILE"
        return
    fi
    install -m 0640 -o 0 -g "$gid" "$SCRIPT_DIR/fleet.toml.example" "$config"
    say "wrote $FLEET_CONFIG_FILE from fleet.toml.example: edit it (broker, listen address, \
logins: edge-recorder fleet passwd $FLEET_CONFIG_DIR/users NAME --role operator), then start"
}

install_config() {
    local config gid
    config=$(at "$CONFIG_FILE")
    gid=$(gid_of "$SERVICE_USER")
    if [ -e "$config" ]; then
        say "keeping existing $CONFIG_FILE"
        return
    fi
    install -D -m 0640 -o 0 -g "$gid" "$SOURCE_DIR/config.example.toml" "$config"
    say "wrote $CONFIG_FILE from config.example.toml: edit it, then restart"
}

install_spool_key() {
    local key tmp
    key=$(at "$SPOOL_KEY")
    install -d -m 0700 -o 0 -g 0 "$(at "$CREDSTORE")"
    if [ -e "$key" ]; then
        say "keeping existing spool key $SPOOL_KEY"
        return
    fi
    tmp="$key.tmp.$$"
    (umask 077 && head -c 32 /dev/urandom >"$tmp")
    chown 0:0 "$tmp"
    chmod 0600 "$tmp"
    # ln fails if the key appeared meanwhile: never replace a key (it would orphan the spool).
    if ln "$tmp" "$key" 2>/dev/null; then
        say "created spool key $SPOOL_KEY (32 random bytes): back it up, the spool is unreadable without it"
    fi
    rm -f "$tmp"
}

systemd_enable() {
    if ! have_systemd; then
        say "skipping systemctl (not requested, not the running system, or no systemd)"
        return
    fi
    systemctl daemon-reload
    systemctl enable "$UNIT_NAME"
    if [ "$START" = 1 ]; then
        systemctl restart "$UNIT_NAME"
        say "started: journalctl -u $UNIT_NAME -f"
    else
        say "enabled; start with: systemctl start $UNIT_NAME"
    fi
}

# The spool directory: `dir` in the [spool] table of the installed config, else the default.
spool_dir() {
    local configured=""
    if [ -f "$(at "$CONFIG_FILE")" ]; then
        configured=$(awk '
            /^[[:space:]]*\[/ { in_spool = ($0 ~ /^[[:space:]]*\[spool\][[:space:]]*(#.*)?$/) }
            in_spool && /^[[:space:]]*dir[[:space:]]*=/ {
                sub(/^[^=]*=[[:space:]]*/, ""); sub(/[[:space:]]*(#.*)?$/, ""); gsub(/^["\x27]|["\x27]$/, "")
                print; exit
            }' "$(at "$CONFIG_FILE")")
    fi
    printf '%s' "${configured:-$SPOOL_DIR}"
}

# Undelivered audio = any segment file (*.seg) in the spool: the daemon deletes a segment only
# after the service confirmed every byte in it.
spool_holds_data() {
    local spool
    spool=$(at "$(spool_dir)")
    [ -d "$spool" ] && [ -n "$(find "$spool" -type f -name '*.seg' -print -quit)" ]
}

do_install() {
    [ "$DO_VENV" = 0 ] || locked_requirements  # an unknown extra stops here, before any change
    if [ "$DASHBOARD" = 1 ]; then
        install_apt
        install_dashboard_files
        install_venv
        install_dashboard_config
        systemd_enable
        say "done. Secrets go to $CREDSTORE/edge-recorder-fleet.<name> (0600 root): \
mqtt-password metrics-token https-key mqtt-client-key"
        return
    fi
    install_apt
    install_systemd_files
    install_venv
    install_config
    install_spool_key
    systemd_enable
    say "done. Secrets go to $CREDSTORE/edge-recorder.<name> (0600 root): ${CREDENTIALS[*]}"
}

do_uninstall() {
    if [ "$PURGE" = 1 ] && spool_holds_data && [ "$FORCE" = 0 ]; then
        die "the spool $(spool_dir) still holds undelivered audio; let the device deliver it \
(edge-recorder spool list), or add --force to delete it. Nothing was removed."
    fi
    if have_systemd; then
        systemctl disable --now "$UNIT_NAME" 2>/dev/null || true
    fi
    if [ "$DASHBOARD" = 1 ]; then
        rm -f "$(at "$UNIT_DIR/$FLEET_UNIT_NAME")" "$(at "$FLEET_SYSUSERS_FILE")"
        rm -rf "$(at "$VENV_DIR")" "$(at "$VENVS_DIR")"
        rmdir "$(at "$APP_DIR")" 2>/dev/null || true
        if have_systemd; then systemctl daemon-reload; fi
        if [ "$PURGE" = 1 ]; then
            rm -rf "$(at "$FLEET_CONFIG_DIR")" "$(at /var/lib/edge-recorder-fleet)"
            say "purged the dashboard's config, history and audit log"
        else
            say "kept $FLEET_CONFIG_DIR and /var/lib/edge-recorder-fleet (history, audit log)"
        fi
        say "uninstalled"
        return
    fi
    rm -f "$(at "$UNIT_DIR/$UNIT_NAME")" "$(at "$SYSUSERS_FILE")" "$(at "$TMPFILES_FILE")"
    rm -rf "$(at "$VENV_DIR")" "$(at "$VENVS_DIR")"
    rmdir "$(at "$APP_DIR")" 2>/dev/null || true
    if have_systemd; then
        systemctl daemon-reload
    fi
    if [ "$PURGE" = 1 ]; then
        local name
        for name in "${CREDENTIALS[@]}"; do
            rm -f "$(at "$CREDSTORE/edge-recorder.$name")"
        done
        local spool
        spool=$(spool_dir)
        rm -rf "$(at "$CONFIG_DIR")" "$(at "$STATE_DIR")"
        if [ "$spool" != "$SPOOL_DIR" ] && [ -d "$(at "$spool")" ]; then
            say "left the configured spool directory $spool in place (outside $STATE_DIR)"
        fi
        say "purged config, secrets and state (the user $SERVICE_USER is left in place, as \
sysusers.d(5) recommends: its uid may still own files)"
    else
        say "kept $STATE_DIR (spool: undelivered audio), $CONFIG_DIR and the secrets in \
$CREDSTORE; remove them with --uninstall --purge"
    fi
    say "uninstalled"
}

if [ "$MODE" = install ]; then
    do_install
else
    do_uninstall
fi
