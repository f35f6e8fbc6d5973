# jobrepo_embed_migrations(TARGET <target> NAMESPACE <C++ namespace> SQL_DIR <folder>)
#
# Embeds the migrations <folder>/NNNN_name.sql (numbered 1, 2, 3... without
# gaps) in <target>, so that the library carries its own schema: adds a
# generated source that defines
#
#   namespace <NAMESPACE> { std::span<const jobrepo::Migration> migrations(); }
#
# (jobrepo::Migration: <jobrepo/backend.hpp>). Declare that function in your
# store and pass migrations() to jobrepo::apply_migrations() and
# jobrepo::check_schema_version(). The SQL is regenerated when a file changes.
set(_jobrepo_embed_sql_script "${CMAKE_CURRENT_LIST_DIR}/EmbedSql.cmake")

function(jobrepo_embed_migrations)
  cmake_parse_arguments(arg "" "TARGET;NAMESPACE;SQL_DIR" "" ${ARGN})
  if(NOT arg_TARGET OR NOT TARGET "${arg_TARGET}" OR NOT arg_NAMESPACE OR NOT arg_SQL_DIR)
    message(FATAL_ERROR "jobrepo_embed_migrations: needs TARGET (an existing target), NAMESPACE and SQL_DIR")
  endif()
  get_filename_component(sql_dir "${arg_SQL_DIR}" ABSOLUTE)
  file(GLOB migrations CONFIGURE_DEPENDS "${sql_dir}/*.sql")
  if(NOT migrations)
    message(FATAL_ERROR "jobrepo_embed_migrations: no NNNN_name.sql file in ${sql_dir}")
  endif()
  set(output "${CMAKE_CURRENT_BINARY_DIR}/${arg_TARGET}-migrations.cpp")
  # A list cannot pass through a command line as is: join it with '|'.
  string(REPLACE ";" "|" migration_list "${migrations}")
  add_custom_command(
    OUTPUT "${output}"
    COMMAND ${CMAKE_COMMAND} "-DNAMESPACE=${arg_NAMESPACE}" "-DOUTPUT=${output}" "-DSQL_FILES=${migration_list}"
            -P "${_jobrepo_embed_sql_script}"
    DEPENDS ${migrations} "${_jobrepo_embed_sql_script}"
    COMMENT "Embedding the migrations of ${sql_dir}"
    VERBATIM)
  target_sources(${arg_TARGET} PRIVATE "${output}")
endfunction()
