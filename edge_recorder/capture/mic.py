"""The mic's health as the capture thread sees it: presence, errors, xruns, levels, the
dead-mic alarm and the "still talking" signal, and the events they post to the loop.

The capture thread updates the levels once per chunk while recording; the status is read a
few times a minute (ctl, STATUS=, MQTT). So the per-chunk update only swaps in the chunk's
`Meters` (one assignment) and `status` builds the `MicStatus` when someone asks: building a
pydantic model per chunk cost the thread ~60 us of a cold 120 ms period (issue #24). Both
snapshots are replaced whole, so `status` is safe to read from any thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from edge_recorder.audio.dsp import Meters
from edge_recorder.audio.vad import VadUpdate
from edge_recorder.encounter import events as ev
from edge_recorder.status import MicStatus
from edge_recorder.support.logs import get_logger

log = get_logger(__name__)

SPEECH_EVENT_EVERY_S = 1.0  # SpeechDetected is a "still talking" signal: once a second is plenty

Post = Callable[[ev.Event], None]


class MicHealth:
    """Written by the capture thread only; `status` may be read from anywhere."""

    def __init__(self, device: str, post: Post) -> None:
        self._post = post
        self._base = MicStatus(device=device)  # everything but the levels, replaced whole
        self._levels: tuple[Meters, int, bool] | None = None  # last meters, clipped, silent
        self._clipped = 0
        self.present = False
        self.silent = False
        self._last_speech_post = float("-inf")

    @property
    def status(self) -> MicStatus:
        base, levels = self._base, self._levels
        if levels is None:
            return base
        meters, clipped, silent = levels
        return base.model_copy(
            update={
                "level_dbfs": round(meters.rms_dbfs, 1),
                "peak_dbfs": round(meters.peak_dbfs, 1),
                "clipped_samples": clipped,
                "digital_silence": silent,
            }
        )

    def _set(self, **changes: Any) -> None:
        self._base = self._base.model_copy(update=changes)

    def lost(self, message: str, *, announce: bool) -> None:
        """No mic (with why); MicLost goes out if it was present or `announce` (first try)."""
        self._set(present=False, last_error=message)
        if self.present or announce:
            self._post(ev.MicLost(message))
        self.present = False

    def crashed(self) -> None:
        """The capture thread died: no mic from now on, whatever it was."""
        self._set(present=False, last_error="audio worker crashed; see the log")
        self._post(ev.MicLost("audio worker crashed"))
        self.present = False

    def back(self) -> None:
        self._set(present=True, last_error=None)
        if not self.present:
            self._post(ev.MicBack())
        self.present = True

    def xrun(self) -> None:
        self._set(xruns=self._base.xruns + 1)

    def meters(self, meters: Meters, constant_throughout: bool) -> None:
        """Levels to the status; the dead-mic alarm on change. A meter starts afresh at each
        open (and after each recording), so a raised alarm is kept while the new meter has
        seen nothing but one constant value (`constant_throughout`): a dead mic stays one
        alarm across the open, not a "signal back" and a new alarm a few seconds later."""
        silent = meters.digital_silence or (self.silent and constant_throughout)
        self._clipped += meters.clipped_in
        self._levels = (meters, self._clipped, silent)
        if silent != self.silent:
            self.silent = silent
            log.warning("digital silence" if silent else "mic signal back")
            self._post(ev.DigitalSilence(silent))

    def vad(self, vad: VadUpdate | None) -> None:
        """SpeechDetected, at most once per SPEECH_EVENT_EVERY_S while there is speech."""
        if vad is not None and (vad.in_speech or bool(vad.speech.any())):
            now = time.monotonic()
            if now - self._last_speech_post >= SPEECH_EVENT_EVERY_S:
                self._last_speech_post = now
                self._post(ev.SpeechDetected())
