"""`edge-recorder demo`: the whole product on one machine with no hardware (see runner.py)."""
