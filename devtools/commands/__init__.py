"""`edge-recorder` subcommands that exist only where the developer tools are importable
(`emulator`, `demo`).
"""
