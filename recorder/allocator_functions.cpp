#include "recorder/allocator_functions.h"

#include <array>
#include <utility>

namespace heaptrail::recorder {
namespace {

using Kind = schema::EventKind;

struct KindName {
  const char* name;
  schema::EventKind kind;
  CallShape shape;
};

constexpr std::array<KindName, 11> kCustomKinds = {{
    {"malloc", Kind::MALLOC, CallShape::Size1},
    {"calloc", Kind::CALLOC, CallShape::Calloc},
    {"realloc", Kind::REALLOC, CallShape::Realloc},
    {"free", Kind::FREE, CallShape::Release},
    {"memalign", Kind::MEMALIGN, CallShape::Size2},
    {"aligned_alloc", Kind::ALIGNED_ALLOC, CallShape::Size2},
    {"posix_memalign", Kind::POSIX_MEMALIGN, CallShape::PosixMemalign},
    {"new", Kind::OPERATOR_NEW, CallShape::Size1},
    {"new[]", Kind::OPERATOR_NEW_ARRAY, CallShape::Size1},
    {"delete", Kind::OPERATOR_DELETE, CallShape::Release},
    {"delete[]", Kind::OPERATOR_DELETE_ARRAY, CallShape::Release},
}};

// Functions of allocator libraries beyond the standard names, that programs call
// directly. Only those that hand out or take back a block are events: in-place resizes
// (xallocx, mi_expand) and size queries are not. Most tcmalloc and mimalloc names are
// aliases of the standard ones (one probe, the standard name kept).
std::vector<FunctionSpec> allocatorFamilies() {
  return {
      // jemalloc (flags last)
      {"mallocx", Kind::MALLOC, CallShape::Size1},
      {"rallocx", Kind::REALLOC, CallShape::Realloc},
      {"dallocx", Kind::FREE, CallShape::Release},
      {"sdallocx", Kind::FREE, CallShape::Release},
      // tcmalloc (gperftools)
      {"tc_malloc", Kind::MALLOC, CallShape::Size1},
      {"tc_malloc_skip_new_handler", Kind::MALLOC, CallShape::Size1},
      {"tc_free", Kind::FREE, CallShape::Release},
      {"tc_free_sized", Kind::FREE, CallShape::Release},
      {"tc_cfree", Kind::FREE, CallShape::Release},
      {"tc_calloc", Kind::CALLOC, CallShape::Calloc},
      {"tc_realloc", Kind::REALLOC, CallShape::Realloc},
      {"tc_memalign", Kind::MEMALIGN, CallShape::Size2},
      {"tc_posix_memalign", Kind::POSIX_MEMALIGN, CallShape::PosixMemalign},
      {"tc_valloc", Kind::VALLOC, CallShape::Size1},
      {"tc_pvalloc", Kind::PVALLOC, CallShape::Size1},
      {"tc_new", Kind::OPERATOR_NEW, CallShape::Size1},
      {"tc_new_nothrow", Kind::OPERATOR_NEW, CallShape::Size1},
      {"tc_new_aligned", Kind::OPERATOR_NEW, CallShape::Size1},
      {"tc_new_aligned_nothrow", Kind::OPERATOR_NEW, CallShape::Size1},
      {"tc_newarray", Kind::OPERATOR_NEW_ARRAY, CallShape::Size1},
      {"tc_newarray_nothrow", Kind::OPERATOR_NEW_ARRAY, CallShape::Size1},
      {"tc_newarray_aligned", Kind::OPERATOR_NEW_ARRAY, CallShape::Size1},
      {"tc_newarray_aligned_nothrow", Kind::OPERATOR_NEW_ARRAY, CallShape::Size1},
      {"tc_delete", Kind::OPERATOR_DELETE, CallShape::Release},
      {"tc_delete_sized", Kind::OPERATOR_DELETE, CallShape::Release},
      {"tc_delete_nothrow", Kind::OPERATOR_DELETE, CallShape::Release},
      {"tc_delete_aligned", Kind::OPERATOR_DELETE, CallShape::Release},
      {"tc_delete_sized_aligned", Kind::OPERATOR_DELETE, CallShape::Release},
      {"tc_delete_aligned_nothrow", Kind::OPERATOR_DELETE, CallShape::Release},
      {"tc_deletearray", Kind::OPERATOR_DELETE_ARRAY, CallShape::Release},
      {"tc_deletearray_sized", Kind::OPERATOR_DELETE_ARRAY, CallShape::Release},
      {"tc_deletearray_nothrow", Kind::OPERATOR_DELETE_ARRAY, CallShape::Release},
      {"tc_deletearray_aligned", Kind::OPERATOR_DELETE_ARRAY, CallShape::Release},
      {"tc_deletearray_sized_aligned", Kind::OPERATOR_DELETE_ARRAY, CallShape::Release},
      {"tc_deletearray_aligned_nothrow", Kind::OPERATOR_DELETE_ARRAY, CallShape::Release},
      // mimalloc: mi_new* is its C API with new's semantics, released with mi_free.
      {"mi_malloc", Kind::MALLOC, CallShape::Size1},
      {"mi_malloc_small", Kind::MALLOC, CallShape::Size1},
      {"mi_zalloc", Kind::CALLOC, CallShape::Size1},
      {"mi_zalloc_small", Kind::CALLOC, CallShape::Size1},
      {"mi_calloc", Kind::CALLOC, CallShape::Calloc},
      {"mi_mallocn", Kind::MALLOC, CallShape::Calloc},
      {"mi_realloc", Kind::REALLOC, CallShape::Realloc},
      {"mi_reallocf", Kind::REALLOC, CallShape::Realloc},
      {"mi_rezalloc", Kind::REALLOC, CallShape::Realloc},
      {"mi_reallocn", Kind::REALLOCARRAY, CallShape::ReallocArray},
      {"mi_reallocarray", Kind::REALLOCARRAY, CallShape::ReallocArray},
      {"mi_recalloc", Kind::REALLOCARRAY, CallShape::ReallocArray},
      {"mi_malloc_aligned", Kind::ALIGNED_ALLOC, CallShape::Size1},
      {"mi_malloc_aligned_at", Kind::ALIGNED_ALLOC, CallShape::Size1},
      {"mi_zalloc_aligned", Kind::ALIGNED_ALLOC, CallShape::Size1},
      {"mi_zalloc_aligned_at", Kind::ALIGNED_ALLOC, CallShape::Size1},
      {"mi_calloc_aligned", Kind::ALIGNED_ALLOC, CallShape::Calloc},
      {"mi_calloc_aligned_at", Kind::ALIGNED_ALLOC, CallShape::Calloc},
      {"mi_realloc_aligned", Kind::REALLOC, CallShape::Realloc},
      {"mi_realloc_aligned_at", Kind::REALLOC, CallShape::Realloc},
      {"mi_memalign", Kind::MEMALIGN, CallShape::Size2},
      {"mi_aligned_alloc", Kind::ALIGNED_ALLOC, CallShape::Size2},
      {"mi_posix_memalign", Kind::POSIX_MEMALIGN, CallShape::PosixMemalign},
      {"mi_valloc", Kind::VALLOC, CallShape::Size1},
      {"mi_pvalloc", Kind::PVALLOC, CallShape::Size1},
      {"mi_heap_malloc", Kind::MALLOC, CallShape::Size2},  // (heap, size)
      {"mi_heap_malloc_small", Kind::MALLOC, CallShape::Size2},
      {"mi_heap_zalloc", Kind::CALLOC, CallShape::Size2},
      {"mi_new", Kind::MALLOC, CallShape::Size1},
      {"mi_new_nothrow", Kind::MALLOC, CallShape::Size1},
      {"mi_new_aligned", Kind::MALLOC, CallShape::Size1},
      {"mi_new_aligned_nothrow", Kind::MALLOC, CallShape::Size1},
      {"mi_new_n", Kind::MALLOC, CallShape::Calloc},
      {"mi_new_realloc", Kind::REALLOC, CallShape::Realloc},
      {"mi_new_reallocn", Kind::REALLOCARRAY, CallShape::ReallocArray},
      {"mi_free", Kind::FREE, CallShape::Release},
      {"mi_cfree", Kind::FREE, CallShape::Release},
      {"mi_free_size", Kind::FREE, CallShape::Release},
      {"mi_free_aligned", Kind::FREE, CallShape::Release},
      {"mi_free_size_aligned", Kind::FREE, CallShape::Release},
  };
}

std::vector<FunctionSpec> makeStandardFunctions() {
  std::vector<FunctionSpec> specs = {
      {"malloc", Kind::MALLOC, CallShape::Size1},
      {"free", Kind::FREE, CallShape::Free},
      {"calloc", Kind::CALLOC, CallShape::Calloc},
      {"realloc", Kind::REALLOC, CallShape::Realloc},
      {"reallocarray", Kind::REALLOCARRAY, CallShape::ReallocArray},
      {"posix_memalign", Kind::POSIX_MEMALIGN, CallShape::PosixMemalign},
      {"memalign", Kind::MEMALIGN, CallShape::Size2},
      {"aligned_alloc", Kind::ALIGNED_ALLOC, CallShape::Size2},
      {"valloc", Kind::VALLOC, CallShape::Size1},
      {"pvalloc", Kind::PVALLOC, CallShape::Size1},
      {"mmap", Kind::MMAP, CallShape::Mmap},
      {"munmap", Kind::MUNMAP, CallShape::Munmap},
  };
  // C++ operators (LP64 mangling: size_t is 'm'), each in its plain, nothrow,
  // aligned and aligned-nothrow form; deletes also sized.
  for (const auto& [prefix, kind] : {std::pair{"_Znw", Kind::OPERATOR_NEW}, std::pair{"_Zna", Kind::OPERATOR_NEW_ARRAY}})
    for (const char* suffix : {"m", "mRKSt9nothrow_t", "mSt11align_val_t", "mSt11align_val_tRKSt9nothrow_t"})
      specs.push_back({std::string(prefix) + suffix, kind, CallShape::Size1});
  for (const auto& [prefix, kind] :
       {std::pair{"_Zdl", Kind::OPERATOR_DELETE}, std::pair{"_Zda", Kind::OPERATOR_DELETE_ARRAY}})
    for (const char* suffix : {"Pv", "Pvm", "PvRKSt9nothrow_t", "PvSt11align_val_t", "PvmSt11align_val_t",
                               "PvSt11align_val_tRKSt9nothrow_t"})
      specs.push_back({std::string(prefix) + suffix, kind, CallShape::Release});
  for (auto& spec : allocatorFamilies()) specs.push_back(std::move(spec));
  return specs;
}

}  // namespace

const std::vector<FunctionSpec>& standardFunctions() {
  static const std::vector<FunctionSpec> specs = makeStandardFunctions();
  return specs;
}

std::optional<FunctionSpec> parseCustomFunction(const std::string& argument) {
  const auto eq = argument.rfind('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == argument.size()) return std::nullopt;
  const std::string symbol = argument.substr(0, eq);
  const std::string kind = argument.substr(eq + 1);
  for (const auto& k : kCustomKinds)
    if (kind == k.name) return FunctionSpec{symbol, k.kind, k.shape, true, argument};
  return std::nullopt;
}

std::string customKindNames() {
  std::string names;
  for (const auto& k : kCustomKinds) names += (names.empty() ? "" : ", ") + std::string(k.name);
  return names;
}

}  // namespace heaptrail::recorder
