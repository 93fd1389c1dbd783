"""Generated protobuf stubs (see protos/generate.py)."""
