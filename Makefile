# Two commands matter on a fresh machine: `make test` and `make demo` (see README.md).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test lint typecheck pytest demo schema bench lock clean agent-pyz rpm

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
	$(BIN)/vermin --target=3.6- --violations --eval-annotations --no-tips -q reconciler/agent

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
	$(BIN)/python benchmarks/fleet_100k.py

lock: $(STAMP)
	( head -2 constraints.txt; $(BIN)/pip freeze --exclude-editable ) > constraints.txt.new && mv constraints.txt.new constraints.txt

# The agent as one file for the fleet's own OS: `platform-python reconciler-agent.pyz ...`.
# Only the standard library and reconciler/agent go in; the interpreter line is a default
# that the RPM's wrapper and the unit override with the release's own Python.
AGENT_PYZ := build/reconciler-agent.pyz
agent-pyz: $(AGENT_PYZ)

$(AGENT_PYZ): reconciler/__init__.py $(wildcard reconciler/agent/*.py)
	rm -rf build/agent-src && mkdir -p build/agent-src/reconciler/agent
	cp reconciler/__init__.py build/agent-src/reconciler/
	cp reconciler/agent/*.py build/agent-src/reconciler/agent/
	printf 'import sys\nfrom reconciler.agent.__main__ import main\nsys.exit(main())\n' > build/agent-src/__main__.py
	$(PYTHON) -m zipapp build/agent-src --output $@ --python '/usr/bin/env python3' --compress
	rm -rf build/agent-src

# The agent's RPM, built once per release (docs/agent-install.md): the EL8 one runs it with
# /usr/libexec/platform-python, the EL9 one (also for Fedora) with /usr/bin/python3. Into
# $(RPM_TOPDIR)/RPMS/noarch/. rpmbuild is Debian's `rpm` package here: its RPM database is
# empty, so the spec's BuildRequires (systemd's RPM macros, which the spec falls back on)
# cannot be checked, hence --nodeps.
RPM_TOPDIR    ?= $(CURDIR)/build/rpm
AGENT_VERSION  = $(shell sed -n 's/^AGENT_VERSION = "\(.*\)"$$/\1/p' reconciler/agent/__init__.py)
RPM_SOURCES   := deploy/systemd/reconciler-agent.service \
                 deploy/systemd/reconciler-agent-enroll.service deploy/rpm/agent.conf

rpm: $(AGENT_PYZ) deploy/rpm/reconciler-agent.spec $(RPM_SOURCES)
	rm -rf $(RPM_TOPDIR) && mkdir -p $(RPM_TOPDIR)/SOURCES
	cp $(AGENT_PYZ) $(RPM_TOPDIR)/SOURCES/reconciler-agent.pyz
	cp $(RPM_SOURCES) $(RPM_TOPDIR)/SOURCES/
	for release in 8 9; do \
	    rpmbuild -bb --nodeps --quiet --define "_topdir $(RPM_TOPDIR)" \
	        --define "rhel $$release" --define "dist .el$$release" \
	        --define "agent_version $(AGENT_VERSION)" \
	        deploy/rpm/reconciler-agent.spec || exit 1; \
	done
	ls $(RPM_TOPDIR)/RPMS/noarch/

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build
