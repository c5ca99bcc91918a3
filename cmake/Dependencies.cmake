# Third-party libraries, all from Debian 12 packages (scripts/install-deps.sh installs them).
# Each is an imported target: PkgConfig::NAME.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)

pkg_check_modules(CMOCKA  REQUIRED IMPORTED_TARGET cmocka)
pkg_check_modules(YAML    REQUIRED IMPORTED_TARGET yaml-0.1)
pkg_check_modules(JANSSON REQUIRED IMPORTED_TARGET jansson)
pkg_check_modules(ZLIB    REQUIRED IMPORTED_TARGET zlib)
pkg_check_modules(FFTW3F  REQUIRED IMPORTED_TARGET fftw3f)
pkg_check_modules(LIBAV   REQUIRED IMPORTED_TARGET libavformat libavcodec libswresample libavutil)
pkg_check_modules(OPENBLAS REQUIRED IMPORTED_TARGET openblas)
pkg_check_modules(MHD     REQUIRED IMPORTED_TARGET libmicrohttpd)
pkg_check_modules(SQLITE3 REQUIRED IMPORTED_TARGET sqlite3)
pkg_check_modules(CURL    REQUIRED IMPORTED_TARGET libcurl)
pkg_check_modules(CRYPTO  REQUIRED IMPORTED_TARGET libcrypto)

# CUDA: the backend is a plugin (libcanary_cuda.so) loaded with dlopen at run time, so the main
# binary never links CUDA and runs on machines without a GPU or driver.
set(CANARY_HAVE_NVCC OFF)
if(NOT CANARY_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(CANARY_HAVE_NVCC ON)
  elseif(CANARY_CUDA STREQUAL "ON")
    message(FATAL_ERROR "CANARY_CUDA=ON but no CUDA compiler (nvcc) was found")
  endif()
endif()
message(STATUS "canary: CUDA backend plugin: ${CANARY_HAVE_NVCC}")
