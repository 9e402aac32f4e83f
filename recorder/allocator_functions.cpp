#include "recorder/allocator_functions.h"

#include <array>
#include <utility>

namespace heaptrail::recorder {
namespace {

struct KindName {
  const char* name;
  ht_event_kind kind;
  CallShape shape;
};

constexpr std::array<KindName, 11> kCustomKinds = {{
    {"malloc", HT_MALLOC, CallShape::Size1},
    {"calloc", HT_CALLOC, CallShape::Calloc},
    {"realloc", HT_REALLOC, CallShape::Realloc},
    {"free", HT_FREE, CallShape::Release},
    {"memalign", HT_MEMALIGN, CallShape::Size2},
    {"aligned_alloc", HT_ALIGNED_ALLOC, CallShape::Size2},
    {"posix_memalign", HT_POSIX_MEMALIGN, CallShape::PosixMemalign},
    {"new", HT_OPERATOR_NEW, CallShape::Size1},
    {"new[]", HT_OPERATOR_NEW_ARRAY, CallShape::Size1},
    {"delete", HT_OPERATOR_DELETE, CallShape::Release},
    {"delete[]", HT_OPERATOR_DELETE_ARRAY, CallShape::Release},
}};

std::vector<FunctionSpec> makeStandardFunctions() {
  std::vector<FunctionSpec> specs = {
      {"malloc", HT_MALLOC, CallShape::Size1},
      {"free", HT_FREE, CallShape::Free},
      {"calloc", HT_CALLOC, CallShape::Calloc},
      {"realloc", HT_REALLOC, CallShape::Realloc},
      {"reallocarray", HT_REALLOCARRAY, CallShape::ReallocArray},
      {"posix_memalign", HT_POSIX_MEMALIGN, CallShape::PosixMemalign},
      {"memalign", HT_MEMALIGN, CallShape::Size2},
      {"aligned_alloc", HT_ALIGNED_ALLOC, CallShape::Size2},
      {"valloc", HT_VALLOC, CallShape::Size1},
      {"pvalloc", HT_PVALLOC, CallShape::Size1},
      {"mmap", HT_MMAP, CallShape::Mmap},
      {"munmap", HT_MUNMAP, CallShape::Munmap},
  };
  // C++ operators (LP64 mangling: size_t is 'm'), each in its plain, nothrow,
  // aligned and aligned-nothrow form; deletes also sized.
  for (const auto& [prefix, kind] : {std::pair{"_Znw", HT_OPERATOR_NEW}, std::pair{"_Zna", HT_OPERATOR_NEW_ARRAY}})
    for (const char* suffix : {"m", "mRKSt9nothrow_t", "mSt11align_val_t", "mSt11align_val_tRKSt9nothrow_t"})
      specs.push_back({std::string(prefix) + suffix, kind, CallShape::Size1});
  for (const auto& [prefix, kind] :
       {std::pair{"_Zdl", HT_OPERATOR_DELETE}, std::pair{"_Zda", HT_OPERATOR_DELETE_ARRAY}})
    for (const char* suffix : {"Pv", "Pvm", "PvRKSt9nothrow_t", "PvSt11align_val_t", "PvmSt11align_val_t",
                               "PvSt11align_val_tRKSt9nothrow_t"})
      specs.push_back({std::string(prefix) + suffix, kind, CallShape::Release});
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
