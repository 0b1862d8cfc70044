#pragma once

// The aggregate test kit: given events, when a command, then events, reply or error.
// Deterministic and synchronous (no actors, no threads, no clock), on the in-memory
// journal and snapshot store, through the same code the aggregate actor runs: recovery
// (state_loader), command-id lookup (find_reply), decide, the append with its exact
// expected version, and snapshots per the spec's policy.
//
//   auto r = evident::test_kit<account_aggregate>{}
//              .given(opened{"ada"}, deposited{100})
//              .when(withdraw{500});
//   BOOST_TEST(r.events().empty());
//   BOOST_TEST(r.reply() == account_reply{refused{"insufficient funds"}});
//
// Besides running the command, `when` checks what production would trip over later:
// that the reply survives msgpack (a retry after a restart reads it back), and, for
// states with operator==, that the state survives a snapshot round trip and that
// replaying the stored events gives the state the command's decision saw. A failed
// check is reported as the result's error (errc::invalid_input, message says which).

#include "evident/actors/aggregate.hpp"
#include "evident/actors/temporal.hpp"
#include "evident/persistence/memory_journal.hpp"
#include "evident/persistence/snapshot_store.hpp"

#include <any>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace evident {

/// What one `test_kit::when` did.
template <aggregate_spec Spec>
class test_result {
public:
  using state_type = typename Spec::state;
  using event_type = typename Spec::event;
  using reply_type = typename Spec::reply;

  /// True when the command got a reply (a domain refusal included), false on an error.
  bool ok() const noexcept {
    return !err_;
  }

  /// The events the command persisted, in order (empty for a refusal, a query, an
  /// error, or a retry answered from its command id).
  const std::vector<event_type>& events() const noexcept {
    return events_;
  }

  /// True when `events()` equals `es...` (each converted to the event type).
  template <class... Es>
  bool events_are(const Es&... es) const {
    std::vector<event_type> expected{event_type{es}...};
    return events_ == expected;
  }

  /// The reply. Throws std::logic_error when the command failed (see `error()`).
  const reply_type& reply() const {
    if (err_)
      throw std::logic_error("test_result::reply: the command failed: " + to_string(err_));
    return reply_;
  }

  /// The error (code none when the command got a reply).
  const evident::error& error() const noexcept {
    return err_;
  }

  /// The aggregate's state after the command (unchanged after an error).
  const state_type& state() const noexcept {
    return state_;
  }

  /// The stream's version after the command.
  uint64_t version() const noexcept {
    return version_;
  }

  /// True when this was a retry answered from an earlier command with the same id.
  bool duplicate() const noexcept {
    return duplicate_;
  }

  /// Calls `f(*this)` (for a given/when/then chain) and returns *this.
  template <class F>
  const test_result& then(F&& f) const {
    f(*this);
    return *this;
  }

private:
  template <aggregate_spec>
  friend class test_kit;

  std::vector<event_type> events_;
  reply_type reply_{};
  evident::error err_;
  state_type state_{};
  uint64_t version_ = 0;
  bool duplicate_ = false;
};

/// Runs commands against one aggregate (id `id`, stream `Spec::name + "-" + id`).
/// Each `when` recovers the state from the journal first, as a fresh aggregate would,
/// so every test also exercises event encoding, upcasting and snapshots.
///
/// Thread: one thread. Cost: a full recovery per `when` (fine for tests).
template <aggregate_spec Spec>
class test_kit {
public:
  using state_type = typename Spec::state;
  using command_type = typename Spec::command;
  using event_type = typename Spec::event;
  using reply_type = typename Spec::reply;

  /// `opts` sets the journal's limits (e.g. `max_event_bytes`, to test too_large).
  explicit test_kit(std::string id = "test", journal_options opts = {})
    : id_(std::move(id)),
      journal_(std::make_shared<memory_journal>(opts)),
      snapshots_(std::make_shared<memory_snapshot_store>(opts)) {
    // nop
  }

  /// Appends `es...` (alternatives of the event type) as one append, as if earlier
  /// commands had produced them. Throws std::invalid_argument when an event does not
  /// encode or the append fails (a broken test setup, not a test outcome).
  template <class... Es>
  test_kit& given(Es... es) {
    append_request req;
    req.stream = stream();
    req.expected = expected_version::any();
    (add_given(req, event_type{std::move(es)}), ...);
    if (req.events.empty())
      return *this;
    auto r = journal_->append(req);
    if (!r)
      throw std::invalid_argument("test_kit::given: append failed: " + to_string(r.err()));
    return *this;
  }

