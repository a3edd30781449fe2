# Two entry points (see README): `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch 2.13.0: a CPU wheel on the project's machines; elsewhere pip picks the platform build.
TORCH ?= torch==2.13.0
EXAMPLE := examples/astronaut_qf10.jpg
DEMO_OUT := out/demo

.PHONY: setup demo test test-slow lint results benchmarks clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile src/fbcnn/mozjpeg/package-lock.json
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check "$(TORCH)"
	$(BIN)/pip install -q --disable-pip-version-check -e ".[torch,test,app,e2e,ray,encoders,int8]"
	# spandrel (tests of `fbcnn export --format spandrel`) without its torchvision: PyPI's is a
	# CUDA build that fails beside the CPU torch, and FBCNN does not use it
	$(BIN)/pip install -q --disable-pip-version-check --no-deps "spandrel==0.4.2"
	# MozJPEG (WebAssembly, run under node) for training data and per-encoder evaluation
	npm ci --silent --no-audit --no-fund --prefix src/fbcnn/mozjpeg
	# the package's bytecode, as pip compiles a wheel's at install (an editable install does
	# not, and where PYTHONDONTWRITEBYTECODE is set every `fbcnn restore` compiled the
	# package again); a source edited later is compiled again in memory, as before
	$(BIN)/python -m compileall -q src/fbcnn
	touch $@

demo: setup
	$(BIN)/fbcnn restore $(EXAMPLE) -o $(DEMO_OUT) --compare --overwrite
	@echo "restored image: $(DEMO_OUT)/astronaut_qf10.png"
	@echo "side by side (JPEG | restored): $(DEMO_OUT)/astronaut_qf10_compare.png"

test: setup
	$(BIN)/python -m pytest -q

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

lint: setup
	$(BIN)/ruff check src tests scripts

results: setup
	$(BIN)/python scripts/make_results.py

benchmarks: setup
	$(BIN)/python scripts/make_benchmarks.py

clean:
	rm -rf $(VENV) out build *.egg-info
