# The trees of tools/build-checks (sanitizers, fuzzing) are built by
# tools/test in the background while the normal tests run. Their first test
# waits for that build (tests/support/wait_for_build.cmake) and every other
# test of the tree requires it. Call at the end of a tests folder.
function(jobrepo_tests_wait_for_build prefix)
  add_test(NAME "${prefix}the build" COMMAND ${CMAKE_COMMAND} -DTREE=${PROJECT_BINARY_DIR}
                                             -P ${PROJECT_SOURCE_DIR}/tests/support/wait_for_build.cmake)
  set_tests_properties("${prefix}the build" PROPERTIES FIXTURES_SETUP "${prefix}built" TIMEOUT 1800)
  get_property(tests DIRECTORY PROPERTY TESTS)
  list(REMOVE_ITEM tests "${prefix}the build")
  set_tests_properties(${tests} PROPERTIES FIXTURES_REQUIRED "${prefix}built")
endfunction()
