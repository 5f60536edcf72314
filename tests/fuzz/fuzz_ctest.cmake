# Fuzz smoke tests in the normal build (label "fuzz"): when clang is found, the test
# fuzz/build configures and builds the fuzz variant in <build>/fuzz, then each target
# runs for HEARTH_FUZZ_SECONDS under ASan + UBSan. Without clang there are no fuzz tests
# (the Makefile says so in one line).
find_program(HEARTH_CLANG NAMES clang clang-18 clang-17 clang-16 clang-15 clang-14)
set(HEARTH_FUZZ_SECONDS 3 CACHE STRING "Seconds each fuzz target runs under CTest")
if(HEARTH_CLANG)
  set(fuzz_dir ${CMAKE_BINARY_DIR}/fuzz)
  add_test(NAME fuzz/build
           COMMAND sh ${CMAKE_SOURCE_DIR}/tests/fuzz/build.sh ${CMAKE_SOURCE_DIR} ${fuzz_dir} ${HEARTH_CLANG}
                   ${HEARTH_FIXTURES})
  set_tests_properties(fuzz/build PROPERTIES FIXTURES_SETUP hearth_fuzz_bins LABELS fuzz TIMEOUT 1200)
  file(GLOB fuzz_sources CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_*.c)
  foreach(src ${fuzz_sources})
    get_filename_component(name ${src} NAME_WE)
    add_test(NAME fuzz/${name}
             COMMAND sh ${CMAKE_SOURCE_DIR}/tests/fuzz/run.sh ${fuzz_dir} ${name} ${HEARTH_FUZZ_SECONDS})
    set_tests_properties(fuzz/${name} PROPERTIES FIXTURES_REQUIRED hearth_fuzz_bins LABELS fuzz TIMEOUT 300)
  endforeach()
endif()
