"""The example Ansible role (systemd/ansible/) run by the real ansible-core of the dev venv.

A device is not needed to prove what matters: the playbook parses with the example inventory;
the role's own templates, rendered by Ansible with the role's defaults, vars and the inventory
at their real precedence, give a config.toml the project's loader and `edge-recorder check`
accept (or refuse, naming why), and an apt sources entry apt itself reads; its credential
tasks write only the unit's credentials, 0600, from a Vault file, never the spool key, and
show no secret.
The tasks that need a booted Debian (apt, systemd) are checked by their order only.

Each run gets its own ANSIBLE_HOME and temp dirs under tmp_path: nothing goes to ~/.ansible.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtools.deb import repo
from edge_recorder.config.loader import load_config

REPO = Path(__file__).resolve().parents[3]
ANSIBLE = REPO / "systemd" / "ansible"
ROLE = ANSIBLE / "roles" / "edge_recorder"
INVENTORY = ANSIBLE / "inventory.example.yml"
HOST = "exam-room-101.clinic-a.example.invalid"
BIN = Path(sys.executable).parent
EX_CONFIG = 78
ONBOARDING_IDS = {
    "edge_recorder_aas_customer_id": "3f1c2b9e-5d4a-4e8f-9a7b-1c2d3e4f5a6b",
    "edge_recorder_aas_partner_id": "8a9b0c1d-2e3f-4a5b-8c6d-7e8f9a0b1c2d",
    "edge_recorder_aas_product_id": "c0ffee00-1234-4abc-9def-0123456789ab",
}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """ansible-core writes only below tmp_path, reads no ansible.cfg of this machine, and the
    daemon sees no EDGE_RECORDER__ override from the developer's shell."""
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "EDGE_"))}
    return base | {
        "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-local"),
        "ANSIBLE_REMOTE_TEMP": str(tmp_path / "ansible-remote"),
        "ANSIBLE_CONFIG": str(tmp_path / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "LC_ALL": "C.UTF-8",
    }


