# Thin wrapper over CMake. The two commands a newcomer needs:
#   make run    install dependencies, build, start the service
#   make test   install dependencies, build (warnings as errors), run the whole suite under ASan+UBSan
JOBS ?= $(shell nproc)
BUILD_RELEASE ?= build/release
BUILD_DEBUG ?= build/debug
BUILD_ASAN ?= build/asan
BUILD_TSAN ?= build/tsan
BUILD_FUZZ ?= build/fuzz
FUZZ_SECONDS ?= 600
CMAKE ?= cmake
CTEST_ARGS ?=

.PHONY: all deps release debug asan tsan run test test-release fuzz fuzz-build gpu-bundle svc-bundle clean

all: release

deps:
	@bash scripts/install-deps.sh

release:
	$(CMAKE) -S . -B $(BUILD_RELEASE) -DCMAKE_BUILD_TYPE=Release -DCANARY_WERROR=ON
	$(CMAKE) --build $(BUILD_RELEASE) -j $(JOBS)

debug:
	$(CMAKE) -S . -B $(BUILD_DEBUG) -DCMAKE_BUILD_TYPE=Debug
	$(CMAKE) --build $(BUILD_DEBUG) -j $(JOBS)

# clang so that the same build also carries the libFuzzer harnesses (smoke-run by ctest).
asan:
	CC=clang $(CMAKE) -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DCANARY_SANITIZE=ON -DCANARY_FUZZ=ON \
	  -DCANARY_WERROR=ON -DCANARY_CUDA=OFF
	$(CMAKE) --build $(BUILD_ASAN) -j $(JOBS)

tsan:
	$(CMAKE) -S . -B $(BUILD_TSAN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCANARY_TSAN=ON -DCANARY_CUDA=OFF
	$(CMAKE) --build $(BUILD_TSAN) -j $(JOBS)

run: deps release
	$(BUILD_RELEASE)/bin/canary-stt serve

# The whole suite: the release build must compile cleanly (gcc, -Werror, CUDA plugin included),
# then every test runs under ASan+UBSan (clang), fuzzers included for a short smoke run.
test: deps release asan
	cd $(BUILD_ASAN) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

test-release: release
	cd $(BUILD_RELEASE) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

fuzz-build:
	CC=clang $(CMAKE) -S . -B $(BUILD_FUZZ) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCANARY_SANITIZE=ON \
	  -DCANARY_FUZZ=ON -DCANARY_CUDA=OFF
	$(CMAKE) --build $(BUILD_FUZZ) -j $(JOBS)

# Runs every harness for FUZZ_SECONDS (default 10 minutes each) on a copy of its seed corpus.
fuzz: fuzz-build
	@bash scripts/run-fuzzers.sh $(BUILD_FUZZ)/fuzz $(FUZZ_SECONDS)

# What tests/cuda/engine-gpu-check.sh needs on a GPU machine without our libraries (checked here).
gpu-bundle: release
	bash tests/cuda/make-gpu-bundle.sh $(BUILD_RELEASE) build/gpu-bundle

# canary-stt itself for a GPU machine (tests/cuda/service-gpu-check.sh)
svc-bundle: release
	bash tests/cuda/make-service-bundle.sh $(BUILD_RELEASE) build/svc-bundle

clean:
	rm -rf build
