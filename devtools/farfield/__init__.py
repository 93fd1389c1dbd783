"""Far-field evaluation (issue #23): does the microphone array make the service hear better?

A wall-mounted device hears the clinician and the patient from 1-3 m in a reverberant exam
room with fan/HVAC noise. This package builds that situation from generated material only
(espeak-ng talkers, pyroomacoustics rooms, synthetic noise; nothing downloaded), runs every
front-end candidate on it the way the pipeline would (120 ms chunks) and scores the outputs
against the dry speech, so each beamformer or suppressor is judged on the same scenes.

- `geometry`: the exam room, the device on its wall, each hardware profile's real mic layout.
- `noise`: diffuse HVAC noise (spherically isotropic coherence) and the fan at a ceiling vent.
- `scene`: two talkers taking turns, the room simulation, SNR mixing, the on-disk cache.
- `metrics`: SI-SDR, STOI, alignment, frame-level VAD F1 with the project's own engines.
- `candidates`: channel average, single channel, WebRTC NS, `edge_recorder.audio.array`.
- `evaluate`: the condition grid, the table and the goals; `plot`: the hand-written SVG.
- `oracle`: ceilings that know the answer (true steering and noise, least-squares filters
  fitted to the reference): scored beside the candidates, never counted as one.
- `calibrated`: a prototype, beams calibrated at the talkers' spots, and how far they carry
  when the talkers move (`bench_farfield --calibration`; optimistic: the talker's own speech).
- `calibration`: spot calibration as a device could do it (a loudspeaker's sweep → per-bin
  spatial statistics of the spot, the streaming `CalibratedBeam`); `calibration_eval`: its
  honest evaluation, fresh speech and noise, talkers moved 0-20 cm
  (`bench_farfield --calibration-honest`).

`benchmarks/bench_farfield.py` runs it; docs/audio.md describes it.
"""
