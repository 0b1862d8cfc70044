// The aggregate actor: one per (type, id), spawned lazily by the router.
//
// Phases:
//
//   [fencing] ──▶ recovering ──▶ running ──▶ (quit)
//       │             │             │
//       └─────────────┴─ failure ───┴──▶ answer every waiting caller, quit
//
//   fencing     Only when the router says an earlier incarnation of this aggregate may
//               still have appends in the writer (it ended with an error: a timeout, a
//               conflict with later appends in flight, ...). A zero-event append
//               through the journal writer queues behind those appends, so recovery
//               reads a stream nobody else is about to change. An incarnation that
//               passivated (nothing in flight) or a first activation skips it: the
//               fence costs a writer round trip per activation, a third of a cold
//               activation's work. (Without it, a stray append of an earlier
//               incarnation would still only make an append of ours fail as a
//               conflict: expected versions and command ids keep the journal right.)
//   recovering  state_loader: the latest usable snapshot, then the later events in
//               batches of `replay_batch`. The first batch runs at once (a short stream
//               recovers inside the message that activated the aggregate); further
//               batches run one per message (see yield_then), so that the worker is not
//               blocked and memory stays flat for any stream length.
//   running     commands are decided as they arrive (pipelining, below).
//
// Appends go to the writer as requests without a CAF timeout: in CAF 0.17.6 each
// request timeout stays in the actor clock until it expires, even after the answer
// came (~180 bytes and a few microseconds per append). Instead, while appends (or the
// fence) are unanswered, the aggregate keeps one entry in its router's append_watch
// (detail/aggregate_actor.hpp); when it falls due the router sends a watchdog message,
// which checks the oldest request against `append_timeout` (then: errc::timeout, the
// outcome is unknown, the aggregate stops) and adds an entry for the next deadline. The
// router monitors the writer and stops every aggregate if it dies.
//
// Passivation is the router's: it asks aggregates that got no command for
// `idle_timeout` (and the least recently used ones beyond `max_active`) to stop; an
// aggregate stops only when nothing is stashed, in flight or in its mailbox.
//
// Commands that arrive before `running`, or while `max_in_flight` commands are pending,
// wait in the stash (bounded by `max_stash`; overflow answers overloaded at once).
//
// Pipelining. The committed state is what the journal holds; the pending state is the
// committed state plus the events of every command in flight. Each command is decided
// against the pending state and its events go to the writer as one append with the
// pending version as exact expected version; the next command does not wait. The writer
// keeps one sender's appends in order and commits them in the same transaction where
// they meet, so a hot aggregate gets many commands per commit.
//
//   in_flight (FIFO): [c1: sent v3->4] [c2: no events] [c3: sent v4->6] ...
//                       ^ head: its answer decides what happens next
//
// Answers may arrive out of order (the writer refuses `overloaded` at once but answers
// commits from its reply helper), so each is stored with its entry and the FIFO is
// drained from the head:
//   committed        apply to the committed state, reply (the reply was computed from
//                    the pending state at decide time, which equals the committed state
//                    now that every earlier command committed).
//   no events        reply (a query or a domain refusal); it still waits for the earlier
//                    commands, so no reply reveals an uncommitted event.
//   rejected         (too_large, invalid_input, unknown_event_type) reply the error; the
//                    committed state is unchanged; every later command in flight is
//                    decided again against it and re-sent. Their old appends assumed
//                    the rejected events, so they are ahead in the writer's queue and
//                    fail as conflicts; their answers are ignored (stale sequence).
//   overloaded, unavailable
//                    the writer shed load: reply that error to every command in flight
//                    (their appends fail the same way or as conflicts), keep the state.
//   conflict         someone else wrote the stream: reply the conflict, stop; the next
//                    command recovers from the journal.
//   anything else    (io_error, storage_full, timeout, stream_deleted, writer down) the
//                    outcome is unknown: reply the error to everything in flight and
//                    stashed, stop; the next command recovers from disk.
//
// Single-writer rule: the router keeps one live incarnation per aggregate and the fence
// orders incarnations. If some other process wrote the same stream, a later pipelined
// append could still match its expected version after an earlier one conflicted; the
// aggregate detects that case (a commit answer behind a failure) and stops.

