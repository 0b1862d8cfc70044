#include "evident/actors/snapshot_writer.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/stateful_actor.hpp>

#include <map>
#include <stdexcept>
#include <string>
#include <utility>

namespace evident {

namespace {

// Self-sent only: "save what you hold".
using snapshot_flush_atom = caf::atom_constant<caf::atom("snp_flush")>;

struct snapshot_writer_state {
  std::shared_ptr<snapshot_store> store;
  // The newest waiting snapshot per stream and how many to keep. Bounded by the number
  // of streams that snapshot between two flushes (one entry each).
  std::map<std::string, std::pair<snapshot, uint64_t>> waiting;
  bool flush_scheduled = false;
  snapshot_writer_metrics metrics;
};

using snapshot_writer_actor = caf::stateful_actor<snapshot_writer_state>;

void flush(snapshot_writer_state& st) {
  for (auto& [stream, entry] : st.waiting) {
    auto& [snap, keep] = entry;
    status err;
    try {
      err = st.store->save(snap);
      if (!err && keep > 0)
        err = st.store->keep_last(stream, keep);
    } catch (...) {
      err = error{errc::io_error, "snapshot store threw"};
    }
    if (err)
      ++st.metrics.failed; // recovery replays instead: a lost snapshot costs time only
    else
      ++st.metrics.saved;
  }
  st.waiting.clear();
}

caf::behavior snapshot_writer(snapshot_writer_actor* self, std::shared_ptr<snapshot_store> store) {
  self->state.store = std::move(store);
  self->set_exit_handler([self](caf::exit_msg& msg) {
    if (!msg.reason)
      return;
    flush(self->state);
    self->quit(msg.reason);
  });
  return {
    [self](snapshot_atom, snapshot& s, uint64_t keep_last) {
      auto& st = self->state;
      auto [it, added] = st.waiting.try_emplace(s.stream);
      if (!added) {
        if (it->second.first.version > s.version)
          return; // an older one arrived late: keep the newer
        ++st.metrics.coalesced;
      }
      it->second = {std::move(s), keep_last};
      if (!st.flush_scheduled) {
        // Queued behind the snapshots already waiting: they coalesce into this flush.
        st.flush_scheduled = true;
        self->send(self, snapshot_flush_atom::value);
      }
    },
    [self](snapshot_flush_atom) {
      self->state.flush_scheduled = false;
      flush(self->state);
    },
    [self](metrics_atom) {
      flush(self->state);
      return self->state.metrics;
    },
  };
}

} // namespace

caf::actor spawn_snapshot_writer(caf::actor_system& sys, std::shared_ptr<snapshot_store> store,
                                 bool detached) {
  if (!store)
    throw std::invalid_argument("spawn_snapshot_writer: store is null");
  if (detached)
    return sys.spawn<caf::detached>(snapshot_writer, std::move(store));
  return sys.spawn(snapshot_writer, std::move(store));
}

} // namespace evident
