# Test binaries whose cases may be skipped. A case that cannot run here (the
# CPU lacks an ISA, there is no GPU) and was asked for alone (as CTest runs
# each case) exits the process with code 77, and CTest reports it as skipped
# through SKIP_RETURN_CODE, never as passed; in a run of several cases it
# warns "SKIPPED: ..." and the others go on (tests/skip.h).
# Same as compress_add_test_binary (tests/CMakeLists.txt) plus that property;
# NO_TORCH: a binary that does not use LibTorch (the kernel tests) skips the
# LibTorch precompiled header, whose flags it would not match. TEST_SPEC
# registers only the matching cases (a Catch2 test spec, e.g. a tag);
# DEFINES are compile definitions of the test sources.
set(COMPRESS_SKIP_CODE 77)
function(compress_add_skippable_test_binary name)
  cmake_parse_arguments(T "NO_TORCH" "TEST_SPEC" "SOURCES;LIBS;DEFINES" ${ARGN})
  add_executable(${name} ${T_SOURCES} $<TARGET_OBJECTS:compress_test_main>)
  target_link_libraries(${name} PRIVATE Catch2::Catch2 ${T_LIBS})
  target_include_directories(${name} PRIVATE ${CMAKE_CURRENT_BINARY_DIR}/.. ${PROJECT_SOURCE_DIR}/tests)
  target_compile_definitions(${name} PRIVATE COMPRESS_SKIP_CODE=${COMPRESS_SKIP_CODE} ${T_DEFINES})
  if(NOT T_NO_TORCH)
    compress_use_pch(${name})
  endif()
  catch_discover_tests(${name} TEST_SPEC ${T_TEST_SPEC} EXTRA_ARGS --warn NoTests PROPERTIES FIXTURES_REQUIRED compress_fixtures
                       SKIP_RETURN_CODE ${COMPRESS_SKIP_CODE}
                       TEST_PREFIX "${name}:")
endfunction()