#include "detail/aggregate_actor.hpp"
#include "detail/fifo.hpp"

#include "evident/actors/atoms.hpp"
#include "evident/actors/errc.hpp"
#include "evident/actors/message_types.hpp"
#include "evident/actors/snapshot_writer.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/message_view.hpp>
#include <caf/response_promise.hpp>
#include <caf/result.hpp>
#include <caf/stateful_actor.hpp>

#include <algorithm>
#include <chrono>
#include <optional>
#include <utility>
#include <vector>

namespace evident::detail {

namespace {

using steady = std::chrono::steady_clock;

// Self-sent only: "replay the next batch".
using replay_step_atom = caf::atom_constant<caf::atom("agg_replay")>;

// cold: spawned without a fence, recovery starts with the first command.
// failed: recovery failed; commands already in the mailbox get its error, then quit.
enum class phase : uint8_t { cold, fencing, recovering, running, failed, stopped };

// Self-sent only: "quit now" after a failed recovery.
using quit_atom = caf::atom_constant<caf::atom("agg_quit")>;

// Sends `x` to `self` so that it arrives only after `self` gave its worker back. A plain
// self-send would not do: CAF 0.17 keeps resuming an actor while its mailbox is not
// empty (up to `scheduler.max-throughput`, unlimited by default), so a replay
// continued by self-sends would hold a worker for the whole stream. A message with a
// zero delay goes through the actor clock's thread: the mailbox is empty meanwhile, the
// actor yields, and other actors run. (Under the deterministic test scheduler it waits
// for `trigger_timeout`.) Costs one clock hop per replay batch.
template <class Self, class T>
void yield_then(Self* self, T x) {
  self->delayed_send(self, std::chrono::nanoseconds{0}, x);
}

/// A command waiting in the stash (not decided yet).
struct waiting_command {
  std::string command_id;
  command_box cmd;
  caf::response_promise rp;
};

/// A decided command in the in-flight FIFO.
struct pending_command {
  /// Tags the append sent for this entry (0: none). A re-decided entry gets a new one,
  /// so the answer to its old append is recognized as stale.
  uint64_t seq = 0;
  std::string command_id;
  command_box cmd;
  /// The caller, and retries with the same command id that arrived meanwhile.
  std::vector<caf::response_promise> promises;
  decision d;
  /// Events of the append (0: the command persists nothing).
  size_t events = 0;
  /// Set when decide failed: the reply is this error.
  std::optional<error> refused;
  /// The writer's answer, once it arrived.
  std::optional<expected<append_result>> answer;
  /// When the append was sent (for the watchdog).
  caf::actor_clock::time_point sent;
};

// What only the way to `running` needs: the fence, the recovery, the error of a failed
// one. Dropped once running, so that an idle aggregate does not carry it.
struct activation {
  steady::time_point started = steady::now();
  // When the fence was sent (fencing phase only).
  caf::actor_clock::time_point fence_sent;
  std::unique_ptr<state_loader> loader;
  // Why recovery failed (phase failed).
  caf::error failure;
};

// Kept small: an idle aggregate holds this plus CAF's actor (~1 KB), so every field
// counts for the memory of 100,000 idle aggregates. The FIFOs are one pointer each and
// own nothing while empty; `pending` is dropped whenever nothing is in flight.
struct aggregate_actor_state {
  std::shared_ptr<const aggregate_model> model;
  std::shared_ptr<const aggregate_context> ctx;
  std::string stream;
  // Only until running (or while a failed recovery answers what is left).
  std::unique_ptr<activation> act;
  // What the journal holds.
  std::any committed;
  uint64_t committed_version = 0;
  // `committed` plus the events of every command in flight. Empty while nothing is in
  // flight (or after user code damaged it): decide_entry rebuilds it first.
  std::any pending;
  uint64_t pending_version = 0;
  fifo<pending_command> in_flight;
  fifo<waiting_command> stash;
  uint64_t next_seq = 1;
  uint64_t last_snapshot_version = 0;
  phase ph = phase::fencing;
  // An entry of ours is in the router's append watch (see on_watchdog).
  bool watchdog_armed = false;

