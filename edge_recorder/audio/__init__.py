"""On-device audio: capture sources, DSP, voice activity detection, encoders."""
