#include "evident/actors/journal_writer.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/response_promise.hpp>
#include <caf/result.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include <algorithm>
#include <chrono>
#include <deque>
#include <exception>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace evident::detail {

/// One commit's answers, handed from the writer to its reply sender. Never leaves the
/// process.
struct reply_batch {
  std::vector<caf::response_promise> promises;
  std::vector<expected<append_result>> results;
  /// The committed requests, freed on a CAF worker instead of the writer's thread.
  std::vector<append_request> requests;
  /// Events the commit stored (0: nothing to publish).
  size_t stored = 0;
  /// When the commit started, for journal_writer_metrics::answer_latency.
  std::chrono::steady_clock::time_point started;
};

} // namespace evident::detail

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(evident::detail::reply_batch)

namespace evident {

status validate(const group_commit_options& x) {
  if (x.max_batch_events == 0)
    return {errc::invalid_input, "group_commit_options.max_batch_events must be at least 1"};
  if (x.max_pending == 0)
    return {errc::invalid_input, "group_commit_options.max_pending must be at least 1"};
  return {};
}

namespace {

// Self-sent only: "commit what you hold". Not in atoms.hpp because nobody else should
// send it (it would be harmless: an early commit).
using commit_atom = caf::atom_constant<caf::atom("jw_commit")>;

// Self-sent only: "no commit follows; flush and answer what you hold".
using flush_atom = caf::atom_constant<caf::atom("jw_flush")>;

struct pending_append {
  append_request req;
  caf::response_promise rp;
};

struct writer_state {
  std::shared_ptr<journal> jnl;
  group_commit_options opts;
  commit_listener listener;
  // Appends taken from the mailbox, oldest first; bounded by opts.max_pending.
  std::deque<pending_append> queue;
  // True while a commit_atom is in the mailbox. Invariant: !queue.empty() implies
  // commit_scheduled (outside of a handler), so nothing waits without a commit coming.
  bool commit_scheduled = false;
  // The batch being committed; handed to the reply sender after each commit.
  std::vector<append_request> batch;
  std::vector<caf::response_promise> promises;
  // Commits that returned but whose meta page may not be on disk yet (oldest first):
  // answered once a later commit's flush or a sync() made them durable.
  std::vector<detail::reply_batch> held;
  // True while a flush_atom is in the mailbox.
  bool flush_scheduled = false;
  journal_writer_metrics metrics;
  // Delivers the replies of each commit on a CAF worker (see reply_sender).
  caf::actor replier;
};

using writer_actor = caf::stateful_actor<writer_state>;

int64_t now_ns() {
  using namespace std::chrono;
  return duration_cast<nanoseconds>(system_clock::now().time_since_epoch()).count();
}

// With a listener, the writer fills in what the journal would otherwise choose itself
// (event id, time), so the events it publishes are exactly the events stored.
void stamp(std::vector<append_request>& batch) {
  auto now = now_ns();
  for (auto& req : batch)
    for (auto& e : req.events) {
      if (e.event_id.is_nil())
        e.event_id = uuid::random();
      if (e.time_ns == 0)
        e.time_ns = now;
    }
}

// Moves the stored events of successful appends out of the batch (nobody needs the
// requests after the commit) into the listener's message.
committed_batch collect(std::vector<append_request>& batch,
                        const std::vector<expected<append_result>>& results, size_t events) {
  committed_batch result;
  result.events.reserve(events);
  for (size_t i = 0; i < batch.size(); ++i) {
    const auto& res = results[i];
    if (!res || res->duplicate)
      continue;
    auto& req = batch[i];
    for (size_t j = 0; j < req.events.size(); ++j) {
      auto& e = req.events[j];
      auto& out = result.events.emplace_back();
      out.position = res->first_position + j;
      out.stream = req.stream;
      out.version = res->first_version + j;
      out.type = std::move(e.type);
      out.schema = e.schema;
      out.time_ns = e.time_ns;
      out.event_id = e.event_id;
      out.correlation_id = std::move(e.correlation_id);
      out.causation_id = std::move(e.causation_id);
      out.command_id = req.command_id;
      out.meta = std::move(e.meta);
      out.payload = std::move(e.payload);
    }
  }
  // append_batch assigns positions in request order, so this is a no-op check; a
  // journal that did otherwise must still not break the "global order" promise.
  auto by_position = [](const recorded_event& x, const recorded_event& y) {
    return x.position < y.position;
  };
  if (!std::is_sorted(result.events.begin(), result.events.end(), by_position))
    std::sort(result.events.begin(), result.events.end(), by_position);
  return result;
}

// Counts `n` observations of `ns` each in a histogram on latency_bounds_us.
void record_latency(std::array<uint64_t, latency_bounds_us.size()>& buckets, uint64_t& sum_ns,
                    uint64_t ns, uint64_t n = 1) {
  sum_ns += ns * n;
  buckets[latency_bucket(ns)] += n;
}

void publish(writer_state& st, committed_batch&& cb) {
  if (cb.empty())
    return;
  if (st.listener.callback) {
    try {
      st.listener.callback(cb);
    } catch (...) {
      // A listener is a best-effort notification (subscribers catch up from the
      // journal); its failure must not turn a committed append into an error.
    }
  }
  if (st.listener.actor)
    caf::anon_send(st.listener.actor, std::move(cb));
}

// Publishes and answers every held commit: they are durable now.
void release_held(writer_actor* self) {
  auto& st = self->state;
  auto now = std::chrono::steady_clock::now();
  for (auto& b : st.held) {
    auto waited = std::chrono::duration_cast<std::chrono::nanoseconds>(now - b.started);
    record_latency(st.metrics.answer_latency, st.metrics.answer_ns,
                   static_cast<uint64_t>(waited.count()), b.results.size());
    if (st.listener && b.stored > 0)
      publish(st, collect(b.requests, b.results, b.stored));
    // Sending a reply costs the writer's thread about as much as taking the append in
    // (measured: ~0.7 us each); a cooperative actor does it on CAF's workers while the
    // writer moves on to the next commit. The requests go along to be freed there too.
    self->send(st.replier, std::move(b));
  }
  st.held.clear();
}

// Makes the held commits durable with one flush and answers them. A failed flush
// leaves their outcome unknown: they are visible but may not survive a machine crash.
void flush_held(writer_actor* self) {
  auto& st = self->state;
  if (st.held.empty())
    return;
  auto t0 = std::chrono::steady_clock::now();
  auto err = st.jnl->sync();
  ++st.metrics.flushes;
  st.metrics.flush_ns += static_cast<uint64_t>(
    std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0)
      .count());
  if (err) {
    for (auto& b : st.held)
      for (auto& r : b.results)
        if (r)
          r = error{errc::io_error, "flush after commit failed (" + err.message
                                      + "); the events may not survive a machine crash"};
  }
  release_held(self);
}

// Takes the oldest appends (at most max_batch_events events, at least one append) from
// the queue, writes them in one append_batch, tells the listener, then answers each.
void commit_one_batch(writer_actor* self) {
  auto& st = self->state;
  st.batch.clear();
  st.promises.clear();
  auto expect = std::min(st.queue.size(), st.opts.max_batch_events);
  st.batch.reserve(expect);
  st.promises.reserve(expect);
  size_t events = 0;
  while (!st.queue.empty()) {
    auto n = st.queue.front().req.events.size();
    if (!st.batch.empty() && events + n > st.opts.max_batch_events)
      break;
    events += n;
    st.batch.push_back(std::move(st.queue.front().req));
    st.promises.push_back(std::move(st.queue.front().rp));
    st.queue.pop_front();
  }
  if (st.batch.empty())
    return;
  if (st.listener)
    stamp(st.batch);
  std::vector<expected<append_result>> results;
  auto t0 = std::chrono::steady_clock::now();
  try {
    results = st.jnl->append_batch_deferred(st.batch);
  } catch (const std::exception& ex) {
    results.clear();
    error err{errc::io_error, std::string{"append_batch threw: "} + ex.what()};
    for (size_t i = 0; i < st.batch.size(); ++i)
      results.emplace_back(err);
  } catch (...) {
    results.clear();
    for (size_t i = 0; i < st.batch.size(); ++i)
      results.emplace_back(error{errc::io_error, "append_batch threw"});
  }
  auto t1 = std::chrono::steady_clock::now();
  if (results.size() != st.batch.size()) {
    // Contract breach by the journal: we cannot tell which append landed.
    results.clear();
    for (size_t i = 0; i < st.batch.size(); ++i)
      results.emplace_back(
        error{errc::io_error, "journal returned a wrong number of results; outcome unknown"});
  }
  // -- metrics ---------------------------------------------------------------------
  auto& m = st.metrics;
  ++m.batches;
  m.last_batch_appends = st.batch.size();
  m.last_batch_events = events;
  m.largest_batch_events = std::max<uint64_t>(m.largest_batch_events, events);
  record_latency(m.commit_latency, m.commit_ns,
                 static_cast<uint64_t>(
                   std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count()));
  size_t stored = 0;
  for (size_t i = 0; i < results.size(); ++i) {
    if (results[i]) {
      if (!results[i]->duplicate)
        stored += st.batch[i].events.size();
    } else {
      ++m.failed;
    }
  }
  m.events += stored;
  m.queued = st.queue.size();
  // -- hold until durable ------------------------------------------------------
  // A commit that wrote flushed the data file, and with it the meta pages of every
  // commit before it: those are durable now. This one waits for the next commit or
  // for the flush that follows when no commit comes (flush_atom).
  if (stored > 0)
    release_held(self);
  st.held.push_back(detail::reply_batch{std::move(st.promises), std::move(results),
                                        std::move(st.batch), stored, t0});
  st.batch = {};
  st.promises = {};
  // A commit that wrote nothing flushed nothing: do not let earlier commits wait on a
  // run of such commits.
  if (stored == 0 && st.held.size() > 1)
    flush_held(self);
  // A journal that promises no later flush (no_meta_sync, no_sync, memory): holding
  // would only delay the answer by a commit, for no durability in return.
  else if (!st.jnl->defers_durability())
    release_held(self);
}

void schedule_flush(writer_actor* self) {
  auto& st = self->state;
  if (!st.held.empty() && !st.flush_scheduled) {
    // Lands behind every append already in the mailbox: if one is there, its commit
    // comes first and makes the flush unnecessary.
    self->send(self, flush_atom::value);
    st.flush_scheduled = true;
  }
}

// Answers each append of a commit, in the order the writer committed them.
caf::behavior reply_sender(caf::event_based_actor*) {
  return {
    [](detail::reply_batch& b) {
      for (size_t i = 0; i < b.results.size(); ++i) {
        if (b.results[i])
          b.promises[i].deliver(std::move(*b.results[i]));
        else
          b.promises[i].deliver(to_caf_error(b.results[i].err()));
      }
    },
  };
}

caf::behavior journal_writer(writer_actor* self, std::shared_ptr<journal> j,
                             group_commit_options opts, commit_listener listener) {
  auto& st = self->state;
  st.jnl = std::move(j);
  st.opts = opts;
  st.listener = std::move(listener);
  // Not linked: when the writer is killed, dropping its handle ends the reply sender.
  st.replier = self->spawn(reply_sender);
  // Graceful stop: answer what we hold before quitting. `kill` cannot be trapped.
  self->set_exit_handler([self](caf::exit_msg& msg) {
    if (!msg.reason)
      return; // a linked actor ended normally: CAF's default ignores that too
    auto& s = self->state;
    while (!s.queue.empty())
      commit_one_batch(self);
    flush_held(self);
    // Queued behind the last replies (same sender, same queue), so it sends them first.
    self->send_exit(s.replier, caf::exit_reason::user_shutdown);
    self->quit(msg.reason);
  });
  return {
    [self](append_atom, append_request& req) -> caf::result<append_result> {
      auto& s = self->state;
      // Refusals come before make_response_promise: after it, a returned error would
      // be dropped (CAF 0.17).
      if (s.queue.size() >= s.opts.max_pending) {
        ++s.metrics.overloaded;
        return to_caf_error(error{errc::overloaded,
                                  "journal writer holds " + std::to_string(s.queue.size())
                                    + " appends (max_pending); retry later"});
      }
      s.queue.push_back(pending_append{std::move(req), self->make_response_promise()});
      ++s.metrics.appends;
      s.metrics.queued = s.queue.size();
      if (!s.commit_scheduled) {
        // Lands behind every append already in the mailbox: that is the batch.
        self->send(self, commit_atom::value);
        s.commit_scheduled = true;
      }
      return caf::delegated<append_result>{};
    },
    [self](commit_atom) {
      auto& s = self->state;
      s.commit_scheduled = false;
      commit_one_batch(self);
      // More than one batch was waiting: commit the rest after the appends that
      // arrived meanwhile have joined the queue.
      if (!s.queue.empty()) {
        self->send(self, commit_atom::value);
        s.commit_scheduled = true;
      } else {
        schedule_flush(self);
      }
    },
    [self](flush_atom) {
      auto& s = self->state;
      s.flush_scheduled = false;
      // An append arrived since: its commit flushes what we hold.
      if (s.commit_scheduled)
        return;
      flush_held(self);
    },
    [self](metrics_atom) {
      self->state.metrics.queued = self->state.queue.size();
      return self->state.metrics;
    },
  };
}

} // namespace

caf::actor spawn_journal_writer(caf::actor_system& sys, std::shared_ptr<journal> j,
                                group_commit_options opts, commit_listener listener) {
  if (!j)
    throw std::invalid_argument("spawn_journal_writer: journal is null");
  if (auto err = validate(opts))
    throw std::invalid_argument("spawn_journal_writer: " + err.message);
  return sys.spawn<caf::detached>(journal_writer, std::move(j), opts, std::move(listener));
}

} // namespace evident
