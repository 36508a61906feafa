# The two front-door commands (`make run`, `make test`) bootstrap everything they need.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
PEERS_STAMP := $(VENV)/.peers-installed

.PHONY: run test bench lint screenshots clean venv

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $$(scripts/python_for_venv.sh) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	@rm -f $(VENV)/.installed-*; touch $@

venv: $(STAMP)
	@scripts/ensure_debian_libs.sh

run: venv
	@scripts/ensure_debian_libs.sh --x11
	$(BIN)/depthdesk --demo

test: venv $(PEERS_STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q
	$(BIN)/lint-imports
	$(BIN)/ruff check app feeds widgets tests benchmarks

# hftbacktest (the converter raced by bench_feeds/bench_replay) declares numpy<2.3 but its converter
# runs on our pinned numpy; its plotting extras are not needed. Install it beside, without its pins.
$(PEERS_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q --no-deps hftbacktest==2.4.4 numba==0.68.1 llvmlite==0.50.0 \
		polars==2.1.0 polars-runtime-32==2.1.0
	touch $@

bench: venv $(PEERS_STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/depthdesk bench

screenshots: venv
	@scripts/ensure_debian_libs.sh
	QT_QPA_PLATFORM=offscreen $(BIN)/python scripts/screenshots.py
	QT_QPA_PLATFORM=offscreen $(BIN)/python scripts/chart_screenshots.py

lint: venv
	$(BIN)/ruff check app feeds widgets tests benchmarks
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache
