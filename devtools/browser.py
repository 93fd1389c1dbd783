"""The headless Chromium the browser tests and the dashboard benchmark drive through Playwright.

One place for the executable and its flags, so the tests, the benchmark and anything else in
devtools start the browser the same way. Debian's Chromium is used (not Playwright's download);
the machines running these have no outside network, so every flag that would make the browser
reach out on its own is turned off:

- `--no-sandbox`: the sandbox needs user namespaces, which containers and CI runners often deny.
- `--disable-gpu`: there is no GPU (or display); software rendering is enough for the pages.
- `--disable-background-networking`: no safe-browsing, variations or other background fetches.
- `--disable-component-update`: no component-updater downloads at start.
- `--disable-sync`: no Google account sync.
- `--no-first-run`: no first-run page or default-browser prompt.
"""

from __future__ import annotations

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS: tuple[str, ...] = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
