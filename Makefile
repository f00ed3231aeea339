# The two commands of the README. Each does its own set-up (scripts/bootstrap.sh, idempotent).
.PHONY: run test bootstrap bench clean lint scenarios scale
V := .venv/bin

bootstrap:
	@bash scripts/bootstrap.sh

run: bootstrap
	$(V)/v2g-bench run

test: bootstrap lint
	$(V)/python -m pytest -n 2 -p no:cacheprovider $(PYTEST_ARGS)

bench: bootstrap
	$(V)/python -m benchmarks

# The whole V2G scenario suite on the virtual lab (~6 min, time compressed); DUT=profiles/x.dut.toml to change the DUT
scenarios: bootstrap
	$(V)/python -m pytest -p no:cacheprovider tests/conformance/scenarios --run-slow -rs $(if $(DUT),--dut $(DUT)) $(PYTEST_ARGS)

# Aggregator scale (issue 17, minutes): 1,000-station aggregator scenario, 10,000 coupled EVs, 100,000 EVs on Dask
scale: bootstrap
	$(V)/python -m pytest -p no:cacheprovider tests/unit/scale tests/unit/scheduler --run-scale -m scale -rs $(PYTEST_ARGS)

clean:
	rm -rf reports/* .pytest_cache

lint: bootstrap
	$(V)/ruff check .
