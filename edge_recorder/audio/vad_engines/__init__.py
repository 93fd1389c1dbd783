"""VAD engines behind `edge_recorder.audio.vad.VadEngine`.

Silero (numpy or onnxruntime backend), WebRTC, energy.
"""
