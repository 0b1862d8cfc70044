#pragma once

// The saga test kit: given events, when an event, a command's reply, or elapsed time,
// then the commands dispatched, the deadlines armed, the end state. Deterministic and
// synchronous: no actors, no threads, a virtual clock. It runs the rules the manager
// runs (record.hpp: advance_event, advance_outcome, advance_deadline), so events are
// encoded and decoded through the saga's type registry, routed, and state and commands
// go through msgpack as they do in production.
//
//   evident::saga_test_kit<transfer_saga> kit;
//   auto r = kit.given(transfer_requested{"t1", "a", "b", 50})
//              .when_reply("debit", account_reply{true, 50, ""});
//   BOOST_TEST(r.sent_count() == 1u);
//   BOOST_TEST(r.sent(0).tag == "credit");
//   auto t = kit.when_elapsed(31s);                 // a deadline fires
//   BOOST_TEST(t.status() == evident::saga_status::running);

#include "evident/sagas/clock.hpp"
#include "evident/sagas/record.hpp"
#include "evident/sagas/saga.hpp"

#include <any>
#include <chrono>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace evident {

/// One command a step sent, decoded.
template <class Command>
struct sent_command {
  std::string tag;
  std::string target_type;
  std::string target_id;
  std::string command_id;
  Command command;
};

/// What one `when` did to the instance it touched.
template <saga_spec Spec>
class saga_test_result {
public:
  using state_type = typename Spec::state;
  using command_type = typename Spec::command;

  /// The key of the instance (empty when the input touched none).
  const std::string& key() const noexcept {
    return key_;
  }
  /// False when the input changed nothing (duplicate, ignored, stale), with `skipped()`
  /// saying why.
  bool changed() const noexcept {
    return changed_;
  }
  std::string_view skipped() const noexcept {
    return skipped_;
  }
  /// Commands the input sent (new outbox entries), in order.
  const std::vector<sent_command<command_type>>& sent() const noexcept {
    return sent_;
  }
  size_t sent_count() const noexcept {
    return sent_.size();
  }
  const sent_command<command_type>& sent(size_t i) const {
    return sent_.at(i);
  }
  /// Deadlines armed after the input.
  const std::vector<deadline_entry>& deadlines() const noexcept {
    return record_.deadlines;
  }
  bool has_deadline(std::string_view name) const noexcept {
    for (auto& d : record_.deadlines)
      if (d.name == name)
        return true;
    return false;
  }
  saga_status status() const noexcept {
    return record_.status();
  }
  saga_end end() const noexcept {
    return record_.end;
  }
  /// The instance's state after the input (decoded from the stored bytes).
  const state_type& state() const noexcept {
    return state_;
  }
  /// The full record (outbox, parking, error, history line).
  const saga_record& record() const noexcept {
    return record_;
  }

private:
  template <saga_spec>
  friend class saga_test_kit;

  std::string key_;
  bool changed_ = false;
  std::string_view skipped_;
  std::vector<sent_command<command_type>> sent_;
  saga_record record_;
  state_type state_{};
};

/// Drives one saga type's instances through inputs. Thread: one thread.
template <saga_spec Spec>
class saga_test_kit {
public:
  using state_type = typename Spec::state;
  using event_type = typename Spec::event;
  using command_type = typename Spec::command;
  using result_type = saga_test_result<Spec>;

  saga_test_kit() : model_(make_saga_model<Spec>()) {
    Spec::register_events(registry_);
  }

  /// The kit's clock (starts at a fixed time).
  virtual_saga_clock& clock() noexcept {
    return clock_;
  }

  // -- given -------------------------------------------------------------------------

  /// Applies events in order (as `when` does, results dropped).
  template <class... Es>
  saga_test_kit& given(const Es&... es) {
    (when(event_type{es}), ...);
    return *this;
  }

  // -- when --------------------------------------------------------------------------

  /// An event, at the next global position (or at `position` when given: repeat one
  /// to test dedup).
  result_type when(const event_type& e, std::optional<uint64_t> position = std::nullopt) {
    auto data = registry_.encode(e);
    if (!data)
      throw std::invalid_argument("saga_test_kit: " + to_string(data.err()));
    recorded_event rec;
    rec.position = position ? *position : ++position_;
    rec.stream = "test-" + std::to_string(rec.position);
    rec.version = 1;
    rec.type = data->type;
    rec.schema = data->schema;
    rec.payload = std::move(data->payload);
    events_[rec.position] = rec;
    auto routed = model_->route(rec);
    if (!routed)
      throw std::invalid_argument("saga_test_kit: " + to_string(routed.err()));
    result_type out;
    if (!*routed) {
      out.skipped_ = "not routed";
      return out;
    }
    auto key = (*routed)->route.key;
    saga_event_input in;
    in.position = rec.position;
    in.stream = rec.stream;
    in.type = rec.type;
    in.routed = std::move(**routed);
    auto& inst = instances_[key];
    inst.stream = model_->stream_of(key);
    return finish(key, inst, advance_event(*model_, view(inst), in, clock_.now_ns()));
  }

  /// The reply to the command tagged `tag` of instance `key` (default: the instance
  /// the last input touched).
  template <class Reply>
  result_type when_reply(const std::string& tag, Reply reply, std::string key = {}) {
    auto& [k, inst] = find(key);
    command_outcome out;
    out.command_id = command_id_of(inst, tag);
    out.reply = std::any{std::move(reply)};
    return finish(k, inst, advance_outcome(*model_, view(inst), std::move(out), clock_.now_ns()));
  }

