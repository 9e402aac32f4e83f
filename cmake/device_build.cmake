# HEAPTRAIL_DEVICE: only heaptrail-record, as one statically linked, size-trimmed file
# that is copied to a device and needs no library there (tools/build-device.sh).
foreach(target heaptrail_recorder heaptrail_schema heaptrail_common heaptrail-record)
  target_compile_options(${target} PRIVATE -ffunction-sections -fdata-sections)
endforeach()
target_link_options(heaptrail-record PRIVATE -static -Wl,--gc-sections -Wl,-O1)
# Static archives do not carry their dependencies: link what pkg-config --static lists
# (libbpf -> libelf -> zlib, zstd) after everything else.
target_link_libraries(heaptrail-record PRIVATE
  ${LIBBPF_STATIC_LIBRARIES} ${LIBELF_STATIC_LIBRARIES} ${ZSTD_STATIC_LIBRARIES})
