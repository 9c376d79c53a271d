# cmake -DBUILD_DIR=... -DSOURCE_DIR=... -DFIXTURE_DIR=... -P install_and_consume.cmake
set(prefix ${BUILD_DIR}/install-test/prefix)
set(consumer_build ${BUILD_DIR}/install-test/consumer)
file(REMOVE_RECURSE ${prefix})

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})

# The installed CLI finds its libraries through its relative RPATH
# ($ORIGIN/../lib): without LD_LIBRARY_PATH, from another working folder,
# and after the whole prefix is moved elsewhere.
set(moved ${BUILD_DIR}/install-test/moved-prefix)
file(REMOVE_RECURSE ${moved})
file(COPY ${prefix}/ DESTINATION ${moved})
foreach(p IN ITEMS ${prefix} ${moved})
  execute_process(COMMAND ${CMAKE_COMMAND} -E env --unset=LD_LIBRARY_PATH ${p}/bin/compress info --json
                  WORKING_DIRECTORY ${BUILD_DIR}/install-test
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0 OR NOT out MATCHES "\"isa\": \"(ref|avx2|avx512vnni|amx)\"")
    message(FATAL_ERROR "${p}/bin/compress info failed (${rc}): ${out}${err}")
  endif()
endforeach()
file(REMOVE_RECURSE ${moved})
message("installed compress info: runs from the prefix and from a moved copy")
find_program(CCACHE ccache)
set(launcher "")
if(CCACHE)
  set(launcher -DCMAKE_CXX_COMPILER_LAUNCHER=${CCACHE})
endif()
run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/examples/consumer -B ${consumer_build} -G Ninja
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH=${prefix} ${launcher})
run(${CMAKE_COMMAND} --build ${consumer_build})
run(${consumer_build}/consumer ${FIXTURE_DIR}/resnet18.pt ${consumer_build}/folded.pt 1,3,224,224)
message("consumer: ${last_output}")
run(${consumer_build}/deploy ${consumer_build}/folded.pt 1,3,224,224)
message("deploy: ${last_output}")
