# Two entry points: `make demo` runs the nightly job on the demo warehouse,
# `make test` runs the whole test suite. Both create .venv on first use.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
AIRFLOW_ENV := AIRFLOW_HOME=$(CURDIR)/airflow_home \
	AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags \
	AIRFLOW__CORE__PLUGINS_FOLDER=$(CURDIR)/plugins \
	AIRFLOW__CORE__LOAD_EXAMPLES=False \
	AIRFLOW__CORE__UNIT_TEST_MODE=False
DEMO := $(CURDIR)/demo
DEMO_ENV := METAGUARD_WAREHOUSE=$(DEMO)/warehouse METAGUARD_OUTPUT=$(DEMO)/output \
	METAGUARD_MODELS=$(DEMO)/models
DEMO_START := 2024-01-01
DEMO_DAYS := 30
DEMO_TRAIN_END := 2024-01-14
DEMO_DATE := 2024-01-30

.PHONY: install demo test bench suite lint clean

$(STAMP): requirements.txt constraints.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), \
		"MetaGuard needs Python 3.11, found " + sys.version.split()[0]'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -c constraints.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(DEMO_ENV) $(BIN)/metaguard simulate --out $(DEMO)/warehouse \
		--days $(DEMO_DAYS) --start $(DEMO_START)
	$(DEMO_ENV) $(BIN)/metaguard train --start $(DEMO_START) --end $(DEMO_TRAIN_END)
	$(AIRFLOW_ENV) $(BIN)/airflow db migrate > /dev/null
	$(AIRFLOW_ENV) $(DEMO_ENV) $(BIN)/airflow dags test metaguard_nightly_scoring \
		$(DEMO_DATE) > $(DEMO)/airflow-dags-test.log 2>&1 \
		|| (tail -40 $(DEMO)/airflow-dags-test.log; exit 1)
	@echo "Airflow log: $(DEMO)/airflow-dags-test.log"
	@echo "Report:      $(DEMO)/output/risk_reports/dt=$(DEMO_DATE)/part-00000.parquet"
	@echo "Summary:     $(DEMO)/output/runs/dt=$(DEMO_DATE)/summary.json"
	@cat $(DEMO)/output/runs/dt=$(DEMO_DATE)/summary.json

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/metaguard bench --rows 1000000 10000000 --write-docs

# ruff is a development tool, installed into the venv on first use.
lint: $(STAMP)
	test -x $(BIN)/ruff || $(BIN)/python -m pip install --quiet ruff==0.17.6
	$(BIN)/ruff format --check plugins dags tests
	$(BIN)/ruff check plugins dags tests

suite: $(STAMP)
	$(BIN)/metaguard suite --write

clean:
	rm -rf $(DEMO) airflow_home .pytest_cache
