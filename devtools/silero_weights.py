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
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--out", type=Path, default=TARGET)
    args = parser.parse_args(argv)
    arrays = extract(args.source)
    with args.out.open("wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({size} bytes): {json.loads(str(arrays['meta']))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
