"""Silero VAD v6 run with onnxruntime alone (no torch), from the model shipped in the package.

We ship Silero's "sequence" export (`silero_vad_16k_sequence.onnx`, MIT, from the silero-vad
6.2.3 wheel): the same network as the streaming model, bit-exact per window, but it takes a
batch of consecutive 512-sample windows in one call and returns the LSTM state (`hn`, `cn`).
Each window is prefixed with the last 64 samples of the window before it (the model's
context), exactly as the streaming wrapper does. One call per ~100 ms chunk instead of one per
32 ms window cuts the onnxruntime call overhead, which dominates the cost.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import numpy as np
import numpy.typing as npt

MODEL = "silero_vad_16k_sequence.onnx"
WINDOW = 512
CONTEXT = 64
F32 = npt.NDArray[np.float32]


def model_bytes() -> bytes:
    """The packaged model; a clear error if the install is missing it."""
    path = resources.files("edge_recorder.audio") / "models" / MODEL
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise RuntimeError(f"Silero VAD model {MODEL} is missing from the install") from exc


def with_context(windows: F32, context: F32) -> tuple[F32, F32]:
    """The model's (n, 576) input: each window prefixed with the 64 samples before it
    (`context` for the first), and the context for the next call."""
    batch = np.empty((windows.shape[0], CONTEXT + WINDOW), np.float32)
    batch[:, CONTEXT:] = windows
    batch[0, :CONTEXT] = context
    batch[1:, :CONTEXT] = windows[:-1, -CONTEXT:]
    return batch, windows[-1, -CONTEXT:].astype(np.float32, copy=True)


class SileroVad:
    """Speech probability per 32 ms window, state carried across calls."""

    name = "silero"
    window = WINDOW
    backend = "onnxruntime"

    def __init__(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # one core; the capture thread needs the other
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session: Any = ort.InferenceSession(
            model_bytes(), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.reset()

    def reset(self) -> None:
        self._h = np.zeros((1, 1, 128), np.float32)
        self._c = np.zeros((1, 1, 128), np.float32)
        self._context = np.zeros(CONTEXT, np.float32)

    def probabilities(self, windows: F32) -> F32:
        if windows.shape[0] == 0:
            return np.zeros(0, np.float32)
        batch, self._context = with_context(windows, self._context)
        probs, self._h, self._c = self._session.run(
            ["speech_probs", "hn", "cn"], {"input": batch, "h": self._h, "c": self._c}
        )
        return np.asarray(probs, np.float32).reshape(-1)
