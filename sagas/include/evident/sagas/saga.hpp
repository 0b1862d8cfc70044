#pragma once

// The saga definition API: a user writes a plain "spec" struct (no CAF), as for an
// aggregate, and `make_saga_model<Spec>()` turns it into a type-erased `saga_model` that
// the saga manager actor and the saga test kit drive.
//
//   struct transfer_saga {
//     using state = transfer_state;      // default-constructible, copyable, MSGPACK_DEFINE
//     using event = transfer_events;     // std::variant of the events it reacts to
//     using command = transfer_command;  // what it sends; msgpack (kept in its outbox)
//     static constexpr std::string_view name = "transfer"; // stream "saga:transfer:<key>"
//     static void register_events(evident::type_registry<event>& r);
//     // Does this event start a saga, continue one, or neither? And which one (the key)?
//     static evident::saga_route route(const event& e);
//     // Pure: the next state, the commands to send, deadlines, and whether it ended.
//     static evident::saga_step<state, command> handle(const state& s,
//                                                      const evident::saga_input<event>& in);
//     // optional: how a saga command becomes an aggregate command (default: as is).
//     static evident::command_box to_aggregate(const command& c);
//   };
//
// Inputs reach `handle` one at a time per saga instance, in order: events (start and
// continue), expired deadlines, and the outcomes of the commands the saga sent. A
// domain refusal of a command (e.g. "insufficient funds") is a normal reply, not an
// event: it reaches the saga as a `command_outcome` whose `reply` holds the aggregate's
// reply. A command that can never succeed (unknown aggregate type, a command of the
// wrong type, a deleted stream) arrives as an outcome with `error` set. Transient
// failures (unavailable, overloaded, timeouts) never reach the handler: the manager
// retries them with the same command id, and parks the saga when they persist.
//
// `handle` and `route` must be pure (they run again after a restart or an operator's
// retry); exceptions they throw park that one saga with the message (the handler never
// kills the manager).

#include "evident/actors/aggregate.hpp"
#include "evident/persistence/envelope.hpp"
#include "evident/persistence/errc.hpp"
#include "evident/persistence/type_registry.hpp"

#include <any>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace evident {

// -- routing ---------------------------------------------------------------------------

/// What an event means to a saga type: nothing, the start of an instance, or input for
/// an existing one; `key` names the instance (the correlation key).
struct saga_route {
  enum class kind : uint8_t { ignore, start, resume };
  kind k = kind::ignore;
  std::string key;

  bool ignored() const noexcept {
    return k == kind::ignore;
  }
};

/// The event starts the instance `key` (or is input for it when it exists already).
inline saga_route starts(std::string key) {
  return {saga_route::kind::start, std::move(key)};
}

/// The event is input for the instance `key`; ignored when no such instance exists.
inline saga_route continues(std::string key) {
  return {saga_route::kind::resume, std::move(key)};
}

/// The event does not concern this saga type.
inline saga_route ignores() {
  return {};
}

// -- inputs ----------------------------------------------------------------------------

/// How one command the saga sent ended.
struct command_outcome {
  /// The tag the saga gave the command in `saga_step::send` (e.g. "debit").
  std::string tag;
  std::string target_type;
  std::string target_id;
  /// The deterministic command id: saga stream + "/" + step + "/" + index.
  std::string command_id;
  /// The aggregate's reply (a `Spec::reply` of the target) when `error` is empty.
  std::any reply;
  /// A permanent failure: invalid_input, too_large, unknown_event_type, stream_deleted,
  /// corrupted. Empty when the command got a reply (a domain refusal included).
  evident::error error;

  bool ok() const noexcept {
    return !error;
  }
  /// The reply as `Reply`; nullptr on an error or when the reply has another type.
  template <class Reply>
  const Reply* reply_as() const noexcept {
    return std::any_cast<Reply>(&reply);
  }
};

enum class saga_input_kind : uint8_t { event = 0, deadline = 1, outcome = 2 };

/// One input of a saga's handler.
template <class Event>
struct saga_input {
  saga_input_kind kind = saga_input_kind::event;
  /// The saga clock's time when the input is handled (deadlines are set relative to it).
  int64_t now_ns = 0;

