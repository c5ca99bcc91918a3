canary_fuzzer(fuzz_audio_mem SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_audio_mem.c LIBS cn_audio)
