# The fuzz build (-DHEARTH_FUZZ=ON, clang): libhearth with coverage and ASan + UBSan, one
# libFuzzer binary per tests/fuzz/fuzz_*.c, and seed_gen. Included by CMakeLists.txt,
# which then skips the CLI and the unit tests.
# Edge coverage but no comparison tracing for the tokenizer's inner loops over vocabulary
# data (hash probing, the merge queue, BPE and SPM merging, piece decoding): they compare
# ranks, slots and lengths, not input bytes with constants, so their traced comparisons
# (about half of fuzz_tokenizer's time) guided nothing. The memcmp/memmem hooks still hand
# the token texts looked up to the mutator.
foreach(f tok_table tok_merge_queue tok_bpe tok_spm tok_decode)
  set_source_files_properties(${CMAKE_SOURCE_DIR}/src/tokenizer/${f}.c PROPERTIES
                              COMPILE_OPTIONS -fno-sanitize-coverage=trace-cmp)
endforeach()

file(GLOB HEARTH_FUZZ_TARGETS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_*.c)
add_library(hearth_fuzz_util STATIC ${CMAKE_SOURCE_DIR}/tests/fuzz/fz_util.c
            ${CMAKE_SOURCE_DIR}/tests/support/tiny_model.c)
target_include_directories(hearth_fuzz_util PUBLIC ${CMAKE_SOURCE_DIR}/tests/support)
target_link_libraries(hearth_fuzz_util PUBLIC hearthlib)
target_compile_definitions(hearth_fuzz_util PRIVATE HEARTH_FIXTURES_DIR="${HEARTH_FIXTURES}")

foreach(src ${HEARTH_FUZZ_TARGETS})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_link_libraries(${name} PRIVATE hearth_fuzz_util)
  target_link_options(${name} PRIVATE -fsanitize=fuzzer)
endforeach()

add_executable(seed_gen ${CMAKE_SOURCE_DIR}/tests/fuzz/seed_gen.c)
target_link_libraries(seed_gen PRIVATE hearth_fuzz_util)
