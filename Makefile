# Each target sets itself up: `make demo` and `make test` work as the first command on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= runs/demo
SIGNS_DATA ?= sign_data
MNIST_DIR ?= data
DEMO_DATA := $(if $(and $(wildcard $(SIGNS_DATA)/X_train.npy),$(wildcard $(MNIST_DIR)/MNIST/raw/train-images-idx3-ubyte*)),\
	--data-dir $(SIGNS_DATA) --mnist-dir $(MNIST_DIR) --no-download,--synthetic)

.PHONY: install test demo lint clean

install: $(STAMP)

# Reinstall only when the project's metadata changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check mle6cli tests
	$(BIN)/ruff format --check mle6cli tests

# The whole exercise sheet in under 3 minutes: real data when both datasets are here, else synthetic.
demo: install
	$(BIN)/mle6 run-all --quick $(DEMO_DATA) --out $(DEMO_OUT) --overwrite
	@echo "Open $(DEMO_OUT)/report.html"

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis *.egg-info
