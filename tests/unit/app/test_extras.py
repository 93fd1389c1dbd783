"""Which configured feature needs which optional extra, and the message that names it."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from edge_recorder.app.extras import EXTRA_MODULES, missing_extra_lines, needed_extras
from edge_recorder.config.loader import build_config

ROOT = Path(__file__).resolve().parents[3]


def test_the_default_configuration_needs_no_extra() -> None:
    assert needed_extras(build_config({}, environ={})) == []


def test_aws_services_and_the_onnxruntime_backend_need_their_extras() -> None:
    config = build_config(
        {"uplink": {"service": "aws-connect-health"}, "vad": {"silero_backend": "onnxruntime"}},
        environ={},
    )
    assert [(n.key, n.extra) for n in needed_extras(config)] == [
        ("vad.silero_backend", "onnx"),
        ("uplink.service", "aws"),
    ]
    webrtc = build_config({"vad": {"engine": "webrtc", "silero_backend": "onnxruntime"}}, {})
    assert needed_extras(webrtc) == []  # the backend only matters when Silero runs


def test_a_missing_module_is_named_with_the_extra_to_install() -> None:
    config = build_config({"uplink": {"service": "aws-healthscribe"}}, environ={})
    lines = missing_extra_lines(config, module_present=lambda name: name != "botocore")
    assert lines == [
        "uplink.service: 'aws-healthscribe' needs the optional extra 'aws', which is not "
        "installed (missing: botocore); install it with pip install 'edge-recorder[aws]' "
        "(or the package's extra-aws.txt lock export)"
    ]
    assert missing_extra_lines(config, module_present=lambda name: True) == []


def test_each_extra_provides_the_modules_we_look_for() -> None:
    """EXTRA_MODULES must name real extras, and modules that those extras' packages install."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    providers = metadata.packages_distributions()
    for extra, modules in EXTRA_MODULES.items():
        packages = {canonicalize_name(Requirement(r).name) for r in extras[extra]}
        for module in modules:
            assert {canonicalize_name(d) for d in providers[module]} & packages, (extra, module)
