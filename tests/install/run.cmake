# Installs the build tree into a fresh prefix, builds tests/install against
# it with find_package(jobrepo), and runs what it built.
#   cmake -DBUILD_DIR=... -DSOURCE_DIR=... -DWORK_DIR=... -P run.cmake
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
function(step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}")
  endif()
  message("${out}")
endfunction()
step(${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${WORK_DIR}/prefix")
step(${CMAKE_COMMAND} -S "${SOURCE_DIR}/tests/install" -B "${WORK_DIR}/build" -G Ninja
     "-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix" -DCMAKE_BUILD_TYPE=Release)
step(${CMAKE_COMMAND} --build "${WORK_DIR}/build")
step("${WORK_DIR}/build/consumer" "sqlite:${WORK_DIR}/consumer.db")
step("${WORK_DIR}/build/consumer_conformance")
# The same snippet on PostgreSQL, in a database of its own, when a server is given.
if(DEFINED ENV{JOBREPO_TEST_POSTGRES_URL})
  string(RANDOM LENGTH 8 ALPHABET "abcdefghijklmnopqrstuvwxyz" suffix)
  set(server "$ENV{JOBREPO_TEST_POSTGRES_URL}")
  # tools/test gives postgresql://user@host:port/postgres (no query).
  string(REGEX REPLACE "/[^/]*$" "/jobrepo_install_${suffix}" database_url "${server}")
  step(psql -q "${server}" -c "CREATE DATABASE jobrepo_install_${suffix}")
  execute_process(COMMAND "${WORK_DIR}/build/consumer" "${database_url}" RESULT_VARIABLE rc OUTPUT_VARIABLE out
                  ERROR_VARIABLE out)
  step(psql -q "${server}" -c "DROP DATABASE jobrepo_install_${suffix} WITH (FORCE)")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer on PostgreSQL failed (${rc}):\n${out}")
  endif()
  message("${out}")
endif()
file(REMOVE_RECURSE "${WORK_DIR}")
