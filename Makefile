# Two commands for a newcomer: `make demo` and `make test`. Both set themselves up.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORE_STAMP := $(VENV)/.installed-core
STAMP := $(VENV)/.installed
TORCH_PIN := torch==2.13.0

.PHONY: demo test bench pictures setup clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch is pinned and installed first: an unpinned resolve into an empty env pulls a CUDA build
$(CORE_STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q $(TORCH_PIN)
	$(BIN)/pip install -q -e .
	touch $(CORE_STAMP)

# the test extras (ray, hypothesis, scikit-video, mediapipe for the real-face path) only for tests
$(STAMP): $(CORE_STAMP)
	$(BIN)/pip install -q $(TORCH_PIN) -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(CORE_STAMP)
	$(BIN)/dtgan demo -o demo_out

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python -m pytest benchmarks -q --benchmark-only --benchmark-columns=median,ops,rounds

# the README's pictures of the shipped model (docs/demo.png, docs/carphone_astronaut.png)
pictures: $(STAMP)
	$(BIN)/python scripts/readme_pictures.py

clean:
	rm -rf $(VENV) demo_out .pytest_cache .benchmarks
