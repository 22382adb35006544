# Each target sets itself up: `make demo` and `make test` work as the first command on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= runs/demo
# make bench DEVICE=cpu EPOCHS=10 AE_EPOCHS=1 THREADS=1 REPEAT=3 (empty: per-device defaults, see benchmarks/bench.py)
DEVICE ?= auto
EPOCHS ?=
AE_EPOCHS ?=
THREADS ?=
REPEAT ?=

.PHONY: install test demo lint bench clean

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

demo: install
	@echo "== conv-size: the exercise's special cases"
	$(BIN)/mle6 conv-size --input 64 --kernel 3 --padding valid
	$(BIN)/mle6 conv-size --input 64 --kernel 3 --padding same
	$(BIN)/mle6 conv-size --input 64 --kernel 3 --padding 1 --stride 2
	$(BIN)/mle6 conv-size --input 7 --kernel 3 --padding 1 --stride 2 --transposed --output-padding 1
	$(BIN)/mle6 conv-size --model cnn --verify
	@echo "== gauss-conv"
	mkdir -p $(DEMO_OUT)
	$(BIN)/mle6 gauss-conv --mu1 1 --sigma1 0.5 --mu2 -2 --sigma2 1.5 --plot $(DEMO_OUT)/gauss_conv.png
	@echo "== summary cnn"
	$(BIN)/mle6 summary cnn

# The seed's pipeline vs the project's commands, whole processes side by side; writes bench.json.
bench: install
	$(BIN)/python benchmarks/bench.py --device $(DEVICE) $(if $(EPOCHS),--epochs $(EPOCHS)) \
		$(if $(AE_EPOCHS),--ae-epochs $(AE_EPOCHS)) $(if $(THREADS),--threads $(THREADS)) $(if $(REPEAT),--repeat $(REPEAT))

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis *.egg-info
