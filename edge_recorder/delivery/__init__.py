"""Delivery: the engine that moves spooled audio to the service through an uplink (live, backlog
and tap loops), its pure retry policy and its persisted state.
"""
