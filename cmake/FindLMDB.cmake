# liblmdb-dev ships neither a CMake config nor a pkg-config file on Debian 12.
find_path(LMDB_INCLUDE_DIR lmdb.h)
find_library(LMDB_LIBRARY lmdb)
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(LMDB REQUIRED_VARS LMDB_INCLUDE_DIR LMDB_LIBRARY)
if(LMDB_FOUND AND NOT TARGET lmdb::lmdb)
  add_library(lmdb::lmdb UNKNOWN IMPORTED)
  set_target_properties(lmdb::lmdb PROPERTIES
    IMPORTED_LOCATION "${LMDB_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${LMDB_INCLUDE_DIR}")
endif()
