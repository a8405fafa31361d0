# Two commands matter on a fresh machine: `make test` and `make demo` (see README.md).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test lint typecheck pytest demo schema bench lock clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python >= 3.11 is needed (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check reconciler tests benchmarks
	$(BIN)/ruff format --check reconciler tests benchmarks
	$(BIN)/ruff check reconciler/agent         # excluded above; checked with its own ruff.toml
	$(BIN)/ruff format --check reconciler/agent
	$(BIN)/lint-imports --no-cache   # the layering of docs/architecture.md

typecheck: $(STAMP)
	$(BIN)/mypy reconciler
	$(BIN)/vermin --target=3.9- --violations --eval-annotations --no-tips -q reconciler/agent

pytest: $(STAMP)
	$(BIN)/pytest

# The demo: real OSTree repo, fleet Git repo, `reconciler serve` and five agents on test
# sysroots; a push rolls out until one host falls back and the rollout halts (~15 s).
demo: $(STAMP)
	$(BIN)/python -m reconciler.demo

schema: $(STAMP)
	$(BIN)/reconciler schema

bench: $(STAMP)
	$(BIN)/python benchmarks/validate_large_fleet.py
	$(BIN)/python benchmarks/plan_large_fleet.py
	$(BIN)/python benchmarks/writeback_large_fleet.py
	$(BIN)/python benchmarks/report_ingestion.py
	$(BIN)/python benchmarks/push_latency.py
	$(BIN)/python benchmarks/connection_limits.py

lock: $(STAMP)
	( head -2 constraints.txt; $(BIN)/pip freeze --exclude-editable ) > constraints.txt.new && mv constraints.txt.new constraints.txt

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
