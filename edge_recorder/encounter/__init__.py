"""Encounters: the pure controller (state machine), its vocabulary of events and effects, and its
timers.
"""
