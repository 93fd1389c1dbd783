"""edge-recorder: an exam-room audio recorder that never loses an encounter."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("edge-recorder")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
