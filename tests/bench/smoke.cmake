# The benchmark smoke run: every workload, a fraction of a second each, on
# SQLite and (when JOBREPO_TEST_POSTGRES_URL is set) PostgreSQL. Figures are
# printed, never judged; the run fails only when the tool fails, a workload
# is missing from its JSON, a measurement reports errors or missed wake-ups,
# or the plot is not an SVG document.
# -DBENCH=<jobrepo-bench> -DWORK_DIR=<scratch directory>
cmake_minimum_required(VERSION 3.25)
file(MAKE_DIRECTORY "${WORK_DIR}")
set(json "${WORK_DIR}/smoke.json")
set(svg "${WORK_DIR}/smoke.svg")
file(REMOVE "${json}" "${svg}")
set(backend sqlite)
set(postgres)
if(DEFINED ENV{JOBREPO_TEST_POSTGRES_URL} AND NOT "$ENV{JOBREPO_TEST_POSTGRES_URL}" STREQUAL "")
  set(backend both)
  set(postgres --postgres "$ENV{JOBREPO_TEST_POSTGRES_URL}")
endif()
execute_process(
  COMMAND "${BENCH}" --backend ${backend} ${postgres} --workers 2 --jobs 200 --seconds 0.3 --with-ceiling
          --sqlite-synchronous full,normal --scale-jobs 1000 --history 2000 --scheduler-workers 8
          --wakeups 5 --json-out "${json}" --plot "${svg}"
  RESULT_VARIABLE status)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "jobrepo-bench exited with ${status}")
endif()
file(READ "${json}" results)
string(JSON rows LENGTH "${results}")
set(seen "")
math(EXPR last "${rows} - 1")
foreach(i RANGE ${last})
  string(JSON workload GET "${results}" ${i} workload)
  string(JSON row_backend GET "${results}" ${i} backend)
  list(APPEND seen "${workload}")
  foreach(field errors missed)
    string(JSON value ERROR_VARIABLE absent GET "${results}" ${i} ${field})
    if(NOT absent AND NOT value EQUAL 0)
      message(FATAL_ERROR "${workload} on ${row_backend}: ${field} = ${value}")
    endif()
  endforeach()
endforeach()
foreach(workload claim-cycle batch-100 scheduler wakeup scale memory)
  if(NOT workload IN_LIST seen)
    message(FATAL_ERROR "the JSON has no ${workload} rows")
  endif()
endforeach()
file(READ "${svg}" plot)
string(SUBSTRING "${plot}" 0 5 start)
string(FIND "${plot}" "</svg>" end)
if(NOT (start STREQUAL "<?xml" OR start MATCHES "^<svg") OR end EQUAL -1)
  message(FATAL_ERROR "${svg} is not an SVG document (starts with '${start}', </svg> at ${end})")
endif()
message(STATUS "bench smoke: ${rows} rows, every workload present, no errors; plot ${svg}")
