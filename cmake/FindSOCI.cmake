# FindSOCI: SOCI, the C++ database access library (Debian's libsoci-dev ships
# no CMake or pkg-config files, hence this module).
#
# Components: core (always), sqlite3, postgresql.
# Imported targets: SOCI::core, SOCI::sqlite3, SOCI::postgresql.
# SOCI's headers need Boost's headers, and its PostgreSQL header needs libpq's.
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
    if(SOCI_${_comp}_LIBRARY)
      set(SOCI_${_comp}_FOUND TRUE)
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
  if(SOCI_sqlite3_FOUND AND NOT TARGET SOCI::sqlite3)
    find_package(SQLite3 REQUIRED)
    add_library(SOCI::sqlite3 UNKNOWN IMPORTED)
    set_target_properties(SOCI::sqlite3 PROPERTIES
      IMPORTED_LOCATION "${SOCI_sqlite3_LIBRARY}"
      INTERFACE_LINK_LIBRARIES "SOCI::core;SQLite::SQLite3")
  endif()
  if(SOCI_postgresql_FOUND AND NOT TARGET SOCI::postgresql)
    find_package(PostgreSQL REQUIRED)
    add_library(SOCI::postgresql UNKNOWN IMPORTED)
    set_target_properties(SOCI::postgresql PROPERTIES
      IMPORTED_LOCATION "${SOCI_postgresql_LIBRARY}"
      INTERFACE_LINK_LIBRARIES "SOCI::core;PostgreSQL::PostgreSQL")
  endif()
endif()
mark_as_advanced(SOCI_INCLUDE_DIR SOCI_Boost_INCLUDE_DIR SOCI_core_LIBRARY SOCI_sqlite3_LIBRARY SOCI_postgresql_LIBRARY)
