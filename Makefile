# Two commands do all set-up on a fresh machine (Python 3.11+ and a C compiler):
#   make demo   - classify the bundled sample captures with the bundled example policy
#   make test   - lint, type-check and run the whole test suite on both twins
# Each creates .venv when missing and (re)builds the extensions when their sources change.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SOURCES := pyproject.toml setup.py $(wildcard classifier/*.pyx classifier/*.pxd classifier/csrc/*.h)

.PHONY: demo test bench bench-tools fuzz tools clean

$(STAMP): $(SOURCES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

# tshark is the outside oracle for decoding; install it where missing and possible (root + apt).
tools:
	@command -v tshark >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tshark) >/dev/null 2>&1; } || \
	  echo "tshark not available: the Wireshark comparison tests will be skipped"

demo: $(STAMP)
	$(BIN)/sgclassify validate examples/web-db.yaml
	$(BIN)/sgclassify check --policy examples/web-db.yaml --src 203.0.113.7 --dst 10.0.1.10 --proto tcp --dport 443
	mkdir -p out
	$(BIN)/sgclassify classify --policy examples/web-db.yaml pcaps/*.pcap \
	    --packets out/verdicts.csv --json out/summary.json
	@echo "per-packet verdicts: out/verdicts.csv; summary: out/summary.json"

test: $(STAMP) tools
	$(BIN)/ruff check classifier tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest -q --benchmark-disable
	CLASSIFIER_NO_EXTENSIONS=1 $(BIN)/python -m pytest -q --benchmark-disable -m "not slow"

# dpdk-test-acl (Debian's dpdk-dev) is the speed reference of benchmarks/classbench.py.
bench-tools:
	@command -v dpdk-test-acl >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dpdk-dev) >/dev/null 2>&1; } || \
	  echo "dpdk-test-acl not available: classbench.py will run without the DPDK columns"

bench: $(STAMP) bench-tools
	$(BIN)/python -m pytest -q benchmarks
	$(BIN)/python benchmarks/classbench.py
	$(BIN)/python benchmarks/pcap_throughput.py
	$(BIN)/python benchmarks/end_to_end.py
	$(BIN)/python benchmarks/lint_scale.py

fuzz: $(STAMP)
	$(BIN)/python tests/fuzz_pcap.py --seconds 600 --build-debug

clean:
	rm -rf $(VENV) build classifier/*.so classifier/_*.c classifier/*.html
