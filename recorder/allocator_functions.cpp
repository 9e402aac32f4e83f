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
