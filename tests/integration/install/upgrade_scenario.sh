#!/bin/sh
# Runs inside a booted Debian 12 container (systemd is PID 1), as a oneshot unit: installs
# /er/debs/0.1.0.deb, starts the service, then upgrades to a release whose check fails (0.1.1)
# and to a good one (0.1.2), recording what systemd ran after each step in /er/out/steps.
# test_deb_systemd.py reads that file; then the container powers off.
set -u
OUT=/er/out/steps
: >"$OUT"

# One line per step: name, dpkg's exit status, the service's state and main pid, and which
# release the main process maps its code from (the kernel resolves the venv link).
step() {
    name=$1 rc=$2
    state=$(systemctl is-active edge-recorder.service)
    pid=$(systemctl show -P MainPID edge-recorder.service)
    release=none
    if [ "$pid" != 0 ]; then
        release=$(sed -n 's|.* /opt/edge-recorder/\([a-z]*\)/lib/python3.*|\1|p' \
            "/proc/$pid/maps" | sort -u | tr '\n' ,)
    fi
    link=$(readlink /opt/edge-recorder/venv)
    echo "$name rc=$rc state=$state pid=$pid release=$release link=$link" >>"$OUT"
}

# The daemon needs no hardware and no network here: a synthetic mic, mock pins, a service
# on a closed loopback port (it records into the spool and retries delivery). The unit is
# Type=notify: systemctl start/restart (and deb-systemd-invoke) return once it is READY.
dpkg -i /er/debs/0.1.0.deb >/er/out/install.log 2>&1
cat >/etc/edge-recorder/config.toml <<'EOF'
[device]
id = "exam-7"
[audio]
source = "synthetic"
[panel]
pin_factory = "mock"
[uplink]
service = "corti"
[corti]
client_id = "dev"
tenant = "base"
auth_url = "http://127.0.0.1:9/auth"
api_url = "http://127.0.0.1:9/api"
EOF
systemctl start edge-recorder.service
step installed 0

dpkg -i /er/debs/0.1.1.deb >/er/out/bad.log 2>&1
step broken-release $?
systemctl restart edge-recorder.service
step restarted-after-broken 0

dpkg -i /er/debs/0.1.2.deb >/er/out/good.log 2>&1
rc=$?
step fixed-release $rc
journalctl -u edge-recorder.service --no-pager -o cat >/er/out/journal.log 2>&1
echo done >>"$OUT"
