# How the tests share the machine when ctest runs them in parallel (tools/test:
# one run over every build tree). A test with deadlines, or one that asserts a
# throughput, must not share the CPU or the disk with tests that take them;
# each such test says what it takes from two pools of ctest's resource
# allocation (RESOURCE_GROUPS; the pools are tests/resources.json, which ctest
# reads in every build tree through CTEST_RESOURCE_SPEC_FILE, also by hand):
#
#   cpu   4 units, a unit being half a core of the 2-core CI machine:
#           cpu:1  waits on timers and processes most of the time, and has
#                  deadlines (serve, promise, control, jobctl's suites)
#           cpu:2  keeps about a core busy (the kill -9 audits, a fuzzer, the
#                  suites of jobctl under ASan), or has deadlines it misses
#                  beside more than one other (the scheduler suites)
#           cpu:4  the machine to itself among them: the soak races, which
#                  assert a throughput, and the SQLite suite's races under a
#                  sanitizer, which must win file locks within 5 s
#   disk  2 units: a build that writes objects takes one (the build of a
#         check tree, the install test); the SQLite soak, whose throughput
#         is that of fsync, takes both.
#
# Where the CPU goes, measured: docs/development.md. Tests outside
# the pools (the unit tests, the conformance suite, the bad-input tables) are
# short or light and run beside any of them; tests that only take CPU and
# check no time (the install test, the benchmark's smoke run, lint) run at
# nice 19, like the builds, on what the others leave idle.
set(CTEST_RESOURCE_SPEC_FILE "${PROJECT_SOURCE_DIR}/tests/resources.json")
