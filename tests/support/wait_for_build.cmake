# The first test of a sanitizer tree (see tests/CMakeLists.txt): tools/test
# builds the tree in the background while the normal tests run and writes
# the build's exit status to $JOBREPO_CHECK_BUILD_STATUS/NAME.status (its
# output to NAME.log), NAME being the tree's folder name. This waits for that
# file and passes when the build did. Without the variable it passes at once.
# Usage: cmake -DTREE=<build tree> -P wait_for_build.cmake
if(NOT DEFINED ENV{JOBREPO_CHECK_BUILD_STATUS})
  return()
endif()
get_filename_component(name "${TREE}" NAME)
set(status_file "$ENV{JOBREPO_CHECK_BUILD_STATUS}/${name}.status")
set(log_file "$ENV{JOBREPO_CHECK_BUILD_STATUS}/${name}.log")
string(TIMESTAMP started "%s")
while(NOT EXISTS "${status_file}")
  execute_process(COMMAND ${CMAKE_COMMAND} -E sleep 1)
endwhile()
string(TIMESTAMP now "%s")
math(EXPR waited "${now} - ${started}")
file(READ "${status_file}" status)
string(STRIP "${status}" status)
if(NOT status STREQUAL "0")
  file(READ "${log_file}" log)
  message(FATAL_ERROR "building ${name} failed (exit ${status}):\n${log}")
endif()
message(STATUS "${name} is built (waited ${waited} s)")