def ansible_playbook(
    env: dict[str, str], *args: str | Path, check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [BIN / "ansible-playbook", *map(str, args)],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def probe_role(tmp_path: Path, name: str, tasks: str | Path) -> Path:
    """A role that shares edge_recorder's defaults, vars and templates (symlinks: the real
    files, at role precedence, below the inventory's values) with other tasks, and whose
    handler only reports that edge-recorder would be restarted. Returns the playbook."""
    role = tmp_path / "roles" / name
    (role / "tasks").mkdir(parents=True)
    (role / "handlers").mkdir()
    for part in ("defaults", "vars", "templates"):
        (role / part).symlink_to(ROLE / part, target_is_directory=True)
    main = role / "tasks" / "main.yml"
    if isinstance(tasks, Path):
        main.symlink_to(tasks)
    else:
        main.write_text(tasks)
    (role / "handlers" / "main.yml").write_text(
        "- name: Restart requested\n"
        "  ansible.builtin.debug:\n    msg: RESTART-REQUESTED\n"
        "  listen: edge-recorder restart\n"
    )
    playbook = tmp_path / f"{name}.yml"
    playbook.write_text(f"- hosts: all\n  gather_facts: false\n  roles: [{name}]\n")
    return playbook


RENDER = """\
- ansible.builtin.template:
    src: config.toml.j2
    dest: "{{ out_dir }}/config.toml"
    mode: "0600"
- ansible.builtin.template:
    src: edge-recorder.sources.j2
    dest: "{{ out_dir }}/edge-recorder.sources"
    mode: "0600"
"""


def render(tmp_path: Path, env: dict[str, str], **extra: Any) -> Path:
    """The role's two templates, rendered by Ansible for HOST of the example inventory."""
    out = tmp_path / "rendered"
    out.mkdir()
    variables = {"out_dir": str(out), "ansible_python_interpreter": sys.executable} | extra
    ansible_playbook(
        env, "-i", INVENTORY, "--limit", HOST, "-c", "local", "-e", json.dumps(variables),
        probe_role(tmp_path, "render", RENDER),
    )  # fmt: skip
    return out


def check(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BIN / "edge-recorder", "check", "--config", str(config)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip


def tasks(name: str) -> list[dict[str, Any]]:
    loaded = yaml.safe_load((ROLE / "tasks" / name).read_text())
    assert isinstance(loaded, list)
    return loaded


def unit_credentials() -> set[str]:
    unit = (REPO / "systemd" / "edge-recorder.service").read_text()
    return set(re.findall(r"^LoadCredential=([a-z0-9-]+):edge-recorder\.\1$", unit, re.M))


# ---- (a) the playbook ----


def test_the_playbook_passes_the_syntax_check_with_the_example_inventory(
    env: dict[str, str],
) -> None:
    done = ansible_playbook(env, "--syntax-check", "-i", INVENTORY, ANSIBLE / "enrol.yml")
    assert "playbook: " in done.stdout and "enrol.yml" in done.stdout


def test_check_gates_the_restart_and_the_start(env: dict[str, str]) -> None:
    """`edge-recorder check` on the installed config comes after the package, the config
    and the credentials, and before the handlers are flushed (the restart) and the service
    is started; the config itself replaces the old one only if `check` accepts it."""
    done = ansible_playbook(
        env, "--list-tasks", "-i", INVENTORY, ANSIBLE / "enrol.yml"
    )  # fmt: skip
    listed = [
        line.split("edge_recorder : ", 1)[1].split("\tTAGS:")[0].strip()
        for line in done.stdout.splitlines()
        if "edge_recorder : " in line
    ]
    order = [
        "Install edge-recorder",
        "Write /etc/edge-recorder/config.toml",
        "Write the credentials",
        "Check the installed version accepts the configuration",
        "Restart edge-recorder now if the config or a credential changed",
        "Enable and start edge-recorder",
    ]
    assert [name for name in listed if name in order] == order, listed
    by_name = {task["name"]: task for task in tasks("main.yml")}
    checking = by_name["Check the installed version accepts the configuration"]
    assert checking["ansible.builtin.command"]["argv"][1:3] == ["check", "--config"]
    config = by_name["Write /etc/edge-recorder/config.toml"]["ansible.builtin.template"]
    assert config["validate"] == "{{ edge_recorder_bin }} check --config %s"
    assert (config["owner"], config["group"], config["mode"]) == ("root", "edge-recorder", "0640")
    flush = by_name["Restart edge-recorder now if the config or a credential changed"]
    assert flush["ansible.builtin.meta"] == "flush_handlers"
    package = by_name["Install edge-recorder"]["ansible.builtin.apt"]
    assert package["dpkg_options"] == "force-confdef,force-confold"


def test_the_preflight_refuses_a_bad_device_id_before_anything_changes(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """The role's assert tasks, which come before its first change, run against this
    (Debian) machine with the example inventory: they pass with a key file on the controller,
    and stop the host naming the variable when the device id is not topic-safe."""
    main = tasks("main.yml")
    asserts = [task for task in main if "ansible.builtin.assert" in task]
    assert main[: len(asserts)] == asserts and len(asserts) >= 3
    (tmp_path / "preflight-tasks.yml").write_text(yaml.safe_dump(asserts, sort_keys=False))
    playbook = probe_role(tmp_path, "preflight", tmp_path / "preflight-tasks.yml")
    playbook.write_text(playbook.read_text().replace("gather_facts: false", "gather_facts: true"))
    key = tmp_path / "edge-recorder-archive-keyring.gpg"
    key.write_bytes(b"\x99\x00")
    variables = {
        "ansible_python_interpreter": sys.executable,
        "edge_recorder_apt_key_file": str(key),
    }
    run = ("-i", INVENTORY, "--limit", HOST, "-c", "local", "-e", json.dumps(variables), playbook)

    assert "failed=0" in ansible_playbook(env, *run).stdout
    bad = json.dumps({"edge_recorder_device_id": "exam room 101"})
    refused = ansible_playbook(env, *run[:-1], "-e", bad, playbook, check=False)
    assert refused.returncode != 0
    assert "Set edge_recorder_device_id for " + HOST in refused.stdout
    assert "(got 'exam room 101')" in refused.stdout


# ---- (b) the config template, rendered by Ansible, read by the project's loader ----


def test_the_example_renders_a_config_that_check_refuses_until_the_onboarding_ids(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """The example inventory leaves the three onboarding ids commented out: the config is
    valid TOML and valid config, but `check` exits 78 because it could not deliver, so an
    unadapted copy of the example stops at the role's check, before the service starts."""
    config = render(tmp_path, env) / "config.toml"
    loaded = load_config(config, environ={})
    assert loaded.device.id == "clinic-a-exam-101"
    assert loaded.device.location == "Clinic A, exam room 101"
    assert loaded.audio.profile == "respeaker-usb-v2"
    assert loaded.mqtt.host == "mqtt.example.invalid"
    assert (loaded.mqtt.port, loaded.mqtt.tls) == (8883, True)
    assert "[spool]" not in config.read_text()  # the package's defaults, the key untouched
    done = check(config, env)
    assert done.returncode == EX_CONFIG, done.stdout + done.stderr
    assert "is valid" in done.stdout and "id=clinic-a-exam-101" in done.stdout
    assert (
        "aas.customer_id, aas.partner_id, aas.product_id must be set to deliver audio"
        " (uplink.service = 'aas' cannot deliver)"
    ) in done.stderr


def test_a_filled_in_inventory_renders_a_config_check_accepts(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """With the onboarding ids, a location that needs TOML escaping and extra keys (one in a
    section the role already writes), `check` passes and every value arrives as given."""
    location = 'Kinderklinik "Süd"\\Raum 3'
    extra = {
        "uplink": {"live_transport": "websocket"},
        "aas": {"ws_url": "wss://aas.example.invalid"},
    }
    rendered = render(
        tmp_path, env, **ONBOARDING_IDS, edge_recorder_location=location,
        edge_recorder_config_extra=extra | {"vad": {"engine": "webrtc", "hangover_ms": 500}},
    )  # fmt: skip
    config = rendered / "config.toml"
    done = check(config, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok    delivery             aas: endpoints and ids configured" in done.stdout
    loaded = load_config(config, environ={})
    assert loaded.device.location == location
    assert str(loaded.aas.customer_id) == ONBOARDING_IDS["edge_recorder_aas_customer_id"]
    assert str(loaded.aas.product_id) == ONBOARDING_IDS["edge_recorder_aas_product_id"]
    assert loaded.aas.rest_url == "https://aas.example.invalid"
    assert loaded.aas.ws_url == "wss://aas.example.invalid"
    assert loaded.uplink.live_transport == "websocket"
    assert (loaded.vad.engine, loaded.vad.hangover_ms) == ("webrtc", 500)
    assert config.read_text().count("[aas]") == 1


def test_a_bad_device_id_is_refused_by_check(tmp_path: Path, env: dict[str, str]) -> None:
    """What the template's `validate:` relies on: a value the daemon refuses fails `check`
    with exit 78 naming the key, so the role never installs it."""
    config = render(tmp_path, env, edge_recorder_device_id="exam room 101") / "config.toml"
    done = check(config, env)
    assert done.returncode == EX_CONFIG
    assert "device.id: must be 1-64 characters of letters, digits, '_' or '-'" in done.stderr


# ---- (c) credentials: the unit's, from Vault, never logged, never the spool key ----


def test_the_role_manages_exactly_the_units_credentials_but_the_spool_key() -> None:
    managed = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["edge_recorder_credentials"]
    assert "spool-key" in unit_credentials()
    assert set(managed) == unit_credentials() - {"spool-key"}
    for path in ROLE.rglob("*"):
        if path.is_file():
            code = [line.split("#", 1)[0] for line in path.read_text().splitlines()]
            assert not re.search(r"spool[-_.]key", "\n".join(code)), path


def test_every_task_that_touches_a_credential_has_no_log() -> None:
    secret_names = {"credstore", "edge_recorder_credentials", "_secret", "_password"}
    for name in ("main.yml", "credentials.yml"):
        for task in tasks(name):
            text = yaml.safe_dump({k: v for k, v in task.items() if k != "name"})
            if name == "credentials.yml" or any(s in text for s in secret_names):
                assert task.get("no_log") is True, (name, task["name"])
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    assert not [key for key in defaults if key.endswith(("_secret", "_password"))]


def test_credentials_from_a_vault_file_are_written_0600_and_never_shown(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """The role's credentials.yml, run for real against a credential store in tmp_path that
    already holds a spool key: the secrets set in an encrypted vault file land 0600 root,
    the unset ones are not created, the spool key is not touched, no value appears in the
    output (-vvv --diff), a change asks for a restart and an unchanged second run does not."""
    store = tmp_path / "credstore"
    store.mkdir(mode=0o700)
    spool_key = store / "edge-recorder.spool-key"
    spool_key.write_bytes(b"K" * 32)
    spool_key.chmod(0o600)
    os.utime(spool_key, (1_000_000_000, 1_000_000_000))
    secrets = {
        "edge_recorder_aas_client_secret": "AAS-SECRET-3f9a",
        "edge_recorder_mqtt_password": "MQTT-PASSWORD-77c1",
        "edge_recorder_corti_client_secret": "",
    }
    vault, password = tmp_path / "vault.yml", tmp_path / "vault-pass"
    vault.write_text(yaml.safe_dump(secrets))
    password.write_text("not-a-real-vault-password\n")
    encrypt = subprocess.run(
        [BIN / "ansible-vault", "encrypt", "--vault-password-file", str(password), str(vault)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert encrypt.returncode == 0, encrypt.stderr
    assert vault.read_text().startswith("$ANSIBLE_VAULT;")
    playbook = probe_role(tmp_path, "credentials", ROLE / "tasks" / "credentials.yml")
    variables = {
        "edge_recorder_credstore_dir": str(store),
        "ansible_python_interpreter": sys.executable,
    }
    run = (
        "-vvv", "--diff", "-i", "localhost,", "-c", "local", "--vault-password-file", password,
        "-e", f"@{vault}", "-e", json.dumps(variables), playbook,
    )  # fmt: skip

    first = ansible_playbook(env, *run)
    written = {p.name: p for p in store.iterdir()}
    assert set(written) == {
        "edge-recorder.aas-client-secret",
        "edge-recorder.mqtt-password",
        "edge-recorder.spool-key",
    }
    assert written["edge-recorder.aas-client-secret"].read_text() == "AAS-SECRET-3f9a"
    assert written["edge-recorder.mqtt-password"].read_text() == "MQTT-PASSWORD-77c1"
    for path in written.values():
        mode = path.stat()
        assert (mode.st_mode & 0o777, mode.st_uid, mode.st_gid) == (0o600, 0, 0), path.name
    assert spool_key.read_bytes() == b"K" * 32
    assert spool_key.stat().st_mtime == 1_000_000_000
    output = first.stdout + first.stderr
    assert "AAS-SECRET" not in output and "MQTT-PASSWORD" not in output
    assert "RESTART-REQUESTED" in output

    second = ansible_playbook(env, *run)
    assert "changed=0" in second.stdout
    assert "RESTART-REQUESTED" not in second.stdout


# ---- (d) the apt source trusts the key the role installs, for this repository only ----


def test_the_sources_entry_is_signed_by_the_keyring_the_role_installs(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """The role writes the entry `make repo` prints (devtools/deb/repo.py), at the same paths
    as a device set up by hand: a second entry for the same URI with another Signed-By would
    stop apt ("Conflicting values set for option Signed-By")."""
    by_name = {task["name"]: task for task in tasks("main.yml")}
    key = by_name["Install the repository's public key"]["ansible.builtin.copy"]
    assert key["dest"] == "{{ edge_recorder_apt_keyring }}"
    assert (key["owner"], key["mode"]) == ("root", "0644")
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    keyring = defaults["edge_recorder_apt_keyring"]
    assert keyring == f"/etc/apt/keyrings/{repo.KEYRING}"
    assert (defaults["edge_recorder_apt_suite"], defaults["edge_recorder_apt_component"]) == (
        repo.SUITE,
        repo.COMPONENT,
    )
    role_vars = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
    assert (
        role_vars["edge_recorder_sources_file"] == "/etc/apt/sources.list.d/edge-recorder.sources"
    )

    sources = render(tmp_path, env) / "edge-recorder.sources"
    url = "https://apt.example.invalid/edge-recorder"
    entry = [line for line in sources.read_text().splitlines(True) if not line.startswith("#")]
    assert "".join(entry) == repo.sources_entry(url)
    assert f"Signed-By: {keyring}\n" in entry
    # apt itself reads the file (and downloads nothing: --print-uris).
    parts, state = tmp_path / "sources.list.d", tmp_path / "apt"
    parts.mkdir()
    (parts / "edge-recorder.sources").write_bytes(sources.read_bytes())
    for sub in ("lists/partial", "cache/archives/partial"):
        (state / sub).mkdir(parents=True)
    done = subprocess.run(
        [
            "apt-get", "update", "--print-uris",
            "-o", "Dir::Etc::SourceList=/dev/null", "-o", f"Dir::Etc::SourceParts={parts}",
            "-o", f"Dir::State::Lists={state / 'lists'}", "-o", f"Dir::Cache={state / 'cache'}",
            "-o", "Debug::NoLocking=1",
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"'{url}/dists/bookworm/InRelease'" in done.stdout
    assert f"'{url}/dists/bookworm/main/binary-" in done.stdout
