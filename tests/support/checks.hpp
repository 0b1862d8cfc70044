#pragma once

// Shared assertion helpers for tests of evident's expected/status results.

#include "print.hpp"

#include "evident/persistence/errc.hpp"

#include <boost/test/unit_test.hpp>

#include <chrono>
#include <string>
#include <thread>

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

/// Polls `pred` every millisecond until it holds (true) or `bound` passes (false), for
/// states that send no message when they are reached.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds bound = std::chrono::seconds{10}) {
  auto deadline = std::chrono::steady_clock::now() + bound;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds{1});
  }
  return true;
}

} // namespace evident::test
