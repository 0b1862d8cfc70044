// Timeouts. Commands go to the router and progress appends to the writer as requests
// without a CAF timeout: in CAF 0.17.6 every finite request timeout is an entry in the
// actor clock (a separate thread fed through a small locked ring) that stays there until
// it expires, answered or not - a few microseconds, a wake-up of the clock thread and,
// under load, workers blocked on the full ring, for each of the ~5 requests of a saga.
// Instead the manager keeps the deadlines itself (detail/request_deadlines.hpp: one
// list per kind, each kind has one constant timeout) and one watchdog message, armed
// only while requests are out, for the oldest of them. When a request's deadline
// passes, the watchdog hands its response handler the same `sec::request_timeout` error
// CAF's clock would have sent, under the request's response id: CAF then runs the error
// handler and forgets the request, so a late answer is dropped by CAF, as before.
// Precision: a request times out within a few milliseconds of its deadline (one watchdog
// message per expiry), independent of `tick_interval`.

#include "evident/sagas/saga_manager.hpp"

#include "detail/request_deadlines.hpp"

#include "evident/actors/aggregate_router.hpp"
#include "evident/actors/errc.hpp"
#include "evident/actors/journal_writer.hpp"
#include "evident/actors/message_types.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <deque>
#include <map>
#include <stdexcept>

namespace evident {

namespace {

// Internal messages: a dispatch to try again after its backoff, an overloaded append to
// send again, and the periodic deadline check (kept apart from saga_tick_atom, which
// anyone may send, so that there is exactly one timer chain).
using redo_atom = caf::atom_constant<caf::atom("saga_redo")>;
using reappend_atom = caf::atom_constant<caf::atom("saga_reapp")>;
using ptick_atom = caf::atom_constant<caf::atom("saga_ptick")>;
using watchdog_atom = caf::atom_constant<caf::atom("saga_wdog")>;

// -- state -----------------------------------------------------------------------------

/// One input waiting for its instance.
struct pending_input {
  enum class kind : uint8_t { event, deadline, outcome, retry, park };
  kind k = kind::event;
  saga_event_input event;
  std::string name;            // deadline name, or the parked command id
  int64_t due_ns = 0;          // deadline
  command_outcome outcome;     // outcome
  evident::error err;          // park
  caf::response_promise rp;    // retry
  uint64_t batch = 0;          // the delivery it belongs to (0 = none)
};

/// The append of one instance at the writer, with what its commit needs of the input
/// (not the whole pending_input: it is ~600 bytes, mostly fields of other kinds).
struct inflight_append {
  advance_result result;
  pending_input::kind k = pending_input::kind::event;
  caf::response_promise rp; // retry
  uint64_t batch = 0;
  uint32_t attempts = 0;
};

/// The inputs waiting for one instance. Owns no memory while empty: most instances wait
/// for nothing most of the time, and every instance ever started stays in memory. (With
/// a std::deque here, ~600 bytes allocated at construction, the append in flight held
/// inline and hash sets of commands keeping their buckets, 20,000 ended sagas held
/// ~40 MB more, and page faults on fresh memory were a large share of a saga's cost.)
class input_queue {
public:
  bool empty() const noexcept {
    return head_ == items_.size();
  }
  void push_back(pending_input x) {
    items_.push_back(std::move(x));
  }
  pending_input take_front() {
    auto x = std::move(items_[head_++]);
    if (head_ == items_.size()) {
      items_ = {};
      head_ = 0;
    }
    return x;
  }

private:
  std::vector<pending_input> items_;
  size_t head_ = 0;
};

/// A command of an instance at the router or waiting for its backoff, with its
/// transient failures so far. Few per instance (an outbox is a step's commands), so a
/// vector beats a hash container.
struct out_command {
  std::string id;
  uint32_t failures = 0;
};

struct instance {
  std::string key;
  std::string stream;
  /// The last committed record; nullopt while the first one is being written.
  std::optional<saga_record> rec;
  std::any state;
  input_queue queue;
  /// Set while the instance's append is queued or at the writer.
  std::unique_ptr<inflight_append> inflight;
  std::vector<out_command> out;

