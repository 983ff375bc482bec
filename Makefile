# The two commands a newcomer needs (see README):
#   make run    set up .venv, install the package and the official artefacts, start the engine (embedded default)
#   make test   set up the same, then lint, type-check and run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test setup rules lint typecheck pytest bench clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==25.3
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP) rules

rules: $(STAMP)
	$(BIN)/einvoice rules install

run: setup
	$(BIN)/einvoice serve

lint: $(STAMP)
	$(BIN)/ruff check einvoice tests ubl_schemas
	$(BIN)/ruff format --check einvoice tests ubl_schemas

typecheck: $(STAMP)
	$(BIN)/mypy

# One pass: the fault drills stop and restart only the PostgreSQL cluster and RabbitMQ node they start
# for themselves (tests/integration/private_servers.py), never the servers the other tests use.
pytest: setup
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

bench: setup
	$(BIN)/einvoice bench validate

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache var
