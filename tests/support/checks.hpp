#pragma once

// Shared assertion helpers for tests of evident's expected/status results.

#include "print.hpp"

#include "evident/persistence/errc.hpp"

#include <boost/test/unit_test.hpp>

#include <string>

/// Fails the test (and stops it) with the error's text when `expr` is an error status.
#define REQUIRE_OK(expr)                                                                 \
  do {                                                                                   \
    auto st_ = (expr);                                                                   \
    BOOST_REQUIRE_MESSAGE(!st_, evident::to_string(st_));                                \
  } while (false)

namespace evident::test {

/// The error text of `x`, or "" when it holds a value (for assertion messages).
template <class T>
std::string why(const expected<T>& x) {
  return x ? std::string{} : to_string(x.err());
}

} // namespace evident::test
