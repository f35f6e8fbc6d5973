# FindSOCI: SOCI, the C++ database access library (Debian's libsoci-dev ships
# no CMake or pkg-config files, hence this module).
#
# Components: core (always), sqlite3, postgresql.
# Imported targets: SOCI::core, SOCI::sqlite3, SOCI::postgresql.
# SOCI's headers need Boost's headers; each driver needs its client library
# (sqlite3: SQLite3; postgresql: PostgreSQL's libpq), looked for only when asked.
include(FindPackageHandleStandardArgs)
include(CMakeFindDependencyMacro)

find_path(SOCI_INCLUDE_DIR NAMES soci/soci.h)
find_library(SOCI_core_LIBRARY NAMES soci_core)
find_path(SOCI_Boost_INCLUDE_DIR NAMES boost/optional.hpp)

set(_soci_required SOCI_INCLUDE_DIR SOCI_core_LIBRARY SOCI_Boost_INCLUDE_DIR)
if(SOCI_core_LIBRARY)
  set(SOCI_core_FOUND TRUE)
endif()
foreach(_comp IN LISTS SOCI_FIND_COMPONENTS)
  if(_comp STREQUAL "core")
    continue()
  elseif(_comp STREQUAL "sqlite3" OR _comp STREQUAL "postgresql")
    find_library(SOCI_${_comp}_LIBRARY NAMES soci_${_comp})
    # Each driver needs its database's client library: found here, only for
    # the drivers asked for (a SQLite-only program never looks for libpq).
    set(_soci_client SQLite3)
    if(_comp STREQUAL "postgresql")
      set(_soci_client PostgreSQL)
    endif()
    if(SOCI_${_comp}_LIBRARY)
      find_package(${_soci_client} QUIET)
      if(${_soci_client}_FOUND)
        set(SOCI_${_comp}_FOUND TRUE)
      else()
        set(SOCI_${_comp}_FOUND FALSE)
        if(SOCI_FIND_REQUIRED_${_comp} AND NOT SOCI_FIND_QUIETLY)
          message(STATUS "FindSOCI: the ${_comp} driver needs ${_soci_client}'s development files, not found")
        endif()
      endif()
    endif()
    if(SOCI_FIND_REQUIRED_${_comp})
      list(APPEND _soci_required SOCI_${_comp}_LIBRARY)
    endif()
  else()
    message(FATAL_ERROR "FindSOCI: unknown component ${_comp}")
  endif()
endforeach()

find_package_handle_standard_args(SOCI REQUIRED_VARS ${_soci_required} HANDLE_COMPONENTS)

if(SOCI_FOUND)
  if(NOT TARGET SOCI::core)
    add_library(SOCI::core UNKNOWN IMPORTED)
    set_target_properties(SOCI::core PROPERTIES
      IMPORTED_LOCATION "${SOCI_core_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${SOCI_INCLUDE_DIR};${SOCI_Boost_INCLUDE_DIR}"
      INTERFACE_LINK_LIBRARIES "${CMAKE_DL_LIBS}")
  endif()
endif()

if(SOCI_FOUND)
  if(SOCI_sqlite3_FOUND AND NOT TARGET SOCI::sqlite3)
    add_library(SOCI::sqlite3 UNKNOWN IMPORTED)
    set_target_properties(SOCI::sqlite3 PROPERTIES
      IMPORTED_LOCATION "${SOCI_sqlite3_LIBRARY}"
      INTERFACE_LINK_LIBRARIES "SOCI::core;SQLite::SQLite3")
  endif()
  if(SOCI_postgresql_FOUND AND NOT TARGET SOCI::postgresql)
    add_library(SOCI::postgresql UNKNOWN IMPORTED)
    set_target_properties(SOCI::postgresql PROPERTIES
      IMPORTED_LOCATION "${SOCI_postgresql_LIBRARY}"
      INTERFACE_LINK_LIBRARIES "SOCI::core;PostgreSQL::PostgreSQL")
  endif()
endif()
mark_as_advanced(SOCI_INCLUDE_DIR SOCI_Boost_INCLUDE_DIR SOCI_core_LIBRARY SOCI_sqlite3_LIBRARY SOCI_postgresql_LIBRARY)
