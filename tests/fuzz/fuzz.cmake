# PM_FUZZ: build the libFuzzer targets of tests/fuzz. Included from the
# top-level CMakeLists.txt before any library is defined, because every
# library the targets link must be compiled with coverage instrumentation
# (-fsanitize=fuzzer-no-link) for libFuzzer to see inside it.
#
# Clang only (libFuzzer is part of compiler-rt): with another compiler the
# option warns and does nothing, and the build stays an ordinary one. Use
# a build directory of its own (tests/fuzz/run.sh: build-fuzz):
#   CC=clang cmake -S . -B build-fuzz -DPM_FUZZ=ON -DPM_WERROR=OFF
option(PM_FUZZ "Build the libFuzzer targets in tests/fuzz (clang)" OFF)
set(PM_FUZZ_ACTIVE OFF)
if(PM_FUZZ)
  if(CMAKE_C_COMPILER_ID STREQUAL "Clang")
    set(PM_FUZZ_ACTIVE ON)
    # UBSan must stop, not print and go on, or libFuzzer never sees the
    # finding; -g so that reports name lines.
    add_compile_options(-fsanitize=fuzzer-no-link,address,undefined
                        -fno-sanitize-recover=undefined
                        -fno-omit-frame-pointer -g)
    add_link_options(-fsanitize=address,undefined)
  else()
    message(WARNING "PM_FUZZ needs clang (CC=clang), not "
                    "${CMAKE_C_COMPILER_ID}: no fuzz targets are built")
  endif()
endif()
