#pragma once

// Lets BOOST_TEST print a refusal when a comparison fails.

#include "downloads/license.hpp"

#include <ostream>

namespace downloads {

inline std::ostream& operator<<(std::ostream& os, refusal x) {
  return os << to_string(x);
}

} // namespace downloads
