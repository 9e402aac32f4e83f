#include "recorder/unwind/unwind_maps.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <endian.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iterator>

#include "common/unique_fd.h"

namespace heaptrail::recorder::unwind {
namespace {

constexpr uint64_t kLpmNodeBytes = 96;  // a trie node with its key and value, roughly

// The prefixes that cover [start, end) exactly, largest first.
std::vector<ht_mapping_key> prefixesOf(pid_t pid, uint64_t start, uint64_t end) {
  std::vector<ht_mapping_key> keys;
  while (start < end) {
    unsigned bits = start == 0 ? 63 : static_cast<unsigned>(__builtin_ctzll(start));
    while (bits > 0 && (bits >= 64 || (uint64_t{1} << bits) > end - start)) --bits;
    ht_mapping_key key{};
    key.prefixlen = 32 + (64 - bits);
    key.pid_be = htonl(static_cast<uint32_t>(pid));
    key.address_be = htobe64(start);
    keys.push_back(key);
    start += uint64_t{1} << bits;
  }
  return keys;
}

}  // namespace

UnwindMaps::UnwindMaps(StackMode mode, int tablesFd, int mappingsFd, int filesFd)
    : mode_(mode), tablesFd_(tablesFd), mappingsFd_(mappingsFd), filesFd_(filesFd) {}

UnwindMaps::~UnwindMaps() = default;

int UnwindMaps::tableIndex(const std::shared_ptr<const UnwindTable>& table) {
  if (auto it = loaded_.find(table.get()); it != loaded_.end()) return it->second;
  const int index = static_cast<int>(loaded_.size());
  if (index >= static_cast<int>(HT_UNWIND_MAX_TABLES)) return -1;
  LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_INNER_MAP);
  common::UniqueFd rows(bpf_map_create(BPF_MAP_TYPE_ARRAY, "ht_unwind_rows", sizeof(uint32_t),
                                       sizeof(ht_unwind_row), static_cast<uint32_t>(table->rows.size()), &opts));
  if (!rows) return -1;
  std::vector<uint32_t> keys(table->rows.size());
  for (uint32_t i = 0; i < keys.size(); ++i) keys[i] = i;
  uint32_t count = static_cast<uint32_t>(keys.size());
  if (bpf_map_update_batch(rows.get(), keys.data(), table->rows.data(), &count, nullptr) != 0) {
    // Kernels without batch operations on arrays: one element at a time.
    for (uint32_t i = 0; i < keys.size(); ++i)
      if (bpf_map_update_elem(rows.get(), &keys[i], &table->rows[i], BPF_ANY) != 0) return -1;
  }
  const int fd = rows.get();
  const uint32_t key = static_cast<uint32_t>(index);
  if (batchDepth_ > 0)
    pendingTables_.push_back({key, std::move(rows)});
  else if (bpf_map_update_elem(tablesFd_, &key, &fd, BPF_ANY) != 0)
    return -1;
  loaded_.emplace(table.get(), index);
  keepAlive_.push_back(table);
  loadedBytes_ += table->bytes();
  return index;
}

void UnwindMaps::publish(const std::shared_ptr<const UnwindTable>& table) {
  if (!table || table->buildId.empty() || table->buildId.size() > HT_BUILD_ID_BYTES) return;
  if (published_.contains(table->buildId)) return;
  ht_unwind_file file{};
  if (table->empty()) {
    file.kind = mode_ == StackMode::Cfi ? HT_MAPPING_STOP : HT_MAPPING_FRAME_POINTER;
  } else {
    const int index = tableIndex(table);
    file.kind = index >= 0 ? HT_MAPPING_TABLE : HT_MAPPING_STOP;
    file.table = index >= 0 ? static_cast<uint32_t>(index) : 0;
    file.rows = static_cast<uint32_t>(table->rows.size());
    file.base = table->base;
  }
  ht_build_id_key key{};
  key.size = static_cast<uint32_t>(table->buildId.size());
  std::memcpy(key.bytes, table->buildId.data(), table->buildId.size());
  if (file.kind == HT_MAPPING_TABLE && pending(file.table)) {
    pendingFiles_.emplace_back(key, file);
    published_.insert(table->buildId);
  } else if (bpf_map_update_elem(filesFd_, &key, &file, BPF_ANY) == 0) {
    published_.insert(table->buildId);
  }
}

bool UnwindMaps::pending(uint32_t index) const {
  return std::any_of(pendingTables_.begin(), pendingTables_.end(), [&](const auto& t) { return t.index == index; });
}

void UnwindMaps::writePrefix(const ht_mapping_key& key, const ht_unwind_mapping& value) {
  if (value.kind == HT_MAPPING_TABLE && pending(value.table))
    pendingPrefixes_.emplace_back(key, value);
  else if (bpf_map_update_elem(mappingsFd_, &key, &value, BPF_ANY) == 0)
    ++entries_;
}

