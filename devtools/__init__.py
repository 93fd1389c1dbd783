"""Developer tools: the lock (lockfile.py) and its exports; never installed on a device."""
