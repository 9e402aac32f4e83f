// A minimal strict JSON parser for the tests: enough to check that the analyzer's
// output is valid JSON and to read its fields back.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace heaptrail::testing {

struct JsonValue {
  using Array = std::vector<JsonValue>;
  using Object = std::map<std::string, JsonValue>;
  std::variant<std::nullptr_t, bool, double, std::string, std::shared_ptr<Array>, std::shared_ptr<Object>> v;

  bool isNull() const { return std::holds_alternative<std::nullptr_t>(v); }
  bool isNumber() const { return std::holds_alternative<double>(v); }
  bool isString() const { return std::holds_alternative<std::string>(v); }
  bool isArray() const { return std::holds_alternative<std::shared_ptr<Array>>(v); }
  bool isObject() const { return std::holds_alternative<std::shared_ptr<Object>>(v); }
  double number() const { return std::get<double>(v); }
  uint64_t u64() const { return static_cast<uint64_t>(std::get<double>(v)); }
  const std::string& str() const { return std::get<std::string>(v); }
  const Array& array() const { return *std::get<std::shared_ptr<Array>>(v); }
  const Object& object() const { return *std::get<std::shared_ptr<Object>>(v); }
  bool has(const std::string& key) const { return isObject() && object().count(key) > 0; }
  const JsonValue& operator[](const std::string& key) const {
    const auto& o = object();
    const auto it = o.find(key);
    if (it == o.end()) throw std::runtime_error("no key " + key);
    return it->second;
  }
  const JsonValue& operator[](size_t i) const { return array().at(i); }
};

class JsonParser {
 public:
  // Throws std::runtime_error on anything that is not exactly one JSON value.
  static JsonValue parse(std::string_view text) {
    JsonParser p(text);
    JsonValue v = p.value();
    p.ws();
    if (p.i_ != text.size()) p.fail("trailing characters");
    return v;
  }

 private:
  explicit JsonParser(std::string_view t) : t_(t) {}
  [[noreturn]] void fail(const std::string& what) {
    throw std::runtime_error("invalid JSON at " + std::to_string(i_) + ": " + what);
  }
  void ws() {
    while (i_ < t_.size() && (t_[i_] == ' ' || t_[i_] == '\n' || t_[i_] == '\t' || t_[i_] == '\r')) ++i_;
  }
  char peek() { return i_ < t_.size() ? t_[i_] : '\0'; }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected ") + c);
    ++i_;
  }
  bool literal(std::string_view word) {
    if (t_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    return true;
  }
  JsonValue value() {
    ws();
    const char c = peek();
    if (c == '{') return object();
    if (c == '[') return array();
    if (c == '"') return {string()};
    if (literal("null")) return {nullptr};
    if (literal("true")) return {true};
    if (literal("false")) return {false};
    return number();
  }
  JsonValue object() {
    expect('{');
    auto o = std::make_shared<JsonValue::Object>();
    ws();
    if (peek() == '}') {
      ++i_;
      return {o};
    }
    for (;;) {
      ws();
      std::string k = string();
      ws();
      expect(':');
      if (!o->emplace(k, value()).second) fail("duplicate key " + k);
      ws();
      if (peek() == ',') { ++i_; continue; }
      expect('}');
      return {o};
    }
  }
  JsonValue array() {
    expect('[');
    auto a = std::make_shared<JsonValue::Array>();
    ws();
    if (peek() == ']') {
      ++i_;
      return {a};
    }
    for (;;) {
      a->push_back(value());
      ws();
      if (peek() == ',') { ++i_; continue; }
      expect(']');
      return {a};
    }
  }
  std::string string() {
    expect('"');
    std::string out;
    for (;;) {
      if (i_ >= t_.size()) fail("unterminated string");
      const unsigned char c = static_cast<unsigned char>(t_[i_++]);
      if (c == '"') return out;
      if (c < 0x20) fail("control character in string");
      if (c != '\\') {
        out += static_cast<char>(c);
        continue;
      }
      const char e = peek();
      ++i_;
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          if (i_ + 4 > t_.size()) fail("short \\u escape");
          const unsigned cp = std::stoul(std::string(t_.substr(i_, 4)), nullptr, 16);
          i_ += 4;
          if (cp < 0x80) out += static_cast<char>(cp);
          else if (cp < 0x800) out += static_cast<char>(0xC0 | (cp >> 6)), out += static_cast<char>(0x80 | (cp & 0x3F));
          else out += static_cast<char>(0xE0 | (cp >> 12)), out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F)),
               out += static_cast<char>(0x80 | (cp & 0x3F));
          break;
        }
        default: fail("bad escape");
      }
    }
  }
  JsonValue number() {
    const size_t start = i_;
    if (peek() == '-') ++i_;
    if (!isdigit(static_cast<unsigned char>(peek()))) fail("unexpected character");
    while (isdigit(static_cast<unsigned char>(peek())) || peek() == '.' || peek() == 'e' || peek() == 'E' ||
           peek() == '+' || peek() == '-')
      ++i_;
    return {std::stod(std::string(t_.substr(start, i_ - start)))};
  }

  std::string_view t_;
  size_t i_ = 0;
};

}  // namespace heaptrail::testing
