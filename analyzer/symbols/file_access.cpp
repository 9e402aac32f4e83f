#include "analyzer/symbols/file_access.h"

#include <fcntl.h>

#include "common/safe_open.h"

namespace heaptrail::symbols {

FileAccess::FileAccess(const std::filesystem::path& sysroot) {
  if (sysroot.empty()) return;
  std::error_code ec;
  sysroot_ = std::filesystem::absolute(sysroot, ec).lexically_normal().string();
  while (sysroot_.size() > 1 && sysroot_.back() == '/') sysroot_.pop_back();
  // A sysroot that cannot be opened confines everything to nothing: every lookup fails.
  root_.reset(::open(sysroot_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
}

std::filesystem::path FileAccess::hostPath(const std::filesystem::path& recorded) const {
  if (sysroot_.empty()) return recorded;
  return sysroot_ + "/" + recorded.relative_path().string();
}

common::UniqueFd FileAccess::open(const std::filesystem::path& path) const {
  const std::string& text = path.native();
  if (!sysroot_.empty() && (text == sysroot_ || (text.size() > sysroot_.size() && text.starts_with(sysroot_) &&
                                                  text[sysroot_.size()] == '/'))) {
    if (!root_) return {};
    return common::openRegularInRoot(root_.get(), text.substr(sysroot_.size()), common::Links::StayInside);
  }
  return common::openRegular(path);
}

}  // namespace heaptrail::symbols
