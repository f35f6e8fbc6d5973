# jobrepo_add_backend(NAME <name> DRIVER <imported target> DEFINE <macro> SOURCES <file>...)
#
# Adds the library jobrepo_<name> (alias and export name jobrepo::<name>) from
# backends/<name>/: its sources, the migrations of schema/<name>/ embedded by
# jobrepo_embed_migrations() (JobrepoMigrations.cmake, installed for other
# backends), its public include/ folder, and <macro> defined for every user,
# so that <jobrepo/jobrepo.hpp> registers the backend in open_store().
include(JobrepoMigrations)

function(jobrepo_add_backend)
  cmake_parse_arguments(arg "" "NAME;DRIVER;DEFINE" "SOURCES" ${ARGN})
  set(target jobrepo_${arg_NAME})
  add_library(${target} ${arg_SOURCES})
  jobrepo_embed_migrations(TARGET ${target} NAMESPACE jobrepo::${arg_NAME}_backend
                           SQL_DIR "${PROJECT_SOURCE_DIR}/schema/${arg_NAME}")
  add_library(jobrepo::${arg_NAME} ALIAS ${target})
  set_target_properties(${target} PROPERTIES EXPORT_NAME ${arg_NAME} OUTPUT_NAME ${target}
                                             POSITION_INDEPENDENT_CODE ON)
  target_include_directories(${target}
    PUBLIC $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include> $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
    PRIVATE src ${PROJECT_SOURCE_DIR}/backends/common)
  target_compile_definitions(${target} PUBLIC ${arg_DEFINE})
  target_link_libraries(${target} PUBLIC jobrepo::core PRIVATE ${arg_DRIVER} $<BUILD_INTERFACE:jobrepo_warnings>)
endfunction()
