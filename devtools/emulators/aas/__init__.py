"""A local emulator of the ambient services, for development, demos and every test."""
