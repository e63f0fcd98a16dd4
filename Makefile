# Two entry points: `make demo` and `make test`. Both create .venv when missing and
# install everything the project needs; nothing installed by hand is assumed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The lock: every package of the resolved set, pinned (Linux x86_64, CPython 3.11).
# `make lock` remakes it from pyproject.toml; every install here goes through it.
LOCK := constraints.txt

.PHONY: demo test lint install lock clean chromium

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first, pinned (the lock says 2.13.0+cpu), so nothing later pulls a CUDA build.
# setuptools and wheel come from the lock too, and build depthlens in the venv itself
# (--no-build-isolation), so no unpinned build backend is fetched either.
$(STAMP): $(PY) pyproject.toml $(LOCK)
	$(PY) -m pip install -q --upgrade pip setuptools wheel -c $(LOCK)
	$(PY) -m pip install -q torch==2.13.0 -c $(LOCK)
	$(PY) -m pip install -q --no-build-isolation -e '.[dev]' -c $(LOCK)
	touch $(STAMP)

# Re-resolve pyproject.toml's bounds from scratch in a throwaway venv (never .venv) and
# write the result, sorted, to $(LOCK). Commit the new lock; `make install` then follows it.
lock:
	@set -eu; tmp=$$(mktemp -d /tmp/depthlens-lock.XXXXXX); trap 'rm -rf "$$tmp"' EXIT; \
	$(PYTHON) -c 'import platform, sys; sys.exit(sys.version_info[:2] != (3, 11) \
	  or platform.machine() != "x86_64")' \
	  || { echo "lock: the lock is for CPython 3.11 on x86_64; use PYTHON=python3.11" >&2; exit 1; }; \
	echo "resolving in $$tmp/venv ..."; \
	$(PYTHON) -m venv "$$tmp/venv"; \
	"$$tmp/venv/bin/pip" install -q --upgrade pip setuptools wheel; \
	"$$tmp/venv/bin/pip" install -q torch==2.13.0; \
	"$$tmp/venv/bin/pip" install -q --no-build-isolation -e '.[dev]'; \
	"$$tmp/venv/bin/pip" freeze --all --exclude-editable --exclude depthlens \
	  | LC_ALL=C sort -f -t= -k1,1 > "$$tmp/pins"; \
	if grep -Eiq '^(nvidia-|torchvision|timm|triton)' "$$tmp/pins"; then \
	  echo "lock: a CUDA/vision package was resolved; refusing to write $(LOCK)" >&2; exit 1; fi; \
	grep -qx 'torch==2.13.0+cpu' "$$tmp/pins" \
	  || { echo "lock: torch did not resolve to the local 2.13.0+cpu wheel" >&2; exit 1; }; \
	{ echo "# Lock file: the exact set that make install / make demo / make test install"; \
	  echo "# (pip install -c $(LOCK) ...). Made by \`make lock\` on $$(uname -s) $$(uname -m),"; \
	  echo "# $$("$$tmp/venv/bin/python" -V): a fresh venv, pip/setuptools/wheel upgraded, then"; \
	  echo "# torch==2.13.0 (the local CPU wheel), then -e '.[dev]' from pyproject.toml, then"; \
	  echo "# pip freeze --all, minus depthlens itself, sorted. Do not edit by hand: change"; \
	  echo "# pyproject.toml's bounds and run make lock again."; \
	  cat "$$tmp/pins"; } > $(LOCK).new; \
	mv $(LOCK).new $(LOCK); \
	echo "wrote $(LOCK): $$(grep -vc '^#' $(LOCK)) packages"

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/depthlens demo -o demo-output

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy

# tests/serve/test_page.py drives Debian's Chromium through playwright (playwright's own
# browser download is never used). Without it, and without root's apt-get to install it,
# that test skips with a reason; every other test runs as before.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium) \
	      || echo "note: installing chromium failed; the browser test will be skipped"; \
	  else \
	    echo "note: chromium is missing and cannot be installed here (needs apt-get as root);" \
	      "the browser test will be skipped"; \
	  fi; }

test: $(STAMP) lint chromium
	$(VENV)/bin/python -m pytest -q

clean:
	rm -rf $(VENV) demo-output .pytest_cache .mypy_cache .ruff_cache
