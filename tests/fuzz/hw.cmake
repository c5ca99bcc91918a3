canary_fuzzer(fuzz_hw SOURCES ${PROJECT_SOURCE_DIR}/tests/hw/fuzz_hw.c LIBS cn_hw)
