# The two set-up commands (see README): `make run` and `make test`.
EVENTS ?= 1000000
.PHONY: setup run run-generator test test-deploy bench lint fuzz

setup:
	@scripts/setup.sh

# Kafka in and out: a local broker started for the run, the built-in stream produced into it, the job
# topic → DeepFM → predictions topic, the broker stopped (scripts/run_kafka.sh).
run: setup
	EVENTS=$(EVENTS) scripts/run_kafka.sh

run-generator: setup
	.venv/bin/flinkdl run jobs/click_stream.yaml --max-events $(EVENTS) --summary runs/click-stream-summary.json

test: setup
	.venv/bin/python -m pytest -q --durations=25

# docker-compose.yml for real (root; ~2 min): Docker engine, a debootstrapped image, the stack up with
# deploy/test/docker-compose.local.yml, events in, predictions out, Prometheus scraping; all removed after.
test-deploy: setup
	scripts/test_deploy.sh

bench: setup
	.venv/bin/python bench/end_to_end.py

# Ruff over the code, tests, benchmarks and job files; mypy over the package (settings in pyproject.toml).
lint: setup
	.venv/bin/ruff check flinkdl tests bench jobs
	.venv/bin/mypy flinkdl

# The parse/decode property tests with thousands of generated cases each (CI runs a few hundred).
fuzz: setup
	HYPOTHESIS_PROFILE=fuzz .venv/bin/python -m pytest -q --hypothesis-show-statistics \
		tests/features/test_parse_fuzz.py tests/sources/test_messages_fuzz.py
