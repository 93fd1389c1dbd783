"""Silero VAD v6 in plain numpy: the shipped network, without onnxruntime.

Why: onnxruntime costs the daemon ~29 MB of peak RSS (goal: 120 MB in all) to run a network
of ~310k parameters. This module runs the same graph as `silero_vad_16k_sequence.onnx`, from
its weights extracted to `silero_vad_16k.npz` by `devtools/silero_weights.py` (which
checks the graph is the one implemented here), and matches onnxruntime within float32
rounding (tests/unit/audio/test_silero_numpy.py).

The graph, per 576-sample input (the 512-sample window prefixed with 64 samples of context):
reflect-pad 128 each side; STFT as a conv with a Hann-windowed DFT basis (256 taps, hop 128),
frames 1-4 kept, magnitude of 129 bins; four 3-tap convs with ReLU (129->128, 128->64 stride
2, 64->64 stride 2, 64->128), leaving one 128-vector per window; an LSTM (hidden 128, ONNX
gate order i, o, f, c) that runs across the *windows* of the batch, carrying (h, c) between
calls; ReLU, a 1x1 conv to one logit, sigmoid. Everything but the LSTM is batched over the
windows with a few matmuls; the LSTM is a short Python loop (one matvec per window).
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_recorder.audio.vad_engines.silero import CONTEXT, WINDOW, with_context
from edge_recorder.support.logs import get_logger

log = get_logger(__name__)

WEIGHTS = "silero_vad_16k.npz"
HIDDEN = 128
F32 = npt.NDArray[np.float32]
_INPUT = CONTEXT + WINDOW  # 576
_PAD = 128  # reflect padding each side before the STFT
_FFT, _HOP = 256, 128
_FRAMES = 4  # STFT frames kept (1..4 of 0..4)


def load_weights() -> dict[str, Any]:
    """The packaged weights as float32 arrays, plus `meta` (source model and its sha256)."""
    path = resources.files("edge_recorder.audio") / "models" / WEIGHTS
    try:
        with path.open("rb") as f, np.load(f, allow_pickle=False) as npz:
            arrays: dict[str, Any] = {k: npz[k] for k in npz.files}
    except FileNotFoundError as exc:
        raise RuntimeError(f"Silero VAD weights {WEIGHTS} are missing from the install") from exc
    arrays["meta"] = json.loads(str(arrays["meta"]))
    return arrays


@functools.cache
def one_blas_thread() -> None:
    """Keep BLAS (OpenBLAS in numpy's wheels) to one thread, once per process.

    Why: these matmuls are tiny (a dozen rows); a second BLAS thread only adds hand-offs: on
    a busy 2-core machine it made a 12x256x258 matmul ~25x slower (850 us vs 31 us of CPU).
    One thread is the daemon's policy anyway (onnxruntime runs with one intra-op thread).
    Process-wide, best-effort: a failure is logged, not raised.
    """
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

        threadpool_limits(limits=1, user_api="blas")
    except Exception as exc:  # a speed setting must never stop the VAD
        log.warning("could not limit BLAS to one thread", error=str(exc))


def _frame_index() -> npt.NDArray[np.intp]:
    """Where each sample of the kept STFT frames comes from in the 576-sample input.

    Frame j (1..4) starts at j*128 in the reflect-padded signal (128 + 576 + 128 samples), so
    at j*128 - 128 in the input; the last frame runs past the end into the reflection
    (x[574], x[573], ...). One `take` with this index builds all frames of all windows.
    """
    src = (np.arange(1, _FRAMES + 1) * _HOP - _PAD)[:, None] + np.arange(_FFT)[None, :]
    return np.where(src < _INPUT, src, 2 * (_INPUT - 1) - src).astype(np.intp)


def _conv_taps(weight: F32) -> F32:
    """(out, in, 3) conv weight as (in, 3*out): one matmul gives every tap's product."""
    out, inp, k = weight.shape
    return np.ascontiguousarray(weight.transpose(1, 2, 0).reshape(inp, k * out), np.float32)


class SileroNumpyVad:
    """Speech probability per 32 ms window, state carried across calls (numpy backend)."""

    name = "silero"
    window = WINDOW
    backend = "numpy"

    def __init__(self, weights: dict[str, Any] | None = None) -> None:
        one_blas_thread()
        w = weights if weights is not None else load_weights()
        self.meta: dict[str, Any] = w["meta"]
        self._index = _frame_index()
        self._basis = np.ascontiguousarray(w["stft_basis"].T, np.float32)  # (256, 258)
        self._bins = self._basis.shape[1] // 2
        self._convs = [  # strides checked against the graph by the extractor
            (_conv_taps(w[f"enc{i}_w"]), w[f"enc{i}_b"].astype(np.float32), stride)
            for i, stride in enumerate((1, 2, 2, 1))
        ]
        # Sigmoid(x) = 0.5 * tanh(x / 2) + 0.5: halving the i, o, f rows (exact in float) lets
        # one tanh over all 512 pre-activations serve the three sigmoids and the cell input.
        scale = np.ones((4 * HIDDEN, 1), np.float32)
        scale[: 3 * HIDDEN] = 0.5
        bias = w["lstm_b"][: 4 * HIDDEN] + w["lstm_b"][4 * HIDDEN :]
        # Input and recurrent weights stacked: one (256,) @ (256, 512) matvec per window is
        # cheaper than a small-batch GEMM for the inputs plus a matvec for h.
        stacked = np.concatenate((w["lstm_w"], w["lstm_r"]), axis=1) * scale  # (512, 256)
        self._w_lstm = np.ascontiguousarray(stacked.T, np.float32)  # (256, 512)
        self._b = (bias * scale[:, 0]).astype(np.float32)
        self._out_w = w["out_w"].astype(np.float32)
        self._out_b = np.float32(w["out_b"][0])
        self.reset()

    def reset(self) -> None:
        self._h = np.zeros(HIDDEN, np.float32)
        self._c = np.zeros(HIDDEN, np.float32)
        self._context = np.zeros(CONTEXT, np.float32)

    @property
    def state(self) -> tuple[F32, F32]:
        """(h, c) shaped like the ONNX model's `hn`, `cn` (1, 1, 128)."""
        return self._h.reshape(1, 1, HIDDEN).copy(), self._c.reshape(1, 1, HIDDEN).copy()

    def probabilities(self, windows: F32) -> F32:
        if windows.shape[0] == 0:
            return np.zeros(0, np.float32)
        batch, self._context = with_context(windows, self._context)
        return self.forward(batch)

    def forward(self, batch: F32) -> F32:
        """The model on (n, 576) inputs (context already prefixed), updating (h, c)."""
        n = batch.shape[0]
        # Row t of `xh` is [features of window t, h before window t]; step t writes its h
        # into row t + 1, so the rows 1..n hold every window's output.
        xh = np.empty((n + 1, 2 * HIDDEN), np.float32)
        xh[:n, :HIDDEN] = self._encode(batch)
        xh[0, HIDDEN:] = self._h
        c = self._c
        w, b, hid, half = self._w_lstm, self._b, HIDDEN, np.float32(0.5)
        for t in range(n):
            act = np.tanh(xh[t] @ w + b)  # i, o, f pre-activations halved: see __init__
            sig = act[: 3 * hid] * half + half  # sigmoid(i), sigmoid(o), sigmoid(f)
            c = sig[2 * hid :] * c + sig[:hid] * act[3 * hid :]
            xh[t + 1, hid:] = sig[hid : 2 * hid] * np.tanh(c)
        hs = xh[1:, HIDDEN:]
        self._h, self._c = hs[-1].copy(), c
        logits: F32 = np.maximum(hs, np.float32(0)) @ self._out_w + self._out_b
        probs: F32 = np.tanh(logits * half) * half + half  # sigmoid, as for the gates
        return probs

    def _encode(self, batch: F32) -> F32:
        """STFT magnitude and the four convs, for all windows at once; (n, 576) -> (n, 128)."""
        n = batch.shape[0]
        frames = batch.take(self._index, axis=1).reshape(n * _FRAMES, _FFT)
        spec = frames @ self._basis  # (4n, 258): real then imaginary parts
        re, im = spec[:, : self._bins], spec[:, self._bins :]
        x: F32 = np.sqrt(re * re + im * im).reshape(n, _FRAMES, self._bins)  # channels last
        for taps, bias, stride in self._convs:
            x = _conv3(x, taps, bias, stride)
        return x.reshape(n, -1)  # one step of 128 channels left


def _conv3(x: F32, taps: F32, bias: F32, stride: int) -> F32:
    """3-tap conv, zero padding 1, stride 1 or 2, on channels-last (n, t, ch) input, then ReLU.

    z[:, t, k] = x[:, t] @ w[:, :, k] for every step and tap in one matmul (its row count,
    4 per window, suits BLAS far better than im2col's); output step j sums taps 0, 1, 2 at
    input steps j*stride - 1, j*stride, j*stride + 1 (outside the input = padding = 0).
    """
    n, steps, channels = x.shape
    out = bias.shape[0]
    if steps == 1:  # both neighbours are padding: only the centre tap contributes
        y: F32 = x.reshape(n, channels) @ taps[:, out : 2 * out] + bias
        return np.maximum(y, np.float32(0), out=y).reshape(n, 1, out)
    z: F32 = (x.reshape(n * steps, channels) @ taps).reshape(n, steps, 3, out)
    if stride == 1:
        y = z[:, :, 1] + bias
        y[:, 1:] += z[:, :-1, 0]
        y[:, :-1] += z[:, 1:, 2]
    else:  # stride 2 on an even number of steps
        y = z[:, 0::2, 1] + z[:, 1::2, 2] + bias
        y[:, 1:] += z[:, 1:-1:2, 0]
    return np.maximum(y, np.float32(0), out=y)
