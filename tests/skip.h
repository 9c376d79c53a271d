#pragma once
// Reporting a test case that cannot run here (the CPU lacks an ISA, there is
// no GPU, the Python fixtures could not be made). Catch2 v2 has no skip, so:
//  * when the process was asked to run exactly this one case (CTest runs each
//    case alone, by name), it prints "SKIPPED: <why>" and exits with
//    COMPRESS_SKIP_CODE (77), which CTest reports as skipped, never passed;
//  * in a run of several cases (by hand), it warns "SKIPPED: <why>" and the
//    case returns, so the other cases still run.
// Use COMPRESS_SKIP(why) inside the test case itself (it returns from it).
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

#ifndef COMPRESS_SKIP_CODE
#define COMPRESS_SKIP_CODE 77
#endif

namespace compress::testing {

// True when the command line selects exactly one test case.
inline bool running_one_case() {
  const Catch::IConfig& config = *Catch::getCurrentContext().getConfig();
  return Catch::filterTests(Catch::getAllTestCasesSorted(config), config.testSpec(), config).size() == 1;
}

// Ends the process with the skip code when this is the only case asked for;
// otherwise warns and returns, and the caller returns from the case.
inline void report_skipped(const std::string& why) {
  if (running_one_case()) {
    std::printf("SKIPPED: %s\n", why.c_str());
    std::fflush(stdout);
    std::exit(COMPRESS_SKIP_CODE);
  }
  WARN("SKIPPED: " << why);
}

}  // namespace compress::testing

#define COMPRESS_SKIP(why)                            \
  do {                                                \
    ::compress::testing::report_skipped(why);         \
    return;                                           \
  } while (false)
