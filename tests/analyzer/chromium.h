// Headless Chromium (Debian's chromium) as the reader of HTML reports in tests: the DOM
// after the page's scripts ran, and screenshots.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

#include "tests/support/run_command.h"

namespace heaptrail::testing {

inline constexpr const char* kChromium = "/usr/bin/chromium";

inline bool haveChromium() { return ::access(kChromium, X_OK) == 0; }

// `profile` is a fresh directory for Chromium's state, so that parallel tests do not share one.
inline CommandResult chromium(const std::filesystem::path& html, const std::filesystem::path& profile,
                              const std::string& action) {
  return runCommand({kChromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                     "--no-first-run", "--user-data-dir=" + profile.string(), "--virtual-time-budget=5000",
                     "--window-size=1280,1500", action, "file://" + std::filesystem::absolute(html).string()});
}

inline CommandResult chromiumDom(const std::filesystem::path& html, const std::filesystem::path& profile) {
  return chromium(html, profile, "--dump-dom");
}

inline CommandResult chromiumScreenshot(const std::filesystem::path& html, const std::filesystem::path& profile,
                                        const std::filesystem::path& png) {
  return chromium(html, profile, "--screenshot=" + png.string());
}

}  // namespace heaptrail::testing
