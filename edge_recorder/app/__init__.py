"""The application: the daemon that wires every stage together, its systemd glue (service) and the
interpreter of the encounter controller's effects (recorder).
"""