  // -- kind == event
  /// The decoded event (upcast to today's schema).
  std::optional<Event> event;
  /// Its global position and stream.
  uint64_t position = 0;
  std::string stream;
  /// True when `route` said `starts` (also for a start event of an existing instance).
  bool starts = false;

  // -- kind == deadline
  /// The name of the deadline that expired.
  std::string deadline;

  // -- kind == outcome
  command_outcome outcome;

  bool is_event() const noexcept {
    return kind == saga_input_kind::event;
  }
  /// The event as `T`; nullptr when the input is not an event of that type.
  template <class T>
  const T* event_as() const noexcept {
    if (!event)
      return nullptr;
    if constexpr (std::is_same_v<T, Event>)
      return &*event;
    else
      return std::get_if<T>(&*event);
  }
  bool is_deadline(std::string_view name) const noexcept {
    return kind == saga_input_kind::deadline && deadline == name;
  }
  bool is_outcome(std::string_view tag) const noexcept {
    return kind == saga_input_kind::outcome && outcome.tag == tag;
  }
};

// -- what the handler returns ----------------------------------------------------------

/// How a saga ended. `none` while it runs.
enum class saga_end : uint8_t { none = 0, completed = 1, compensated = 2, failed = 3 };

std::string_view to_string(saga_end x) noexcept;

/// One command for the outbox.
template <class Command>
struct saga_send {
  std::string tag;
  std::string target_type;
  std::string target_id;
  Command command;
};

/// The handler's answer to one input: the new state, commands to send (each with a
/// deterministic command id), deadlines to set (relative to the input's `now_ns`; a set
/// replaces a deadline of the same name) or cancel, and whether the saga has ended.
///
/// A saga that ends with commands still in its outbox keeps dispatching them (their
/// outcomes are recorded, the handler is not called again); its status turns to the end
/// state when the outbox is empty. Ending cancels every deadline.
template <class State, class Command>
struct saga_step {
  State state;
  std::vector<saga_send<Command>> commands;
  std::vector<std::pair<std::string, std::chrono::nanoseconds>> deadlines_set;
  std::vector<std::string> deadlines_cancelled;
  saga_end end = saga_end::none;

  saga_step() = default;
  explicit saga_step(State s) : state(std::move(s)) {
    // nop
  }

  saga_step& send(std::string tag, std::string target_type, std::string target_id,
                  Command cmd) {
    commands.push_back({std::move(tag), std::move(target_type), std::move(target_id),
                        std::move(cmd)});
    return *this;
  }
  saga_step& set_deadline(std::string name, std::chrono::nanoseconds after) {
    deadlines_set.emplace_back(std::move(name), after);
    return *this;
  }
  saga_step& cancel_deadline(std::string name) {
    deadlines_cancelled.push_back(std::move(name));
    return *this;
  }
  saga_step& complete() {
    end = saga_end::completed;
    return *this;
  }
  saga_step& compensated() {
    end = saga_end::compensated;
    return *this;
  }
  saga_step& fail() {
    end = saga_end::failed;
    return *this;
  }
};

// -- the spec concept ------------------------------------------------------------------

template <class Spec>
concept saga_spec = requires(const typename Spec::state& s, const typename Spec::event& e,
                             const saga_input<typename Spec::event>& in,
                             type_registry<typename Spec::event>& r) {
  typename Spec::state;
  typename Spec::event;
  typename Spec::command;
  { Spec::name } -> std::convertible_to<std::string_view>;
  Spec::register_events(r);
  { Spec::route(e) } -> std::convertible_to<saga_route>;
  {
    Spec::handle(s, in)
  } -> std::convertible_to<saga_step<typename Spec::state, typename Spec::command>>;
} && std::is_default_constructible_v<typename Spec::state>
  && std::is_copy_constructible_v<typename Spec::state>
  && std::is_default_constructible_v<typename Spec::command>;

// -- the type-erased model -------------------------------------------------------------

