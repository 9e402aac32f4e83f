#include "analyzer/report/pprof.h"

#include <google/protobuf/io/gzip_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl.h>

#include <map>
#include <stdexcept>
#include <tuple>
#include <unordered_map>

#include "analyzer/report/frame_names.h"
#include "analyzer/report/profile.pb.h"
#include "common/hex.h"
#include "common/safe_text.h"

namespace heaptrail::analyzer::report {
namespace {

namespace pb = perftools::profiles;

class ProfileBuilder {
 public:
  explicit ProfileBuilder(const LeakReport& report) : report_(report) {
    intern("");  // string_table[0] must be ""
  }

  pb::Profile build() {
    for (const char* const* t : {kAllocObjects, kAllocSpace, kInuseObjects, kInuseSpace}) {
      auto* type = profile_.add_sample_type();
      type->set_type(intern(t[0]));
      type->set_unit(intern(t[1]));
    }
    profile_.set_default_sample_type(intern(kInuseSpace[0]));
    profile_.mutable_period_type()->set_type(intern("space"));
    profile_.mutable_period_type()->set_unit(intern("bytes"));
    profile_.set_period(1);  // every allocation is in the trace: nothing is sampled
    profile_.set_duration_nanos(static_cast<int64_t>(report_.summary.analysisNs));
    comment("heaptrail trace " + report_.summary.trace);
    for (const auto& w : report_.warnings) comment("WARNING: " + w);
    if (report_.summary.suppressing)
      comment("suppressed: " + std::to_string(report_.summary.suppressedGroups) + " stacks, " +
              std::to_string(report_.summary.suppressedBytes) + " bytes outstanding");

    const bool perProcess = report_.summary.processes.size() > 1 && !report_.summary.pid;
    for (const auto& g : report_.leaks) {
      auto* sample = profile_.add_sample();
      for (const Frame& f : g.stack.frames) sample->add_location_id(location(g.pid, f));
      if (g.stack.frames.empty()) sample->add_location_id(placeholder(g.stack));
      sample->add_value(static_cast<int64_t>(g.allocations));
      sample->add_value(static_cast<int64_t>(g.allocatedBytes));
      sample->add_value(static_cast<int64_t>(g.count));
      sample->add_value(static_cast<int64_t>(g.bytes));
      if (perProcess) {
        auto* label = sample->add_label();
        label->set_key(intern("pid"));
        label->set_num(g.pid);
      }
    }
    return std::move(profile_);
  }

 private:
  static constexpr const char* kAllocObjects[] = {"alloc_objects", "count"};
  static constexpr const char* kAllocSpace[] = {"alloc_space", "bytes"};
  static constexpr const char* kInuseObjects[] = {"inuse_objects", "count"};
  static constexpr const char* kInuseSpace[] = {"inuse_space", "bytes"};

  // Every string is text from the trace: valid UTF-8 (protobuf's `string`) and no control
  // characters (pprof prints them on a terminal).
  int64_t intern(const std::string& raw) {
    const std::string text = common::printable(raw);
    const auto [it, inserted] = strings_.try_emplace(text, static_cast<int64_t>(strings_.size()));
    if (inserted) profile_.add_string_table(text);
    return it->second;
  }

  void comment(const std::string& text) { profile_.add_comment(intern(text)); }

  uint64_t mapping(uint32_t pid, const Frame& f) {
    const auto key = std::make_tuple(pid, f.module, f.buildId);
    auto it = mappings_.find(key);
    if (it == mappings_.end()) {
      auto* m = profile_.add_mapping();
      m->set_id(profile_.mapping_size());
      m->set_filename(intern(f.module));
      m->set_build_id(intern(common::hexBytes(f.buildId)));
      m->set_memory_start(f.address);
      m->set_memory_limit(f.address + 1);
      m->set_file_offset(f.offset);
      it = mappings_.emplace(key, profile_.mapping_size() - 1).first;
    }
    auto* m = profile_.mutable_mapping(static_cast<int>(it->second));
    // The trace keeps mappings, not their bounds per frame: the range the frames cover.
    if (f.address < m->memory_start()) {
      m->set_file_offset(f.offset);
      m->set_memory_start(f.address);
    }
    if (f.address >= m->memory_limit()) m->set_memory_limit(f.address + 1);
    if (f.symbolized && f.symbol.resolved()) {
      m->set_has_functions(true);
      for (const auto& s : f.symbol.frames) {
        if (!s.file.empty()) m->set_has_filenames(true);
        if (s.line > 0) m->set_has_line_numbers(true);
      }
      if (f.symbol.frames.size() > 1) m->set_has_inline_frames(true);
    }
    return m->id();
  }

  uint64_t function(const FunctionAt& f) {
    const auto key = std::make_pair(f.name, f.file);
    auto it = functions_.find(key);
    if (it != functions_.end()) return it->second;
    auto* fn = profile_.add_function();
    fn->set_id(profile_.function_size());
    fn->set_name(intern(f.name));
    fn->set_system_name(intern(f.name));
    fn->set_filename(intern(f.file));
    return functions_.emplace(key, fn->id()).first->second;
  }

  uint64_t location(uint32_t pid, const Frame& f) {
    const auto key = std::make_tuple(pid, f.address, f.module);
    auto it = locations_.find(key);
    if (it != locations_.end()) return it->second;
    auto* loc = profile_.add_location();
    loc->set_id(profile_.location_size());
    loc->set_address(f.address);
    if (f.mapped) loc->set_mapping_id(mapping(pid, f));
    // Inlined calls first, the function whose code it is last: pprof's order too.
    for (const auto& fn : functionsAt(f)) {
      auto* line = loc->add_line();
      line->set_function_id(function(fn));
      line->set_line(fn.line);
    }
    return locations_.emplace(key, loc->id()).first->second;
  }

  uint64_t placeholder(const StackReport& stack) {
    const std::string name = placeholderName(stack);
    auto it = placeholders_.find(name);
    if (it != placeholders_.end()) return it->second;
    auto* loc = profile_.add_location();
    loc->set_id(profile_.location_size());
    loc->add_line()->set_function_id(function({name, "", 0, false, false}));
    return placeholders_.emplace(name, loc->id()).first->second;
  }

  const LeakReport& report_;
  pb::Profile profile_;
  std::unordered_map<std::string, int64_t> strings_;
  std::map<std::tuple<uint32_t, std::string, std::string>, uint64_t> mappings_;  // -> index
  std::map<std::pair<std::string, std::string>, uint64_t> functions_;
  std::map<std::tuple<uint32_t, uint64_t, std::string>, uint64_t> locations_;
  std::map<std::string, uint64_t> placeholders_;
};

}  // namespace

void writePprof(std::ostream& out, const LeakReport& report) {
  const pb::Profile profile = ProfileBuilder(report).build();
  google::protobuf::io::OstreamOutputStream raw(&out);
  google::protobuf::io::GzipOutputStream::Options options;
  options.format = google::protobuf::io::GzipOutputStream::GZIP;
  google::protobuf::io::GzipOutputStream gzip(&raw, options);
  if (!profile.SerializeToZeroCopyStream(&gzip) || !gzip.Close())
    throw std::runtime_error("cannot write the pprof profile: " + std::string(gzip.ZlibErrorMessage() ? gzip.ZlibErrorMessage() : "serialization failed"));
}

}  // namespace heaptrail::analyzer::report
