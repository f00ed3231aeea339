# The two commands of the README. Each does its own set-up (scripts/bootstrap.sh, idempotent).
.PHONY: run test bootstrap bench clean lint
V := .venv/bin

bootstrap:
	@bash scripts/bootstrap.sh

run: bootstrap
	$(V)/v2g-bench run

test: bootstrap lint
	$(V)/python -m pytest -n 2 -p no:cacheprovider $(PYTEST_ARGS)

bench: bootstrap
	$(V)/python -m benchmarks

clean:
	rm -rf reports/* .pytest_cache

lint: bootstrap
	$(V)/ruff check .
