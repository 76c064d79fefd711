# The two commands the README promises: `make serve` and `make test`. Everything else is a step of theirs.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
MODEL_DIR ?= predictor/model

.PHONY: venv tools model serve test test-fast lint audit bench docs clean

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml requirements/constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c requirements/constraints.txt -e '.[dev]'
	touch $@

tools: .tools/.installed
.tools/.installed: hack/install-tools.sh
	bash hack/install-tools.sh
	touch $@

# The default artifact: trained once, reused (delete the folder to retrain).
model: $(MODEL_DIR)/model-card.yaml
$(MODEL_DIR)/model-card.yaml: | venv
	$(PY) -m predictor.train --out $(MODEL_DIR)

serve: venv model
	$(PY) -m hack.serve --model-dir $(MODEL_DIR)

# Static checks. checkov, hadolint and shellcheck run inside the test suite (tests/deploy), next to what they check.
lint: venv
	$(VENV)/bin/ruff format --check contract transformer predictor batch quality tests hack
	$(VENV)/bin/ruff check contract transformer predictor batch quality tests hack
	$(VENV)/bin/bandit -q -c pyproject.toml -r contract transformer predictor batch quality hack --severity-level medium

# Needs PyPI's JSON API (vulnerability data); `--strict` makes an unauditable package an error, not a silent skip.
audit: venv
	$(VENV)/bin/pip-audit --strict --progress-spinner off -r requirements/constraints.txt --no-deps --disable-pip $(PIP_AUDIT_IGNORES)

test: venv tools lint
	$(PY) -m pytest -q tests

test-fast: venv
	$(PY) -m pytest -q tests/unit

# Online serving (interleaved rounds vs the stock KServe pair), then batch scoring, then outcomes + the quality join,
# then what the lake's background thread and its S3 and Blob uploads cost the request path (hack/bench_gil.py).
bench: venv tools model
	$(PY) -m hack.bench --model-dir $(MODEL_DIR)
	$(PY) -m hack.bench_batch --model-dir $(MODEL_DIR)
	$(PY) -m hack.bench_quality --model-dir $(MODEL_DIR)
	$(PY) -m hack.bench_gil --s3 --azure

docs: venv
	$(PY) -m contract.features --markdown > docs/features.md
	$(PY) -m transformer.cli > docs/configuration.md

clean:
	rm -rf $(VENV) .tools var bench-results
