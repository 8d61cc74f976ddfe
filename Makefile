# Two commands on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	# The CPU torch wheel first: a bare `pip install torch` would pull GBs of CUDA packages.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e ".[dev,openvino]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/densemtl demo --output runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup --max-worker-restart=0 -q tests

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf runs data_cache