/// A routed, decoded event.
struct routed_event {
  saga_route route;
  /// A `Spec::event`.
  std::any event;
};

/// `saga_input` with the event type erased.
struct erased_input {
  saga_input_kind kind = saga_input_kind::event;
  int64_t now_ns = 0;
  std::any event;
  uint64_t position = 0;
  std::string stream;
  std::string type;
  bool starts = false;
  std::string deadline;
  command_outcome outcome;
};

/// One command of a step, encoded for the outbox.
struct encoded_command {
  std::string tag;
  std::string target_type;
  std::string target_id;
  /// msgpack of the `Spec::command`.
  std::string payload;
  /// The aggregate command (`to_aggregate` of the command), made while the typed command
  /// is at hand, so that the first dispatch need not decode `payload` again. Not stored:
  /// empty when to_aggregate failed (that dispatch then decodes and reports the error).
  command_box aggregate;
};

/// `saga_step` with its types erased and its state and commands encoded.
struct erased_step {
  std::any state;
  std::string state_bytes;
  std::vector<encoded_command> commands;
  std::vector<std::pair<std::string, std::chrono::nanoseconds>> deadlines_set;
  std::vector<std::string> deadlines_cancelled;
  saga_end end = saga_end::none;
};

/// A saga type with its spec's types erased. Built once by `make_saga_model<Spec>()`
/// and shared (immutable). Every function catches user exceptions and returns them as
/// errors; none throws.
///
/// Thread: all members are const and may run on any number of threads at once.
class saga_model {
public:
  virtual ~saga_model();

  /// `Spec::name`.
  virtual std::string_view name() const noexcept = 0;

  /// The stream of instance `key`: "saga:" + name + ":" + key.
  std::string stream_of(std::string_view key) const;

  /// True when events stored under `type` decode for this saga (current or upcast
  /// names). Subscriptions filter on it.
  virtual bool knows(std::string_view type) const noexcept = 0;

  /// Decodes `e` and runs `Spec::route`. nullopt when the type is not one of the
  /// saga's or the route says ignore.
  /// Fails with: corrupted (the payload does not decode), invalid_input (route threw
  ///   or returned an empty key).
  virtual expected<std::optional<routed_event>> route(const recorded_event& e) const = 0;

  /// A default-constructed `Spec::state`.
  virtual std::any initial_state() const = 0;
  /// Fails with invalid_input (not a msgpack `Spec::state`).
  virtual expected<std::any> decode_state(std::string_view bytes) const = 0;

  /// Runs `Spec::handle` and encodes the result.
  /// Fails with invalid_input: the handler threw, or the state or a command does not
  /// encode, or `state` is not a `Spec::state`.
  virtual expected<erased_step> handle(const std::any& state, const erased_input& in) const
    = 0;

  /// Turns an outbox payload into the aggregate command (`Spec::to_aggregate` or the
  /// command as is). Fails with invalid_input (the payload does not decode, or
  /// to_aggregate threw).
  virtual expected<command_box> to_aggregate(std::string_view payload) const = 0;
};

namespace detail {

template <class Spec>
concept has_to_aggregate = requires(const typename Spec::command& c) {
  { Spec::to_aggregate(c) } -> std::convertible_to<command_box>;
};

} // namespace detail

template <saga_spec Spec>
class saga_spec_model final : public saga_model {
public:
  using state_type = typename Spec::state;
  using event_type = typename Spec::event;
  using command_type = typename Spec::command;
  using step_type = saga_step<state_type, command_type>;

  /// Throws std::invalid_argument when register_events misuses the registry.
  saga_spec_model() {
    Spec::register_events(registry_);
  }

  std::string_view name() const noexcept override {
    return std::string_view{Spec::name};
  }

  bool knows(std::string_view type) const noexcept override {
    return registry_.knows(type);
  }

