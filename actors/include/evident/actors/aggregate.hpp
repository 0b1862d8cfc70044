#pragma once

// The aggregate definition API: a user writes a plain "spec" struct (no CAF), and
// `make_model<Spec>()` turns it into a type-erased `aggregate_model` that the aggregate
// actor, the router, temporal queries and the test kit drive without being templates.
//
//   struct account_aggregate {
//     using state = account;           // default-constructible, copyable, MSGPACK_DEFINE
//     using command = account_command; // any copyable type (often a std::variant)
//     using event = account_event;     // std::variant of MSGPACK_DEFINE structs (or one)
//     using reply = account_reply;     // copyable, msgpack-serializable
//     static constexpr std::string_view name = "account"; // stream = "account-" + id
//     static void register_events(evident::type_registry<event>& r);
//     static evident::effect<state, event, reply> decide(const state&, const command&);
//     static state apply(state, const event&);
//     // optional:
//     static constexpr uint32_t state_schema = 2;        // default 1
//     static constexpr std::string_view state_type = "bank.account"; // default: name
//     static constexpr evident::snapshot_policy snapshots{.every_events = 100,
//                                                         .keep_last = 3};
//   };
//
// `decide` and `apply` must be pure: `apply` also runs during replay, and `decide` runs
// against a state that includes events not yet committed (pipelining) and may run again
// for the same command when an earlier one was rejected. Exceptions they throw are
// caught and turned into errors; they never kill an actor.
//
// The reply is computed from the state after the command's events and stored, msgpack
// encoded, in the metadata of the command's last event (key "evident.reply"), so that a
// retry with the same command id gets the original reply even after a restart.

#include "evident/actors/defaults.hpp"
#include "evident/actors/describe_exception.hpp"
#include "evident/actors/effect.hpp"
#include "evident/persistence/envelope.hpp"
#include "evident/persistence/errc.hpp"
#include "evident/persistence/type_registry.hpp"

#include <any>
#include <concepts>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

namespace evident {

// -- boxes: commands and replies in messages -------------------------------------------

/// A command of any aggregate type on its way through the router (local only: the
/// value is a std::any, which CAF cannot serialize; cluster routing will carry msgpack).
struct command_box {
  std::any value;
};

/// The reply to a command (a `Spec::reply`).
struct reply_box {
  std::any value;
};

/// Wraps a command for the router.
template <class Command>
command_box box_command(Command x) {
  return command_box{std::any{std::move(x)}};
}

/// The `Reply` in `x`; nullptr when `x` holds something else.
template <class Reply>
const Reply* unbox_reply(const reply_box& x) noexcept {
  return std::any_cast<Reply>(&x.value);
}

/// The metadata key under which the msgpack-encoded reply of a command is stored on the
/// command's last event.
inline constexpr std::string_view reply_meta_key = "evident.reply";

// -- options of one aggregate type -----------------------------------------------------

/// When an aggregate type saves snapshots of its state. Snapshots are an optimization:
/// recovery = the latest usable snapshot + replay of the later events, which gives the
/// same state as a full replay.
struct snapshot_policy {
  /// Save a snapshot whenever this many events were committed since the last one
  /// (0 = never). Default: defaults::aggregate::snapshot_every (1,000).
  uint64_t every_events = defaults::aggregate::snapshot_every;
  /// Snapshots kept per aggregate; older ones are removed after each save (at least 1).
  /// Default: defaults::aggregate::snapshot_keep_last (2).
  size_t keep_last = defaults::aggregate::snapshot_keep_last;
};

// -- the spec concept ------------------------------------------------------------------

/// What `make_model` requires of a spec struct (see the top of this file).
template <class Spec>
concept aggregate_spec = requires(const typename Spec::state& s,
                                  const typename Spec::command& c,
                                  const typename Spec::event& e,
                                  type_registry<typename Spec::event>& r) {
  typename Spec::state;
  typename Spec::command;
  typename Spec::event;
  typename Spec::reply;
  { Spec::name } -> std::convertible_to<std::string_view>;
  Spec::register_events(r);
  {
    Spec::decide(s, c)
  } -> std::convertible_to<effect<typename Spec::state, typename Spec::event,
                                  typename Spec::reply>>;
  { Spec::apply(typename Spec::state{}, e) } -> std::convertible_to<typename Spec::state>;
} && std::is_default_constructible_v<typename Spec::state>
  && std::is_copy_constructible_v<typename Spec::state>
  && std::is_copy_constructible_v<typename Spec::command>
  && std::is_copy_constructible_v<typename Spec::reply>;

namespace detail {

template <class Spec>
constexpr uint32_t spec_state_schema() {
  if constexpr (requires { Spec::state_schema; })
    return static_cast<uint32_t>(Spec::state_schema);
  else
    return 1;
}

template <class Spec>
constexpr std::string_view spec_state_type() {
  if constexpr (requires { Spec::state_type; })
    return std::string_view{Spec::state_type};
  else
    return std::string_view{Spec::name};
}

template <class Spec>
constexpr snapshot_policy spec_snapshots() {
  if constexpr (requires { Spec::snapshots; })
    return Spec::snapshots;
  else
    return snapshot_policy{};
}

} // namespace detail

// -- the type-erased model -------------------------------------------------------------

/// One decided command: its events (encoded for the journal and typed for `apply`) and
/// its reply, computed from the state after the events.
struct decision {
  /// Ready for an append_request. The last event carries the encoded reply in its
  /// metadata (key `reply_meta_key`). Empty when the command persists nothing.
  std::vector<event_data> events;
  /// The typed events (a std::vector<Spec::event>), applied to the committed state once
  /// the append is committed.
  std::any typed_events;
  /// The reply (a Spec::reply).
  std::any reply;
};

/// An aggregate type with its spec's types erased. Built once by `make_model<Spec>()`,
/// shared (immutable) by every aggregate of that type.
///
/// Every function catches the exceptions of user code (decide, apply, msgpack) and
/// returns them as errors; none throws.
///
/// Thread: all members are const and may run on any number of threads at once.
class aggregate_model {
public:
  virtual ~aggregate_model();

