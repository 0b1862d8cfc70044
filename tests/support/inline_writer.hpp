#pragma once

// A journal writer for CAF's deterministic test scheduler: a cooperative actor that
// speaks journal_writer.hpp's protocol and writes synchronously (the real writer is
// detached, i.e. runs on its own thread, which the test scheduler does not drive).
// The test steers it through `inline_writer_controls`:
//
//   ctl->hold = true;           appends wait (promises held) ...
//   send(writer, release_atom)  ... until released: all waiting appends go into ONE
//                               append_batch (a group commit), hold is switched off
//   ctl->fail_next = io_error;  the next append (or batch) fails as a whole
//
// Everything runs on the test thread, so the controls need no locking.

#include "evident/actors/atoms.hpp"
#include "evident/actors/errc.hpp"
#include "evident/actors/journal_writer.hpp"
#include "evident/persistence/journal.hpp"

#include <caf/all.hpp>

#include <memory>
#include <optional>
#include <utility>
#include <vector>

namespace evident::test {

using release_atom = caf::atom_constant<caf::atom("release")>;

struct inline_writer_controls {
  bool hold = false;
  std::optional<errc> fail_next;
  /// Requests waiting while held.
  size_t held = 0;
};

struct inline_writer_state {
  std::shared_ptr<journal> jnl;
  std::shared_ptr<inline_writer_controls> ctl;
  std::vector<append_request> reqs;
  std::vector<caf::response_promise> promises;
  journal_writer_metrics metrics;
};

inline void inline_writer_commit(inline_writer_state& st) {
  if (st.reqs.empty())
    return;
  std::vector<expected<append_result>> results;
  if (auto code = std::exchange(st.ctl->fail_next, std::nullopt)) {
    for (size_t i = 0; i < st.reqs.size(); ++i)
      results.emplace_back(error{*code, "injected failure"});
  } else {
    results = st.jnl->append_batch(st.reqs);
  }
  ++st.metrics.batches;
  st.metrics.appends += st.reqs.size();
  for (size_t i = 0; i < results.size(); ++i) {
    if (results[i]) {
      st.metrics.events += st.reqs[i].events.size();
      st.promises[i].deliver(*results[i]);
    } else {
      ++st.metrics.failed;
      st.promises[i].deliver(to_caf_error(results[i].err()));
    }
  }
  st.reqs.clear();
  st.promises.clear();
  st.ctl->held = 0;
}

inline caf::behavior inline_writer(caf::stateful_actor<inline_writer_state>* self,
                                   std::shared_ptr<journal> j,
                                   std::shared_ptr<inline_writer_controls> ctl) {
  self->state.jnl = std::move(j);
  self->state.ctl = std::move(ctl);
  return {
    [self](append_atom, append_request& req) -> caf::result<append_result> {
      auto& st = self->state;
      st.reqs.push_back(std::move(req));
      st.promises.push_back(self->make_response_promise());
      if (st.ctl->hold)
        ++st.ctl->held;
      else
        inline_writer_commit(st);
      return caf::delegated<append_result>{};
    },
    [self](release_atom) {
      self->state.ctl->hold = false;
      inline_writer_commit(self->state);
    },
    [self](metrics_atom) { return self->state.metrics; },
  };
}

} // namespace evident::test
