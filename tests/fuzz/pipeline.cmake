canary_fuzzer(fuzz_writers SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_writers.c LIBS cn_pipeline)
canary_fuzzer(fuzz_vad_chunker SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_vad_chunker.c LIBS cn_pipeline)