  // -- properties --------------------------------------------------------------------

  /// The aggregate type's name (`Spec::name`), e.g. "account".
  virtual std::string_view name() const noexcept = 0;

  /// The stream of the aggregate with id `id`: name + "-" + id.
  std::string stream_of(std::string_view id) const;

  /// The snapshot type name (`Spec::state_type`, default `Spec::name`) and schema
  /// (`Spec::state_schema`, default 1). A stored snapshot with another type or schema
  /// is ignored: recovery replays the whole stream instead.
  virtual std::string_view state_type() const noexcept = 0;
  virtual uint32_t state_schema() const noexcept = 0;

  /// `Spec::snapshots`, or the defaults.
  virtual snapshot_policy snapshots() const noexcept = 0;

  // -- state -------------------------------------------------------------------------

  /// A default-constructed `Spec::state` (the state before the first event).
  virtual std::any initial_state() const = 0;

  /// Runs `Spec::decide(pending, command)`, then applies its events to `pending` and
  /// computes the reply from the result. Encodes the events (type registry) and the
  /// reply (msgpack, into the last event's metadata).
  /// On error `pending` is unchanged, except when `apply` or the reply function threw
  /// after some events were applied: then `pending` is left empty (`has_value()` false)
  /// and the caller must rebuild it.
  /// Fails with: invalid_input (`command` is not a `Spec::command`, decide/apply/reply
  ///   threw, the reply does not encode), unknown_event_type (decide returned an event
  ///   type that register_events did not add).
  virtual expected<decision> decide(std::any& pending, const std::any& command) const = 0;

  /// Applies a decision's typed events to `state` (the commit path: no decoding).
  /// Fails with invalid_input when `apply` threw (`state` is then left empty).
  [[nodiscard]] virtual status apply(std::any& state, const decision& d) const = 0;

  /// Decodes a stored event (upcasting old schemas) and applies it to `state`.
  /// Fails with: unknown_event_type, corrupted (payload does not decode, or `apply`
  ///   threw: `state` is then left empty). Messages name the stream and version.
  [[nodiscard]] virtual status apply(std::any& state, const recorded_event& e) const = 0;

  /// Copies the state (the pending state starts as a copy of the committed one).
  virtual std::any copy_state(const std::any& state) const = 0;

  // -- serialization -----------------------------------------------------------------

  /// msgpack of the state, for snapshots. Fails with invalid_input.
  virtual expected<std::string> encode_state(const std::any& state) const = 0;
  /// Inverse of `encode_state`. Fails with invalid_input.
  virtual expected<std::any> decode_state(std::string_view bytes) const = 0;
  /// Decodes a reply stored under `reply_meta_key`. Fails with invalid_input.
  virtual expected<std::any> decode_reply(std::string_view bytes) const = 0;
};

/// The model of one spec type.
template <aggregate_spec Spec>
class spec_model final : public aggregate_model {
public:
  using state_type_t = typename Spec::state;
  using command_type = typename Spec::command;
  using event_type = typename Spec::event;
  using reply_type = typename Spec::reply;
  using effect_type = effect<state_type_t, event_type, reply_type>;

  /// Throws std::invalid_argument when register_events misuses the registry.
  spec_model() {
    Spec::register_events(registry_);
  }

  std::string_view name() const noexcept override {
    return std::string_view{Spec::name};
  }

  std::string_view state_type() const noexcept override {
    return detail::spec_state_type<Spec>();
  }

  uint32_t state_schema() const noexcept override {
    return detail::spec_state_schema<Spec>();
  }

  snapshot_policy snapshots() const noexcept override {
    return detail::spec_snapshots<Spec>();
  }

