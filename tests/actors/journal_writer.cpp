#include "evident/actors/journal_writer.hpp"

#include "evident/persistence/memory_journal.hpp"

#include <boost/test/unit_test.hpp>

#include <caf/all.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

// The writer runs on its own thread, so these tests use the real scheduler. They never
// sleep to make something happen: a gate in the journal holds the writer inside a commit
// while the test queues appends behind it, which makes the batches exact.

using namespace std::chrono_literals;
using evident::append_atom;
using evident::append_request;
using evident::append_result;
using evident::errc;
using evident::expected_version;
using evident::metrics_atom;

namespace {

constexpr auto request_timeout = 10s;
constexpr auto gate_timeout = 10s; // a stuck test fails instead of hanging

// -- a journal decorator that holds, fails or counts batches ------------------------

class test_journal final : public evident::journal {
public:
  explicit test_journal(std::shared_ptr<evident::journal> inner = nullptr)
    : inner_(inner ? std::move(inner) : std::make_shared<evident::memory_journal>()) {
    // nop
  }

  // -- controls -----------------------------------------------------------------------

  /// Makes every later append_batch wait until `release` (or gate_timeout).
  void hold() {
    std::lock_guard guard{mtx_};
    held_ = true;
  }
  void release() {
    std::lock_guard guard{mtx_};
    held_ = false;
    cv_.notify_all();
  }
  /// Waits until `n` batches have entered append_batch.
  bool wait_entered(size_t n) {
    std::unique_lock guard{mtx_};
    return cv_.wait_for(guard, gate_timeout, [&] { return entered_ >= n; });
  }
  /// The next batch fails as a whole with `code` (as a failed commit does).
  void fail_next(errc code) {
    std::lock_guard guard{mtx_};
    fail_next_ = code;
  }
  /// The next append_batch throws.
  void throw_next() {
    std::lock_guard guard{mtx_};
    throw_next_ = true;
  }
  /// Makes every later sync() wait until `release_syncs` (or gate_timeout).
  void hold_syncs() {
    std::lock_guard guard{mtx_};
    syncs_held_ = true;
  }
  void release_syncs() {
    std::lock_guard guard{mtx_};
    syncs_held_ = false;
    cv_.notify_all();
  }
  /// Waits until `n` calls have entered sync().
  bool wait_sync_entered(size_t n) {
    std::unique_lock guard{mtx_};
    return cv_.wait_for(guard, gate_timeout, [&] { return syncs_entered_ >= n; });
  }
  /// The next sync() fails with io_error (a flush that did not reach the disk).
  void fail_next_sync() {
    std::lock_guard guard{mtx_};
    fail_next_sync_ = true;
  }
  /// Whether commits wait for a later flush (lmdb_journal under fsync, the default
  /// here) or are as durable as they get when they return (no_meta_sync, no_sync).
  void set_defers_durability(bool x) {
    defers_ = x;
  }
  /// Every batch pretends to fsync for `d` (simulated disk latency, not a test clock).
  void set_commit_delay(std::chrono::microseconds d) {
    std::lock_guard guard{mtx_};
    delay_ = d;
  }

  // -- observers ----------------------------------------------------------------------

  size_t returned() const {
    return returned_.load();
  }
  /// Calls of sync(), and of append_batch_deferred that returned.
  size_t syncs() const {
    return syncs_.load();
  }
  size_t deferred_returned() const {
    return deferred_returned_.load();
  }
  std::vector<size_t> batch_sizes() const {
    std::lock_guard guard{mtx_};
    return batch_sizes_;
  }
  evident::journal& inner() {
    return *inner_;
  }

  // -- journal ------------------------------------------------------------------------

  evident::expected<append_result> append(const append_request& req) override {
    return inner_->append(req);
  }

  std::vector<evident::expected<append_result>>
  append_batch(std::span<const append_request> reqs) override {
    std::optional<errc> fail;
    bool do_throw = false;
    std::chrono::microseconds delay{0};
    {
      std::unique_lock guard{mtx_};
      ++entered_;
      batch_sizes_.push_back(reqs.size());
      // Faults belong to the batch that enters after they were set.
      std::swap(fail, fail_next_);
      std::swap(do_throw, throw_next_);
      delay = delay_;
      cv_.notify_all();
      cv_.wait_for(guard, gate_timeout, [&] { return !held_; });
    }
    if (delay.count() > 0)
      std::this_thread::sleep_for(delay);
    if (do_throw) {
      ++returned_;
      throw std::runtime_error("disk on fire");
    }
    std::vector<evident::expected<append_result>> result;
    if (fail) {
      for (size_t i = 0; i < reqs.size(); ++i)
        result.emplace_back(evident::error{*fail, "injected failure"});
    } else {
      result = inner_->append_batch(reqs);
    }
    ++returned_;
    return result;
  }

