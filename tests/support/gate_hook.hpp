#pragma once

#include "evident/persistence/failing_journal.hpp"
#include "evident/runtime/runtime.hpp"

#include <boost/test/unit_test.hpp>

#include <chrono>
#include <memory>

namespace evident::test {

// Wraps the writer's journal in a failing_journal, which by default holds every commit
// until released. Only a weak reference stays here: stop() waits until nothing holds the
// journal, and a test must not be that something.
struct gate_hook {
  std::chrono::milliseconds hold_timeout;
  bool hold;
  std::weak_ptr<failing_journal> ref;

  explicit gate_hook(std::chrono::milliseconds t = failing_journal::default_hold_timeout,
                     bool hold_commits = true)
      : hold_timeout(t), hold(hold_commits) {
    // nop
  }

  runtime_hooks hooks() {
    runtime_hooks h;
    h.wrap_journal = [this](std::shared_ptr<journal> j) {
      auto g = std::make_shared<failing_journal>(std::move(j));
      g->hold_timeout(hold_timeout);
      if (hold)
        g->hold();
      ref = g;
      return g;
    };
    return h;
  }

  std::shared_ptr<failing_journal> operator()() const {
    auto g = ref.lock();
    BOOST_REQUIRE(g != nullptr);
    return g;
  }
};

} // namespace evident::test
