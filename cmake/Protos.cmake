# Code generation from .proto files:
#  - protoc-c sources for every message the programs use (ours, grpc health/reflection/testing,
#    and google/protobuf/descriptor.proto, which reflection parses);
#  - one FileDescriptorSet of every served proto with its imports, embedded in engbot_common
#    for server reflection (served verbatim, so the bytes are exactly what protoc produced).
set(GRPC_PROTO_DIR /usr/share/grpc-proto CACHE PATH "grpc-proto package root")
set(PB_INCLUDE_DIR /usr/include CACHE PATH "root of google/protobuf/*.proto")
set(ENGBOT_GEN ${CMAKE_BINARY_DIR}/gen)
file(MAKE_DIRECTORY ${ENGBOT_GEN})

set(ENGBOT_PROTOS
  engbot/session/v1/session.proto
  engbot/cache/v1/cache.proto
  engbot/queue/v1/queue.proto)
set(GRPC_PROTOS
  grpc/health/v1/health.proto
  grpc/reflection/v1/reflection.proto
  grpc/testing/empty.proto
  grpc/testing/messages.proto
  grpc/testing/test.proto)
set(PB_PROTOS google/protobuf/descriptor.proto google/protobuf/wrappers.proto)
# Served by reflection but needing no C code of their own (wire-identical to v1).
set(DESC_ONLY_PROTOS grpc/reflection/v1alpha/reflection.proto)

set(PROTO_IFLAGS -I${CMAKE_SOURCE_DIR}/proto -I${GRPC_PROTO_DIR} -I${PB_INCLUDE_DIR})
set(ENGBOT_PROTO_SRCS)
foreach(p IN LISTS ENGBOT_PROTOS GRPC_PROTOS PB_PROTOS)
  if(p IN_LIST ENGBOT_PROTOS)
    set(src ${CMAKE_SOURCE_DIR}/proto/${p})
  elseif(p IN_LIST GRPC_PROTOS)
    set(src ${GRPC_PROTO_DIR}/${p})
  else()
    set(src ${PB_INCLUDE_DIR}/${p})
  endif()
  string(REGEX REPLACE "\\.proto$" "" base ${p})
  add_custom_command(
    OUTPUT ${ENGBOT_GEN}/${base}.pb-c.c ${ENGBOT_GEN}/${base}.pb-c.h
    COMMAND ${PROTOC_C} ${PROTO_IFLAGS} --c_out=${ENGBOT_GEN} ${src}
    DEPENDS ${src}
    COMMENT "protoc-c ${p}")
  list(APPEND ENGBOT_PROTO_SRCS ${ENGBOT_GEN}/${base}.pb-c.c)
endforeach()

set(ENGBOT_DESCSET ${ENGBOT_GEN}/descriptors.binpb)
set(desc_inputs)
foreach(p IN LISTS ENGBOT_PROTOS)
  list(APPEND desc_inputs ${CMAKE_SOURCE_DIR}/proto/${p})
endforeach()
add_custom_command(
  OUTPUT ${ENGBOT_DESCSET}
  COMMAND ${PROTOC} ${PROTO_IFLAGS} --include_imports --include_source_info --descriptor_set_out=${ENGBOT_DESCSET}
          ${ENGBOT_PROTOS} grpc/health/v1/health.proto grpc/reflection/v1/reflection.proto
          grpc/reflection/v1alpha/reflection.proto grpc/testing/test.proto
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/proto
  DEPENDS ${desc_inputs}
  COMMENT "descriptor set for server reflection")
add_custom_command(
  OUTPUT ${ENGBOT_GEN}/descriptors.c
  COMMAND ${CMAKE_COMMAND} -DIN=${ENGBOT_DESCSET} -DOUT=${ENGBOT_GEN}/descriptors.c
          -DNAME=engbot_descriptor_set -P ${CMAKE_SOURCE_DIR}/cmake/Bin2C.cmake
  DEPENDS ${ENGBOT_DESCSET} ${CMAKE_SOURCE_DIR}/cmake/Bin2C.cmake
  COMMENT "embedding the descriptor set")

# Generated code is not ours to warn about.
set_source_files_properties(${ENGBOT_PROTO_SRCS} ${ENGBOT_GEN}/descriptors.c
  PROPERTIES COMPILE_OPTIONS "-w")
add_library(engbot_proto STATIC ${ENGBOT_PROTO_SRCS} ${ENGBOT_GEN}/descriptors.c)
target_include_directories(engbot_proto PUBLIC ${ENGBOT_GEN})
target_link_libraries(engbot_proto PUBLIC PkgConfig::PROTOBUFC)

# Python message modules for the integration tests (tests/lib/engbot_test.py).
set(ENGBOT_PYGEN ${ENGBOT_GEN}/py)
set(py_outputs)
foreach(p IN LISTS ENGBOT_PROTOS GRPC_PROTOS)
  string(REGEX REPLACE "\\.proto$" "_pb2.py" out ${p})
  list(APPEND py_outputs ${ENGBOT_PYGEN}/${out})
endforeach()
add_custom_command(
  OUTPUT ${py_outputs}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${ENGBOT_PYGEN}
  COMMAND ${PROTOC} ${PROTO_IFLAGS} --python_out=${ENGBOT_PYGEN} ${ENGBOT_PROTOS} ${GRPC_PROTOS}
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/proto
  DEPENDS ${desc_inputs}
  COMMENT "python messages for the integration tests")
add_custom_target(engbot_py_protos ALL DEPENDS ${py_outputs})
