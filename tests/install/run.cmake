# The install test: installs this build into a fresh prefix, then configures, builds and
# runs tests/install/consumer against it with find_package(evident).
#
#   cmake -DBUILD_DIR=<build> -DSOURCE_DIR=<tests/install/consumer> -DWORK_DIR=<tmp>
#         -DGENERATOR=<gen> -P run.cmake
#
# Needs the build to be complete (cmake --install copies what the build made).
foreach(var BUILD_DIR SOURCE_DIR WORK_DIR GENERATOR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run.cmake: -D${var}=... is required")
  endif()
endforeach()

file(REMOVE_RECURSE "${WORK_DIR}")
set(prefix "${WORK_DIR}/prefix")

function(step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${out}")
  endif()
  message(STATUS "${what}: ok")
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

step("install" ${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${prefix}")
foreach(f include/evident/runtime/runtime.hpp include/evident/persistence/journal.hpp
          lib/cmake/evident/evidentConfig.cmake lib/cmake/evident/evidentConfigVersion.cmake
          lib/cmake/evident/FindCAF.cmake bin/evident)
  if(NOT EXISTS "${prefix}/${f}")
    message(FATAL_ERROR "the install has no ${f}")
  endif()
endforeach()

step("configure the consumer" ${CMAKE_COMMAND} -S "${SOURCE_DIR}" -B "${WORK_DIR}/build"
     -G "${GENERATOR}" -DCMAKE_BUILD_TYPE=Release "-DCMAKE_PREFIX_PATH=${prefix}")
step("build the consumer" ${CMAKE_COMMAND} --build "${WORK_DIR}/build" -j 1)
step("run the consumer" "${WORK_DIR}/build/consumer" "${WORK_DIR}/data")
message(STATUS "${step_output}")
if(NOT step_output MATCHES "balance 42, retry 42, at v1 40")
  message(FATAL_ERROR "unexpected consumer output: ${step_output}")
endif()
file(REMOVE_RECURSE "${WORK_DIR}")
