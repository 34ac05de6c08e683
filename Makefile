# clsviz — two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.clsviz-installed
PYTEST_ARGS ?=
# Test oracle only (PaddleClas's own networks for tests/test_zoo_oracle.py): installed with
# --no-deps, because its pinned requirements conflict with Paddle 3; clsviz never imports it.
# Keep in step with the `oracle` extra in pyproject.toml (tests/test_packaging.py checks).
ORACLE := paddleclas==2.6.0

.PHONY: help install demo test test-fast browser lab app notebooks-html bench clean

help:
	@echo "make demo            export the bundled demo model, run all three modes, write out/demo/report.html"
	@echo "make test            the whole test suite (real Paddle engines, notebooks, headless Chromium)"
	@echo "make lab             JupyterLab on notebooks/"
	@echo "make app             the Explorer notebook as a clean app page"
	@echo "make notebooks-html  execute the notebooks and render them to out/notebooks-html/"
	@echo "make bench           the latency lab (out/bench/)"

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,notebooks,ray,runtimes,clients]'
	$(PY) -m pip install -q --no-deps '$(ORACLE)'
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (clsviz)" >/dev/null
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m clsviz demo --out out/demo

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow and not browser" $(PYTEST_ARGS)

browser: $(STAMP)
	$(PY) -m pytest -m browser $(PYTEST_ARGS)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

app: $(STAMP)
	$(VENV)/bin/voila notebooks/04_check_a_checkpoint.ipynb --theme=light --Voila.ip=127.0.0.1 --port=8866

notebooks-html: $(STAMP)
	mkdir -p out/notebooks-html
	$(VENV)/bin/jupyter nbconvert --to html --execute --ExecutePreprocessor.timeout=900 \
		--ExecutePreprocessor.kernel_name=python3 --output-dir out/notebooks-html notebooks/*.ipynb

bench: $(STAMP)
	$(PY) -m clsviz bench --out out/bench

clean:
	rm -rf out test-artifacts .pytest_cache
