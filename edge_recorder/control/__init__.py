"""The local control socket (`edge-recorder ctl`)."""
