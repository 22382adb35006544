# Each target sets itself up: `make demo` and `make test` work as the first command on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= runs/demo
# the demo trains on sign_data/ when it holds the arrays, else on the built-in synthetic hands
SIGNS_DATA ?= sign_data
SIGNS_SOURCE := $(if $(wildcard $(SIGNS_DATA)/X_train.npy),--data-dir $(SIGNS_DATA),--synthetic)
MNIST_DIR ?= data

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
	@echo "== train-cnn ($(SIGNS_SOURCE); epochs cut from 50 to keep the demo short)"
	$(BIN)/mle6 train-cnn $(SIGNS_SOURCE) --epochs 12 --out $(DEMO_OUT)/train-cnn --overwrite
	@echo "== sweep-lr ($(SIGNS_SOURCE))"
	$(BIN)/mle6 sweep-lr $(SIGNS_SOURCE) --epochs 6 --out $(DEMO_OUT)/sweep-lr --overwrite
	@echo "== MNIST autoencoders: train-ae (d=3,10, 2 epochs), latent-plot, pca-ae --compare"
	@if ls $(MNIST_DIR)/MNIST/raw/train-images-idx3-ubyte* >/dev/null 2>&1; then \
		src="--data-dir $(MNIST_DIR) --no-download"; \
	else \
		echo "(no MNIST in $(MNIST_DIR)/MNIST/raw/: using the built-in synthetic digits)"; src="--synthetic"; \
	fi; \
	set -x; \
	$(BIN)/mle6 train-ae $$src --latent-dims 3,10 --epochs 2 --out $(DEMO_OUT)/train-ae --overwrite && \
	$(BIN)/mle6 latent-plot --run $(DEMO_OUT)/train-ae --n 2000 --out $(DEMO_OUT)/latent.png && \
	$(BIN)/mle6 pca-ae $$src --latent-dim 10 --epochs 2 --compare $(DEMO_OUT)/train-ae --out $(DEMO_OUT)/pca-ae --overwrite

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis *.egg-info
