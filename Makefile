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
	ffmpeg openssl ca-certificates

LINT_PATHS := edge_recorder tests $(wildcard benchmarks)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all bootstrap apt venv test lint unit fmt docs proto bench demo clean distclean

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

$(PY):
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "edge-recorder needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

## venv: .venv with the package (editable) and the dev tools
venv: apt $(STAMP)

bootstrap: venv

## lint: ruff and mypy on the package
lint: bootstrap
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy edge_recorder

fmt: bootstrap
	$(VENV)/bin/ruff check --fix $(LINT_PATHS)
	$(VENV)/bin/ruff format $(LINT_PATHS)

## test: bootstrap, lint, then the whole suite
test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

## docs: regenerate config.example.toml and the README's configuration reference
docs: bootstrap
	$(PY) -m edge_recorder.config_doc --write

## proto: regenerate the committed stubs in edge_recorder/_proto from protos/ (grpc_tools.protoc
## + mypy-protobuf, imports made package-relative); a test fails when they drift
proto: bootstrap
	$(PY) protos/generate.py --clean --out edge_recorder/_proto

## bench: every benchmarks/bench_*.py -> benchmarks/results.json + Markdown tables (CPU time)
bench: bootstrap
	$(PY) benchmarks/run.py $(BENCH_ARGS)

## demo: bootstrap, then one scripted encounter end to end on simulated hardware: emulator,
## mosquitto, the real daemon with a speech WAV as its mic and mock buttons (DEMO_ARGS=--fast)
demo: bootstrap
	$(PY) -m edge_recorder demo $(DEMO_ARGS)

unit: bootstrap
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache build *.egg-info

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