  // Stands for a journal whose commit becomes durable with the next commit's flush or
  // with sync() (lmdb_journal under fsync): the same batch, counted apart.
  std::vector<evident::expected<append_result>>
  append_batch_deferred(std::span<const append_request> reqs) override {
    auto result = append_batch(reqs);
    ++deferred_returned_;
    return result;
  }
  bool defers_durability() const noexcept override {
    return defers_.load();
  }
  evident::status sync() override {
    bool fail = false;
    {
      std::unique_lock guard{mtx_};
      ++syncs_entered_;
      cv_.notify_all();
      cv_.wait_for(guard, gate_timeout, [&] { return !syncs_held_; });
      std::swap(fail, fail_next_sync_);
    }
    ++syncs_;
    if (fail)
      return {errc::io_error, "injected flush failure"};
    return {};
  }

  evident::status read_stream(const std::string& stream, const evident::read_options& opts,
                              const evident::event_visitor& f) override {
    return inner_->read_stream(stream, opts, f);
  }
  evident::status read_all(uint64_t from, uint64_t max_count,
                           const evident::event_visitor& f) override {
    return inner_->read_all(from, max_count, f);
  }
  evident::expected<evident::stream_head> head(const std::string& stream) override {
    return inner_->head(stream);
  }
  evident::expected<std::vector<evident::stream_head>> streams() override {
    return inner_->streams();
  }
  evident::expected<uint64_t> last_position() override {
    return inner_->last_position();
  }
  evident::expected<std::optional<append_result>>
  find_command(const std::string& stream, const std::string& command_id) override {
    return inner_->find_command(stream, command_id);
  }
  evident::status delete_to(const std::string& stream, uint64_t n) override {
    return inner_->delete_to(stream, n);
  }
  evident::status truncate_before(const std::string& stream, uint64_t n) override {
    return inner_->truncate_before(stream, n);
  }
  evident::status soft_delete(const std::string& stream) override {
    return inner_->soft_delete(stream);
  }
  evident::status tombstone(const std::string& stream) override {
    return inner_->tombstone(stream);
  }

  using journal::read_all;
  using journal::read_stream;

private:
  std::shared_ptr<evident::journal> inner_;
  mutable std::mutex mtx_;
  std::condition_variable cv_;
  bool held_ = false;
  size_t entered_ = 0;
  std::optional<errc> fail_next_;
  bool throw_next_ = false;
  bool fail_next_sync_ = false;
  bool syncs_held_ = false;
  size_t syncs_entered_ = 0;
  std::chrono::microseconds delay_{0};
  std::atomic<size_t> returned_{0};
  std::atomic<size_t> syncs_{0};
  std::atomic<size_t> deferred_returned_{0};
  std::atomic<bool> defers_{true};
  std::vector<size_t> batch_sizes_;
};

append_request make_request(std::string stream, expected_version ev = expected_version::any(),
                            size_t events = 1, std::string command_id = {}) {
  append_request req;
  req.stream = std::move(stream);
  req.expected = ev;
  req.command_id = std::move(command_id);
  for (size_t i = 0; i < events; ++i) {
    evident::event_data e;
    e.type = "test.happened";
    e.payload = req.stream + "#" + std::to_string(i);
    req.events.push_back(std::move(e));
  }
  return req;
}

/// What one append came back with.
struct outcome {
  std::optional<append_result> ok;
  caf::error raw;
  evident::error err;
};

// -- fixture ------------------------------------------------------------------------

struct writer_fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys;
  caf::scoped_actor self;
  std::vector<caf::actor> spawned;
  std::vector<std::shared_ptr<test_journal>> journals;

  static caf::actor_system_config& prepare(caf::actor_system_config& c) {
    c.set("scheduler.max-threads", 2);
    evident::add_message_types(c);
    return c;
  }

  writer_fixture() : sys(prepare(cfg)), self(sys) {
    // nop
  }

  // Never leave an actor alive or a writer stuck in a gate: ~actor_system() would hang.
  ~writer_fixture() {
    for (auto& j : journals) {
      j->release();
      j->release_syncs();
    }
    for (auto& a : spawned)
      self->send_exit(a, caf::exit_reason::kill);
  }

  std::shared_ptr<test_journal> make_journal() {
    auto j = std::make_shared<test_journal>();
    journals.push_back(j);
    return j;
  }

  caf::actor spawn_writer(std::shared_ptr<evident::journal> j,
                          evident::group_commit_options opts = {},
                          evident::commit_listener listener = {}) {
    auto w = evident::spawn_journal_writer(sys, std::move(j), opts, std::move(listener));
    spawned.push_back(w);
    return w;
  }

  template <class... Ts>
  caf::actor spawn(Ts&&... xs) {
    auto a = sys.spawn(std::forward<Ts>(xs)...);
    spawned.push_back(a);
    return a;
  }

  using handle = decltype(std::declval<caf::scoped_actor&>()->request(
    std::declval<caf::actor>(), request_timeout, append_atom::value, append_request{}));

  handle send_append(const caf::actor& w, append_request req) {
    return self->request(w, request_timeout, append_atom::value, std::move(req));
  }

