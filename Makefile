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
# make bench DEVICE=cpu EPOCHS=10 AE_EPOCHS=1 THREADS=1 REPEAT=3 (empty: per-device defaults, see benchmarks/bench.py);
# its data: SIGNS_DATA and MNIST_DIR
DEVICE ?= auto
EPOCHS ?=
AE_EPOCHS ?=
THREADS ?=
REPEAT ?=

.PHONY: install test test-fast demo lint bench gpu-data gpu-wheels gpu-check docs docs-pages docs-serve docs-figures clean

install: $(STAMP)

# Reinstall only when the project's metadata changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The whole suite (what CI runs), on one pytest-xdist worker per core this process may use (nproc: at most
# 4, WORKERS= to choose; tests/conftest.py keeps the tests sharing a SLURM cluster or the browser on one).
WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ "$$n" -gt 4 ] && n=4; echo $$n)
XDIST = -n $(WORKERS) --dist loadgroup
test: install
	$(BIN)/python -m pytest -q $(XDIST)

# The inner loop while working: every test not marked slow (the long end-to-end ones); `make test` before a commit.
test-fast: install
	$(BIN)/python -m pytest -q $(XDIST) -m "not slow"

lint: install
	$(BIN)/ruff check mle6cli tests benchmarks docs
	$(BIN)/ruff format --check mle6cli tests benchmarks docs

# The whole exercise sheet in under 3 minutes: real data when both datasets are here, else synthetic.
demo: install
	$(BIN)/mle6 run-all --quick $(DEMO_DATA) --out $(DEMO_OUT) --overwrite
	@echo "Open $(DEMO_OUT)/report.html"

# The seed's pipeline vs the project's commands, whole processes side by side; writes bench.json.
bench: install
	$(BIN)/python benchmarks/bench.py --device $(DEVICE) --data-dir $(SIGNS_DATA) --mnist-root $(MNIST_DIR) \
		$(if $(EPOCHS),--epochs $(EPOCHS)) $(if $(AE_EPOCHS),--ae-epochs $(AE_EPOCHS)) $(if $(THREADS),--threads $(THREADS)) \
		$(if $(REPEAT),--repeat $(REPEAT)) $(if $(ONLY),--only $(ONLY))

# The data gpu-check reads (SIGNS_DATA and MNIST_DIR), copied into gpu_data/ (ignored): see benchmarks/gpu_data.py.
gpu-data:
	$(PYTHON) benchmarks/gpu_data.py --signs $(SIGNS_DATA) --mnist-root $(MNIST_DIR) --dest gpu_data

# The wheels gpu-check needs beyond the GPU box's torch and torchvision, downloaded into .whl/ (ignored) where
# PyPI can be reached, for the box's Python (GPU_PYTHON: default this machine's) on manylinux x86_64; the
# check unpacks the ones that bring a missing module itself: no pip, no network there.
GPU_PYTHON ?= $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
gpu-wheels:
	$(PYTHON) benchmarks/gpu_env.py wheels --python $(GPU_PYTHON) --dest .whl

# Every check that needs a GPU, on a one-GPU box with the box's python3 (no venv, no pip, no internet needed):
# graph tests, CUDA tests, torchrun tests, then the benchmark at the goals' sizes, in under 8 minutes;
# everything lands in $(OUT) (default gpu_out). docs/contributing.md, "Running the GPU check", and the header of
# benchmarks/gpu_check.sh. GPU_CHECK_DRY_RUN=1: a rehearsal on the CPU.
gpu-check:
	OUT="$(OUT)" bash benchmarks/gpu_check.sh

# The documentation site (docs/, mkdocs.yml) into site/; every link and page checked (--strict).
# (NO_MKDOCS_2_WARNING: Material's banner about its successor, printed on every build)
docs: docs-pages
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet
	@echo "Open site/index.html (the search needs a server: make docs-serve, or python3 -m http.server -d site)"

# The pages made from the code: the CLI reference (every --help) and the data-checks table.
docs-pages: install
	$(BIN)/python docs/gen_pages.py

# Rebuilds the site as pages change, at http://127.0.0.1:8000
docs-serve: docs-pages
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

# The docs' figures from a real run-all --quick (the data as for make demo), shrunk into docs/img/.
# One CPU thread: the run, and so the numbers the pages quote from it, come out the same each time.
DOCS_RUN ?= runs/docs
docs-figures: install
	MLE6_THREADS=1 $(BIN)/mle6 run-all --quick --device cpu $(DEMO_DATA) --out $(DOCS_RUN) --overwrite --quiet
	$(BIN)/python docs/figures.py $(DOCS_RUN) docs/img

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis *.egg-info site
