# The version string comes from `git describe` at build time (every build, not only at
# configure), and falls back to the project version outside a git checkout.
set(ENGBOT_VERSION_C ${CMAKE_BINARY_DIR}/gen/version.c)
add_custom_target(engbot_version_gen
  COMMAND ${CMAKE_COMMAND} -DSRC=${CMAKE_SOURCE_DIR} -DOUT=${ENGBOT_VERSION_C}
          -P ${CMAKE_SOURCE_DIR}/cmake/WriteVersion.cmake
  BYPRODUCTS ${ENGBOT_VERSION_C}
  COMMENT "engbot version from git describe")
