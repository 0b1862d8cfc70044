# `cmake --install`: headers, the libraries with an exported CMake package
# (find_package(evident) -> evident::persistence, evident::actors, evident::sagas when
# built, evident::runtime), the `evident` CLI and the sample daemons.
#
#   <prefix>/include/evident/...            headers of every floor
#   <prefix>/lib/libevident_*.a             static libraries
#   <prefix>/lib/cmake/evident/             evidentConfig.cmake, version, targets,
#                                           FindCAF.cmake, FindLMDB.cmake
#   <prefix>/bin/evident, evident-bank
#
# Included from the top-level CMakeLists.txt after every library target exists.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(evident_install_libs evident_persistence evident_actors)
set(evident_install_names persistence actors)
if(TARGET evident_sagas)
  list(APPEND evident_install_libs evident_sagas)
  list(APPEND evident_install_names sagas)
endif()
list(APPEND evident_install_libs evident_runtime)
list(APPEND evident_install_names runtime)

foreach(lib name IN ZIP_LISTS evident_install_libs evident_install_names)
  # evident::<name> for consumers, as the ALIAS targets are named inside this build.
  set_target_properties(${lib} PROPERTIES EXPORT_NAME ${name})
  install(DIRECTORY "${PROJECT_SOURCE_DIR}/${name}/include/"
          DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
endforeach()

install(TARGETS ${evident_install_libs} EXPORT evidentTargets
  ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}"
  LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}"
  INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")

set(evident_programs evident_cli)
if(TARGET evident_bank)
  list(APPEND evident_programs evident_bank)
endif()
install(TARGETS ${evident_programs} RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}")

set(evident_cmake_dir "${CMAKE_INSTALL_LIBDIR}/cmake/evident")
install(EXPORT evidentTargets NAMESPACE evident:: DESTINATION "${evident_cmake_dir}")
configure_package_config_file("${PROJECT_SOURCE_DIR}/cmake/evidentConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/evidentConfig.cmake" INSTALL_DESTINATION "${evident_cmake_dir}")
# 0.x: a minor version may change the API, so only the same minor version matches.
write_basic_package_version_file("${PROJECT_BINARY_DIR}/evidentConfigVersion.cmake"
  VERSION "${PROJECT_VERSION}" COMPATIBILITY SameMinorVersion)
install(FILES
  "${PROJECT_BINARY_DIR}/evidentConfig.cmake"
  "${PROJECT_BINARY_DIR}/evidentConfigVersion.cmake"
  "${PROJECT_SOURCE_DIR}/cmake/FindCAF.cmake"
  "${PROJECT_SOURCE_DIR}/cmake/FindLMDB.cmake"
  DESTINATION "${evident_cmake_dir}")