  std::any initial_state() const override {
    return std::any{state_type_t{}};
  }

  expected<decision> decide(std::any& pending, const std::any& command) const override {
    auto* cmd = std::any_cast<command_type>(&command);
    if (cmd == nullptr)
      return error{errc::invalid_input, "a '" + std::string{name()}
                                          + "' aggregate got a command of another type ("
                                          + command.type().name() + ")"};
    auto* st = std::any_cast<state_type_t>(&pending);
    if (st == nullptr)
      return error{errc::invalid_input, "no state"};
    effect_type eff;
    try {
      eff = Spec::decide(*st, *cmd);
    } catch (...) {
      return error{errc::invalid_input,
                   std::string{name()} + " decide threw: " + detail::describe_current_exception()};
    }
    decision d;
    // Encode first: an unregistered event type fails before the state changes.
    d.events.reserve(eff.events.size());
    for (auto& e : eff.events) {
      auto data = registry_.encode(e);
      if (!data)
        return std::move(data).err();
      d.events.push_back(std::move(*data));
    }
    reply_type reply{};
    try {
      for (auto& e : eff.events)
        *st = Spec::apply(std::move(*st), e);
      if (eff.reply)
        reply = eff.reply(*st);
    } catch (...) {
      pending.reset(); // partly applied: the caller rebuilds it
      return error{errc::invalid_input, std::string{name()} + " apply or reply threw: "
                                          + detail::describe_current_exception()};
    }
    if (!d.events.empty()) {
      try {
        d.events.back().meta.emplace_back(std::string{reply_meta_key}, to_msgpack(reply));
      } catch (...) {
        // The events are applied already; the caller rebuilds the pending state.
        pending.reset();
        return error{errc::invalid_input, std::string{name()} + " reply does not encode: "
                                            + detail::describe_current_exception()};
      }
    }
    d.typed_events = std::any{std::move(eff.events)};
    d.reply = std::any{std::move(reply)};
    return d;
  }

  status apply(std::any& state, const decision& d) const override {
    auto* st = std::any_cast<state_type_t>(&state);
    auto* evs = std::any_cast<std::vector<event_type>>(&d.typed_events);
    if (st == nullptr || (evs == nullptr && !d.events.empty()))
      return {errc::invalid_input, "state or decision of another aggregate type"};
    if (evs == nullptr)
      return {};
    try {
      for (auto& e : *evs)
        *st = Spec::apply(std::move(*st), e);
    } catch (...) {
      state.reset();
      return {errc::invalid_input,
              std::string{name()} + " apply threw: " + detail::describe_current_exception()};
    }
    return {};
  }

  status apply(std::any& state, const recorded_event& e) const override {
    auto* st = std::any_cast<state_type_t>(&state);
    if (st == nullptr)
      return {errc::invalid_input, "state of another aggregate type"};
    auto ev = registry_.decode(e);
    if (!ev) {
      auto err = std::move(ev).err();
      err.message = "stream '" + e.stream + "' version " + std::to_string(e.version)
                    + " (position " + std::to_string(e.position) + "): " + err.message;
      if (err.code == errc::corrupted)
        err.position = e.position;
      return err;
    }
    try {
      *st = Spec::apply(std::move(*st), *ev);
    } catch (...) {
      state.reset();
      error err{errc::corrupted, "stream '" + e.stream + "' version "
                                   + std::to_string(e.version) + ": apply threw: "
                                   + detail::describe_current_exception()};
      err.position = e.position;
      return err;
    }
    return {};
  }

  std::any copy_state(const std::any& state) const override {
    return state;
  }

  expected<std::string> encode_state(const std::any& state) const override {
    auto* st = std::any_cast<state_type_t>(&state);
    if (st == nullptr)
      return error{errc::invalid_input, "state of another aggregate type"};
    try {
      return to_msgpack(*st);
    } catch (...) {
      return error{errc::invalid_input, std::string{name()} + " state does not encode: "
                                          + detail::describe_current_exception()};
    }
  }

  expected<std::any> decode_state(std::string_view bytes) const override {
    auto x = from_msgpack<state_type_t>(bytes);
    if (!x)
      return std::move(x).err();
    return std::any{std::move(*x)};
  }

  expected<std::any> decode_reply(std::string_view bytes) const override {
    auto x = from_msgpack<reply_type>(bytes);
    if (!x)
      return std::move(x).err();
    return std::any{std::move(*x)};
  }

  const type_registry<event_type>& registry() const noexcept {
    return registry_;
  }

private:
  type_registry<event_type> registry_;
};

/// The model of `Spec`, to register with a router. Throws std::invalid_argument when
/// `Spec::register_events` misuses the registry (run it at startup).
template <aggregate_spec Spec>
std::shared_ptr<const aggregate_model> make_model() {
  return std::make_shared<spec_model<Spec>>();
}

} // namespace evident
