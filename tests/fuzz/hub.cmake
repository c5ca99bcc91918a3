canary_fuzzer(fuzz_hub SOURCES ${PROJECT_SOURCE_DIR}/tests/hub/fuzz_hub.c LIBS cn_hub)
