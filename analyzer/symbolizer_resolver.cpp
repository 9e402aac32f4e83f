// FrameResolver backed by heaptrail_symbols (one Symbolizer per run, so each module is
// indexed once).
#include "analyzer/frame_resolver.h"

#ifdef HT_HAVE_SYMBOLS
#include "symbolizer.h"
#endif

namespace heaptrail::analyzer {

#ifdef HT_HAVE_SYMBOLS
namespace {

class SymbolizerResolver final : public FrameResolver {
 public:
  explicit SymbolizerResolver(const SymbolOptions& options)
      : symbolizer_(symbols::SymbolizerOptions{options.sysroot, options.debugDirs, true}) {}

  FrameSymbol resolve(const std::string& path, const std::string& buildId, uint64_t fileOffset) override {
    const auto r = symbolizer_.resolve(symbols::ModuleRef{path, buildId}, fileOffset);
    FrameSymbol out;
    out.resolved = r.status == symbols::FrameStatus::Resolved;
    out.function = r.function;
    out.file = r.file;
    out.line = r.line;
    if (!out.resolved) {
      out.reason = std::string(symbols::toString(r.status));
      if (!r.reason.empty()) out.reason += ": " + r.reason;
    }
    return out;
  }

 private:
  symbols::Symbolizer symbolizer_;
};

}  // namespace

std::unique_ptr<FrameResolver> makeSymbolizer(const SymbolOptions& options) {
  return std::make_unique<SymbolizerResolver>(options);
}
#else
std::unique_ptr<FrameResolver> makeSymbolizer(const SymbolOptions&) { return nullptr; }
#endif

}  // namespace heaptrail::analyzer
