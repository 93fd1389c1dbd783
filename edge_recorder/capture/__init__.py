"""Capture: the microphone sources (ALSA, WAV file, synthetic), found by name in one registry, and
the capture worker that reads them and feeds the audio pipeline.
"""
