# Everyday commands. `make test` is what CI runs (.ci/run).
.PHONY: setup demo test lint bench

PY := .venv/bin/python

setup:
	@scripts/setup

demo: setup
	$(PY) -m devstack demo

test: setup
	.venv/bin/pytest -q

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

# make bench [N="10000 100000"] [REPS=3]: results go to bench/results/.
# At a distance (bench/netem.py): make bench N=100000 RTT="0 20 60" [BW="0 50"] (0 = no cap).
bench: setup
	@if [ -d bench ]; then $(PY) -m bench $(if $(N),--sizes $(N)) $(if $(REPS),--reps $(REPS)) \
	$(if $(RTT),--rtt-ms $(RTT)) $(if $(BW),--bandwidth-mbit $(BW)); \
	else echo "make bench: bench/ does not exist yet" >&2; exit 1; fi
