# canary_script_test(NAME SCRIPT [TIMEOUT s] [LABELS ...] [FIXTURES ...]): a bash script test run
# with CANARY_BIN (the canary-stt binary), CANARY_SOURCE_DIR and CANARY_BINARY_DIR set.
function(canary_script_test name script)
  cmake_parse_arguments(S "" "TIMEOUT" "LABELS;FIXTURES" ${ARGN})
  add_test(NAME ${name} COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/${script})
  if(NOT S_TIMEOUT)
    set(S_TIMEOUT 300)
  endif()
  set_tests_properties(${name} PROPERTIES TIMEOUT ${S_TIMEOUT}
    ENVIRONMENT "CANARY_BIN=$<TARGET_FILE:canary-stt>;CANARY_SOURCE_DIR=${PROJECT_SOURCE_DIR};CANARY_BINARY_DIR=${PROJECT_BINARY_DIR}")
  if(S_LABELS)
    set_tests_properties(${name} PROPERTIES LABELS "${S_LABELS}")
  endif()
  if(S_FIXTURES)
    set_tests_properties(${name} PROPERTIES FIXTURES_REQUIRED "${S_FIXTURES}")
  endif()
endfunction()
