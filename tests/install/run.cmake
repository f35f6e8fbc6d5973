# The installed package as its users meet it:
#   1. the build tree installed into a fresh prefix holds what a backend
#      author needs (headers, docs, reference schema, CMake helpers, cases);
#   2. an outside project finds every component and runs (SQLite, PostgreSQL,
#      the installed suite on SQLite in memory);
#   3. a SQLite-only program (COMPONENTS sqlite) builds and runs with
#      libpq's and Catch2's packages disabled, and links no libpq;
#   4. each component finds only its own dependencies, and says which one
#      is missing;
#   5. jobrepo itself built with only core and SQLite (the options off,
#      libpq and Catch2 disabled) serves the same SQLite-only program;
#   6. the template backend (examples/memory_backend) builds from the
#      package, each suite case is a ctest test (the cases it cannot run
#      show as skipped), and a copy whose claim ignores running runs fails
#      the suite within 60 s instead of hanging.
#   cmake -DBUILD_DIR=... -DSOURCE_DIR=... -DJOBREPO_VERSION=... -DWORK_DIR=... -P run.cmake
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(prefix "${WORK_DIR}/prefix")
set(no_libpq_no_catch2 -DCMAKE_DISABLE_FIND_PACKAGE_PostgreSQL=ON -DCMAKE_DISABLE_FIND_PACKAGE_Catch2=ON
    -DCMAKE_DISABLE_FIND_PACKAGE_MariaDBClient=ON)

# step(<command>...): runs it, fails the test when it fails; sets `out`.
function(step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE output ERROR_VARIABLE output)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${output}")
  endif()
  set(out "${output}" PARENT_SCOPE)
endfunction()
# The package was not found (component_check prints "jobrepo: found=1 ..." when it was).
function(expect_not_found what)
  string(FIND "${out}" "jobrepo: found=1 " at)
  if(NOT at EQUAL -1)
    message(FATAL_ERROR "${what}: the package was found:\n${out}")
  endif()
endfunction()
function(expect text what)
  string(FIND "${out}" "${text}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "${what}: expected \"${text}\" in:\n${out}")
  endif()
endfunction()

