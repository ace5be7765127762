# Two commands for a newcomer: `make demo` and `make test`. Both set themselves up.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORE_STAMP := $(VENV)/.installed-core
DEMO_STAMP := $(VENV)/.installed-demo
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

# the real-face demo: MediaPipe (faces) and the packages that ship carphone and the astronaut
$(DEMO_STAMP): $(CORE_STAMP)
	$(BIN)/pip install -q $(TORCH_PIN) -e '.[faces,demo]'
	touch $(DEMO_STAMP)

# the test extras (ray, hypothesis, scikit-video, mediapipe for the real-face path) only for tests
$(STAMP): $(CORE_STAMP)
	$(BIN)/pip install -q $(TORCH_PIN) -e '.[test]'
	touch $(STAMP)

# onnxruntime-node for the test that runs the Node.js example (skipped where npm is missing);
# its install script would fetch CUDA files from elsewhere: the CPU build needs none
NODE_STAMP := examples/node/node_modules/.installed
$(NODE_STAMP): examples/node/package.json
	@if command -v npm >/dev/null 2>&1; then \
	  (cd examples/node && ONNXRUNTIME_NODE_INSTALL_CUDA=skip npm install --no-audit --no-fund \
	     --no-package-lock --silent && touch node_modules/.installed) \
	  || echo "npm install failed: the Node.js example test will be skipped"; \
	else echo "npm not found: the Node.js example test will be skipped"; fi

setup: $(STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/dtgan demo -o demo_out

test: $(STAMP) $(NODE_STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python -m pytest benchmarks -q --benchmark-only --benchmark-columns=median,ops,rounds

# the README's pictures of the shipped model (docs/demo.png, docs/carphone_astronaut.png,
# docs/carphone_astronaut_compare.jpg and its GIF, which git ignores, docs/detail_closeup.jpg,
# docs/head_motion.jpg, docs/hair_motion.jpg)
pictures: $(STAMP)
	$(BIN)/python scripts/readme_pictures.py
	$(BIN)/python scripts/readme_pictures.py fullsize detail head hair --gif

clean:
	rm -rf $(VENV) demo_out .pytest_cache .benchmarks
