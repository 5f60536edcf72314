# Top-level entry points. `make run` and `make test` each do all set-up first.
BUILD ?= build
JOBS  ?= $(shell nproc)
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=Release
BUILD_ASAN ?= build-asan
BUILD_FUZZ ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS = $(basename $(notdir $(wildcard tests/fuzz/fuzz_*.c)))
CLANG := $(shell command -v clang 2>/dev/null)

.PHONY: all setup build test test-asan fuzz run clean

all: build

setup:
	@bash scripts/setup.sh

build: setup
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# Fuzz smoke tests (label fuzz) are part of the CTest run when clang is installed.
test: build
	@[ -n "$(CLANG)" ] || echo "test: clang not found, fuzz targets skipped"
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 600

# Unit, golden and integration tests built with ASan + UBSan (leak detection on), on the
# default CPU path only (the forced scalar/avx2 reruns would triple the golden time).
test-asan: setup
	@cmake -S . -B $(BUILD_ASAN) $(CMAKE_FLAGS) -DHEARTH_SANITIZE=ON -DHEARTH_FUZZ_TESTS=OFF >/dev/null
	@cmake --build $(BUILD_ASAN) -j $(JOBS)
	@cd $(BUILD_ASAN) && ctest --output-on-failure -j $(JOBS) --timeout 900 -L 'unit|golden|integration' -LE 'cpu-'

# Every libFuzzer target for FUZZ_SECONDS each (clang build in its own folder).
fuzz: setup
	@[ -n "$(CLANG)" ] || { echo "fuzz: clang not found"; exit 1; }
	@FUZZ_JOBS=$(JOBS) sh tests/fuzz/build.sh $(CURDIR) $(abspath $(BUILD_FUZZ)) $(CLANG)
	@mkdir -p $(BUILD_FUZZ)/logs; for t in $(FUZZ_TARGETS); do \
	  log=$(BUILD_FUZZ)/logs/$$t.log; \
	  if ! sh tests/fuzz/run.sh $(abspath $(BUILD_FUZZ)) $$t $(FUZZ_SECONDS) >$$log 2>&1; then \
	    tail -n 40 $$log; echo "fuzz: $$t FAILED (input saved in $(BUILD_FUZZ)/crashes, log $$log)"; exit 1; fi; \
	  echo "fuzz: $$t $(FUZZ_SECONDS) s: $$(grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added)' $$log | tr -s ' \n' ' ')"; \
	done

run: build
	@bash scripts/run-default.sh $(BUILD)/hearth

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_FUZZ)
