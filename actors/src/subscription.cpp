#include "evident/actors/subscription.hpp"

#include "evident/actors/atoms.hpp"
#include "evident/actors/committed_batch.hpp"
#include "evident/actors/errc.hpp"
#include "evident/actors/event_batch.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <deque>
#include <iostream>
#include <stdexcept>
#include <utility>

namespace evident {

std::string_view category_of(std::string_view stream) noexcept {
  return stream.substr(0, stream.find('-'));
}

bool subscription_filter::matches(const recorded_event& e) const {
  if (!categories.empty()) {
    auto cat = category_of(e.stream);
    if (std::find(categories.begin(), categories.end(), cat) == categories.end())
      return false;
  }
  if (!event_types.empty()
      && std::find(event_types.begin(), event_types.end(), e.type) == event_types.end())
    return false;
  return !predicate || predicate(e);
}

status validate(const subscription_options& x) {
  auto bad = [](std::string msg) { return error{errc::invalid_input, "subscription: " + msg}; };
  if (x.name.empty())
    return bad("the name is empty");
  if (x.read_batch == 0)
    return bad("read_batch must be at least 1");
  if (x.max_buffer_events < x.read_batch)
    return bad("max_buffer_events (" + std::to_string(x.max_buffer_events)
               + ") must be at least read_batch (" + std::to_string(x.read_batch) + ")");
  if (x.checkpoint_every == 0)
    return bad("checkpoint_every must be at least 1");
  if (x.checkpoint_interval.count() <= 0)
    return bad("checkpoint_interval must be positive");
  if (x.deliver_timeout.count() <= 0)
    return bad("deliver_timeout must be positive");
  return {};
}

namespace {

using tick_atom = caf::atom_constant<caf::atom("sub_tick")>;
// Self-sent only: "check whether the batch at the subscriber is overdue".
using deliver_watch_atom = caf::atom_constant<caf::atom("sub_watch")>;
using clock_type = std::chrono::steady_clock;
constexpr auto subscribe_timeout = std::chrono::seconds{10};

struct sub_state {
  subscription_env env;
  caf::actor subscriber;
  subscription_options opts;
  /// The subscriber's last answer (handled through).
  uint64_t acked = 0;
  /// Every position <= covered was read or received, and then sent or filtered out.
  uint64_t covered = 0;
  /// The journal may hold positions > covered that the buffer does not.
  bool behind = true;
  bool subscribed = false;
  bool in_flight = false;
  bool stopping = false;
  /// The bus's messages, each one committed_batch, in position order.
  std::deque<caf::message> buffer;
  size_t buffered = 0;
  /// The next journal batch, read while the previous one is at the subscriber.
  std::optional<event_batch> ahead;
  uint64_t saved = 0;
  bool tick_pending = false;
  /// When the batch at the subscriber (in_flight) was sent.
  clock_type::time_point sent_at;
  /// Its last position.
  uint64_t sent_through = 0;
  /// True while a deliver_watch_atom is on its way (see send_batch).
  bool watch_pending = false;
  subscription_metrics m;
};

using sub_actor = caf::stateful_actor<sub_state>;

const committed_batch& batch_of(const caf::message& msg) {
  return msg.get_as<committed_batch>(0);
}

void log_stop(const sub_state& st, const error& err) {
  std::cerr << "evident: subscription '" << st.opts.name << "' stopped: " << to_string(err)
            << std::endl;
}

void fail(sub_actor* self, error err) {
  auto& st = self->state;
  if (st.stopping)
    return;
  st.stopping = true;
  log_stop(st, err);
  self->quit(to_caf_error(err));
}

// Drops buffered batches the journal reads already covered.
void trim(sub_state& st) {
  while (!st.buffer.empty() && batch_of(st.buffer.front()).last_position() <= st.covered) {
    st.buffered -= batch_of(st.buffer.front()).events.size();
    st.buffer.pop_front();
  }
}

bool front_is_next(const sub_state& st) {
  return !st.buffer.empty() && batch_of(st.buffer.front()).first_position() <= st.covered + 1;
}

bool needs_journal(sub_state& st) {
  trim(st);
  if (st.buffer.empty())
    return st.behind;
  return !front_is_next(st);
}

// Copies the events that pass the filter. The predicate is user code: its exceptions
// become invalid_input.
status keep_if_matches(const sub_state& st, const recorded_event& e,
                       std::vector<recorded_event>& out) {
  if (st.opts.filter.accepts_all()) {
    out.push_back(e);
    return {};
  }
  try {
    if (st.opts.filter.matches(e))
      out.push_back(e);
  } catch (const std::exception& ex) {
    return {errc::invalid_input, "the filter predicate threw on position "
                                     + std::to_string(e.position) + ": " + ex.what()};
  } catch (...) {
    return {errc::invalid_input,
            "the filter predicate threw on position " + std::to_string(e.position)};
  }
  return {};
}

// Reads from covered + 1, up to read_batch positions, and never into the buffer.
// nullopt with no error: nothing there (the journal is exhausted).
expected<std::optional<event_batch>> read_journal(sub_state& st) {
  uint64_t limit = st.opts.read_batch;
  bool bounded_by_buffer = !st.buffer.empty();
  if (bounded_by_buffer)
    limit
        = std::min<uint64_t>(limit, batch_of(st.buffer.front()).first_position() - st.covered - 1);
  event_batch b;
  b.subscription = st.opts.name;
  b.live = false;
  uint64_t count = 0;
  uint64_t last = st.covered;
  status filter_err;
  auto err = st.env.jnl->read_all(st.covered + 1, limit, [&](const recorded_event& e) {
    ++count;
    last = e.position;
    filter_err = keep_if_matches(st, e, b.events);
    return !filter_err;
  });
  ++st.m.journal_reads;
  if (err)
    return err;
  if (filter_err)
    return filter_err;
  if (count == 0) {
    if (bounded_by_buffer)
      // Committed positions are published only after the commit, so the journal must
      // hold everything before a live batch: a hole here is a broken journal.
      return error{errc::corrupted, "positions " + std::to_string(st.covered + 1) + " to "
                                        + std::to_string(limit + st.covered)
                                        + " are missing from the journal"};
    st.behind = false;
    return std::optional<event_batch>{};
  }
  if (!bounded_by_buffer && count < limit)
    st.behind = false;
  st.covered = last;
  b.through = last;
  return std::optional<event_batch>{std::move(b)};
}

// Merges contiguous buffered batches (at least one, up to read_batch events).
expected<event_batch> take_live(sub_state& st) {
  event_batch b;
  b.subscription = st.opts.name;
  b.live = true;
  size_t taken = 0;
  while (front_is_next(st) && (taken == 0 || taken < st.opts.read_batch)) {
    const auto& cb = batch_of(st.buffer.front());
    for (const auto& e : cb.events)
      if (e.position > st.covered)
        if (auto err = keep_if_matches(st, e, b.events))
          return err;
    taken += cb.events.size();
    st.covered = cb.last_position();
    st.buffered -= cb.events.size();
    st.buffer.pop_front();
  }
  b.through = st.covered;
  return b;
}

expected<std::optional<event_batch>> next_batch(sub_state& st) {
  if (st.ahead) {
    auto b = std::move(*st.ahead);
    st.ahead.reset();
    return std::optional<event_batch>{std::move(b)};
  }
  trim(st);
  if (front_is_next(st)) {
    auto b = take_live(st);
    if (!b)
      return std::move(b).err();
    return std::optional<event_batch>{std::move(*b)};
  }
  if (needs_journal(st))
    return read_journal(st);
  return std::optional<event_batch>{};
}

void save_checkpoint(sub_actor* self) {
  auto& st = self->state;
  if (st.opts.checkpoints != checkpoint_mode::managed || st.acked <= st.saved)
    return;
  // Deferred (one flush, not two): managed checkpoints are at-least-once, so a save that
  // a machine crash undoes only delivers some events again. This commit runs on a CAF
  // worker, where each flush holds up every other actor of that worker.
  if (auto err = st.env.checkpoints->save(st.opts.name, st.acked, commit_sync::deferred)) {
    fail(self, std::move(err));
    return;
  }
  st.saved = st.acked;
  st.m.checkpoint = st.saved;
  ++st.m.checkpoints_saved;
}

void maybe_checkpoint(sub_actor* self) {
  auto& st = self->state;
  if (st.opts.checkpoints != checkpoint_mode::managed || st.acked <= st.saved)
    return;
  if (st.acked - st.saved >= st.opts.checkpoint_every) {
    save_checkpoint(self);
  } else if (!st.tick_pending) {
    st.tick_pending = true;
    self->delayed_send(self, st.opts.checkpoint_interval, tick_atom::value);
  }
}

void pump(sub_actor* self);

// The batch at the subscriber must be answered within deliver_timeout. Not a CAF
// request timeout: that is two events for CAF's clock thread (set and cancel) per
// batch, and a busy journal delivers a batch per commit to every subscription. One
// delayed check at a time instead: it fails the subscription when the batch then at
// the subscriber is overdue, and otherwise comes back when that batch would be.
void watch_delivery(sub_actor* self, clock_type::duration delay) {
  auto& st = self->state;
  st.watch_pending = true;
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(delay);
  self->delayed_send(self, std::max(ms, std::chrono::milliseconds{1}), deliver_watch_atom::value);
}

void send_batch(sub_actor* self, event_batch b) {
  auto& st = self->state;
  st.in_flight = true;
  st.sent_at = clock_type::now();
  st.sent_through = b.through;
  ++st.m.batches;
  st.m.events += b.events.size();
  if (b.live)
    ++st.m.live_batches;
  auto through = b.through;
  if (!st.watch_pending)
    watch_delivery(self, st.opts.deliver_timeout);
  self->request(st.subscriber, caf::infinite, deliver_atom::value, std::move(b))
      .then(
          [=](uint64_t handled) {
            auto& s = self->state;
            s.in_flight = false;
            s.acked = std::max(s.acked, std::min(handled, through));
            s.m.position = s.acked;
            maybe_checkpoint(self);
            pump(self);
          },
          [=](caf::error& err) {
            auto e = from_caf_error(err);
            e.message = "the subscriber's answer to the batch through position "
                        + std::to_string(through) + ": " + e.message;
            fail(self, std::move(e));
          });
}

void pump(sub_actor* self) {
  auto& st = self->state;
  if (st.stopping || !st.subscribed)
    return;
  if (!st.in_flight) {
    auto b = next_batch(st);
    if (!b) {
      fail(self, std::move(b).err());
      return;
    }
    if (*b)
      send_batch(self, std::move(**b));
  }
  // Read ahead while the subscriber works, so the next journal batch is ready when its
  // answer comes (catch-up then costs max(read, handle), not their sum).
  if (st.in_flight && !st.ahead && needs_journal(st)) {
    auto b = read_journal(st);
    if (!b) {
      fail(self, std::move(b).err());
      return;
    }
    if (*b)
      st.ahead = std::move(**b);
  }
  st.m.covered = st.covered;
  st.m.buffered = st.buffered;
}

caf::behavior subscription(sub_actor* self, subscription_env env, caf::actor subscriber,
                           subscription_options opts) {
  auto& st = self->state;
  st.env = std::move(env);
  st.subscriber = std::move(subscriber);
  st.opts = std::move(opts);
  uint64_t start = 0;
  if (st.opts.start_after) {
    start = *st.opts.start_after;
  } else if (st.opts.checkpoints == checkpoint_mode::managed) {
    auto cp = st.env.checkpoints->load(st.opts.name);
    if (!cp) {
      auto err = std::move(cp).err();
      err.message = "cannot load its checkpoint: " + err.message;
      fail(self, std::move(err));
      return {};
    }
    start = cp->value_or(0);
  }
  st.acked = st.covered = st.saved = start;
  st.m.position = st.m.covered = st.m.checkpoint = start;
  self->monitor(st.subscriber);
  self->set_down_handler([=](caf::down_msg& dm) {
    // The subscriber or the bus is gone: nothing more to deliver to, or nothing more
    // will come live. Keep what was handled.
    save_checkpoint(self);
    self->state.stopping = true;
    self->quit(dm.reason);
  });
  self->set_exit_handler([=](caf::exit_msg& em) {
    save_checkpoint(self);
    self->state.stopping = true;
    self->quit(em.reason);
  });
  if (st.env.bus) {
    self->monitor(st.env.bus);
    self->request(st.env.bus, subscribe_timeout, subscribe_atom::value,
                  caf::actor_cast<caf::actor>(self))
        .then(
            [=](uint64_t) {
              self->state.subscribed = true;
              pump(self);
            },
            [=](caf::error& err) {
              auto e = from_caf_error(err);
              e.message = "cannot subscribe to the event bus: " + e.message;
              fail(self, std::move(e));
            });
  } else {
    st.subscribed = true;
    self->send(self, tick_atom::value); // first pump once the behavior is in place
  }
  return {
      [=](const committed_batch& cb) {
        auto& s = self->state;
        if (cb.empty() || cb.last_position() <= s.covered)
          return;
        if (s.buffered + cb.events.size() > s.opts.max_buffer_events) {
          // The subscriber is far behind: keep no live data; the journal has it all.
          s.buffer.clear();
          s.buffered = 0;
          s.behind = true;
          ++s.m.overflows;
        } else {
          s.buffered += cb.events.size();
          s.buffer.push_back(self->current_mailbox_element()->move_content_to_message());
        }
        pump(self);
      },
      [=](tick_atom) {
        self->state.tick_pending = false;
        save_checkpoint(self);
        pump(self);
      },
      [=](deliver_watch_atom) {
        auto& s = self->state;
        s.watch_pending = false;
        if (!s.in_flight || s.stopping)
          return; // the next batch sent arms a new check
        auto due = s.sent_at + s.opts.deliver_timeout;
        auto now = clock_type::now();
        if (now < due) {
          watch_delivery(self, due - now);
          return;
        }
        fail(self, error{errc::timeout, "the subscriber did not answer the batch through position "
                                            + std::to_string(s.sent_through) + " within "
                                            + std::to_string(s.opts.deliver_timeout.count())
                                            + " ms (deliver_timeout)"});
      },
      [=](metrics_atom) {
        auto& s = self->state;
        s.m.covered = s.covered;
        s.m.buffered = s.buffered;
        return s.m;
      },
  };
}

} // namespace

caf::actor spawn_subscription(caf::actor_system& sys, subscription_env env, caf::actor subscriber,
                              subscription_options opts) {
  if (auto err = validate(opts))
    throw std::invalid_argument(err.message);
  if (!env.jnl)
    throw std::invalid_argument("subscription '" + opts.name + "': no journal");
  if (!subscriber)
    throw std::invalid_argument("subscription '" + opts.name + "': no subscriber");
  if (opts.checkpoints == checkpoint_mode::managed && !env.checkpoints)
    throw std::invalid_argument("subscription '" + opts.name
                                + "': managed checkpoints need a checkpoint store");
  return sys.spawn(subscription, std::move(env), std::move(subscriber), std::move(opts));
}

} // namespace evident
