# Compiler warnings for all of our C code. CI builds with CANARY_WERROR=ON.
set(CANARY_WARNINGS
  -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes
  -Wpointer-arith -Wvla -Wundef -Wno-unused-parameter)
if(CMAKE_C_COMPILER_ID STREQUAL "GNU")
  # Bounded messages are truncated on purpose (error texts, log lines).
  list(APPEND CANARY_WARNINGS -Wno-format-truncation)
endif()
if(CANARY_WERROR)
  list(APPEND CANARY_WARNINGS -Werror)
endif()

# canary_module(NAME SOURCES... [DEPS ...] [PUBLIC_LIBS ...])
# Declares one module: a static library whose private headers live beside its sources and which
# sees include/ and src/ (modules include each other as "base/error.h", "nemo/tar.h", ...).
function(canary_module name)
  cmake_parse_arguments(M "" "" "SOURCES;DEPS;LIBS" ${ARGN})
  add_library(${name} STATIC ${M_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/src)
  target_compile_options(${name} PRIVATE ${CANARY_WARNINGS})
  target_link_libraries(${name} PUBLIC ${M_DEPS} ${M_LIBS})
endfunction()

# canary_test(NAME SOURCES... LIBS ...): a cmocka unit test registered in ctest.
function(canary_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_compile_options(${name} PRIVATE ${CANARY_WARNINGS} -Wno-missing-prototypes)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests)
  target_link_libraries(${name} PRIVATE ${T_LIBS} PkgConfig::CMOCKA)
  add_test(NAME ${name} COMMAND ${name})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  set_tests_properties(${name} PROPERTIES TIMEOUT ${T_TIMEOUT}
    ENVIRONMENT "CANARY_SOURCE_DIR=${PROJECT_SOURCE_DIR};CANARY_BINARY_DIR=${PROJECT_BINARY_DIR}")
  if(T_LABELS)
    set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}")
  endif()
endfunction()

# A module whose issue has not landed yet: an empty interface library, so that the dependency
# graph is complete from day one. Replace with canary_module() when the module gets sources.
function(canary_module_pending name)
  cmake_parse_arguments(M "" "" "DEPS" ${ARGN})
  add_library(${name} INTERFACE)
  target_link_libraries(${name} INTERFACE ${M_DEPS})
endfunction()