  out_command* find_out(const std::string& id) {
    for (auto& x : out)
      if (x.id == id)
        return &x;
    return nullptr;
  }
  void erase_out(const std::string& id) {
    std::erase_if(out, [&](const out_command& x) { return x.id == id; });
    if (out.empty())
      out = {};
  }

  saga_instance_view view() const {
    return {stream, rec ? &*rec : nullptr, rec ? &state : nullptr};
  }
};

/// A delivery whose answer waits for its inputs to be durable.
struct batch_entry {
  uint64_t seq = 0;
  uint64_t through = 0;
  size_t pending = 0;
  caf::response_promise rp;
};

struct dispatch_job {
  instance* inst = nullptr;
  std::string command_id;
  /// The aggregate command when the handler just made it (empty: decode the payload).
  command_box box;
};

struct manager_state {
  saga_env env;
  std::shared_ptr<const saga_model> model;
  std::shared_ptr<const saga_clock> clock;
  std::map<std::string, instance> instances;
  std::deque<batch_entry> batches;
  uint64_t next_batch = 1;
  std::deque<dispatch_job> dispatch_queue;
  size_t commands_in_flight = 0;
  std::deque<instance*> append_queue;
  size_t appends_in_flight = 0;
  /// Armed deadlines by due time; entries that no longer match a record are skipped
  /// when they come up (advance_deadline checks name and due time).
  std::multimap<int64_t, std::pair<instance*, std::string>> due;
  std::multimap<std::string, caf::response_promise> waiters;
  /// Holders of finished appends, for reuse (see recycle).
  std::vector<std::unique_ptr<inflight_append>> spare_inflight;
  /// Deadlines of the requests out (see "Timeouts" at the top of this file).
  detail::request_deadlines command_deadlines;
  detail::request_deadlines append_deadlines;
  /// When the watchdog message on its way fires (time_point::max(): none is).
  detail::request_deadlines::time_point watchdog_due = detail::request_deadlines::time_point::max();
  saga_metrics metrics;

