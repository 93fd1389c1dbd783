# edge-recorder: every target bootstraps what it needs (Debian packages, .venv, the package).
# `make test` is what CI runs; `make lint` is part of it.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Debian packages the build, the tests and the daemon need (headers for the source-built wheels,
# the ALSA file plugin, a mosquitto broker for fleet tests, codecs and speech for fixtures).
APT_PACKAGES := gcc pkg-config python3-dev python3-venv libasound2-dev libasound2-plugins \
	alsa-utils libsystemd-dev systemd mosquitto mosquitto-clients sox espeak-ng libopus0 \
	ffmpeg openssl ca-certificates chromium fonts-dejavu-core reprepro gnupg \
	debootstrap systemd-container

LINT_PATHS := edge_recorder tests devtools $(wildcard benchmarks)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all bootstrap apt venv lock node test lint unit fmt docs proto bench soak demo clean distclean

all: test

## apt: install the Debian packages that are missing (one dpkg query when nothing is)
apt:
	@missing=$$(dpkg-query -W -f='$${Package} $${db:Status-Status}\n' $(APT_PACKAGES) 2>/dev/null \
		| awk '$$2 == "installed" {print $$1}' | sort | comm -13 - <(tr ' ' '\n' <<< "$(APT_PACKAGES)" | grep . | sort)); \
	if [ -n "$$missing" ]; then \
		echo "apt: installing $$missing"; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# Every Python package comes from the lock (uv.lock, exported to devtools/requirements/*.txt by
# `make lock`), pinned with its sha256 hashes: pip runs in hash-checking mode, without build
# isolation (setuptools/wheel are locked too), so nothing unpinned is ever installed. The venv is
# made anew whenever the lock changes, so it holds exactly the locked set and nothing left over.
LOCK_DIR := devtools/requirements
PIP_LOCKED := -m pip install -q --require-hashes --no-deps --no-build-isolation
# (the project itself is the one local source: it has no file to hash, and --no-deps keeps it
# from pulling anything in)

