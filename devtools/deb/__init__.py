"""Debian packaging of the device daemon (`python -m devtools.deb.build`, `make deb`)."""