void UnwindMaps::commit() {
  if (!pendingTables_.empty()) {
    std::vector<uint32_t> keys;
    std::vector<int> fds;
    for (const auto& t : pendingTables_) {
      keys.push_back(t.index);
      fds.push_back(t.rows.get());
    }
    uint32_t count = static_cast<uint32_t>(keys.size());
    if (bpf_map_update_batch(tablesFd_, keys.data(), fds.data(), &count, nullptr) != 0) {
      // Kernels without batch updates of map-in-map arrays: one at a time.
      for (size_t i = 0; i < keys.size(); ++i) bpf_map_update_elem(tablesFd_, &keys[i], &fds[i], BPF_ANY);
    }
    pendingTables_.clear();
  }
  for (const auto& [key, file] : pendingFiles_) bpf_map_update_elem(filesFd_, &key, &file, BPF_ANY);
  pendingFiles_.clear();
  for (const auto& [key, value] : pendingPrefixes_)
    if (bpf_map_update_elem(mappingsFd_, &key, &value, BPF_ANY) == 0) ++entries_;
  pendingPrefixes_.clear();
}

std::shared_ptr<const UnwindTable> UnwindMaps::addMapping(pid_t pid, uint64_t start, uint64_t end,
                                                          uint64_t fileOffset, int fd,
                                                          const std::string& buildId) {
  Range range;
  range.end = end;
  // Without a file, or a file without CFI in --stack-mode cfi: a valid frame, the end
  // of the walk.
  range.value.kind = mode_ == StackMode::Cfi ? HT_MAPPING_STOP : HT_MAPPING_FRAME_POINTER;
  if (fd < 0 && buildId.empty()) range.value.kind = HT_MAPPING_STOP;
  std::shared_ptr<const UnwindTable> table;
  if (mode_ != StackMode::Fp && (fd >= 0 || !buildId.empty())) {
    table = fd >= 0 ? cache_.get(fd) : cache_.find(buildId);
    publish(table);
    if (table && !table->empty()) {
      const auto bias = table->biasFor(start, fileOffset);
      const int index = bias ? tableIndex(table) : -1;
      if (index >= 0) {
        range.value.kind = HT_MAPPING_TABLE;
        range.value.table = static_cast<uint32_t>(index);
        range.value.rows = static_cast<uint32_t>(table->rows.size());
        range.value.bias = *bias;
        range.table = table;
      } else {
        range.value.kind = HT_MAPPING_STOP;
      }
    }
  }
  insert(pid, start, std::move(range));
  return table;
}

void UnwindMaps::erase(pid_t pid, std::map<uint64_t, Range>::iterator it) {
  for (const auto& key : it->second.keys) {
    if (bpf_map_delete_elem(mappingsFd_, &key) == 0) --entries_;
    std::erase_if(pendingPrefixes_, [&](const auto& p) { return std::memcmp(&p.first, &key, sizeof key) == 0; });
  }
  processes_[pid].erase(it);
}

void UnwindMaps::insert(pid_t pid, uint64_t start, Range range) {
  auto& ranges = processes_[pid];
  // What the new mapping overlaps is gone (the kernel replaced it).
  auto it = ranges.lower_bound(start);
  if (it != ranges.begin() && std::prev(it)->second.end > start) --it;
  while (it != ranges.end() && it->first < range.end) {
    auto next = std::next(it);
    erase(pid, it);
    it = next;
  }
  range.keys = prefixesOf(pid, start, range.end);
  for (const auto& key : range.keys) writePrefix(key, range.value);
  ranges.emplace(start, std::move(range));
}

void UnwindMaps::copyProcess(pid_t parent, pid_t child) {
  auto it = processes_.find(parent);
  if (it == processes_.end()) return;
  const auto ranges = it->second;  // a copy: insert() may rehash processes_
  for (const auto& [start, range] : ranges) {
    Range copy;
    copy.end = range.end;
    copy.value = range.value;
    copy.table = range.table;
    insert(child, start, std::move(copy));
  }
}

void UnwindMaps::removeProcess(pid_t pid) {
  auto it = processes_.find(pid);
  if (it == processes_.end()) return;
  while (!it->second.empty()) erase(pid, it->second.begin());
  processes_.erase(pid);
}

std::optional<UnwindMaps::Found> UnwindMaps::find(pid_t pid, uint64_t address) const {
  auto it = processes_.find(pid);
  if (it == processes_.end()) return std::nullopt;
  auto range = it->second.upper_bound(address);
  if (range == it->second.begin()) return std::nullopt;
  --range;
  if (address >= range->second.end) return std::nullopt;
  return Found{range->second.value, range->second.table.get()};
}

uint64_t UnwindMaps::kernelBytes() const { return loadedBytes_ + entries_ * kLpmNodeBytes; }

}  // namespace heaptrail::recorder::unwind
