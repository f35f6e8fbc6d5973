# The trees of tools/build-checks (the sanitizers) build themselves in
# ctest: their first test, "<prefix>the build", builds the tree at the lowest
# priority (nice 19), so that in tools/test's one ctest run they build while
# the normal tests run, on the CPU those leave idle. Every other test of the
# tree requires it (a fixture: ctest runs it first, also for a single test
# run by hand). One check tree builds at a time (the lock check_build), in
# the order of `cost` (tests/CMakeLists.txt); each takes one unit of the disk pool
# (cmake/JobrepoTestLoad.cmake). Call at the end of a tests folder.
function(jobrepo_tests_build_first prefix cost)
  cmake_host_system_information(RESULT cores QUERY NUMBER_OF_LOGICAL_CORES)
  add_test(NAME "${prefix}the build" COMMAND nice -n 19 ${CMAKE_COMMAND} --build ${PROJECT_BINARY_DIR} -j ${cores})
  set_tests_properties("${prefix}the build" PROPERTIES FIXTURES_SETUP "${prefix}built" TIMEOUT 1800
    RESOURCE_LOCK check_build RESOURCE_GROUPS disk:1 COST ${cost})
  get_property(tests DIRECTORY PROPERTY TESTS)
  list(REMOVE_ITEM tests "${prefix}the build")
  set_tests_properties(${tests} PROPERTIES FIXTURES_REQUIRED "${prefix}built")
endfunction()
