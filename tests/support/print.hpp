#pragma once

// How Boost.Test prints evident values in failed assertions (found by ADL).

#include "evident/persistence/errc.hpp"

#include <ostream>

namespace evident {

inline std::ostream& boost_test_print_type(std::ostream& os, errc x) {
  return os << to_string(x);
}

} // namespace evident