  aggregate_counters& counters() const noexcept {
    return *ctx->counters;
  }
  const aggregate_options& opts() const noexcept {
    return ctx->env.options;
  }
};

using agg_actor = caf::stateful_actor<aggregate_actor_state>;

void count(std::atomic<uint64_t>& x, uint64_t n = 1) noexcept {
  aggregate_counters::add(x, n);
}

// -- replies -----------------------------------------------------------------------

void deliver_reply(pending_command& e) {
  for (size_t i = 0; i + 1 < e.promises.size(); ++i)
    e.promises[i].deliver(reply_box{e.d.reply});
  if (!e.promises.empty())
    e.promises.back().deliver(reply_box{std::move(e.d.reply)});
  e.promises.clear();
}

void deliver_error(pending_command& e, const caf::error& err) {
  for (auto& rp : e.promises)
    rp.deliver(err);
  e.promises.clear();
}

// Answers everything still in flight and stashed with `err` and quits. The caller has
// answered the head entry already, if it needed its own answer.
void stop(agg_actor* self, const error& err) {
  auto& st = self->state;
  if (st.ph == phase::stopped)
    return;
  st.ph = phase::stopped;
  auto cerr = to_caf_error(err);
  for (auto& e : st.in_flight)
    deliver_error(e, cerr);
  st.in_flight.clear();
  for (auto& w : st.stash)
    w.rp.deliver(cerr);
  st.stash.clear();
  count(st.counters().stops);
  self->quit(cerr);
}

// -- pending state -----------------------------------------------------------------

// pending = committed + the decisions of in_flight[0, end). Needed after a decide
// damaged the pending state (user code threw in the middle of applying).
bool rebuild_pending(agg_actor* self, size_t end) {
  auto& st = self->state;
  st.pending = st.model->copy_state(st.committed);
  st.pending_version = st.committed_version;
  for (size_t i = 0; i < end && i < st.in_flight.size(); ++i) {
    auto& e = st.in_flight[i];
    if (e.refused || e.events == 0)
      continue;
    if (auto err = st.model->apply(st.pending, e.d)) {
      // apply succeeded on the same state and events before: user code is not pure.
      stop(self, error{errc::io_error, "pending state cannot be rebuilt: " + err.message});
      return false;
    }
    st.pending_version += e.events;
  }
  return true;
}

void on_answer(agg_actor* self, uint64_t seq, expected<append_result> a);

// Adds an entry to the router's append watch unless one is pending already. Called
// whenever a request to the writer goes out; on_watchdog adds the next one while
// requests are unanswered.
void arm_watchdog(agg_actor* self, caf::timespan delay) {
  auto& st = self->state;
  if (st.watchdog_armed)
    return;
  st.watchdog_armed = true;
  st.ctx->watch->add(self->clock().now() + delay, caf::weak_actor_ptr{self->ctrl()});
}

caf::timespan append_timeout(const aggregate_actor_state& st) {
  return std::chrono::duration_cast<caf::timespan>(st.opts().append_timeout);
}

// Decides in_flight[index] against the pending state and sends its append.
void decide_entry(agg_actor* self, size_t index) {
  auto& st = self->state;
  if (!st.pending.has_value() && !rebuild_pending(self, index))
    return;
  auto& e = st.in_flight[index];
  e.seq = 0;
  e.events = 0;
  e.refused.reset();
  e.answer.reset();
  auto d = st.model->decide(st.pending, e.cmd.value);
  if (!d) {
    count(st.counters().decide_failures);
    st.in_flight[index].refused = std::move(d).err();
    if (!st.pending.has_value())
      rebuild_pending(self, index);
    return;
  }
  e.d = std::move(*d);
  e.events = e.d.events.size();
  if (e.events == 0)
    return;
  e.seq = st.next_seq++;
  append_request req;
  req.stream = st.stream;
  req.expected = expected_version::exact(st.pending_version);
  req.events = std::move(e.d.events); // the typed events and the reply stay
  req.command_id = e.command_id;
  st.pending_version += e.events;
  auto seq = e.seq;
  e.sent = self->clock().now();
  // No CAF timeout (see the top of this file): the watchdog bounds the wait.
  self->request(st.ctx->env.writer, caf::infinite, append_atom::value, std::move(req))
    .then([self, seq](append_result& r) { on_answer(self, seq, std::move(r)); },
          [self, seq](caf::error& err) { on_answer(self, seq, from_caf_error(err)); });
  arm_watchdog(self, append_timeout(st));
}

// -- commands ----------------------------------------------------------------------

void handle_command(agg_actor* self, waiting_command w) {
  auto& st = self->state;
  if (!w.command_id.empty()) {
    // A retry of a command still in flight shares its outcome.
    for (auto& e : st.in_flight)
      if (e.command_id == w.command_id) {
        e.promises.push_back(std::move(w.rp));
        count(st.counters().duplicates);
        return;
      }
    // A retry of a committed command gets the stored reply, and nothing is decided.
    auto found = find_reply(*st.model, *st.ctx->env.journal, st.stream, w.command_id);
    if (!found) {
      w.rp.deliver(to_caf_error(found.err()));
      return;
    }
    if (*found) {
      count(st.counters().duplicates);
      w.rp.deliver(reply_box{std::move(**found)});
      return;
    }
  }
  auto& e = st.in_flight.emplace_back();
  e.command_id = std::move(w.command_id);
  e.cmd = std::move(w.cmd);
  e.promises.push_back(std::move(w.rp));
  decide_entry(self, st.in_flight.size() - 1);
}

// -- snapshots ---------------------------------------------------------------------

void maybe_snapshot(agg_actor* self) {
  auto& st = self->state;
  auto policy = st.model->snapshots();
  if (!st.ctx->env.snapshot_writer || policy.every_events == 0
      || st.committed_version < st.last_snapshot_version + policy.every_events)
    return;
  // Also on failure: an unencodable state is not retried after every command.
  st.last_snapshot_version = st.committed_version;
  auto bytes = st.model->encode_state(st.committed);
  if (!bytes)
    return;
  snapshot s;
  s.stream = st.stream;
  s.version = st.committed_version;
  s.type = std::string{st.model->state_type()};
  s.schema = st.model->state_schema();
  s.state = std::move(*bytes);
  // Sent before the reply that follows, so a caller who saw the reply and then asks the
  // snapshot writer finds the snapshot there.
  self->send(st.ctx->env.snapshot_writer, snapshot_atom::value, std::move(s),
             static_cast<uint64_t>(policy.keep_last));
  count(st.counters().snapshots);
}

// -- draining the in-flight FIFO ---------------------------------------------------

enum class outcome_class { rejected, shed, conflict, unknown };

outcome_class classify(errc code) {
  switch (code) {
    case errc::too_large:
    case errc::invalid_input:
    case errc::unknown_event_type:
      return outcome_class::rejected;
    case errc::overloaded:
    case errc::unavailable:
      return outcome_class::shed;
    case errc::wrong_expected_version:
      return outcome_class::conflict;
    default:
      return outcome_class::unknown;
  }
}

// The head committed: apply, snapshot, reply.
void commit_head(agg_actor* self) {
  auto& st = self->state;
  auto h = std::move(st.in_flight.front());
  st.in_flight.pop_front();
  const auto& r = **h.answer;
  auto applied = st.model->apply(st.committed, h.d);
  bool consistent = r.first_version == st.committed_version + 1
                    && r.last_version == st.committed_version + h.events;
  st.committed_version = r.last_version;
  count(st.counters().events, h.events);
  if (!applied && consistent)
    maybe_snapshot(self);
  deliver_reply(h); // committed, whatever happens next
  if (applied) {
    stop(self, error{errc::io_error, "committed state cannot be updated: " + applied.message});
  } else if (!consistent) {
    stop(self, error{errc::wrong_expected_version,
                     "stream '" + st.stream + "' moved under this aggregate; it restarts"});
  }
}

// A rejection at the head: decide every later command again against the committed
// state. Returns false when the aggregate stopped.
bool redecide_rest(agg_actor* self) {
  auto& st = self->state;
  for (auto& e : st.in_flight)
    if (e.answer && e.answer->has_value()) {
      // A later append committed although an earlier one was refused: another writer.
      stop(self, error{errc::wrong_expected_version,
                       "stream '" + st.stream + "' has another writer; the aggregate restarts"});
      return false;
    }
  st.pending = st.model->copy_state(st.committed);
  st.pending_version = st.committed_version;
  for (size_t i = 0; i < st.in_flight.size() && st.ph == phase::running; ++i)
    decide_entry(self, i);
  return st.ph == phase::running;
}

void drain_fifo(agg_actor* self);

// Drains the FIFO; once it is empty the pending state equals the committed one and is
// dropped (an idle aggregate keeps one copy of its state).
void drain(agg_actor* self) {
  auto& st = self->state;
  drain_fifo(self);
  if (st.in_flight.empty()) {
    st.pending.reset();
    st.pending_version = st.committed_version;
  }
}

void drain_fifo(agg_actor* self) {
  auto& st = self->state;
  while (st.ph == phase::running && !st.in_flight.empty()) {
    auto& h = st.in_flight.front();
    if (h.refused) {
      deliver_error(h, to_caf_error(*h.refused));
      st.in_flight.pop_front();
      continue;
    }
    if (h.events == 0) {
      deliver_reply(h);
      st.in_flight.pop_front();
      continue;
    }
    if (!h.answer)
      return;
    auto& a = *h.answer;
    if (a && !a->duplicate) {
      commit_head(self);
      continue;
    }
    if (a) {
      // The journal knew the command id although find_command did not when we decided:
      // someone else wrote this stream meanwhile. Our events were not written.
      auto orig = find_reply(*st.model, *st.ctx->env.journal, st.stream, h.command_id);
      if (orig && *orig) {
        h.d.reply = std::move(**orig);
        deliver_reply(h);
      } else {
        deliver_error(h, to_caf_error(orig ? error{errc::wrong_expected_version,
                                                   "command was handled by another writer"}
                                           : orig.err()));
      }
      st.in_flight.pop_front();
      count(st.counters().conflicts);
      stop(self, error{errc::wrong_expected_version,
                       "stream '" + st.stream + "' has another writer; the aggregate restarts"});
      return;
    }
    auto err = a.err();
    switch (classify(err.code)) {
      case outcome_class::rejected:
        count(st.counters().rejections);
        deliver_error(h, to_caf_error(err));
        st.in_flight.pop_front();
        if (!redecide_rest(self))
          return;
        break;
      case outcome_class::shed: {
        count(st.counters().rejections);
        auto cerr = to_caf_error(err);
        for (auto& e : st.in_flight)
          deliver_error(e, cerr);
        st.in_flight.clear();
        st.pending = st.model->copy_state(st.committed);
        st.pending_version = st.committed_version;
        break;
      }
      case outcome_class::conflict:
        count(st.counters().conflicts);
        deliver_error(h, to_caf_error(err));
        st.in_flight.pop_front();
        stop(self, error{errc::wrong_expected_version,
                         "an earlier command of this aggregate met a conflict; the "
                         "aggregate restarts: retry"});
        return;
      case outcome_class::unknown:
        deliver_error(h, to_caf_error(err));
        st.in_flight.pop_front();
        stop(self, err);
        return;
    }
  }
}

// Resolves what the FIFO head allows, then feeds stashed commands while there is room.
void pump(agg_actor* self) {
  auto& st = self->state;
  for (;;) {
    drain(self);
    if (st.ph != phase::running || st.stash.empty()
        || st.in_flight.size() >= st.opts().max_in_flight)
      return;
    while (st.ph == phase::running && !st.stash.empty()
           && st.in_flight.size() < st.opts().max_in_flight) {
      auto w = std::move(st.stash.front());
      st.stash.pop_front();
      handle_command(self, std::move(w));
    }
  }
}

void on_answer(agg_actor* self, uint64_t seq, expected<append_result> a) {
  auto& st = self->state;
  if (st.ph != phase::running)
    return;
  auto i = std::find_if(st.in_flight.begin(), st.in_flight.end(),
                        [seq](const pending_command& e) { return e.seq == seq; });
  if (i == st.in_flight.end())
    return; // stale: the entry was decided again (or answered) since
  i->answer = std::move(a);
  pump(self);
}

// -- recovery ----------------------------------------------------------------------

// Answers the stash with the error, and also the commands already in the mailbox: they
// were routed here before the router could know, and quitting now would bounce them
// (requests) or drop them (plain sends). A self-sent quit_atom queues behind them.
void fail_recovery(agg_actor* self, error err) {
  auto& st = self->state;
  if (st.ph == phase::failed || st.ph == phase::stopped)
    return;
  count(st.counters().recovery_failures);
  err.message = "recovery of '" + st.stream + "' failed: " + err.message;
  st.ph = phase::failed;
  if (!st.act)
    st.act = std::make_unique<activation>();
  st.act->loader.reset();
  st.act->failure = to_caf_error(err);
  for (auto& w : st.stash)
    w.rp.deliver(st.act->failure);
  st.stash.clear();
  self->send(self, quit_atom::value);
}

void finish_recovery(agg_actor* self) {
  auto& st = self->state;
  auto& r = st.act->loader->result();
  st.committed = std::move(r.state);
  st.committed_version = r.version;
  st.last_snapshot_version = r.snapshot_version;
  count(st.counters().events_replayed, r.replayed);
  auto ns = static_cast<uint64_t>(
    std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now() - st.act->started)
      .count());
  st.act.reset();
  st.pending.reset(); // built by the first decide
  st.pending_version = st.committed_version;
  st.ph = phase::running;
  count(st.counters().recoveries);
  count(st.counters().recovery_ns_total, ns);
  aggregate_counters::max(st.counters().recovery_ns_max, ns);
  // A long replay (no snapshot, or one of an old schema): snapshot right away.
  maybe_snapshot(self);
  pump(self);
}

// Replays one batch; then finishes, or continues after giving the worker back.
void recovery_step(agg_actor* self) {
  auto& st = self->state;
  auto done = st.act->loader->step(st.opts().replay_batch);
  if (!done)
    fail_recovery(self, std::move(done).err());
  else if (*done)
    finish_recovery(self);
  else
    yield_then(self, replay_step_atom::value);
}

// Loads the snapshot and replays the first batch right away: a short stream is running
// by the end of the calling handler.
void begin_recovery(agg_actor* self) {
  auto& st = self->state;
  st.ph = phase::recovering;
  st.act->loader = std::make_unique<state_loader>(*st.model, *st.ctx->env.journal,
                                                  st.ctx->env.snapshots.get(), st.stream);
  if (auto err = st.act->loader->start()) {
    fail_recovery(self, std::move(err));
    return;
  }
  // A stream without events (most first activations) needs no read: the state is the
  // initial one (or a snapshot at version 0).
  if (st.act->loader->head_version() == 0)
    finish_recovery(self);
  else
    recovery_step(self);
}

void send_fence(agg_actor* self) {
  auto& st = self->state;
  append_request fence;
  fence.stream = st.stream;
  fence.expected = expected_version::any();
  st.act->fence_sent = self->clock().now();
  self->request(st.ctx->env.writer, caf::infinite, append_atom::value, std::move(fence))
    .then(
      [self](append_result&) {
        if (self->state.ph == phase::fencing)
          begin_recovery(self);
      },
      [self](caf::error& err) {
        if (self->state.ph == phase::fencing)
          fail_recovery(self, from_caf_error(err));
      });
  arm_watchdog(self, append_timeout(st));
}

// The oldest unanswered request (the fence, or an append) decides: past its deadline
// the outcome is unknown (errc::timeout); else check again at its deadline. Nothing
// unanswered: the watchdog stays off until the next request.
void on_watchdog(agg_actor* self) {
  auto& st = self->state;
  st.watchdog_armed = false;
  auto timeout = append_timeout(st);
  auto now = self->clock().now();
  auto expired = [&](caf::actor_clock::time_point sent) { return sent + timeout <= now; };
  if (st.ph == phase::fencing) {
    if (expired(st.act->fence_sent))
      fail_recovery(self, error{errc::timeout, "the journal writer did not answer the "
                                               "recovery fence within append_timeout"});
    else
      arm_watchdog(self, st.act->fence_sent + timeout - now);
    return;
  }
  if (st.ph != phase::running)
    return;
  pending_command* oldest = nullptr;
  for (auto& e : st.in_flight)
    if (e.seq != 0 && !e.answer && (oldest == nullptr || e.sent < oldest->sent))
      oldest = &e;
  if (oldest == nullptr)
    return;
  if (expired(oldest->sent))
    on_answer(self, oldest->seq,
              error{errc::timeout, "the journal writer did not answer within "
                                   "append_timeout; outcome unknown: retry with the same "
                                   "command id"});
  else
    arm_watchdog(self, oldest->sent + timeout - now);
}

bool idle(agg_actor* self) {
  auto& st = self->state;
  // A message already waiting would bounce (request_receiver_down) if we quit now.
  return st.ph == phase::running && st.in_flight.empty() && st.stash.empty()
         && self->mailbox().empty();
}

// Runs `f`; an exception (from a journal or an allocation; user code is guarded by the
// model) stops the aggregate with an error instead of killing it silently.
template <class F>
void guarded(agg_actor* self, F&& f) {
  try {
    f();
  } catch (...) {
    stop(self, error{errc::io_error, "aggregate failed: " + describe_current_exception()});
  }
}

// The atoms an aggregate gets besides commands (see the end of aggregate_behavior).
caf::result<caf::message> on_signal(caf::scheduled_actor* ptr, caf::message_view& x) {
  auto& xs = x.content();
  if (xs.size() != 1 || !xs.match_element<caf::atom_value>(0))
    return caf::print_and_drop(ptr, x);
  auto self = static_cast<agg_actor*>(ptr);
  auto& s = self->state;
  switch (static_cast<uint64_t>(xs.get_as<caf::atom_value>(0))) {
    case replay_step_atom::uint_value():
      guarded(self, [self] {
        if (self->state.ph == phase::recovering)
          recovery_step(self);
      });
      break;
    case watchdog_atom::uint_value():
      guarded(self, [self] { on_watchdog(self); });
      break;
    case passivate_atom::uint_value():
      if (idle(self)) {
        count(s.counters().passivations);
        s.ph = phase::stopped;
        self->quit();
      }
      break;
    case quit_atom::uint_value():
      if (s.ph == phase::failed) {
        s.ph = phase::stopped;
        count(s.counters().stops);
        self->quit(s.act->failure);
      }
      break;
    default:
      return caf::print_and_drop(ptr, x);
  }
  return caf::message{};
}

caf::behavior aggregate_behavior(agg_actor* self, std::shared_ptr<const aggregate_model> model,
                                 std::string id, std::shared_ptr<const aggregate_context> ctx,
                                 bool fence) {
  auto& st = self->state;
  st.stream = model->stream_of(id);
  st.model = std::move(model);
  st.ctx = std::move(ctx);
  st.act = std::make_unique<activation>();
  self->set_exit_handler([self](caf::exit_msg& msg) {
    if (!msg.reason)
      return; // no links of ours end normally; CAF's default ignores it too
    auto& s = self->state;
    if (s.ph != phase::stopped) {
      s.ph = phase::stopped;
      auto in_flight = to_caf_error(
        error{errc::io_error, "aggregate stopped (" + caf::to_string(msg.reason)
                                + ") with this command in flight; outcome unknown"});
      for (auto& e : s.in_flight)
        deliver_error(e, in_flight);
      auto stashed = to_caf_error(error{errc::overloaded, "aggregate stopped before this "
                                                          "command was decided; retry"});
      for (auto& w : s.stash)
        w.rp.deliver(stashed);
      s.in_flight.clear();
      s.stash.clear();
      count(s.counters().stops);
    }
    self->quit(msg.reason);
  });
  if (fence) {
    st.ph = phase::fencing;
    guarded(self, [self] { send_fence(self); });
  } else {
    st.ph = phase::cold;
  }
  auto on_command = [self](command_atom, std::string& command_id,
                           command_box& cmd) -> caf::result<reply_box> {
    auto& s = self->state;
    count(s.counters().commands);
    if (s.ph == phase::failed)
      return s.act->failure;
    if (s.ph == phase::cold) {
      // The command that activated us: recover now, then decide it (or answer it the
      // recovery's error). Not subject to max_stash.
      s.stash.push_back(
        waiting_command{std::move(command_id), std::move(cmd), self->make_response_promise()});
      guarded(self, [self] { begin_recovery(self); });
      return caf::delegated<reply_box>{};
    }
    bool now = s.ph == phase::running && s.stash.empty()
               && s.in_flight.size() < s.opts().max_in_flight;
    if (!now) {
      if (s.stash.size() >= s.opts().max_stash) {
        count(s.counters().stash_overflows);
        return to_caf_error(error{errc::overloaded,
                                  "aggregate '" + s.stream + "' holds "
                                    + std::to_string(s.stash.size())
                                    + " waiting commands (max_stash); retry later"});
      }
      s.stash.push_back(
        waiting_command{std::move(command_id), std::move(cmd), self->make_response_promise()});
      return caf::delegated<reply_box>{};
    }
    waiting_command w{std::move(command_id), std::move(cmd), self->make_response_promise()};
    guarded(self, [&] {
      handle_command(self, std::move(w));
      pump(self);
    });
    return caf::delegated<reply_box>{};
  };
  // Everything but commands is one atom (self-sent, or from the router) and goes to the
  // default handler: a CAF behavior costs ~48 bytes per handler per actor (each captures
  // `self`), while the default handler is a captureless function kept inline in the
  // actor. With 100,000 idle aggregates that is 16 MB less than five handlers.
  self->set_default_handler(on_signal);
  return {on_command};
}

// -- temporal queries --------------------------------------------------------------

struct query_state {
  std::unique_ptr<state_loader> loader;
  caf::response_promise rp;
  size_t batch = 1;
};

using query_actor = caf::stateful_actor<query_state>;

caf::behavior query_behavior(query_actor* self, std::shared_ptr<const aggregate_model> model,
                             std::string id, state_query q,
                             std::shared_ptr<const aggregate_context> ctx) {
  // The loader keeps references: the model and context live as long as this behavior.
  auto finish = [self](std::optional<error> err) {
    auto& s = self->state;
    if (err)
      s.rp.deliver(to_caf_error(*err));
    else
      s.rp.deliver(std::move(s.loader->result()));
    s.loader.reset();
    self->quit();
  };
  return {
    [self, model, id, q, ctx, finish](state_atom) -> caf::result<aggregate_state> {
      auto& s = self->state;
      if (s.loader)
        return to_caf_error(error{errc::invalid_input, "query already running"});
      s.rp = self->make_response_promise();
      s.batch = ctx->env.options.replay_batch;
      s.loader = std::make_unique<state_loader>(*model, *ctx->env.journal,
                                                ctx->env.snapshots.get(), model->stream_of(id), q);
      try {
        if (auto err = s.loader->start())
          finish(std::move(err));
        else
          self->send(self, replay_step_atom::value);
      } catch (...) {
        finish(error{errc::io_error, describe_current_exception()});
      }
      return caf::delegated<aggregate_state>{};
    },
    [self, model, ctx, finish](replay_step_atom) {
      auto& s = self->state;
      if (!s.loader)
        return;
      try {
        auto done = s.loader->step(s.batch);
        if (!done)
          finish(std::move(done).err());
        else if (*done)
          finish(std::nullopt);
        else
          yield_then(self, replay_step_atom::value);
      } catch (...) {
        finish(error{errc::io_error, describe_current_exception()});
      }
    },
  };
}

} // namespace

caf::actor spawn_aggregate(caf::event_based_actor* router,
                           std::shared_ptr<const aggregate_model> model, std::string id,
                           std::shared_ptr<const aggregate_context> ctx, bool fence) {
  // lazy_init: not scheduled until the first command arrives (CAF's work-stealing queue
  // makes eager spawns of many actors quadratic); monitored: the router learns of the
  // stop and forgets the handle.
  return router->spawn<caf::lazy_init + caf::monitored>(aggregate_behavior, std::move(model),
                                                        std::move(id), std::move(ctx), fence);
}

caf::actor spawn_state_query(caf::event_based_actor* router,
                             std::shared_ptr<const aggregate_model> model, std::string id,
                             state_query q, std::shared_ptr<const aggregate_context> ctx) {
  // Linked: if the router is killed, running queries end with it (and ~actor_system
  // does not wait for them).
  return router->spawn<caf::lazy_init + caf::linked>(query_behavior, std::move(model),
                                                     std::move(id), q, std::move(ctx));
}

} // namespace evident::detail