$(STAMP): pyproject.toml uv.lock $(wildcard $(LOCK_DIR)/*.txt)
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "edge-recorder needs Python >= 3.11")'
	$(PYTHON) -m venv --clear $(VENV)
	$(PY) -m pip install -q --require-hashes -r $(LOCK_DIR)/build.txt
	$(PY) $(PIP_LOCKED) -r $(LOCK_DIR)/dev.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@# The developer tools (devtools/: emulators, demo, fault proxy) are a second package that
	@# the device wheel leaves out; the dev venv imports it from the checkout.
	echo "$(CURDIR)" > "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/edge_recorder_devtools.pth"
	$(PY) -m pip check
	touch $@

## venv: .venv with the package (editable) and the dev tools, exactly as locked
venv: apt $(STAMP)

bootstrap: venv

## lock: re-resolve uv.lock from pyproject.toml's ranges (UPGRADE=1: newest allowed releases)
## and rewrite its exports in devtools/requirements/; commit all of them together
lock: bootstrap
	$(PY) devtools/lockfile.py $(if $(UPGRADE),--upgrade)

## lint: ruff, mypy and the import contracts (layers, no cycles, the device never imports devtools)
lint: bootstrap
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy edge_recorder devtools
	$(VENV)/bin/lint-imports --no-cache

fmt: bootstrap
	$(VENV)/bin/ruff check --fix $(LINT_PATHS)
	$(VENV)/bin/ruff format $(LINT_PATHS)

## node: Node.js (Debian's nodejs and npm, when there is no node) and the vendors' own clients
## for the contract tests, exactly as tests/contract/package-lock.json locks them (npm ci checks
## every package's integrity hash)
CONTRACT := tests/contract
NODE_STAMP := $(CONTRACT)/node_modules/.installed

$(NODE_STAMP): $(CONTRACT)/package.json $(CONTRACT)/package-lock.json
	@command -v node >/dev/null && command -v npm >/dev/null || { \
		echo "node: installing nodejs npm"; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm; }
	cd $(CONTRACT) && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	touch $@

# The dashboard's browser assets (uPlot), locked in devtools/assets/package-lock.json: `make assets`
# copies them into edge_recorder/dashboard/static/vendor/ (committed, so the wheel needs no npm and
# nothing loads from the internet at run time); a test checks the copy equals the locked package.
ASSETS := devtools/assets
ASSETS_STAMP := $(ASSETS)/node_modules/.installed

$(ASSETS_STAMP): $(ASSETS)/package.json $(ASSETS)/package-lock.json $(NODE_STAMP)
	cd $(ASSETS) && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	touch $@

node: $(NODE_STAMP) $(ASSETS_STAMP)

## assets: copy the locked uPlot build into the dashboard's static/vendor/
.PHONY: assets
assets: bootstrap node
	$(PY) -m devtools.assets.vendor

## test: bootstrap, lint, then the whole suite
test: lint node
	$(PY) -m pytest $(PYTEST_ARGS)

## docs: regenerate config.example.toml and the configuration reference in docs/configuration.md
docs: bootstrap
	$(PY) -m devtools.config_doc --write
	$(PY) -m devtools.panel_legend --write

## proto: regenerate the committed stubs in edge_recorder/_proto from protos/ (grpc_tools.protoc
## + mypy-protobuf, imports made package-relative); a test fails when they drift
proto: bootstrap
	$(PY) protos/generate.py --clean --out edge_recorder/_proto

## bench: every benchmarks/bench_*.py -> benchmarks/results.json + Markdown tables (CPU time)
bench: bootstrap
	$(PY) benchmarks/run.py $(BENCH_ARGS)

## soak: the real daemon through SOAK_HOURS (default 8) simulated hours of encounters at 40x
## (network cuts, MQTT pings, ctl polling) -> benchmarks/soak.json; fails unless RSS, fds,
## threads and log volume stay flat and every encounter reached the service
SOAK_HOURS ?= 8
soak: bootstrap
	$(PY) -m benchmarks.bench_soak --hours $(SOAK_HOURS) --out benchmarks/soak.json

## demo: bootstrap, then one scripted encounter end to end on simulated hardware: emulator,
## mosquitto, the real daemon with a speech WAV as its mic and mock buttons (DEMO_ARGS=--fast)
demo: bootstrap
	$(PY) -m edge_recorder demo $(DEMO_ARGS)

## dashboard: bootstrap, then the fleet dashboard (`fleet serve --demo`) with DEVICES simulated
## devices on a local mosquitto (default 50): open http://127.0.0.1:8470/
DEVICES ?= 50
.PHONY: dashboard
dashboard: bootstrap
	$(PY) -m edge_recorder fleet serve --demo $(DEVICES)

## deb: dist/edge-recorder_<version>_<arch>.deb: the device venv (exactly the lock, hash-checked,
## built with Debian's python3), the unit, sysusers.d/tmpfiles.d entries and the config as a
## conffile. ARCH defaults to this machine's; arm64 is built on an arm64 system or chroot.
## DEB_ARGS="--compression zstd": 2 s instead of 60 s to compress, a 40 % larger file.
.PHONY: deb
deb: bootstrap
	$(PY) -m devtools.deb.build --out dist $(if $(ARCH),--arch $(ARCH)) $(DEB_ARGS)

## repo: dist/repo/public, a signed apt repository (reprepro) with this version's .debs from dist/
## (make deb; an arm64 one from make arm64-check). REPO_KEY=<fingerprint in GNUPGHOME> signs with
## the site's archive key; without it a throwaway key is made once in dist/repo/gnupg.
VERSION = $(shell $(PYTHON) -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
.PHONY: repo
repo: deb
	$(PY) -m devtools.deb.repo --out dist/repo $(if $(REPO_KEY),--key $(REPO_KEY)) dist/edge-recorder_$(VERSION)_*.deb

## arm64-check: the arm64 .deb built in a Debian 12 arm64 root under qemu-user-static, then
## installed into a clean arm64 root and run there (--version, check, analyze), then tests/unit
## on arm64 in the build root; ~21 min with the build root kept (ARM64_WORK)
.PHONY: arm64-check
arm64-check:
	devtools/arm64-check.sh

unit: bootstrap
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info

distclean: clean
	rm -rf $(VENV)

## chaos: N seeded delivery chaos trials (random cuts, black holes, restarts, 500/429/401,
## forgotten recordings) against the emulator; prints "N passed, M failed" (N=50 SEED=1).
## DAEMON=1: the trials SIGKILL and restart the real daemon process instead.
.PHONY: chaos
N ?= 50
SEED ?= 1
chaos: bootstrap
	$(PY) -m tests.chaos.trials --n $(N) --seed $(SEED) $(if $(DAEMON),--daemon)
