#pragma once
// Helpers of the op tests: a boxed call of a compress:: op through the
// dispatcher (as a loaded TorchScript model makes it), and its error text.
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/util/Exception.h>

#include <functional>
#include <string>
#include <vector>

namespace ops_test {

inline c10::IValue call(const std::string& name, std::vector<c10::IValue> args) {
  auto op = c10::Dispatcher::singleton().findSchemaOrThrow(("compress::" + name).c_str(), "");
  auto stack = std::move(args);
  op.callBoxed(&stack);
  return stack.at(0);
}

// The op's one-line error (without LibTorch's backtrace), "" when it succeeded.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  }
  return "";
}

}  // namespace ops_test