  /// Runs `cmd` as the aggregate actor would (without CAF): recover, look up
  /// `command_id` (when not empty), decide, append, snapshot.
  test_result<Spec> when(const command_type& cmd, const std::string& command_id = {}) {
    test_result<Spec> out;
    auto loaded = load_state(model_, *journal_, snapshots_.get(), id_);
    if (!loaded) {
      out.err_ = std::move(loaded).err();
      return out;
    }
    out.version_ = loaded->version;
    out.state_ = std::any_cast<state_type>(loaded->state);
    if (!command_id.empty()) {
      auto found = find_reply(model_, *journal_, stream(), command_id);
      if (!found) {
        out.err_ = std::move(found).err();
        return out;
      }
      if (*found) {
        out.reply_ = std::any_cast<reply_type>(std::move(**found));
        out.duplicate_ = true;
        return out;
      }
    }
    std::any pending = std::move(loaded->state);
    auto d = model_.decide(pending, std::any{cmd});
    if (!d) {
      out.err_ = std::move(d).err();
      return out;
    }
    auto reply = std::any_cast<reply_type>(d->reply);
    if (auto err = check_reply(reply)) {
      out.err_ = err;
      return out;
    }
    auto typed = std::any_cast<std::vector<event_type>>(d->typed_events);
    if (!d->events.empty()) {
      append_request req;
      req.stream = stream();
      req.expected = expected_version::exact(out.version_);
      req.events = std::move(d->events);
      req.command_id = command_id;
      auto r = journal_->append(req);
      if (!r) {
        out.err_ = std::move(r).err();
        return out;
      }
      out.version_ = r->last_version;
    }
    out.events_ = std::move(typed);
    out.reply_ = std::move(reply);
    out.state_ = std::any_cast<state_type>(std::move(pending));
    if (auto err = check_state(out)) {
      out.err_ = err;
      return out;
    }
    snapshot_if_due(out);
    return out;
  }

  /// The current state and version, recovered from the journal.
  /// Throws std::runtime_error when recovery fails.
  state_type state() {
    auto loaded = load_state(model_, *journal_, snapshots_.get(), id_);
    if (!loaded)
      throw std::runtime_error("test_kit::state: " + to_string(loaded.err()));
    return std::any_cast<state_type>(std::move(loaded->state));
  }

  std::string stream() const {
    return model_.stream_of(id_);
  }
  memory_journal& journal() noexcept {
    return *journal_;
  }
  memory_snapshot_store& snapshots() noexcept {
    return *snapshots_;
  }
  const spec_model<Spec>& model() const noexcept {
    return model_;
  }

private:
  void add_given(append_request& req, const event_type& e) {
    auto data = model_.registry().encode(e);
    if (!data)
      throw std::invalid_argument("test_kit::given: " + to_string(data.err()));
    req.events.push_back(std::move(*data));
  }

  // A retry after a restart reads the reply back from msgpack: it must survive that.
  evident::error check_reply(const reply_type& reply) const {
    std::string bytes;
    try {
      bytes = to_msgpack(reply);
    } catch (const std::exception& ex) {
      return {errc::invalid_input, std::string{"test_kit: the reply does not encode: "}
                                     + ex.what()};
    }
    auto back = model_.decode_reply(bytes);
    if (!back)
      return {errc::invalid_input, "test_kit: the reply does not decode: " + back.err().message};
    if constexpr (std::equality_comparable<reply_type>) {
      if (!(std::any_cast<const reply_type&>(*back) == reply))
        return {errc::invalid_input, "test_kit: the reply changes in a msgpack round trip"};
    }
    return {};
  }

  // The state the decision saw must be what replay and snapshots reproduce.
  evident::error check_state(const test_result<Spec>& out) {
    if constexpr (std::equality_comparable<state_type>) {
      auto replayed = load_state(model_, *journal_, nullptr, id_);
      if (!replayed)
        return {errc::invalid_input, "test_kit: the events do not replay: "
                                       + replayed.err().message};
      if (!(std::any_cast<const state_type&>(replayed->state) == out.state_))
        return {errc::invalid_input,
                "test_kit: replaying the stored events gives another state than the "
                "decision's (is apply pure? do the events survive msgpack?)"};
      auto bytes = model_.encode_state(std::any{out.state_});
      if (!bytes)
        return {errc::invalid_input, "test_kit: " + bytes.err().message};
      auto back = model_.decode_state(*bytes);
      if (!back)
        return {errc::invalid_input, "test_kit: the state does not decode from its snapshot: "
                                       + back.err().message};
      if (!(std::any_cast<const state_type&>(*back) == out.state_))
        return {errc::invalid_input, "test_kit: the state changes in a snapshot round trip"};
    }
    return {};
  }

  void snapshot_if_due(const test_result<Spec>& out) {
    auto policy = model_.snapshots();
    if (policy.every_events == 0 || out.version_ < last_snapshot_ + policy.every_events)
      return;
    auto bytes = model_.encode_state(std::any{out.state_});
    if (!bytes)
      return;
    snapshot s;
    s.stream = stream();
    s.version = out.version_;
    s.type = std::string{model_.state_type()};
    s.schema = model_.state_schema();
    s.state = std::move(*bytes);
    if (!snapshots_->save(s))
      ignore(snapshots_->keep_last(s.stream, policy.keep_last), "trim is best effort");
    last_snapshot_ = out.version_;
  }

  std::string id_;
  spec_model<Spec> model_;
  std::shared_ptr<memory_journal> journal_;
  std::shared_ptr<memory_snapshot_store> snapshots_;
  uint64_t last_snapshot_ = 0;
};

} // namespace evident