  static outcome await(handle& h) {
    outcome result;
    h.receive([&](append_result& r) { result.ok = r; },
              [&](caf::error& e) {
                result.raw = e;
                result.err = evident::from_caf_error(e);
              });
    return result;
  }

  outcome append(const caf::actor& w, append_request req) {
    auto h = send_append(w, std::move(req));
    return await(h);
  }

  evident::journal_writer_metrics metrics(const caf::actor& w) {
    evident::journal_writer_metrics result;
    bool got = false;
    self->request(w, request_timeout, metrics_atom::value)
      .receive(
        [&](evident::journal_writer_metrics& m) {
          result = m;
          got = true;
        },
        [&](caf::error& e) { BOOST_FAIL("metrics failed: " << caf::to_string(e)); });
    BOOST_REQUIRE(got);
    return result;
  }

  /// True when a message is waiting in `self`'s mailbox right now.
  bool has_message() {
    return !self->mailbox().empty();
  }
};

// -- a producer: `count` sequential appends to one stream, exact expected versions ---

using done_atom = caf::atom_constant<caf::atom("done")>;

struct producer_state {
  std::vector<append_result> results;
};

void produce_next(caf::stateful_actor<producer_state>* self, caf::actor writer,
                  std::string stream, size_t count, caf::actor report) {
  auto done = self->state.results.size();
  if (done == count) {
    self->send(report, done_atom::value, stream, self->state.results, std::string{});
    self->quit();
    return;
  }
  self
    ->request(writer, request_timeout, append_atom::value,
              make_request(stream, expected_version::exact(done)))
    .then(
      [=](append_result& r) {
        self->state.results.push_back(r);
        produce_next(self, writer, stream, count, report);
      },
      [=](caf::error& e) {
        self->send(report, done_atom::value, stream, self->state.results, caf::to_string(e));
        self->quit();
      });
}

caf::behavior producer(caf::stateful_actor<producer_state>* self, caf::actor writer,
                       std::string stream, size_t count, caf::actor report) {
  produce_next(self, writer, std::move(stream), count, std::move(report));
  return {[](done_atom) {}}; // waits for its responses
}

} // namespace

BOOST_AUTO_TEST_SUITE(journal_writer)

