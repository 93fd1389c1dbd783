"""Pieces the emulators share: JSON request bodies, fault registries, a throw-away PKI."""
