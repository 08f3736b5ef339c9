# epiflow — two commands set everything up on a fresh Linux machine with Python 3.11:
#   make run    the embedded demo (snakemake --cores 2) -> results/report/reflection.html and predict.html
#   make test   the test suite (python -m pytest)
# Both create .venv with the pinned requirements first if needed, and are idempotent.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2

.PHONY: run test lint format clean
$(BIN)/snakemake: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements.txt
	touch $@

run: $(BIN)/snakemake
	$(BIN)/snakemake --cores $(CORES)

test: $(BIN)/snakemake
	$(BIN)/python -m pytest

# Python (ruff), the Snakefile and rules/ (snakefmt, snakemake --lint on the demo config; needs no results).
# .ci/run runs it before the tests: a finding fails CI.
lint: $(BIN)/snakemake
	$(BIN)/ruff check scripts tests benchmarks
	$(BIN)/ruff format --check scripts tests benchmarks
	$(BIN)/snakefmt --check Snakefile rules
	$(BIN)/snakemake --lint

format: $(BIN)/snakemake
	$(BIN)/ruff format scripts tests benchmarks
	$(BIN)/snakefmt Snakefile rules

clean:
	rm -rf results logs resources/demo resources/cache .snakemake
