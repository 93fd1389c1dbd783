"""Local emulators of the services the device talks to (AAS, Corti, Dice, AWS): development and
tests only, never on a device.
"""
