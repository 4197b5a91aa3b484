# Two set-up commands for a fresh machine: `make demo` (main job) and `make test` (the suite).
PY ?= python3
APT_PACKAGES = espeak-ng dataset-fashion-mnist

.PHONY: setup demo test bench

setup:
	@if command -v apt-get >/dev/null 2>&1; then \
	  missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi; \
	fi
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]"

demo: setup
	$(PY) -m spikeforge data speech-commands data/speech_commands
	$(PY) -m spikeforge train kws_fast

test: setup
	$(PY) -m pytest -q -n 2 tests

bench: setup
	$(PY) -m pip install -q -e ".[bench]" "torch==2.13.0"
	$(PY) benchmarks/run.py