  static inline const char* name = "evident.saga_manager";
};

using manager_actor = caf::stateful_actor<manager_state>*;

uint64_t& gauge(saga_metrics& m, saga_status x) {
  switch (x) {
    case saga_status::running:
      return m.running;
    case saga_status::waiting:
      return m.waiting;
    case saga_status::completed:
      return m.completed;
    case saga_status::compensated:
      return m.compensated;
    case saga_status::failed:
      return m.failed;
    case saga_status::parked:
      break;
  }
  return m.parked;
}

/// Keeps the per-status gauges current (metrics must not walk every instance).
void count_status(manager_actor self, std::optional<saga_status> before,
                  std::optional<saga_status> after) {
  auto& m = self->state.metrics;
  if (before)
    --gauge(m, *before);
  if (after)
    ++gauge(m, *after);
}

int64_t now_of(manager_actor self) {
  return self->state.clock->now_ns();
}

std::chrono::milliseconds backoff(const saga_options& o, uint32_t attempt) {
  auto d = o.backoff_initial;
  for (uint32_t i = 1; i < attempt && d < o.backoff_max; ++i)
    d *= 2;
  return std::min(d, o.backoff_max);
}

saga_summary summary_of(const instance& inst) {
  saga_summary s;
  s.key = inst.key;
  s.stream = inst.stream;
  if (inst.rec) {
    const auto& r = *inst.rec;
    s.status = r.status();
    s.step = r.step;
    s.started_ns = r.started_ns;
    s.updated_ns = r.time_ns;
    s.outbox = r.outbox.size();
    s.deadlines = r.deadlines.size();
    s.error = r.error;
  }
  return s;
}

void pump(manager_actor self, instance& inst);
void pump_dispatch(manager_actor self);
void pump_appends(manager_actor self);

// -- deliveries ------------------------------------------------------------------------

/// Answers the deliveries whose inputs are all durable, in order.
void answer_batches(manager_actor self) {
  auto& bs = self->state.batches;
  while (!bs.empty() && bs.front().pending == 0) {
    bs.front().rp.deliver(bs.front().through);
    bs.pop_front();
  }
}

void finish_batch_input(manager_actor self, uint64_t seq) {
  if (seq == 0)
    return;
  for (auto& b : self->state.batches)
    if (b.seq == seq) {
      --b.pending;
      break;
    }
  answer_batches(self);
}

instance& instance_for(manager_actor self, const std::string& key) {
  auto& st = self->state;
  auto i = st.instances.find(key);
  if (i == st.instances.end()) {
    i = st.instances.emplace(key, instance{}).first;
    i->second.key = key;
    i->second.stream = st.model->stream_of(key);
  }
  return i->second;
}

void enqueue(manager_actor self, instance& inst, pending_input in) {
  inst.queue.push_back(std::move(in));
  pump(self, inst);
}

// -- request deadlines -----------------------------------------------------------------

/// Makes sure a watchdog message fires by the earliest deadline of the requests out.
/// Called after each request goes out; usually a message for an earlier (or the same)
/// time is on its way already and nothing is sent.
void arm_watchdog(manager_actor self) {
  auto& st = self->state;
  auto a = st.command_deadlines.next_due();
  auto b = st.append_deadlines.next_due();
  if (!a && !b)
    return;
  auto due = a && b ? std::min(*a, *b) : a ? *a : *b;
  if (due >= st.watchdog_due)
    return;
  // An earlier message may still come for the later time: on_watchdog tells them apart
  // by the time they carry, so only the newest one counts.
  st.watchdog_due = due;
  auto delay = std::max(due - self->clock().now(), caf::timespan{0});
  self->delayed_send(self, delay, watchdog_atom::value, due.time_since_epoch().count());
}

/// Hands every overdue request's response handler `sec::request_timeout`, as CAF's own
/// clock does (same response id: CAF runs the error handler once and drops a later
/// answer), then re-arms for the next deadline.
void on_watchdog(manager_actor self, int64_t due_ticks) {
  auto& st = self->state;
  if (st.watchdog_due.time_since_epoch().count() != due_ticks)
    return; // superseded by a message for an earlier time
  st.watchdog_due = detail::request_deadlines::time_point::max();
  auto now = self->clock().now();
  auto expire = [self](caf::message_id response_id) {
    self->enqueue(caf::make_mailbox_element(caf::strong_actor_ptr{self->ctrl()}, response_id,
                                            {}, caf::make_error(caf::sec::request_timeout)),
                  self->context());
  };
  st.command_deadlines.expire_until(now, expire);
  st.append_deadlines.expire_until(now, expire);
  arm_watchdog(self);
}

// -- dispatch --------------------------------------------------------------------------

void dispatch(manager_actor self, instance& inst, const std::string& command_id,
              command_box box = {}) {
  if (inst.find_out(command_id) != nullptr)
    return; // already out
  inst.out.push_back({command_id, 0});
  self->state.dispatch_queue.push_back({&inst, command_id, std::move(box)});
}

/// Takes the aggregate command the handler made for `command_id`, if any.
command_box take_prepared(advance_result& r, const std::string& command_id) {
  for (auto& [id, box] : r.prepared)
    if (id == command_id)
      return std::move(box);
  return {};
}

void on_outcome(manager_actor self, instance& inst, command_outcome out) {
  inst.erase_out(out.command_id);
  pending_input in;
  in.k = pending_input::kind::outcome;
  in.outcome = std::move(out);
  enqueue(self, inst, std::move(in));
}

void on_dispatch_error(manager_actor self, instance& inst, const std::string& command_id,
                       const caf::error& raw) {
  auto& st = self->state;
  auto err = from_caf_error(raw);
  if (!is_transient(err.code)) {
    command_outcome out;
    out.command_id = command_id;
    out.error = std::move(err);
    on_outcome(self, inst, std::move(out));
    return;
  }
  auto* oc = inst.find_out(command_id);
  if (oc == nullptr) {
    inst.out.push_back({command_id, 0});
    oc = &inst.out.back();
  }
  auto n = ++oc->failures;
  if (n >= st.env.options.max_attempts) {
    inst.erase_out(command_id);
    pending_input in;
    in.k = pending_input::kind::park;
    in.name = command_id;
    in.err = std::move(err);
    in.err.message = "after " + std::to_string(n) + " attempts: " + in.err.message;
    enqueue(self, inst, std::move(in));
    return;
  }
  self->delayed_send(self, backoff(st.env.options, n), redo_atom::value, inst.key, command_id);
}

void pump_dispatch(manager_actor self) {
  auto& st = self->state;
  while (st.commands_in_flight < st.env.options.max_in_flight_commands
         && !st.dispatch_queue.empty()) {
    auto job = std::move(st.dispatch_queue.front());
    st.dispatch_queue.pop_front();
    auto* inst = job.inst;
    const outbox_entry* entry = nullptr;
    if (inst->rec && inst->rec->parked == park_cause::none)
      for (auto& e : inst->rec->outbox)
        if (e.command_id == job.command_id)
          entry = &e;
    if (entry == nullptr) { // answered meanwhile, or parked: a retry sends it again
      inst->erase_out(job.command_id);
      continue;
    }
    // A command the handler just made goes as it is; a retry or a recovered outbox entry
    // is decoded from its payload.
    auto box = job.box.value.has_value() ? expected<command_box>{std::move(job.box)}
                                         : st.model->to_aggregate(entry->payload);
    if (!box) {
      command_outcome out;
      out.command_id = job.command_id;
      out.error = std::move(box).err();
      on_outcome(self, *inst, std::move(out));
      continue;
    }
    ++st.commands_in_flight;
    ++st.metrics.commands;
    auto id = job.command_id;
    // No CAF timeout: command_deadlines and the watchdog bound the wait (top of file).
    auto h = self->request(st.env.router, caf::infinite, command_atom::value,
                           entry->target_type, entry->target_id, id, std::move(*box));
    auto slot = st.command_deadlines.add(self->clock().now() + st.env.options.command_timeout,
                                         h.id());
    h.then(
      [self, inst, id, slot](reply_box& r) {
        self->state.command_deadlines.release(slot);
        --self->state.commands_in_flight;
        command_outcome out;
        out.command_id = id;
        out.reply = std::move(r.value);
        on_outcome(self, *inst, std::move(out));
        pump_dispatch(self);
      },
      [self, inst, id, slot](caf::error& e) {
        self->state.command_deadlines.release(slot);
        --self->state.commands_in_flight;
        on_dispatch_error(self, *inst, id, e);
        pump_dispatch(self);
      });
  }
  arm_watchdog(self);
}

// -- deadlines -------------------------------------------------------------------------

void arm(manager_actor self, instance& inst, const std::vector<deadline_entry>* before) {
  for (auto& d : inst.rec->deadlines) {
    bool known = before != nullptr
                 && std::find(before->begin(), before->end(), d) != before->end();
    if (!known)
      self->state.due.emplace(d.due_ns, std::make_pair(&inst, d.name));
  }
}

void fire_due(manager_actor self) {
  auto& st = self->state;
  auto now = now_of(self);
  std::vector<instance*> touched;
  while (!st.due.empty() && st.due.begin()->first <= now) {
    auto node = st.due.extract(st.due.begin());
    auto* inst = node.mapped().first;
    pending_input in;
    in.k = pending_input::kind::deadline;
    in.name = std::move(node.mapped().second);
    in.due_ns = node.key();
    inst->queue.push_back(std::move(in));
    touched.push_back(inst);
  }
  for (auto* inst : touched)
    pump(self, *inst);
  pump_appends(self);
  pump_dispatch(self);
}

// -- replays ---------------------------------------------------------------------------

/// Queues the events of `inst`'s `deferred` list again (after a retry or a restart).
void replay_deferred(manager_actor self, instance& inst) {
  auto& st = self->state;
  for (auto pos : inst.rec->deferred) {
    auto evs = st.env.journal->read_all(pos, 1);
    if (!evs || evs->empty() || evs->front().position != pos) {
      ++st.metrics.unroutable; // the event is gone (or unreadable): nothing to replay
      st.metrics.last_unroutable = pos;
      continue;
    }
    auto routed = st.model->route(evs->front());
    if (!routed || !*routed) {
      ++st.metrics.unroutable;
      st.metrics.last_unroutable = pos;
      continue;
    }
    pending_input in;
    in.k = pending_input::kind::event;
    in.event.position = pos;
    in.event.stream = evs->front().stream;
    in.event.type = evs->front().type;
    in.event.routed = std::move(**routed);
    in.event.replay = true;
    inst.queue.push_back(std::move(in));
  }
}

// -- appends ---------------------------------------------------------------------------

void notify_waiters(manager_actor self, instance& inst) {
  auto status = inst.rec->status();
  if (!is_final(status) && status != saga_status::parked)
    return;
  auto [first, last] = self->state.waiters.equal_range(inst.key);
  if (first == last)
    return;
  auto s = summary_of(inst);
  for (auto i = first; i != last; ++i)
    i->second.deliver(s);
  self->state.waiters.erase(first, last);
}

/// Keeps a finished append's holder for the next one (~350 bytes; a fresh one per append
/// was a visible share of start_append). At most max_in_flight_appends are kept.
void recycle(manager_actor self, std::unique_ptr<inflight_append> x) {
  auto& st = self->state;
  if (st.spare_inflight.size() >= st.env.options.max_in_flight_appends)
    return;
  x->result = advance_result{};
  x->rp = caf::response_promise{}; // holds the requester
  st.spare_inflight.push_back(std::move(x));
}

void on_committed(manager_actor self, instance& inst) {
  auto& st = self->state;
  auto done_ptr = std::move(inst.inflight);
  auto& done = *done_ptr;
  ++st.metrics.appends;
  std::optional<std::vector<deadline_entry>> before;
  std::optional<saga_status> status_before;
  bool was_parked = false;
  if (inst.rec) {
    status_before = inst.rec->status();
    before = std::move(inst.rec->deadlines);
    was_parked = inst.rec->parked != park_cause::none;
  } else {
    ++st.metrics.started;
  }
  inst.rec = std::move(done.result.record);
  inst.state = std::move(done.result.state);
  auto& rec = *inst.rec;
  count_status(self, status_before, rec.status());
  if (done.result.parked_now || (done.k == pending_input::kind::park))
    ++st.metrics.parkings;
  if (rec.parked == park_cause::none) {
    for (auto& e : rec.outbox)
      dispatch(self, inst, e.command_id, take_prepared(done.result, e.command_id));
    arm(self, inst, before ? &*before : nullptr);
    if (was_parked) {
      for (auto& x : inst.out)
        x.failures = 0;
      replay_deferred(self, inst);
    }
  }
  switch (done.k) {
    case pending_input::kind::event:
      ++st.metrics.events;
      break;
    case pending_input::kind::deadline:
      ++st.metrics.deadlines_fired;
      break;
    case pending_input::kind::outcome:
      ++st.metrics.outcomes;
      break;
    case pending_input::kind::retry:
      ++st.metrics.operator_retries;
      done.rp.deliver(summary_of(inst));
      break;
    case pending_input::kind::park:
      break;
  }
  if (is_final(rec.status())) {
    // Ended instances keep their record only (and no spare capacity: they stay in memory).
    inst.state.reset();
    rec.outbox = {};
    rec.deadlines = {};
  }
  notify_waiters(self, inst);
  finish_batch_input(self, done.batch);
  recycle(self, std::move(done_ptr));
  pump(self, inst);
}

void fail_manager(manager_actor self, const evident::error& err) {
  auto raw = to_caf_error(err);
  for (auto& b : self->state.batches)
    b.rp.deliver(raw);
  self->state.batches.clear();
  self->quit(raw);
}

/// The append of `inst`'s pending record. The step makes a re-sent append (overloaded,
/// or the same step written again by a manager that recovered after a timeout)
/// idempotent: the journal answers it from the command-id record.
append_request request_of(const instance& inst) {
  const auto& rec = inst.inflight->result.record;
  append_request req;
  req.stream = inst.stream;
  req.expected = expected_version::exact(rec.step - 1);
  req.command_id = "step-" + std::to_string(rec.step);
  req.events.push_back(encode_record(rec));
  return req;
}

void send_append(manager_actor self, instance& inst) {
  auto& st = self->state;
  ++st.appends_in_flight;
  auto* ip = &inst;
  // No CAF timeout: append_deadlines and the watchdog bound the wait (top of file).
  auto h = self->request(st.env.writer, caf::infinite, append_atom::value, request_of(inst));
  auto slot = st.append_deadlines.add(self->clock().now() + st.env.options.append_timeout, h.id());
  h.then(
    [self, ip, slot](append_result&) {
      self->state.append_deadlines.release(slot);
      --self->state.appends_in_flight;
      on_committed(self, *ip);
      pump_appends(self);
      pump_dispatch(self);
    },
    [self, ip, slot](caf::error& raw) {
      auto& ms = self->state;
      ms.append_deadlines.release(slot);
      --ms.appends_in_flight;
      auto err = from_caf_error(raw);
      // Overloaded: nothing was written, the same append (same expected version and
      // command id) goes again. Anything else leaves the outcome unknown or the
      // stream unwritable: stop, and let a new manager recover from the journal.
      if (err.code == errc::overloaded
          && ++ip->inflight->attempts < ms.env.options.max_attempts) {
        self->delayed_send(self, backoff(ms.env.options, ip->inflight->attempts),
                           reappend_atom::value, ip->key);
        return;
      }
      err.message = "saga '" + ip->stream + "' progress append failed: " + err.message;
      fail_manager(self, err);
    });
}

void pump_appends(manager_actor self) {
  auto& st = self->state;
  while (st.appends_in_flight < st.env.options.max_in_flight_appends
         && !st.append_queue.empty()) {
    auto* inst = st.append_queue.front();
    st.append_queue.pop_front();
    send_append(self, *inst);
  }
  arm_watchdog(self);
}

void start_append(manager_actor self, instance& inst, advance_result r, pending_input in) {
  auto& spare = self->state.spare_inflight;
  if (!spare.empty()) {
    inst.inflight = std::move(spare.back());
    spare.pop_back();
  } else {
    inst.inflight = std::make_unique<inflight_append>();
  }
  auto& x = *inst.inflight;
  x.result = std::move(r);
  x.k = in.k;
  x.rp = std::move(in.rp);
  x.batch = in.batch;
  x.attempts = 0;
  self->state.append_queue.push_back(&inst);
}

/// Runs the inputs of `inst` until one needs an append (one at a time per instance).
void pump(manager_actor self, instance& inst) {
  auto& st = self->state;
  while (!inst.inflight && !inst.queue.empty()) {
    auto in = inst.queue.take_front();
    auto now = now_of(self);
    advance_result r;
    switch (in.k) {
      case pending_input::kind::event:
        r = advance_event(*st.model, inst.view(), in.event, now);
        break;
      case pending_input::kind::deadline:
        r = advance_deadline(*st.model, inst.view(), in.name, in.due_ns, now);
        break;
      case pending_input::kind::outcome:
        r = advance_outcome(*st.model, inst.view(), in.outcome, now);
        break;
      case pending_input::kind::park:
        r = park_dispatch(inst.view(), in.name, in.err, now);
        break;
      case pending_input::kind::retry: {
        auto u = unpark(inst.view(), now);
        if (!u) {
          in.rp.deliver(to_caf_error(u.err()));
          continue;
        }
        r = std::move(*u);
        break;
      }
    }
    if (!r.changed) {
      if (r.skipped == "duplicate")
        ++st.metrics.duplicates;
      else if (in.k == pending_input::kind::event)
        ++st.metrics.ignored;
      finish_batch_input(self, in.batch);
      continue;
    }
    start_append(self, inst, std::move(r), std::move(in));
  }
  pump_appends(self);
}

// -- recovery --------------------------------------------------------------------------

status recover(manager_actor self) {
  auto& st = self->state;
  auto heads = st.env.journal->streams();
  if (!heads)
    return std::move(heads).err();
  auto prefix = st.model->stream_of("");
  for (auto& h : *heads) {
    if (h.stream.compare(0, prefix.size(), prefix) != 0 || h.version == 0
        || h.state != stream_state::live)
      continue;
    read_options last;
    last.dir = direction::backward;
    last.max_count = 1;
    auto evs = st.env.journal->read_stream(h.stream, last);
    if (!evs)
      return std::move(evs).err();
    if (evs->empty())
      continue;
    auto rec = decode_record(evs->front());
    if (!rec)
      return std::move(rec).err();
    auto& inst = instance_for(self, h.stream.substr(prefix.size()));
    inst.rec = std::move(*rec);
    auto status = inst.rec->status();
    if (is_final(status)) {
      count_status(self, std::nullopt, status);
      continue;
    }
    ++st.metrics.recovered;
    if (inst.rec->state.empty()) {
      inst.state = st.model->initial_state();
    } else if (auto s = st.model->decode_state(inst.rec->state)) {
      inst.state = std::move(*s);
    } else {
      // The instance cannot run; keep it visible as parked (in memory: nothing is
      // written until an operator acts; a retry fails the same way until fixed).
      inst.rec->parked = park_cause::dispatch;
      inst.rec->error = to_string(s.err());
      count_status(self, std::nullopt, saga_status::parked);
      continue;
    }
    count_status(self, std::nullopt, status);
    if (status == saga_status::parked)
      continue;
    for (auto& e : inst.rec->outbox)
      dispatch(self, inst, e.command_id);
    arm(self, inst, nullptr);
    replay_deferred(self, inst);
  }
  return {};
}

// -- behavior --------------------------------------------------------------------------

caf::behavior saga_manager(manager_actor self, saga_env env,
                           std::shared_ptr<const saga_model> model) {
  self->state.clock = env.clock ? env.clock : default_saga_clock();
  self->state.env = std::move(env);
  self->state.model = std::move(model);
  if (auto err = recover(self)) {
    err.message = "saga '" + std::string{self->state.model->name()} + "' recovery: " + err.message;
    self->quit(to_caf_error(err));
    return {};
  }
  for (auto& [key, inst] : self->state.instances)
    pump(self, inst);
  pump_dispatch(self);
  // Overdue deadlines fire at once after a restart, then every tick.
  self->send(self, saga_tick_atom::value);
  if (self->state.env.options.tick_interval.count() > 0)
    self->delayed_send(self, self->state.env.options.tick_interval, ptick_atom::value);
  return {
    [self](deliver_atom, const event_batch& b) {
      auto& st = self->state;
      auto rp = self->make_response_promise();
      auto seq = st.next_batch++;
      st.batches.push_back({seq, b.through, 1, rp}); // 1: held until routing is done
      std::vector<instance*> touched;
      for (auto& e : b.events) {
        auto routed = st.model->route(e);
        if (!routed) {
          // Undecodable or unroutable: no instance to park. Skipped and counted.
          ++st.metrics.unroutable;
          st.metrics.last_unroutable = e.position;
          continue;
        }
        if (!*routed)
          continue;
        auto& key = (*routed)->route.key;
        auto i = st.instances.find(key);
        if (i == st.instances.end() && (*routed)->route.k != saga_route::kind::start) {
          ++st.metrics.ignored;
          continue;
        }
        auto& inst = i != st.instances.end() ? i->second : instance_for(self, key);
        pending_input in;
        in.k = pending_input::kind::event;
        in.event.position = e.position;
        in.event.stream = e.stream;
        in.event.type = e.type;
        in.event.routed = std::move(**routed);
        in.batch = seq;
        ++st.batches.back().pending;
        inst.queue.push_back(std::move(in));
        touched.push_back(&inst);
      }
      for (auto* inst : touched)
        pump(self, *inst);
      finish_batch_input(self, seq);
      pump_dispatch(self);
    },
    [self](saga_list_atom, const saga_query& q) {
      std::vector<saga_summary> out;
      for (auto& [key, inst] : self->state.instances) {
        if (out.size() >= q.limit)
          break;
        if (!inst.rec || (q.status && inst.rec->status() != *q.status))
          continue;
        out.push_back(summary_of(inst));
      }
      return out;
    },
    [self](saga_show_atom, const std::string& key) -> caf::result<saga_detail> {
      auto& st = self->state;
      auto i = st.instances.find(key);
      if (i == st.instances.end() || !i->second.rec)
        return to_caf_error(error{errc::invalid_input, "no saga '" + std::string{st.model->name()}
                                                         + "' with key '" + key + "'"});
      saga_detail d;
      d.summary = summary_of(i->second);
      auto evs = st.env.journal->read_stream(i->second.stream);
      if (!evs)
        return to_caf_error(evs.err());
      for (auto& e : *evs) {
        auto r = decode_record(e);
        if (!r)
          return to_caf_error(r.err());
        d.history.push_back(std::move(*r));
      }
      return d;
    },
    [self](saga_retry_atom, const std::string& key) {
      auto& st = self->state;
      auto rp = self->make_response_promise();
      auto i = st.instances.find(key);
      if (i == st.instances.end() || !i->second.rec) {
        rp.deliver(to_caf_error(error{errc::invalid_input, "no saga '" + std::string{st.model->name()}
                                                             + "' with key '" + key + "'"}));
        return;
      }
      pending_input in;
      in.k = pending_input::kind::retry;
      in.rp = rp;
      enqueue(self, i->second, std::move(in));
      pump_dispatch(self);
    },
    [self](saga_wait_atom, const std::string& key) {
      auto& st = self->state;
      auto rp = self->make_response_promise();
      auto i = st.instances.find(key);
      if (i != st.instances.end() && i->second.rec) {
        auto s = i->second.rec->status();
        if (is_final(s) || s == saga_status::parked) {
          rp.deliver(summary_of(i->second));
          return;
        }
      }
      st.waiters.emplace(key, rp);
    },
    [self](saga_tick_atom) { fire_due(self); },
    [self](ptick_atom) {
      fire_due(self);
      self->delayed_send(self, self->state.env.options.tick_interval, ptick_atom::value);
    },
    [self](redo_atom, const std::string& key, const std::string& command_id) {
      auto& st = self->state;
      auto i = st.instances.find(key);
      if (i == st.instances.end())
        return;
      ++st.metrics.retries;
      st.dispatch_queue.push_back({&i->second, command_id});
      pump_dispatch(self);
    },
    [self](reappend_atom, const std::string& key) {
      auto i = self->state.instances.find(key);
      if (i == self->state.instances.end() || !i->second.inflight)
        return;
      self->state.append_queue.push_back(&i->second);
      pump_appends(self);
    },
    [self](watchdog_atom, int64_t due_ticks) { on_watchdog(self, due_ticks); },
    [self](metrics_atom) { return self->state.metrics; },
  };
}

} // namespace

status validate(const saga_options& x) {
  if (x.max_attempts < 1)
    return {errc::invalid_input, "saga option max_attempts must be at least 1"};
  if (x.backoff_initial.count() <= 0 || x.backoff_max < x.backoff_initial)
    return {errc::invalid_input,
            "saga options backoff_initial must be positive and at most backoff_max"};
  if (x.command_timeout.count() <= 0 || x.append_timeout.count() <= 0)
    return {errc::invalid_input, "saga options command_timeout and append_timeout must be positive"};
  if (x.max_in_flight_commands < 1 || x.max_in_flight_appends < 1)
    return {errc::invalid_input,
            "saga options max_in_flight_commands and max_in_flight_appends must be at least 1"};
  if (x.tick_interval.count() < 0)
    return {errc::invalid_input, "saga option tick_interval must not be negative"};
  return {};
}

std::string saga_subscription_name(const saga_model& m) {
  return "saga." + std::string{m.name()};
}

caf::actor spawn_saga_manager(caf::actor_system& sys, saga_env env,
                              std::shared_ptr<const saga_model> model) {
  if (!env.writer || !env.journal || !env.router || !model)
    throw std::invalid_argument("spawn_saga_manager: writer, journal, router and model are required");
  if (auto err = validate(env.options))
    throw std::invalid_argument(err.message);
  return sys.spawn(saga_manager, std::move(env), std::move(model));
}

} // namespace evident
