# tcplab developer entry points. Each target creates .venv on first use.
#   make demo   — set up and run the end-to-end demo
#   make test   — set up and run lint + the whole test suite
#   make screenshots — redraw the GUI screenshots in docs/images/ (needs xvfb, imagemagick)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test lint bench clean venv screenshots

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "tcplab needs Python 3.11 or newer")'
	@$(PYTHON) -m venv $(VENV) || { echo "Could not create a virtual environment: install it with 'sudo apt-get install python3-venv'"; exit 2; }
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

demo: $(STAMP)
	$(BIN)/tcplab demo --gui --out out/demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

screenshots: $(STAMP)
	$(BIN)/python scripts/screenshots.py --out docs/images

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache .hypothesis
