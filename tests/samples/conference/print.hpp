#pragma once

// How Boost.Test prints the conference sample's values in failed assertions (ADL).

#include "conference/remaining_seats.hpp"
#include "conference/seat_availability.hpp"

#include "support/print.hpp"

#include <ostream>

namespace conference {

inline std::ostream& boost_test_print_type(std::ostream& os, refusal x) {
  return os << to_string(x);
}

inline std::ostream& boost_test_print_type(std::ostream& os, const seats_reply& x) {
  return os << "{" << to_string(x.refused) << ", capacity " << x.capacity << ", remaining "
            << x.remaining << "}";
}

inline std::ostream& boost_test_print_type(std::ostream& os, const seat_counts& x) {
  return os << "{conferences " << x.conferences << ", capacity " << x.capacity << ", pending "
            << x.pending << ", confirmed " << x.confirmed << "}";
}

} // namespace conference
