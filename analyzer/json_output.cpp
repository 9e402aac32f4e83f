#include "analyzer/json_output.h"

#include <cstdio>
#include <vector>

namespace heaptrail::analyzer {
namespace {

// Length of the valid UTF-8 sequence at text[i], 0 if invalid (overlongs, surrogates
// and code points above U+10FFFF included).
size_t utf8Length(std::string_view text, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char c = byte(i);
  size_t n = 0;
  uint32_t cp = 0;
  if (c >= 0xC2 && c <= 0xDF) n = 2, cp = c & 0x1F;
  else if (c >= 0xE0 && c <= 0xEF) n = 3, cp = c & 0x0F;
  else if (c >= 0xF0 && c <= 0xF4) n = 4, cp = c & 0x07;
  else return 0;
  if (i + n > text.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  if ((n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
    return 0;
  return n;
}

std::string hexBytes(const std::string& raw) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

std::string hexNumber(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

// Pretty-printing writer: tracks commas and indentation, nothing else.
class JsonWriter {
 public:
  explicit JsonWriter(std::ostream& out) : out_(out) {}

  void beginObject() { open('{'); }
  void endObject() { close('}'); }
  void beginArray() { open('['); }
  void endArray() { close(']'); }
  void key(std::string_view k) {
    separator();
    out_ << jsonString(k) << ": ";
    afterKey_ = true;
  }
  void value(std::string_view s) { raw(jsonString(s)); }
  void value(const char* s) { raw(jsonString(s)); }
  void value(uint64_t n) { raw(std::to_string(n)); }
  void value(int64_t n) { raw(std::to_string(n)); }
  void value(bool b) { raw(b ? "true" : "false"); }
  void null() { raw("null"); }
  template <typename T>
  void field(std::string_view k, const T& v) {
    key(k);
    value(v);
  }
  void nullField(std::string_view k) {
    key(k);
    null();
  }
  void stringOrNull(std::string_view k, const std::string& v) {
    key(k);
    if (v.empty()) null(); else value(std::string_view(v));
  }

 private:
  void separator() {
    if (afterKey_) {
      afterKey_ = false;
      return;
    }
    if (!first_.empty()) {
      if (!first_.back()) out_ << ",";
      first_.back() = false;
      out_ << "\n" << std::string(2 * first_.size(), ' ');
    }
  }
  void raw(std::string_view text) {
    separator();
    out_ << text;
  }
  void open(char c) {
    separator();
    out_ << c;
    first_.push_back(true);
  }
  void close(char c) {
    const bool empty = first_.back();
    first_.pop_back();
    if (!empty) out_ << "\n" << std::string(2 * first_.size(), ' ');
    out_ << c;
  }

  std::ostream& out_;
  std::vector<bool> first_;
  bool afterKey_ = false;
};

// The frames of a stack as an array (empty when no stack was recorded).
void writeFrameList(JsonWriter& w, const StackReport& stack) {
  w.beginArray();
  for (const Frame& f : stack.frames) {
    w.beginObject();
    w.field("address", std::string_view(hexNumber(f.address)));
    if (f.mapped) {
      w.field("module", std::string_view(f.module));
      w.stringOrNull("build_id", hexBytes(f.buildId));
      w.field("offset", f.offset);
    } else {
      w.nullField("module");
      w.nullField("build_id");
      w.nullField("offset");
    }
    const FrameSymbol& s = f.symbol;
    w.stringOrNull("function", s.function);
    w.stringOrNull("file", s.file);
    w.key("line");
    if (s.line > 0) w.value(uint64_t{s.line}); else w.null();
    if (!f.mapped)
      w.field("unresolved", "no mapping");
    else if (f.symbolized && !s.resolved)
      w.stringOrNull("unresolved", s.reason.empty() ? std::string("no symbol") : s.reason);
    else
      w.nullField("unresolved");
    w.endObject();
  }
  w.endArray();
}

void writeFrames(JsonWriter& w, const StackReport& stack) {
  w.field("stack_id", uint64_t{stack.stackId});
  w.key("frames");
  writeFrameList(w, stack);
}

}  // namespace

std::string jsonString(std::string_view text) {
  std::string out = "\"";
  for (size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {
      const size_t n = utf8Length(text, i);
      if (n == 0) {
        out += "\\ufffd";
        ++i;
      } else {
        out.append(text.substr(i, n));
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
  out += '"';
  return out;
}

void writeJson(std::ostream& out, const LeakReport& report) {
  const ReportSummary& s = report.summary;
  JsonWriter w(out);
  w.beginObject();
  w.key("summary");
  w.beginObject();
  w.field("trace", std::string_view(s.trace));
  w.key("target_pid");
  if (s.targetPid != 0) w.value(uint64_t{s.targetPid}); else w.null();
  w.key("target_command");
  w.beginArray();
  for (const auto& a : s.targetCommand) w.value(std::string_view(a));
  w.endArray();
  w.field("status", std::string_view(s.status));
  w.stringOrNull("problem", s.problem);
  w.key("at_ns");
  if (s.atNs) w.value(*s.atNs); else w.null();
  w.field("since_ns", s.sinceNs);
  w.field("min_bytes", s.minBytes);
  w.field("top", uint64_t{s.top});
  w.field("analysis_ns", s.analysisNs);
  w.field("events", s.events);
  w.field("allocations", s.allocations);
  w.field("frees", s.frees);
  w.field("bytes_allocated", s.bytesAllocated);
  w.field("peak_outstanding_bytes", s.peakBytes);
  w.field("peak_ns", s.peakNs);
  w.field("outstanding_bytes", s.outstandingBytes);
  w.field("outstanding_allocations", s.outstandingAllocations);
  w.field("matching_bytes", s.matchingBytes);
  w.field("matching_allocations", s.matchingAllocations);
  w.field("stack_groups", s.stackGroups);
  w.field("unknown_frees", s.unknownFrees);
  w.field("double_frees", s.doubleFrees);
  w.field("mismatched_frees", s.mismatches);
  w.key("pid");
  if (s.pid) w.value(uint64_t{*s.pid}); else w.null();
  w.key("processes");
  w.beginArray();
  for (uint32_t pid : s.processes) w.value(uint64_t{pid});
  w.endArray();
  w.field("failed_reallocs", s.failedReallocs);
  w.key("lost_events");
  w.beginObject();
  for (const auto& [kind, count] : s.lost) w.field(kind, count);
  w.endObject();
  w.field("lost_total", s.lostTotal);
  w.key("warnings");
  w.beginArray();
  for (const auto& warning : report.warnings) w.value(std::string_view(warning));
  w.endArray();
  w.endObject();

  w.key("leaks");
  w.beginArray();
  for (const auto& leak : report.leaks) {
    w.beginObject();
    w.field("pid", uint64_t{leak.pid});
    w.field("bytes", leak.bytes);
    w.field("count", leak.count);
    w.field("oldest_ns", leak.oldestAgeNs);
    w.field("youngest_ns", leak.youngestAgeNs);
    writeFrames(w, leak.stack);
    w.endObject();
  }
  w.endArray();

  w.key("double_frees");
  w.beginArray();
  for (const auto& d : report.doubleFrees) {
    w.beginObject();
    w.field("count", d.count);
    w.field("bytes", d.bytes);
    w.field("first_ns", d.firstTimeNs);
    writeFrames(w, d.stack);
    w.key("free_frames");
    writeFrameList(w, d.freeStack);
    w.endObject();
  }
  w.endArray();

  w.key("mismatched_frees");
  w.beginArray();
  for (const auto& m : report.mismatches) {
    w.beginObject();
    w.field("pid", uint64_t{m.pid});
    w.field("count", m.count);
    w.field("bytes", m.bytes);
    w.field("allocated_with", std::string_view(m.allocFamily));
    w.field("released_with", std::string_view(m.releaseFamily));
    w.key("alloc_frames");
    writeFrameList(w, m.allocStack);
    w.key("release_frames");
    writeFrameList(w, m.releaseStack);
    w.endObject();
  }
  w.endArray();
  w.endObject();
  out << "\n";
}

}  // namespace heaptrail::analyzer
