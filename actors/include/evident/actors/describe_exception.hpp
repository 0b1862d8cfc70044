#pragma once

#include <string>

namespace evident::detail {

/// "what() of the current exception" for error messages. Call only inside a catch
/// block: user code (decide, apply, project, handle) may throw anything.
std::string describe_current_exception();

} // namespace evident::detail
