// The two throwing helpers of compress/error.h, for the kernels library alone:
// src/common/error.cpp also defines first_line_of(), which needs c10, and the
// kernels must not depend on LibTorch. Both definitions are identical.
#include "compress/error.h"

namespace compress {

void bad_input(const std::string& message) { throw Error(ErrorKind::BadInput, message); }
void failure(const std::string& message) { throw Error(ErrorKind::Failure, message); }

}  // namespace compress