BOOST_AUTO_TEST_CASE(a_latency_falls_in_the_first_bucket_whose_bound_holds_it) {
  using evident::latency_bucket;
  BOOST_CHECK_EQUAL(latency_bucket(0), 0u);
  BOOST_CHECK_EQUAL(latency_bucket(100'000), 0u);  // 100 us: the bound is inclusive
  BOOST_CHECK_EQUAL(latency_bucket(100'999), 0u);  // counted in whole microseconds
  BOOST_CHECK_EQUAL(latency_bucket(101'000), 1u);
  BOOST_CHECK_EQUAL(latency_bucket(30'000'000), 8u); // 30 ms: at most 100 ms
  BOOST_CHECK_EQUAL(latency_bucket(std::numeric_limits<uint64_t>::max()),
                    evident::latency_bounds_us.size() - 1);
}

BOOST_FIXTURE_TEST_CASE(appends_waiting_during_a_commit_share_the_next_commit,
                        writer_fixture) {
  auto j = make_journal();
  auto w = spawn_writer(j);
  j->hold();
  auto first = send_append(w, make_request("warm"));
  BOOST_REQUIRE(j->wait_entered(1)); // the writer is inside commit #1, holding "warm"
  std::vector<handle> hs;
  for (int i = 0; i < 9; ++i)
    hs.push_back(send_append(w, make_request("s-" + std::to_string(i))));
  j->release();
  BOOST_CHECK(await(first).ok);
  for (auto& h : hs)
    BOOST_CHECK(await(h).ok);
  auto m = metrics(w);
  BOOST_CHECK_EQUAL(m.appends, 10u);
  BOOST_CHECK_EQUAL(m.batches, 2u); // 10 appends, 2 commits
  BOOST_CHECK_EQUAL(m.events, 10u);
  BOOST_CHECK_EQUAL(m.last_batch_appends, 9u);
  BOOST_CHECK_EQUAL(m.largest_batch_events, 9u);
  BOOST_CHECK_EQUAL(m.failed, 0u);
  BOOST_CHECK_EQUAL(m.queued, 0u);
  auto sizes = j->batch_sizes();
  BOOST_CHECK((sizes == std::vector<size_t>{1, 9}));
  uint64_t buckets = 0;
  for (auto n : m.commit_latency)
    buckets += n;
  BOOST_CHECK_EQUAL(buckets, m.batches);
  uint64_t answered = 0;
  for (auto n : m.answer_latency)
    answered += n;
  BOOST_CHECK_EQUAL(answered, m.appends); // every append, each once
}

BOOST_FIXTURE_TEST_CASE(concurrent_producers_get_fewer_commits_than_appends, writer_fixture) {
  auto j = make_journal();
  j->set_commit_delay(500us); // a disk-like commit, so that producers overlap with it
  auto w = spawn_writer(j);
  constexpr size_t producers = 20;
  constexpr size_t per_producer = 25;
  auto report = caf::actor_cast<caf::actor>(self);
  for (size_t p = 0; p < producers; ++p)
    spawn(producer, w, "p-" + std::to_string(p), per_producer, report);
  std::map<std::string, std::vector<append_result>> results;
  for (size_t p = 0; p < producers; ++p) {
    bool got = false;
    self->receive(
      [&](done_atom, std::string& stream, std::vector<append_result>& rs, std::string& err) {
        BOOST_CHECK_MESSAGE(err.empty(), stream << ": " << err);
        results[stream] = std::move(rs);
        got = true;
      },
      caf::after(request_timeout) >> [] {});
    BOOST_REQUIRE(got);
  }
  // Each caller got its own answers: its versions in order, positions unique overall.
  std::vector<uint64_t> positions;
  for (auto& [stream, rs] : results) {
    BOOST_REQUIRE_EQUAL(rs.size(), per_producer);
    for (size_t i = 0; i < rs.size(); ++i) {
      BOOST_CHECK_EQUAL(rs[i].first_version, i + 1);
      BOOST_CHECK_EQUAL(rs[i].last_version, i + 1);
      positions.push_back(rs[i].first_position);
      auto ev = j->inner().read_all(rs[i].first_position, 1);
      BOOST_REQUIRE(ev);
      BOOST_REQUIRE_EQUAL(ev->size(), 1u);
      BOOST_CHECK_EQUAL(ev->front().stream, stream);
    }
  }
  std::sort(positions.begin(), positions.end());
  for (size_t i = 0; i < positions.size(); ++i)
    BOOST_CHECK_EQUAL(positions[i], i + 1);
  auto m = metrics(w);
  BOOST_CHECK_EQUAL(m.appends, producers * per_producer);
  BOOST_CHECK_EQUAL(m.events, producers * per_producer);
  BOOST_TEST_MESSAGE("commits for " << m.appends << " appends: " << m.batches);
  BOOST_CHECK_LT(m.batches, m.appends / 2);
  BOOST_CHECK_GT(m.largest_batch_events, 1u);
}

BOOST_FIXTURE_TEST_CASE(each_caller_gets_its_own_result, writer_fixture) {
  auto j = make_journal();
  auto w = spawn_writer(j);
  BOOST_REQUIRE(append(w, make_request("a", expected_version::any(), 2)).ok); // positions 1-2
  j->hold();
  auto warm = send_append(w, make_request("warm")); // position 3
  BOOST_REQUIRE(j->wait_entered(2));
  auto h1 = send_append(w, make_request("a", expected_version::exact(2), 3)); // 4-6
  auto h2 = send_append(w, make_request("b", expected_version::no_stream(), 1)); // 7
  auto h3 = send_append(w, make_request("a", expected_version::exact(5), 2)); // 8-9
  j->release();
  BOOST_CHECK(await(warm).ok);
  auto r1 = await(h1);
  auto r2 = await(h2);
  auto r3 = await(h3);
  BOOST_REQUIRE(r1.ok && r2.ok && r3.ok);
  BOOST_CHECK((*r1.ok == append_result{3, 5, 4, 6}));
  BOOST_CHECK((*r2.ok == append_result{1, 1, 7, 7}));
  BOOST_CHECK((*r3.ok == append_result{6, 7, 8, 9}));
  BOOST_CHECK((j->batch_sizes() == std::vector<size_t>{1, 1, 3}));
}

BOOST_FIXTURE_TEST_CASE(a_conflict_does_not_fail_the_other_appends_of_its_batch,
                        writer_fixture) {
  auto j = make_journal();
  auto w = spawn_writer(j);
  j->hold();
  auto warm = send_append(w, make_request("warm"));
  BOOST_REQUIRE(j->wait_entered(1));
  auto h1 = send_append(w, make_request("s", expected_version::exact(0)));
  auto h2 = send_append(w, make_request("s", expected_version::exact(0))); // h1 wrote first
  auto h3 = send_append(w, make_request("t", expected_version::no_stream()));
  auto h4 = send_append(w, make_request("s", expected_version::exact(1))); // sees h1
  j->release();
  BOOST_CHECK(await(warm).ok);
  auto r1 = await(h1);
  auto r2 = await(h2);
  auto r3 = await(h3);
  auto r4 = await(h4);
  BOOST_CHECK(r1.ok);
  BOOST_CHECK(r3.ok);
  BOOST_CHECK(r4.ok);
  BOOST_REQUIRE(!r2.ok);
  BOOST_CHECK(r2.raw == errc::wrong_expected_version);
  BOOST_CHECK(r2.err.code == errc::wrong_expected_version);
  BOOST_CHECK_EQUAL(r2.err.expected, "0");
  BOOST_REQUIRE(r2.err.actual);
  BOOST_CHECK_EQUAL(*r2.err.actual, 1u);
  BOOST_CHECK((j->batch_sizes() == std::vector<size_t>{1, 4})); // all four in one commit
  auto m = metrics(w);
  BOOST_CHECK_EQUAL(m.failed, 1u);
  BOOST_CHECK_EQUAL(m.events, 4u);
  auto head = j->inner().head("s");
  BOOST_REQUIRE(head);
  BOOST_CHECK_EQUAL(head->version, 2u);
}

BOOST_FIXTURE_TEST_CASE(appends_beyond_max_pending_are_refused_with_overloaded,
                        writer_fixture) {
  auto j = make_journal();
  evident::group_commit_options opts;
  opts.max_pending = 3;
  auto w = spawn_writer(j, opts);
  j->hold();
  auto warm = send_append(w, make_request("warm"));
  BOOST_REQUIRE(j->wait_entered(1)); // "warm" left the queue: it is in the commit
  std::vector<handle> hs;
  for (int i = 0; i < 5; ++i)
    hs.push_back(send_append(w, make_request("s-" + std::to_string(i))));
  j->release();
  BOOST_CHECK(await(warm).ok);
  for (int i = 0; i < 5; ++i) {
    auto r = await(hs[i]);
    if (i < 3) {
      BOOST_CHECK_MESSAGE(r.ok, "append " << i << ": " << caf::to_string(r.raw));
    } else {
      BOOST_REQUIRE(!r.ok);
      BOOST_CHECK(r.raw == errc::overloaded);
      BOOST_CHECK(r.err.code == errc::overloaded);
    }
  }
  auto m = metrics(w);
  BOOST_CHECK_EQUAL(m.overloaded, 2u);
  BOOST_CHECK_EQUAL(m.appends, 4u);
  auto last = j->inner().last_position();
  BOOST_REQUIRE(last);
  BOOST_CHECK_EQUAL(*last, 4u); // nothing of the refused appends was written
}

BOOST_FIXTURE_TEST_CASE(max_batch_events_splits_the_queue_into_several_commits,
                        writer_fixture) {
  auto j = make_journal();
  evident::group_commit_options opts;
  opts.max_batch_events = 4;
  auto w = spawn_writer(j, opts);
  j->hold();
  auto warm = send_append(w, make_request("warm"));
  BOOST_REQUIRE(j->wait_entered(1));
  std::vector<handle> hs;
  for (int i = 0; i < 5; ++i) // 2 events each: two per commit, the last alone
    hs.push_back(send_append(w, make_request("s-" + std::to_string(i), {}, 2)));
  hs.push_back(send_append(w, make_request("big", {}, 6))); // more than the cap: alone
  j->release();
  BOOST_CHECK(await(warm).ok);
  for (auto& h : hs)
    BOOST_CHECK(await(h).ok);
  BOOST_CHECK((j->batch_sizes() == std::vector<size_t>{1, 2, 2, 1, 1}));
  auto m = metrics(w);
  BOOST_CHECK_EQUAL(m.largest_batch_events, 6u);
  BOOST_CHECK_EQUAL(m.events, 17u);
}

BOOST_FIXTURE_TEST_CASE(replies_leave_only_after_the_journal_returned, writer_fixture) {
  auto j = make_journal();
  auto w = spawn_writer(j);
  j->hold();
  auto h = send_append(w, make_request("s"));
  BOOST_REQUIRE(j->wait_entered(1));
  BOOST_CHECK(!has_message()); // the writer is inside append_batch: no reply yet
  BOOST_CHECK_EQUAL(j->returned(), 0u);
  j->release();
  bool replied = false;
  h.receive(
    [&](append_result&) {
      replied = true;
      BOOST_CHECK_EQUAL(j->returned(), 1u); // the batch returned before the reply left
    },
    [&](caf::error& e) { BOOST_FAIL(caf::to_string(e)); });
  BOOST_CHECK(replied);
}

BOOST_FIXTURE_TEST_CASE(a_lone_commit_is_answered_only_after_a_flush_made_it_durable,
                        writer_fixture) {
  auto j = make_journal();
  auto w = spawn_writer(j);
  auto r = append(w, make_request("s"));
  BOOST_REQUIRE(r.ok);
  BOOST_CHECK_EQUAL(j->deferred_returned(), 1u);
  BOOST_CHECK_EQUAL(j->syncs(), 1u); // no commit followed: the writer flushed first
  auto m = metrics(w);
  BOOST_CHECK_EQUAL(m.flushes, 1u);
}

BOOST_FIXTURE_TEST_CASE(answer_latency_runs_until_the_flush_that_made_the_append_durable,
                        writer_fixture) {
  // The append's commit returns at once; its answer waits for the flush, held here for
  // at least `hold`. The sleep makes a span to measure, not an event to wait for.
  constexpr auto hold = 30ms;
  auto j = make_journal();
  j->hold_syncs();
  auto w = spawn_writer(j);
  auto h = send_append(w, make_request("s"));
  BOOST_REQUIRE(j->wait_sync_entered(1));
  std::this_thread::sleep_for(hold);
  j->release_syncs();
  BOOST_REQUIRE(await(h).ok);
  auto m = metrics(w);
  BOOST_CHECK_GE(m.answer_ns, static_cast<uint64_t>(std::chrono::nanoseconds{hold}.count()));
  BOOST_CHECK_LT(m.commit_ns, m.answer_ns);
  const auto hold_us = static_cast<uint64_t>(std::chrono::microseconds{hold}.count());
  uint64_t answered = 0;
  uint64_t below_hold = 0;
  for (size_t i = 0; i < m.answer_latency.size(); ++i) {
    answered += m.answer_latency[i];
    if (evident::latency_bounds_us[i] < hold_us)
      below_hold += m.answer_latency[i];
  }
  BOOST_CHECK_EQUAL(answered, 1u);
  BOOST_CHECK_EQUAL(below_hold, 0u);
}

BOOST_FIXTURE_TEST_CASE(a_journal_durable_when_its_commit_returns_is_answered_without_a_flush,
                        writer_fixture) {
  // no_meta_sync and no_sync promise no later flush: holding the answer for the next
  // commit or a sync() would only add latency. A held sync() must not block them.
  auto j = make_journal();
  j->set_defers_durability(false);
  j->hold_syncs();
  auto w = spawn_writer(j);
  auto first = append(w, make_request("a"));
  auto second = append(w, make_request("b"));
  BOOST_REQUIRE(first.ok);
  BOOST_REQUIRE(second.ok);
  BOOST_CHECK_EQUAL(second.ok->first_position, first.ok->first_position + 1);
  BOOST_CHECK_EQUAL(j->deferred_returned(), 2u);
  BOOST_CHECK_EQUAL(j->syncs(), 0u);
  BOOST_CHECK_EQUAL(metrics(w).flushes, 0u);
}

BOOST_FIXTURE_TEST_CASE(the_next_commit_makes_the_one_before_durable_without_a_flush,
                        writer_fixture) {
  auto j = make_journal();
  auto w = spawn_writer(j);
  j->hold();
  auto first = send_append(w, make_request("a"));
  BOOST_REQUIRE(j->wait_entered(1));
  auto second = send_append(w, make_request("b"));
  j->release();
  bool replied = false;
  first.receive(
    [&](append_result&) {
      replied = true;
      // Held until the second commit, which stored events, returned: its flush carried
      // the first commit's last page.
      BOOST_CHECK_EQUAL(j->deferred_returned(), 2u);
    },
    [&](caf::error& e) { BOOST_FAIL(caf::to_string(e)); });
  BOOST_CHECK(replied);
  BOOST_CHECK(await(second).ok);
  BOOST_CHECK_EQUAL(j->syncs(), 1u); // two commits, one flush of their own
}

BOOST_FIXTURE_TEST_CASE(a_commit_that_stored_nothing_does_not_stand_in_for_a_flush,
                        writer_fixture) {
  auto j = make_journal();
  auto w = spawn_writer(j);
  j->hold();
  j->hold_syncs();
  auto first = send_append(w, make_request("a"));
  BOOST_REQUIRE(j->wait_entered(1));
  // Conflicts: the second commit writes nothing, so it flushes nothing either.
  auto second = send_append(w, make_request("b", expected_version::exact(7)));
  j->release();
  BOOST_REQUIRE(j->wait_sync_entered(1));
  BOOST_CHECK_EQUAL(j->deferred_returned(), 2u);
  // Both commits returned, the flush is held: "a" must not be answered yet. An answer
  // that left before the flush would arrive within milliseconds.
  std::this_thread::sleep_for(300ms);
  BOOST_CHECK(!has_message());
  j->release_syncs();
  BOOST_CHECK(await(first).ok);
  BOOST_CHECK(await(second).err.code == errc::wrong_expected_version);
  BOOST_CHECK_EQUAL(j->syncs(), 1u);
}

BOOST_FIXTURE_TEST_CASE(a_failed_flush_answers_its_appends_with_io_error, writer_fixture) {
  auto j = make_journal();
  auto w = spawn_writer(j);
  j->fail_next_sync();
  auto r = append(w, make_request("s"));
  BOOST_CHECK(!r.ok);
  BOOST_CHECK(r.err.code == errc::io_error);
  BOOST_CHECK(r.err.message.find("injected flush failure") != std::string::npos);
  // The writer goes on: the next append is answered normally.
  BOOST_CHECK(append(w, make_request("t")).ok);
}

BOOST_FIXTURE_TEST_CASE(listener_receives_committed_events_in_global_order, writer_fixture) {
  auto j = make_journal();
  std::mutex mtx;
  std::vector<evident::recorded_event> seen;
  size_t callbacks = 0;
  evident::commit_listener listener;
  listener.callback = [&](const evident::committed_batch& b) {
    std::lock_guard guard{mtx};
    ++callbacks;
    BOOST_CHECK(!b.empty());
    BOOST_CHECK_EQUAL(b.first_position(), b.events.front().position);
    seen.insert(seen.end(), b.events.begin(), b.events.end());
  };
  caf::scoped_actor bus{sys};
  listener.actor = caf::actor_cast<caf::actor>(bus);
  auto w = spawn_writer(j, {}, listener);
  BOOST_REQUIRE(append(w, make_request("a", expected_version::no_stream(), 2, "cmd-1")).ok);
  j->hold();
  auto warm = send_append(w, make_request("b"));
  BOOST_REQUIRE(j->wait_entered(2));
  auto h1 = send_append(w, make_request("a", expected_version::exact(0))); // conflict
  auto h2 = send_append(w, make_request("a", expected_version::exact(2), 3));
  auto h3 = send_append(w, make_request("a", expected_version::no_stream(), 2, "cmd-1")); // retry
  auto h4 = send_append(w, make_request("c", expected_version::any(), 1));
  auto h5 = send_append(w, make_request("", expected_version::any(), 1)); // invalid
  j->release();
  BOOST_CHECK(await(warm).ok);
  BOOST_CHECK(!await(h1).ok);
  BOOST_CHECK(await(h2).ok);
  auto r3 = await(h3);
  BOOST_REQUIRE(r3.ok);
  BOOST_CHECK(r3.ok->duplicate);
  BOOST_CHECK(await(h4).ok);
  BOOST_CHECK(!await(h5).ok);
  // The journal holds exactly what the listener saw, in the same order, including the
  // ids and times the journal would otherwise have chosen itself.
  auto stored = j->inner().read_all();
  BOOST_REQUIRE(stored);
  BOOST_REQUIRE_EQUAL(stored->size(), 7u); // a:2, b:1, a:3, c:1
  {
    std::lock_guard guard{mtx};
    BOOST_CHECK_EQUAL(callbacks, 3u); // three commits, each stored something
    BOOST_REQUIRE_EQUAL(seen.size(), stored->size());
    for (size_t i = 0; i < seen.size(); ++i) {
      auto& x = seen[i];
      auto& y = (*stored)[i];
      BOOST_CHECK_EQUAL(x.position, i + 1);
      BOOST_CHECK_EQUAL(x.position, y.position);
      BOOST_CHECK_EQUAL(x.stream, y.stream);
      BOOST_CHECK_EQUAL(x.version, y.version);
      BOOST_CHECK_EQUAL(x.type, y.type);
      BOOST_CHECK_EQUAL(x.payload, y.payload);
      BOOST_CHECK_EQUAL(x.command_id, y.command_id);
      BOOST_CHECK_EQUAL(x.time_ns, y.time_ns);
      BOOST_CHECK(x.event_id == y.event_id);
      BOOST_CHECK(!x.event_id.is_nil());
    }
  }
  // The actor listener got the same events as messages.
  std::vector<evident::recorded_event> got;
  while (got.size() < stored->size()) {
    bool any = false;
    bus->receive(
      [&](evident::committed_batch& b) {
        any = true;
        got.insert(got.end(), b.events.begin(), b.events.end());
      },
      caf::after(request_timeout) >> [] {});
    BOOST_REQUIRE(any);
  }
  BOOST_REQUIRE_EQUAL(got.size(), stored->size());
  for (size_t i = 0; i < got.size(); ++i) {
    BOOST_CHECK_EQUAL(got[i].position, (*stored)[i].position);
    BOOST_CHECK_EQUAL(got[i].stream, (*stored)[i].stream);
    BOOST_CHECK_EQUAL(got[i].version, (*stored)[i].version);
  }
}

BOOST_FIXTURE_TEST_CASE(journal_errors_map_to_their_errc, writer_fixture) {
  auto j = make_journal();
  auto w = spawn_writer(j);
  // Refused by the journal's rules.
  auto empty_id = append(w, make_request(""));
  BOOST_CHECK(empty_id.err.code == errc::invalid_input);
  BOOST_CHECK(empty_id.raw == errc::invalid_input);
  BOOST_CHECK(empty_id.raw.category() == evident::errc_category);
  BOOST_REQUIRE(append(w, make_request("gone")).ok);
  BOOST_REQUIRE(!j->inner().tombstone("gone"));
  BOOST_CHECK(append(w, make_request("gone")).err.code == errc::stream_deleted);
  auto exists = append(w, make_request("nope", expected_version::stream_exists()));
  BOOST_CHECK(exists.err.code == errc::wrong_expected_version);
  BOOST_CHECK_EQUAL(exists.err.expected, "stream_exists");
  BOOST_CHECK(exists.err.actual && *exists.err.actual == 0u);
  // A failed commit fails every append of its batch (outcome unknown).
  j->hold();
  auto warm = send_append(w, make_request("warm"));
  BOOST_REQUIRE(j->wait_entered(5)); // "", "gone" twice, "nope", then "warm"
  j->fail_next(errc::io_error);
  auto h1 = send_append(w, make_request("x"));
  auto h2 = send_append(w, make_request("y"));
  j->release();
  BOOST_CHECK(await(warm).ok);
  BOOST_CHECK(await(h1).err.code == errc::io_error);
  BOOST_CHECK(await(h2).err.code == errc::io_error);
  j->fail_next(errc::storage_full);
  BOOST_CHECK(append(w, make_request("z")).err.code == errc::storage_full);
  // A journal that throws: io_error, and the writer lives on.
  j->throw_next();
  auto thrown = append(w, make_request("t"));
  BOOST_CHECK(thrown.err.code == errc::io_error);
  BOOST_CHECK(thrown.err.message.find("disk on fire") != std::string::npos);
  BOOST_CHECK(append(w, make_request("t")).ok);
}

BOOST_FIXTURE_TEST_CASE(caf_errors_keep_the_facts_of_an_evident_error, writer_fixture) {
  evident::error conflict{errc::wrong_expected_version, "stream s is at 4"};
  conflict.expected = "3";
  conflict.actual = 4;
  auto back = evident::from_caf_error(evident::to_caf_error(conflict));
  BOOST_CHECK(back.code == errc::wrong_expected_version);
  BOOST_CHECK_EQUAL(back.message, conflict.message);
  BOOST_CHECK_EQUAL(back.expected, "3");
  BOOST_CHECK(back.actual == std::optional<uint64_t>{4});
  evident::error bad{errc::corrupted, "checksum"};
  bad.position = 17;
  auto bad_back = evident::from_caf_error(evident::to_caf_error(bad));
  BOOST_CHECK(bad_back.code == errc::corrupted);
  BOOST_CHECK(bad_back.position == std::optional<uint64_t>{17});
  BOOST_CHECK(evident::from_caf_error(caf::sec::request_timeout).code == errc::timeout);
  BOOST_CHECK(evident::from_caf_error(caf::sec::request_receiver_down).code == errc::io_error);
  BOOST_CHECK(evident::from_caf_error(caf::error{}).code == errc::none);
  auto text = sys.render(evident::to_caf_error(conflict));
  BOOST_CHECK_MESSAGE(text.find("wrong_expected_version") != std::string::npos
                        && text.find("actual 4") != std::string::npos,
                      text);
}

BOOST_FIXTURE_TEST_CASE(a_graceful_stop_commits_and_answers_what_the_writer_holds,
                        writer_fixture) {
  auto j = make_journal();
  auto w = spawn_writer(j);
  self->monitor(w);
  j->hold();
  auto warm = send_append(w, make_request("warm"));
  BOOST_REQUIRE(j->wait_entered(1));
  std::vector<handle> hs;
  for (int i = 0; i < 3; ++i)
    hs.push_back(send_append(w, make_request("s-" + std::to_string(i))));
  self->send_exit(w, caf::exit_reason::user_shutdown); // queued behind the three appends
  j->release();
  BOOST_CHECK(await(warm).ok);
  for (auto& h : hs) {
    auto r = await(h);
    BOOST_CHECK_MESSAGE(r.ok, caf::to_string(r.raw));
  }
  bool down = false;
  self->receive([&](caf::down_msg& dm) { down = dm.source == w; },
                caf::after(request_timeout) >> [] {});
  BOOST_CHECK(down);
  auto last = j->inner().last_position();
  BOOST_REQUIRE(last);
  BOOST_CHECK_EQUAL(*last, 4u);
  // A stopped writer refuses at once; callers map that to io_error.
  auto after_stop = append(w, make_request("late"));
  BOOST_CHECK(after_stop.raw == caf::sec::request_receiver_down);
  BOOST_CHECK(after_stop.err.code == errc::io_error);
}

BOOST_FIXTURE_TEST_CASE(a_plain_send_gets_its_answer_as_an_ordinary_message, writer_fixture) {
  auto j = make_journal();
  auto w = spawn_writer(j);
  self->send(w, append_atom::value, make_request("s", expected_version::no_stream()));
  bool ok = false;
  self->receive([&](append_result& r) { ok = r.first_position == 1; },
                caf::after(request_timeout) >> [] {});
  BOOST_CHECK(ok);
  self->send(w, append_atom::value, make_request("s", expected_version::no_stream()));
  evident::error err;
  self->receive([&](caf::error& e) { err = evident::from_caf_error(e); },
                caf::after(request_timeout) >> [] {});
  BOOST_CHECK(err.code == errc::wrong_expected_version);
  BOOST_CHECK(err.actual == std::optional<uint64_t>{1});
}

BOOST_FIXTURE_TEST_CASE(spawn_refuses_a_null_journal_and_zero_limits, writer_fixture) {
  BOOST_CHECK_THROW(evident::spawn_journal_writer(sys, nullptr), std::invalid_argument);
  evident::group_commit_options opts;
  opts.max_batch_events = 0;
  BOOST_CHECK_THROW(evident::spawn_journal_writer(sys, make_journal(), opts),
                    std::invalid_argument);
  opts = {};
  opts.max_pending = 0;
  BOOST_CHECK(evident::validate(opts).code == errc::invalid_input);
}

BOOST_AUTO_TEST_SUITE_END()
