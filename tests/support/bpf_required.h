#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

// Tests that load BPF programs skip, with the reason, when not run as root, and fail
// instead when HEAPTRAIL_REQUIRE_BPF=1 (as in CI) so that nothing silently skips there.
#define HEAPTRAIL_REQUIRE_BPF_OR_SKIP()                                                     \
  do {                                                                                      \
    if (::geteuid() != 0) {                                                                 \
      const char* require = std::getenv("HEAPTRAIL_REQUIRE_BPF");                           \
      if (require && std::strcmp(require, "1") == 0)                                        \
        FAIL() << "HEAPTRAIL_REQUIRE_BPF=1 but this test is not running as root";          \
      GTEST_SKIP() << "needs root (CAP_BPF + CAP_PERFMON) to load BPF programs";            \
    }                                                                                       \
  } while (0)
