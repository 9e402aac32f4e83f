// Suppressions: stacks whose allocations are known to be kept for the life of the process
// on purpose (the C library's NSS, locale and stdio buffers, the dynamic loader's TLS,
// libstdc++'s emergency pool, ...) are left out of the report and counted.
//
// The syntax is LeakSanitizer's: one `leak:PATTERN` per line, `#` comments. A pattern
// matches a stack when it matches the function (inlined ones too), the module path or the
// source file of any of its frames. `*` matches any text; a pattern matches anywhere in
// the name unless it starts with `^` (anchored at the start) or ends with `$` (at the end).
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace heaptrail::analyzer {

struct StackReport;

class SuppressionError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct SuppressionRule {
  std::string pattern;  // without the "leak:" prefix
  std::string origin;   // "default" or the file's path
  unsigned line = 0;
  std::string text() const { return "leak:" + pattern; }
};

class Suppressions {
 public:
  // The built-in rules (on by default).
  static Suppressions defaults();
  // The built-in rules as a suppression file would write them, with a comment for each.
  static std::string defaultsText();

  // Adds the rules of a suppression file's text; throws SuppressionError naming `origin`
  // and the line for lines that are not `leak:PATTERN`, comments or blank.
  void add(std::string_view text, const std::string& origin);
  // Reads and adds a file; throws SuppressionError when it cannot be read.
  void addFile(const std::filesystem::path& file);

  bool empty() const { return rules_.empty(); }
  const std::vector<SuppressionRule>& rules() const { return rules_; }
  // Index of the first rule matching a frame of `stack`.
  std::optional<size_t> match(const StackReport& stack) const;

 private:
  std::vector<SuppressionRule> rules_;
};

// Suppressions::match for many stacks: each distinct text (module path, function, source
// file) is matched against the rules once, as stacks share most of their frames.
class SuppressionMatcher {
 public:
  explicit SuppressionMatcher(const Suppressions& suppressions) : suppressions_(suppressions) {}
  // The same answer as Suppressions::match.
  std::optional<size_t> match(const StackReport& stack);

 private:
  // The first rule matching `text`, or the rule count when none does.
  size_t firstRule(const std::string& text);

  const Suppressions& suppressions_;
  std::unordered_map<std::string, size_t> firstRules_;
};

// LeakSanitizer's template match: `*` any text, `^`/`$` anchors, otherwise a substring.
bool templateMatches(std::string_view pattern, std::string_view text);

}  // namespace heaptrail::analyzer