  expected<std::optional<routed_event>> route(const recorded_event& e) const override {
    if (!registry_.knows(e.type))
      return std::optional<routed_event>{};
    auto ev = registry_.decode(e);
    if (!ev) {
      auto err = std::move(ev).err();
      err.message = "saga '" + std::string{name()} + "', event at position "
                    + std::to_string(e.position) + ": " + err.message;
      return err;
    }
    saga_route r;
    try {
      r = Spec::route(*ev);
    } catch (...) {
      return error{errc::invalid_input, "saga '" + std::string{name()} + "' route threw at position "
                                          + std::to_string(e.position) + ": "
                                          + detail::describe_current_exception()};
    }
    if (r.ignored())
      return std::optional<routed_event>{};
    if (r.key.empty())
      return error{errc::invalid_input, "saga '" + std::string{name()}
                                          + "' route gave an empty key at position "
                                          + std::to_string(e.position)};
    return std::optional<routed_event>{routed_event{std::move(r), std::any{std::move(*ev)}}};
  }

  std::any initial_state() const override {
    return std::any{state_type{}};
  }

  expected<std::any> decode_state(std::string_view bytes) const override {
    auto x = from_msgpack<state_type>(bytes);
    if (!x)
      return std::move(x).err();
    return std::any{std::move(*x)};
  }

  expected<erased_step> handle(const std::any& state, const erased_input& in) const override {
    const auto* st = std::any_cast<state_type>(&state);
    if (st == nullptr)
      return error{errc::invalid_input, "saga state of another type"};
    saga_input<event_type> typed;
    typed.kind = in.kind;
    typed.now_ns = in.now_ns;
    if (in.kind == saga_input_kind::event) {
      const auto* ev = std::any_cast<event_type>(&in.event);
      if (ev == nullptr)
        return error{errc::invalid_input, "saga event of another type"};
      typed.event = *ev;
      typed.position = in.position;
      typed.stream = in.stream;
      typed.starts = in.starts;
    }
    typed.deadline = in.deadline;
    typed.outcome = in.outcome;
    step_type s;
    try {
      s = Spec::handle(*st, typed);
    } catch (...) {
      return error{errc::invalid_input, "saga '" + std::string{name()} + "' handler threw: "
                                          + detail::describe_current_exception()};
    }
    erased_step out;
    try {
      out.state_bytes = to_msgpack(s.state);
      out.commands.reserve(s.commands.size());
      for (auto& c : s.commands) {
        auto payload = to_msgpack(c.command);
        auto box = box_of(std::move(c.command));
        out.commands.push_back({std::move(c.tag), std::move(c.target_type),
                                std::move(c.target_id), std::move(payload),
                                box ? std::move(*box) : command_box{}});
      }
    } catch (...) {
      return error{errc::invalid_input, "saga '" + std::string{name()}
                                          + "' state or command does not encode: "
                                          + detail::describe_current_exception()};
    }
    out.state = std::any{std::move(s.state)};
    out.deadlines_set = std::move(s.deadlines_set);
    out.deadlines_cancelled = std::move(s.deadlines_cancelled);
    out.end = s.end;
    return out;
  }

  expected<command_box> to_aggregate(std::string_view payload) const override {
    auto cmd = from_msgpack<command_type>(payload);
    if (!cmd)
      return std::move(cmd).err();
    return box_of(std::move(*cmd));
  }

  /// Decodes an outbox payload into the typed command (the test kit shows them).
  expected<command_type> decode_command(std::string_view payload) const {
    return from_msgpack<command_type>(payload);
  }

private:
  expected<command_box> box_of(command_type cmd) const {
    if constexpr (detail::has_to_aggregate<Spec>) {
      try {
        return command_box{Spec::to_aggregate(cmd)};
      } catch (...) {
        return error{errc::invalid_input, "saga '" + std::string{name()}
                                            + "' to_aggregate threw: "
                                            + detail::describe_current_exception()};
      }
    } else {
      return box_command(std::move(cmd));
    }
  }

  type_registry<event_type> registry_;
};

/// The model of `Spec`. Throws std::invalid_argument when `Spec::register_events`
/// misuses the registry (run it at startup).
template <saga_spec Spec>
std::shared_ptr<const saga_spec_model<Spec>> make_saga_model() {
  return std::make_shared<saga_spec_model<Spec>>();
}

} // namespace evident
