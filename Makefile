# Two commands do all set-up on a fresh machine (Python 3.11+ and a C compiler):
#   make demo   - classify the bundled sample captures with the bundled example policy
#   make test   - lint, type-check and run the whole test suite on both twins, and its compiled
#                 part on a debug build and (a subset) on a sanitizer build
# Each creates .venv when missing and (re)builds the extensions when their sources change.
# The parts of `make test` run alone too: lint, typecheck, test-compiled, test-pure, test-debug.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SOURCES := pyproject.toml setup.py $(wildcard classifier/*.pxd classifier/*/*.pxd classifier/csrc/*.h classifier/*/*.pyx classifier/*/*.h)

.PHONY: demo screenshot test lint typecheck test-compiled test-pure test-debug debug-build test-sanitize test-sanitize-subset annotate bench bench-tools bench-check bench-baseline fuzz tools clean cluster-test bench-scale

$(STAMP): $(SOURCES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,dask]'
	touch $@

# tshark is the outside oracle for decoding, tcpdump (with libpcap, whose compiler --filter
# uses) the oracle of --filter, Debian's chromium + chromium-driver render the HTML report in
# its browser tests, zsh parses the zsh completion and groff renders the man page; install them
# where missing and possible (root + apt).
tools:
	@command -v tshark >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tshark) >/dev/null 2>&1; } || \
	  echo "tshark not available: the Wireshark comparison tests will be skipped"
	@{ command -v zsh >/dev/null 2>&1 && command -v groff >/dev/null 2>&1; } || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zsh groff-base) >/dev/null 2>&1; } || \
	  echo "zsh/groff not available: the completion and man page tests will be skipped in part"
	@command -v tcpdump >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tcpdump libpcap0.8) >/dev/null 2>&1; } || \
	  echo "tcpdump not available: the --filter comparison with tcpdump will be skipped"
	@{ command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; } || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && (apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >/dev/null 2>&1; } || \
	  echo "chromium/chromium-driver not available: the HTML report's browser tests will be skipped"