  /// A permanent failure of the command tagged `tag` (e.g. errc::invalid_input).
  result_type when_failure(const std::string& tag, error err, std::string key = {}) {
    auto& [k, inst] = find(key);
    command_outcome out;
    out.command_id = command_id_of(inst, tag);
    out.error = std::move(err);
    return finish(k, inst, advance_outcome(*model_, view(inst), std::move(out), clock_.now_ns()));
  }

  /// Moves the clock by `d` and fires every deadline that is due, oldest first. The
  /// result is that of the last deadline fired (skipped "no deadline due" when none).
  result_type when_elapsed(std::chrono::nanoseconds d) {
    clock_.advance(d);
    result_type last;
    last.skipped_ = "no deadline due";
    for (;;) {
      const deadline_entry* next = nullptr;
      std::string next_key;
      for (auto& [k, inst] : instances_)
        if (inst.rec && inst.rec->parked == park_cause::none)
          for (auto& dl : inst.rec->deadlines)
            if (dl.due_ns <= clock_.now_ns() && (next == nullptr || dl.due_ns < next->due_ns)) {
              next = &dl;
              next_key = k;
            }
      if (next == nullptr)
        return last;
      auto& inst = instances_[next_key];
      auto name = next->name;
      auto due = next->due_ns;
      last = finish(next_key, inst,
                    advance_deadline(*model_, view(inst), name, due, clock_.now_ns()));
    }
  }

  /// An operator's retry of a parked instance: un-parks it, then replays the parked
  /// event and those deferred while it was parked (as the manager does). The result is
  /// that of the last step.
  result_type when_retried(std::string key = {}) {
    auto& [k, inst] = find(key);
    auto r = unpark(view(inst), clock_.now_ns());
    if (!r)
      throw std::invalid_argument("saga_test_kit: " + to_string(r.err()));
    auto out = finish(k, inst, std::move(*r));
    auto replays = inst.rec->deferred;
    for (auto pos : replays) {
      auto ev = events_.find(pos);
      if (ev == events_.end())
        continue;
      auto routed = model_->route(ev->second);
      if (!routed || !*routed)
        continue;
      saga_event_input in;
      in.position = pos;
      in.stream = ev->second.stream;
      in.type = ev->second.type;
      in.routed = std::move(**routed);
      in.replay = true;
      out = finish(k, inst, advance_event(*model_, view(inst), in, clock_.now_ns()));
      if (inst.rec->parked != park_cause::none)
        break;
    }
    return out;
  }

  /// The record of instance `key` (nullptr when it does not exist).
  const saga_record* record(const std::string& key) const {
    auto i = instances_.find(key);
    return i == instances_.end() || !i->second.rec ? nullptr : &*i->second.rec;
  }

private:
  struct inst_t {
    std::string stream;
    std::optional<saga_record> rec;
    std::any state;
  };

  static saga_instance_view view(const inst_t& x) {
    return {x.stream, x.rec ? &*x.rec : nullptr, x.rec ? &x.state : nullptr};
  }

  std::pair<const std::string, inst_t>& find(const std::string& key) {
    auto i = instances_.find(key.empty() ? last_key_ : key);
    if (i == instances_.end())
      throw std::invalid_argument("saga_test_kit: no instance '" + key + "'");
    return *i;
  }

  static std::string command_id_of(const inst_t& inst, const std::string& tag) {
    if (inst.rec)
      for (auto& e : inst.rec->outbox)
        if (e.tag == tag)
          return e.command_id;
    throw std::invalid_argument("saga_test_kit: no command tagged '" + tag + "' is out");
  }

  result_type finish(const std::string& key, inst_t& inst, advance_result r) {
    result_type out;
    out.key_ = key;
    last_key_ = key;
    out.changed_ = r.changed;
    out.skipped_ = r.skipped;
    if (r.changed) {
      std::vector<outbox_entry> before = inst.rec ? inst.rec->outbox : std::vector<outbox_entry>{};
      // Round trip through the stored form, as the manager's recovery would read it.
      auto data = encode_record(r.record);
      recorded_event stored;
      stored.stream = inst.stream;
      stored.type = data.type;
      stored.schema = data.schema;
      stored.payload = std::move(data.payload);
      auto back = decode_record(stored);
      if (!back)
        throw std::logic_error("saga_test_kit: " + to_string(back.err()));
      inst.rec = std::move(*back);
      if (inst.rec->state.empty()) {
        inst.state = model_->initial_state();
      } else {
        auto st = model_->decode_state(inst.rec->state);
        if (!st)
          throw std::logic_error("saga_test_kit: state does not decode: " + to_string(st.err()));
        inst.state = std::move(*st);
      }
      for (auto& e : inst.rec->outbox) {
        bool old = false;
        for (auto& b : before)
          old = old || b.command_id == e.command_id;
        if (old)
          continue;
        auto cmd = model_->decode_command(e.payload);
        if (!cmd)
          throw std::logic_error("saga_test_kit: command does not decode: " + to_string(cmd.err()));
        out.sent_.push_back({e.tag, e.target_type, e.target_id, e.command_id, std::move(*cmd)});
      }
    }
    if (inst.rec) {
      out.record_ = *inst.rec;
      if (const auto* st = std::any_cast<state_type>(&inst.state))
        out.state_ = *st;
    }
    return out;
  }

  std::shared_ptr<const saga_spec_model<Spec>> model_;
  type_registry<event_type> registry_;
  virtual_saga_clock clock_;
  std::map<std::string, inst_t> instances_;
  std::map<uint64_t, recorded_event> events_;
  std::string last_key_;
  uint64_t position_ = 0;
};

} // namespace evident
