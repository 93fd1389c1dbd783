"""Google's WebRTC VAD (webrtcvad-wheels): a GMM on sub-band energies, binary per 30 ms."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import webrtcvad

WINDOW = 480  # 30 ms at 16 kHz, the longest frame WebRTC accepts
F32 = npt.NDArray[np.float32]


class WebRtcVad:
    name = "webrtc"
    window = WINDOW

    def __init__(self, aggressiveness: int = 2) -> None:
        self.aggressiveness = aggressiveness
        self._vad = webrtcvad.Vad(aggressiveness)

    def reset(self) -> None:
        self._vad = webrtcvad.Vad(self.aggressiveness)

    def probabilities(self, windows: F32) -> F32:
        pcm = np.clip(np.rint(windows * 32768.0), -32768, 32767).astype("<i2")
        return np.array(
            [1.0 if self._vad.is_speech(row.tobytes(), 16000) else 0.0 for row in pcm],
            np.float32,
        )