# 1.
message("-- 1. install")
step(${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${prefix}")
foreach(file
    include/jobrepo/conformance.hpp include/jobrepo/conformance_printers.hpp include/jobrepo/version.hpp
    include/jobrepo/backend.hpp share/doc/jobrepo/backends.md share/doc/jobrepo/architecture.md
    share/doc/jobrepo/examples/memory_backend/memory_store.cpp share/jobrepo/schema/sqlite/0001_initial.sql
    share/jobrepo/schema/postgres/0001_initial.sql share/jobrepo/conformance/run_cases.cpp
    lib/cmake/jobrepo/JobrepoMigrations.cmake lib/cmake/jobrepo/EmbedSql.cmake
    lib/cmake/jobrepo/JobrepoConformance.cmake
    bin/jobctl share/man/man1/jobctl.1 share/doc/jobrepo/operations.md share/doc/jobrepo/cli.md
    share/doc/jobrepo/examples/jobs.json share/doc/jobrepo/examples/jobctl-serve.service
    share/doc/jobrepo/examples/prometheus/jobrepo-alerts.yml)
  if(NOT EXISTS "${prefix}/${file}")
    message(FATAL_ERROR "the package lacks ${file}")
  endif()
endforeach()
# The built-in backends' SOCI helpers are not part of the package.
if(EXISTS "${prefix}/include/jobrepo/soci_support.hpp")
  message(FATAL_ERROR "the package installs include/jobrepo/soci_support.hpp")
endif()

# 2.
message("-- 2. every component")
step(${CMAKE_COMMAND} -S "${SOURCE_DIR}/tests/install" -B "${WORK_DIR}/build" -G Ninja
     "-DCMAKE_PREFIX_PATH=${prefix}" -DCMAKE_BUILD_TYPE=Release)
step(${CMAKE_COMMAND} --build "${WORK_DIR}/build")
step("${WORK_DIR}/build/consumer" "sqlite:${WORK_DIR}/consumer.db")
message("${out}")
# An in-memory database cannot be opened twice: the cases that need it are left out.
step("${WORK_DIR}/build/consumer_conformance" "~[shared]~[soak]~[process]")
expect("0 failed, 0 skipped" "the installed suite")
# The whole suite: the 5 cases it cannot run are skipped, never passed
# (exit 77), named in a JUnit report that stays valid XML on standard output.
execute_process(COMMAND "${WORK_DIR}/build/consumer_conformance" -r junit RESULT_VARIABLE rc
                OUTPUT_FILE "${WORK_DIR}/junit.xml" ERROR_VARIABLE out)
if(NOT rc EQUAL 77)
  message(FATAL_ERROR "the installed suite with skipped cases exited ${rc}, not 77:\n${out}")
endif()
expect("0 failed, 5 skipped" "the installed suite's summary (standard error)")
find_program(python3 NAMES python3 REQUIRED)
step("${python3}" -c "import sys, xml.etree.ElementTree as ET
suite = ET.parse(sys.argv[1]).getroot().find('testsuite')
skipped = [c.get('name') for c in suite.iter('testcase') if c.find('skipped') is not None]
assert suite.get('skipped') == '5' and len(skipped) == 5, (suite.attrib, skipped)
print('junit: skipped', skipped)" "${WORK_DIR}/junit.xml")
message("${out}")
# A case that outlives its limit ends the run as failed, naming the case.
execute_process(COMMAND ${CMAKE_COMMAND} -E env JOBREPO_CONFORMANCE_CASE_TIMEOUT=1
                        "${WORK_DIR}/build/consumer_conformance" --jobrepo-case
                        "threads churning claims and completions never run one job twice at once"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 1)
  message(FATAL_ERROR "a case past its limit exited ${rc}, not 1:\n${out}")
endif()
expect("did not end within 1 s" "the case limit")
if(DEFINED ENV{JOBREPO_TEST_POSTGRES_URL})
  string(RANDOM LENGTH 8 ALPHABET "abcdefghijklmnopqrstuvwxyz" suffix)
  set(server "$ENV{JOBREPO_TEST_POSTGRES_URL}")
  # tools/test gives postgresql://user@host:port/postgres (no query).
  string(REGEX REPLACE "/[^/]*$" "/jobrepo_install_${suffix}" database_url "${server}")
  step(psql -q "${server}" -c "CREATE DATABASE jobrepo_install_${suffix}")
  execute_process(COMMAND "${WORK_DIR}/build/consumer" "${database_url}" RESULT_VARIABLE rc OUTPUT_VARIABLE output
                  ERROR_VARIABLE output)
  step(psql -q "${server}" -c "DROP DATABASE jobrepo_install_${suffix} WITH (FORCE)")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer on PostgreSQL failed (${rc}):\n${output}")
  endif()
  message("${output}")
endif()

# 3.
message("-- 3. COMPONENTS sqlite without libpq and Catch2")
step(${CMAKE_COMMAND} -S "${SOURCE_DIR}/tests/install/sqlite_only" -B "${WORK_DIR}/sqlite_only" -G Ninja
     "-DCMAKE_PREFIX_PATH=${prefix}" ${no_libpq_no_catch2})
step(${CMAKE_COMMAND} --build "${WORK_DIR}/sqlite_only")
step("${WORK_DIR}/sqlite_only/sqlite_only")
expect("sqlite_only: run completed, backends: sqlite" "the SQLite-only program")
message("${out}")
step(ldd "${WORK_DIR}/sqlite_only/sqlite_only")
if(out MATCHES "libpq|soci_postgresql|libmariadb")
  message(FATAL_ERROR "the SQLite-only program links PostgreSQL's or MariaDB's libraries:\n${out}")
endif()

# 4.
message("-- 4. each component finds its own dependencies")
function(check_components name components)
  execute_process(COMMAND ${CMAKE_COMMAND} -S "${SOURCE_DIR}/tests/install/component_check"
                          -B "${WORK_DIR}/check-${name}" "-DCMAKE_PREFIX_PATH=${ARGV2}"
                          "-DJOBREPO_COMPONENTS=${components}" ${ARGN}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE output ERROR_VARIABLE output)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "component check ${name} failed (${rc}):\n${output}")
  endif()
  set(out "${output}" PARENT_SCOPE)
endfunction()
check_components(postgres-without-libpq "postgres" "${prefix}" -DCMAKE_DISABLE_FIND_PACKAGE_PostgreSQL=ON)
expect("component postgres: found=FALSE" "postgres without libpq")
expect("component core: found=TRUE" "postgres without libpq")
expect("component postgres needs PostgreSQL, which was not found" "postgres without libpq")
check_components(mariadb-without-client "mariadb" "${prefix}" -DCMAKE_DISABLE_FIND_PACKAGE_MariaDBClient=ON)
expect("component mariadb: found=FALSE" "mariadb without its client library")
expect("component mariadb needs MariaDBClient, which was not found" "mariadb without its client library")
check_components(conformance-without-catch2 "conformance;sqlite" "${prefix}" -DCMAKE_DISABLE_FIND_PACKAGE_Catch2=ON)
expect("component conformance: found=FALSE" "conformance without Catch2")
expect("component sqlite: found=TRUE" "conformance without Catch2")
expect("component conformance needs Catch2" "conformance without Catch2")
check_components(unknown "sqlite;nosuch" "${prefix}")
expect("No component nosuch" "an unknown component")
check_components(all "" "${prefix}")
expect("component conformance: found=TRUE" "every component")
expect("component postgres: found=TRUE" "every component")
expect("component mariadb: found=TRUE" "every component")
expect("jobrepo: found=1 " "every component")
# Without COMPONENTS every installed component is required: one whose
# dependency is missing makes the package not found, saying which.
check_components(all-without-catch2 "" "${prefix}" -DCMAKE_DISABLE_FIND_PACKAGE_Catch2=ON)
expect_not_found("every component, without Catch2")
expect("component conformance needs Catch2" "every component, without Catch2")
# The package's version is the Store contract's (docs/backends.md, "Changes
# for backend authors"): a project that asks for another minor version
# does not get this one.
check_components(this-version "core" "${prefix}" "-DJOBREPO_REQUESTED_VERSION=${JOBREPO_VERSION}")
expect("jobrepo: found=1 version=${JOBREPO_VERSION} " "the package's own version")
check_components(older-contract "core" "${prefix}" -DJOBREPO_REQUESTED_VERSION=0.7)
expect_not_found("a request for contract 7 (version 0.7)")

# 5.
message("-- 5. jobrepo with core and SQLite only")
step(${CMAKE_COMMAND} -S "${SOURCE_DIR}" -B "${WORK_DIR}/core-sqlite" -G Ninja -DJOBREPO_WITH_POSTGRES=OFF
     -DJOBREPO_WITH_MARIADB=OFF -DJOBREPO_WITH_CONFORMANCE=OFF -DJOBREPO_BUILD_TESTS=OFF -DJOBREPO_BUILD_TOOLS=OFF ${no_libpq_no_catch2})
step(${CMAKE_COMMAND} --build "${WORK_DIR}/core-sqlite")
step(${CMAKE_COMMAND} --install "${WORK_DIR}/core-sqlite" --prefix "${WORK_DIR}/prefix-core-sqlite")
if(EXISTS "${WORK_DIR}/prefix-core-sqlite/include/jobrepo/postgres.hpp"
   OR EXISTS "${WORK_DIR}/prefix-core-sqlite/include/jobrepo/mariadb.hpp"
   OR EXISTS "${WORK_DIR}/prefix-core-sqlite/include/jobrepo/conformance.hpp")
  message(FATAL_ERROR "a package without postgres and conformance installed their headers")
endif()
step(${CMAKE_COMMAND} -S "${SOURCE_DIR}/tests/install/sqlite_only" -B "${WORK_DIR}/sqlite_only-2" -G Ninja
     "-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix-core-sqlite" ${no_libpq_no_catch2})
step(${CMAKE_COMMAND} --build "${WORK_DIR}/sqlite_only-2")
step("${WORK_DIR}/sqlite_only-2/sqlite_only")
expect("sqlite_only: run completed, backends: sqlite" "the SQLite-only program on the SQLite-only package")
check_components(not-built "postgres" "${WORK_DIR}/prefix-core-sqlite")
expect("The component postgres was not built into this package" "a component not built")

# 6.
message("-- 6. the template backend and the suite")
set(example "${WORK_DIR}/memory_backend")
step(${CMAKE_COMMAND} -S "${prefix}/share/doc/jobrepo/examples/memory_backend" -B "${example}" -G Ninja
     "-DCMAKE_PREFIX_PATH=${prefix}" -DCMAKE_BUILD_TYPE=RelWithDebInfo)
step(${CMAKE_COMMAND} --build "${example}")
execute_process(COMMAND ctest --test-dir "${example}" -j 2 RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
message("${out}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the template backend failed the suite (${rc})")
endif()
expect("100% tests passed" "the template backend's ctest")
expect("memory: threads and processes claiming the same due jobs get each job once, without errors (Skipped)"
       "a case the template backend cannot run")
string(REGEX MATCHALL "\\(Skipped\\)" skipped "${out}")
list(LENGTH skipped skipped_count)
if(NOT skipped_count EQUAL 4)
  message(FATAL_ERROR "expected the 4 cross-process cases skipped, got ${skipped_count}")
endif()
step("${python3}" "${SOURCE_DIR}/tests/kit/mutants.py" --prefix "${prefix}" --source
     "${prefix}/share/doc/jobrepo/examples/memory_backend" --only claim-ignores-running --tests "[race]" --timeout 60 --jobs 1
     --work "${WORK_DIR}/mutants")
message("${out}")
if(NOT out MATCHES "claim-ignores-running: +caught")
  message(FATAL_ERROR "the suite did not fail within 60 s on a claim that ignores running runs")
endif()

# A store written for an older Store contract (the template saying it was
# written for contract 7, as it was in 0.7) does not compile, and the error
# names the contract it must move to.
set(old_store "${WORK_DIR}/contract-7")
file(COPY "${prefix}/share/doc/jobrepo/examples/memory_backend/" DESTINATION "${old_store}/src")
file(READ "${old_store}/src/memory_store.hpp" header)
string(REPLACE "jobrepo::StoreContract8 contract() const override" "jobrepo::StoreContract7 contract() const override"
               older "${header}")
if(older STREQUAL header)
  message(FATAL_ERROR "the template's memory_store.hpp has no contract() override to change")
endif()
file(WRITE "${old_store}/src/memory_store.hpp" "${older}")
step(${CMAKE_COMMAND} -S "${old_store}/src" -B "${old_store}/build" -G Ninja "-DCMAKE_PREFIX_PATH=${prefix}")
execute_process(COMMAND ${CMAKE_COMMAND} --build "${old_store}/build" RESULT_VARIABLE rc OUTPUT_VARIABLE out
                ERROR_VARIABLE out)
if(rc EQUAL 0)
  message(FATAL_ERROR "a store written for Store contract 7 compiled")
endif()
expect("StoreContract8" "the compile error of a store written for an older contract")

file(REMOVE_RECURSE "${WORK_DIR}")
