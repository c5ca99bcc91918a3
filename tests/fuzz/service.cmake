canary_fuzzer(fuzz_service_request SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_service_request.c LIBS cn_service)
