#include "evident/actors/event_bus.hpp"

#include "evident/actors/atoms.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <utility>
#include <vector>

namespace evident {

namespace {

struct bus_state {
  std::vector<caf::actor> subscribers;
  event_bus_metrics metrics;
};

using bus_actor = caf::stateful_actor<bus_state>;

void drop(bus_state& st, const caf::actor_addr& who) {
  auto i = std::find_if(st.subscribers.begin(), st.subscribers.end(),
                        [&](const caf::actor& x) { return x.address() == who; });
  if (i == st.subscribers.end())
    return;
  st.subscribers.erase(i);
  st.metrics.subscribers = st.subscribers.size();
}

caf::behavior event_bus(bus_actor* self, uint64_t head) {
  self->state.metrics.head = head;
  self->set_down_handler([=](caf::down_msg& dm) {
    auto before = self->state.subscribers.size();
    drop(self->state, dm.source);
    if (self->state.subscribers.size() < before)
      ++self->state.metrics.dropped;
  });
  return {
      [=](const committed_batch& cb) {
        auto& st = self->state;
        if (cb.empty())
          return;
        ++st.metrics.batches;
        st.metrics.events += cb.events.size();
        st.metrics.head = std::max(st.metrics.head, cb.last_position());
        if (st.subscribers.empty())
          return;
        // One message for everyone: each mailbox element below holds a reference to the
        // same (copy-on-write) tuple, so the events are never copied here.
        auto msg = self->current_mailbox_element()->move_content_to_message();
        for (auto& sub : st.subscribers) {
          sub->enqueue(caf::make_mailbox_element(nullptr, caf::make_message_id(), {}, msg),
                       self->context());
          ++st.metrics.deliveries;
        }
      },
      [=](subscribe_atom, const caf::actor& sub) -> uint64_t {
        auto& st = self->state;
        if (sub
            && std::find(st.subscribers.begin(), st.subscribers.end(), sub)
                   == st.subscribers.end()) {
          self->monitor(sub);
          st.subscribers.push_back(sub);
          st.metrics.subscribers = st.subscribers.size();
        }
        return st.metrics.head;
      },
      [=](unsubscribe_atom, const caf::actor& sub) {
        if (!sub)
          return;
        self->demonitor(sub);
        drop(self->state, sub.address());
      },
      [=](metrics_atom) { return self->state.metrics; },
  };
}

} // namespace

caf::actor spawn_event_bus(caf::actor_system& sys, uint64_t head) {
  return sys.spawn(event_bus, head);
}

} // namespace evident
