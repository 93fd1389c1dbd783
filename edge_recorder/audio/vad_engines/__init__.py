"""VAD engines behind `edge_recorder.audio.vad.VadEngine`: Silero (ONNX), WebRTC, energy."""