demo: $(STAMP)
	$(BIN)/sgclassify validate examples/web-db.yaml
	$(BIN)/sgclassify check --policy examples/web-db.yaml --src 203.0.113.7 --dst 10.0.1.10 --proto tcp --dport 443
	mkdir -p out
	$(BIN)/sgclassify classify --policy examples/web-db.yaml pcaps/*.pcap \
	    --packets out/verdicts.csv --json out/summary.json --report out/report.html
	@echo "per-packet verdicts: out/verdicts.csv; summary: out/summary.json"
	@echo "HTML report: $(CURDIR)/out/report.html (open it in a browser; it works offline)"

# the README's picture of the demo report: a full page at 1280 CSS pixels, in headless Chromium
screenshot: demo tools
	$(BIN)/python -m tests.browser out/report.html docs/report-demo.png

PY_SOURCES := classifier tests benchmarks pcaps/make_samples.py examples/make_classbench_sample.py setup.py
DEBUG_TREE := build/debug

test: lint typecheck test-compiled test-pure test-debug test-sanitize-subset

lint: $(STAMP)
	$(BIN)/ruff check $(PY_SOURCES)
	$(BIN)/ruff format --check $(PY_SOURCES)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/cython-lint --max-line-length 100 classifier
	$(BIN)/codespell classifier tests benchmarks docs examples README.md ARCHITECTURE.md CHANGES.md

typecheck: $(STAMP)
	$(BIN)/mypy

# the suites run on every core (pytest-xdist); PYTEST_WORKERS= runs them in one process
PYTEST_WORKERS ?= -n auto

# the whole suite on the compiled modules (tests taking `twin_mode` run on both twins)
test-compiled: $(STAMP) tools
	$(BIN)/python -m pytest -q --benchmark-disable $(PYTEST_WORKERS)

# every other test again on the pure-Python twins
test-pure: $(STAMP) tools
	CLASSIFIER_NO_EXTENSIONS=1 $(BIN)/python -m pytest -q --benchmark-disable -m "not slow" \
	    $(PYTEST_WORKERS)

# the tests that drive the compiled modules, once more on extensions built with
# CLASSIFIER_DEBUG=1 (bounds checks, asserts in the C cores, -O0), from a copy of the package
# put first on the path: the reader and its streams, the lookup core, the engine and the fused
# pass, connection tracking, statistics, the scale-out's kernel and lanes, whole captures end
# to end, the fuzz targets' regressions, the benchmarks' kernels. (The command line, the
# analysis, the report, packaging and the real-cluster tests are Python over those same
# kernels: they run on the compiled build and on the pure twins.)
DEBUG_SUBSET := $(wildcard tests/test_pcap_*.py tests/test_acl*.py) tests/test_conntrack.py \
    tests/test_engine.py tests/test_fused.py tests/test_twins.py tests/test_stats.py \
    tests/test_timeline.py tests/test_scale_state.py tests/test_scale_blocks.py \
    tests/test_scale_exact.py tests/test_fuzz.py tests/test_bounds.py tests/test_conservation.py \
    tests/test_classify_captures.py tests/test_flows.py tests/test_end_to_end.py \
    tests/test_reference.py benchmarks
test-debug: $(STAMP) tools
	$(MAKE) --no-print-directory debug-build
	cd $(DEBUG_TREE) && PYTHONPATH=$(CURDIR)/$(DEBUG_TREE):$(CURDIR) $(CURDIR)/$(BIN)/python -m pytest \
	    -q --benchmark-disable -m "not slow" -p no:cacheprovider --rootdir $(CURDIR) \
	    -c $(CURDIR)/pyproject.toml $(PYTEST_WORKERS) $(addprefix $(CURDIR)/,$(DEBUG_SUBSET))

# a copy of the package in $(TREE) with its extensions built with $(BUILD_ENV): the debug
# build (asserts, bounds checks) by default, the sanitizer build for test-sanitize
TREE ?= $(DEBUG_TREE)
BUILD_ENV ?= CLASSIFIER_DEBUG=1
debug-build: $(STAMP)
	rm -rf $(TREE) && mkdir -p $(TREE)
	cp -r setup.py pyproject.toml README.md $(TREE)/
	cp -r classifier $(TREE)/
	find $(TREE)/classifier \( -name '*.so' -o -name '_*.c' -o -name __pycache__ \) -prune -exec rm -rf {} +
	cd $(TREE) && $(BUILD_ENV) $(CURDIR)/$(BIN)/python setup.py -q build_ext --inplace >/dev/null
	cd $(TREE) && $(if $(findstring SANITIZE,$(BUILD_ENV)),$(SANITIZER_RUNTIME)) \
	    PYTHONPATH=$(CURDIR)/$(TREE):$(CURDIR) $(CURDIR)/$(BIN)/python -c \
	    "import classifier.pcap._pcap as m; assert m.DEBUG_BUILD and '/$(TREE)/' in m.__file__"

# The suite on extensions built with ASan + UBSan (CLASSIFIER_SANITIZE=1, setup.py), from a
# copy of the package in build/sanitize, like test-debug. Python is not instrumented, so the
# sanitizer runtimes are preloaded (LD_PRELOAD of gcc's libasan and libubsan); leak checks are
# off (CPython keeps objects alive at exit on purpose); any report aborts the test process.
# test-sanitize runs the whole suite; test-sanitize-subset (part of `make test`) the tests that
# drive every compiled kernel: reader, streams, lookup core, engine, connection tracking.
SANITIZE_TREE := build/sanitize
SANITIZER_RUNTIME = LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
    ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
SANITIZE_SUBSET := tests/test_sanitize.py tests/test_pcap_unit.py tests/test_acl.py \
    tests/test_conntrack.py "tests/test_pcap_truncation.py::test_the_guard_alone_survives_sigbus" \
    "tests/test_pcap_filter.py::test_the_interpreters_agree_on_random_programs" \
    "tests/test_fuzz.py::test_kept_crashes_replay_clean"
SANITIZE_RUN = cd $(SANITIZE_TREE) && $(SANITIZER_RUNTIME) CLASSIFIER_EXPECT_SANITIZERS=1 PYTHONPATH=$(CURDIR)/$(SANITIZE_TREE):$(CURDIR) \
    $(CURDIR)/$(BIN)/python -m pytest -q --benchmark-disable -m "not slow" -p no:cacheprovider \
    --rootdir $(CURDIR) -c $(CURDIR)/pyproject.toml
test-sanitize: $(STAMP) tools
	$(MAKE) --no-print-directory debug-build TREE=$(SANITIZE_TREE) BUILD_ENV=CLASSIFIER_SANITIZE=1
	$(SANITIZE_RUN) $(CURDIR)/tests $(CURDIR)/benchmarks

test-sanitize-subset: $(STAMP) tools
	$(MAKE) --no-print-directory debug-build TREE=$(SANITIZE_TREE) BUILD_ENV=CLASSIFIER_SANITIZE=1
	$(SANITIZE_RUN) $(addprefix $(CURDIR)/,$(SANITIZE_SUBSET))

# Cython's HTML annotation beside each .pyx (git-ignored): where Python leaks into hot loops
annotate: $(STAMP)
	CLASSIFIER_ANNOTATE=1 $(BIN)/python setup.py -q build_ext --inplace
	@find classifier -name '_*.html' | sed 's/^/annotation: /'

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

# the longer Dask cluster run (a few minutes): the failures that take the contract's 10 s,
# more scenarios, a million packets in many blocks (make test runs the short cluster tests)
cluster-test: $(STAMP)
	SGCLASSIFY_CLUSTER_LONG=1 $(BIN)/python -m pytest -q tests/test_scale_cluster_long.py tests/test_scale_cluster.py

# classify --workers 2 against one process on a 5M-packet capture (benchmarks/RESULTS.md)
bench-scale: $(STAMP)
	$(BIN)/python benchmarks/bench_scale.py

# The CI gate (run by .ci/run after `make test`, about half a minute): the tracked ratios
# (end to end / decode only, core / rte_acl where dpdk-test-acl is present, import numpy /
# one-packet start-up) must stay within 25 % of benchmarks/baseline.json.
bench-check: $(STAMP)
	$(BIN)/python benchmarks/bench_check.py

# Refresh this processor's entry of benchmarks/baseline.json (on a quiet machine, after a
# deliberate change or on a new kind of machine; commit it with a line in
# benchmarks/RESULTS.md saying why).
bench-baseline: $(STAMP) bench-tools
	$(BIN)/python benchmarks/bench_check.py --write-baseline --rounds 9

# Coverage-guided fuzzing (atheris, tests/fuzz/): every target for FUZZ_SECONDS on the debug
# build (C asserts on every load of packet bytes), at low priority on one core. New corpus
# inputs and crashes go to build/fuzz/TARGET/; keep a crash as tests/fuzz/regressions/TARGET/.
FUZZ_SECONDS ?= 1800
FUZZ_TARGETS ?= pcap pcap-twins policy differential
FUZZ_TREE := build/fuzz-tree
fuzz: $(STAMP)
	$(MAKE) --no-print-directory debug-build TREE=$(FUZZ_TREE)
	for target in $(FUZZ_TARGETS); do \
	  cd $(CURDIR)/$(FUZZ_TREE) && PYTHONPATH=$(CURDIR)/$(FUZZ_TREE):$(CURDIR) nice -n 19 \
	    $(CURDIR)/$(BIN)/python -m tests.fuzz $$target --seconds $(FUZZ_SECONDS) --timeout 300 \
	    --jobs-dir $(CURDIR)/build/fuzz > $(CURDIR)/build/fuzz-$$target.log 2>&1; \
	  grep -E '^(Done|stat::average|==[0-9]+== ERROR|SUMMARY)' $(CURDIR)/build/fuzz-$$target.log; \
	  if grep -q 'ERROR: libFuzzer' $(CURDIR)/build/fuzz-$$target.log; then exit 1; fi; \
	done

clean:
	rm -rf $(VENV) build
	find classifier \( -name '*.so' -o -name '_*.c' -o -name '*.html' \) -delete
