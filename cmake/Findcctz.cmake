# Findcctz: cctz, Google's library for time zones and civil times (Debian's
# libcctz-dev ships no CMake or pkg-config files, hence this module). It reads
# the system's tz database (Debian's tzdata) at run time.
#
# Imported target: cctz::cctz.
include(FindPackageHandleStandardArgs)

find_path(cctz_INCLUDE_DIR NAMES cctz/time_zone.h)
find_library(cctz_LIBRARY NAMES cctz)
find_package_handle_standard_args(cctz REQUIRED_VARS cctz_LIBRARY cctz_INCLUDE_DIR)

if(cctz_FOUND AND NOT TARGET cctz::cctz)
  add_library(cctz::cctz UNKNOWN IMPORTED)
  set_target_properties(cctz::cctz PROPERTIES
    IMPORTED_LOCATION "${cctz_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${cctz_INCLUDE_DIR}")
endif()
mark_as_advanced(cctz_INCLUDE_DIR cctz_LIBRARY)
