#include "analyzer/suppressions.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "analyzer/leak_report.h"

namespace heaptrail::analyzer {
namespace {

struct DefaultRule {
  const char* pattern;
  const char* why;
};

// Memory the C runtime allocates once and keeps until exit on purpose (glibc frees most of
// it only in __libc_freeres, which runs under valgrind, not in a normal exit). Matched on
// function names as glibc's debug info (libc6-dbg) and symbol tables give them.
constexpr DefaultRule kDefaultRules[] = {
    {"_dl_allocate_tls", "dynamic loader: a thread's TLS and DTV"},
    {"_dl_resize_dtv", "dynamic loader: DTV grown for a new TLS module"},
    {"_dl_update_slotinfo", "dynamic loader: TLS of dlopen'ed modules"},
    {"_dl_new_object", "dynamic loader: link map of a loaded object"},
    {"_dl_map_object", "dynamic loader: loading an object and its dependencies"},
    {"_dl_check_map_versions", "dynamic loader: version tables"},
    {"_dl_important_hwcaps", "dynamic loader: search path cache"},
    {"_dl_init_paths", "dynamic loader: search path cache"},
    {"__nss_", "NSS: loaded modules, databases and their state"},
    {"nss_database", "NSS: per-database configuration and state"},
    {"nss_module_", "NSS: loaded modules"},
    {"^getpwnam$", "NSS: the static result buffer of getpwnam"},
    {"^getpwuid$", "NSS: the static result buffer of getpwuid"},
    {"^getgrnam$", "NSS: the static result buffer of getgrnam"},
    {"^getgrgid$", "NSS: the static result buffer of getgrgid"},
    {"^gethostbyname", "NSS: the static result buffer of gethostbyname"},
    {"__resolv_conf_", "resolver: the parsed /etc/resolv.conf"},
    {"_nl_", "locale: loaded locale data, catalogs and their names"},
    {"new_composite_name", "locale: the name of a composite locale"},
    {"^setlocale$", "locale: the current locale's name"},
    {"__gconv_", "iconv: loaded conversion modules and their configuration"},
    {"__wcsmbs_load_conv", "iconv: the locale's multibyte conversion"},
    {"_IO_file_doallocate", "stdio: a stream's buffer (stdin, stdout, ...)"},
    {"__new_exitfn", "atexit: the list of exit handlers"},
    {"__cxa_thread_atexit_impl", "thread_local destructors list"},
    {"tzset_internal", "time zone: the parsed TZ"},
    {"__tzfile_read", "time zone: the loaded zone file"},
    {"__tzstring", "time zone: zone names"},
    {"(anonymous namespace)::pool::pool", "libstdc++: the exception emergency pool"},
    {"eh_alloc.cc", "libstdc++: the exception emergency pool"},
    {"__cxa_get_globals", "libstdc++: per-thread exception state"},
};

bool matchFrom(std::string_view p, std::string_view t, bool anchoredEnd) {
  // Iterative glob: `*` any run of characters.
  size_t pi = 0, ti = 0, star = std::string_view::npos, mark = 0;
  while (ti < t.size()) {
    if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = ti;
    } else if (pi < p.size() && p[pi] == t[ti]) {
      ++pi;
      ++ti;
    } else if (star != std::string_view::npos) {
      pi = star + 1;
      ti = ++mark;
    } else {
      return false;
    }
    if (!anchoredEnd && pi == p.size()) return true;
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

}  // namespace

bool templateMatches(std::string_view pattern, std::string_view text) {
  if (pattern.empty()) return false;
  const bool start = pattern.front() == '^';
  if (start) pattern.remove_prefix(1);
  const bool end = !pattern.empty() && pattern.back() == '$';
  if (end) pattern.remove_suffix(1);
  if (start) return matchFrom(pattern, text, end);
  for (size_t i = 0; i <= text.size(); ++i)
    if (matchFrom(pattern, text.substr(i), end)) return true;
  return false;
}

Suppressions Suppressions::defaults() {
  Suppressions s;
  for (const auto& r : kDefaultRules) s.rules_.push_back({r.pattern, "default", 0});
  return s;
}

std::string Suppressions::defaultsText() {
  std::ostringstream out;
  out << "# heaptrail's built-in suppressions (turn off with --no-default-suppressions)\n";
  for (const auto& r : kDefaultRules) out << "leak:" << r.pattern << "  # " << r.why << "\n";
  return out.str();
}

void Suppressions::add(std::string_view text, const std::string& origin) {
  unsigned lineNo = 0;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++lineNo;
    const auto trim = [](std::string_view& s) {
      while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
      while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    };
    trim(line);
    if (line.empty() || line.front() == '#') continue;
    const size_t colon = line.find(':');
    std::string_view kind = colon == std::string_view::npos ? line : line.substr(0, colon);
    trim(kind);
    if (colon == std::string_view::npos || kind != "leak")
      throw SuppressionError(origin + ":" + std::to_string(lineNo) + ": expected leak:PATTERN, got '" +
                             std::string(line.substr(0, 80)) + "'");
    std::string_view pattern = line.substr(colon + 1);
    trim(pattern);
    if (pattern.empty()) throw SuppressionError(origin + ":" + std::to_string(lineNo) + ": empty pattern after leak:");
    rules_.push_back({std::string(pattern), origin, lineNo});
  }
}

void Suppressions::addFile(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw SuppressionError("cannot read suppression file " + file.string());
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw SuppressionError("cannot read suppression file " + file.string());
  add(text.str(), file.string());
}

std::optional<size_t> Suppressions::match(const StackReport& stack) const {
  for (size_t r = 0; r < rules_.size(); ++r) {
    const std::string& p = rules_[r].pattern;
    for (const Frame& f : stack.frames) {
      if (f.mapped && templateMatches(p, f.module)) return r;
      if (!f.symbolized || !f.symbol.resolved()) continue;
      for (const auto& s : f.symbol.frames)
        if ((!s.function.empty() && templateMatches(p, s.function)) || (!s.file.empty() && templateMatches(p, s.file)))
          return r;
    }
  }
  return std::nullopt;
}

size_t SuppressionMatcher::firstRule(const std::string& text) {
  const auto [it, inserted] = firstRules_.try_emplace(text, 0);
  if (inserted) {
    const auto& rules = suppressions_.rules();
    size_t r = 0;
    while (r < rules.size() && !templateMatches(rules[r].pattern, text)) ++r;
    it->second = r;
  }
  return it->second;
}

std::optional<size_t> SuppressionMatcher::match(const StackReport& stack) {
  // The first rule matching any text of the stack is the least of each text's first rule.
  size_t first = suppressions_.rules().size();
  for (const Frame& f : stack.frames) {
    if (f.mapped) first = std::min(first, firstRule(f.module));
    if (!f.symbolized || !f.symbol.resolved()) continue;
    for (const auto& s : f.symbol.frames) {
      if (!s.function.empty()) first = std::min(first, firstRule(s.function));
      if (!s.file.empty()) first = std::min(first, firstRule(s.file));
    }
    if (first == 0) break;
  }
  if (first == suppressions_.rules().size()) return std::nullopt;
  return first;
}

}  // namespace heaptrail::analyzer
