# The two set-up commands (see README): `make run` and `make test`.
EVENTS ?= 1000000
.PHONY: setup run test bench lint

setup:
	@scripts/setup.sh

run: setup
	.venv/bin/flinkdl run jobs/click_stream.yaml --max-events $(EVENTS) --summary runs/click-stream-summary.json

test: setup
	.venv/bin/python -m pytest -q

bench: setup
	.venv/bin/python bench/end_to_end.py

lint: setup
	.venv/bin/ruff check flinkdl tests bench jobs
