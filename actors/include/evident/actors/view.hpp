#pragma once

// Views (read models): a user writes a plain spec struct (no CAF), and the runtime (or
// `spawn_view`) runs it as an actor fed by a subscription.
//
//   struct balances_view {
//     using event = bank::account_event;   // std::variant of MSGPACK_DEFINE structs
//     using query = balance_query;         // any copyable type
//     using result = balance_result;       // any copyable type
//     static constexpr std::string_view name = "balances";
//     static void register_events(evident::type_registry<event>& r);
//     // event -> changes to the rows (key/value; get_as / put_as use msgpack):
//     static void project(evident::view_rows& rows, const evident::recorded_event& meta,
//                         const event& e);
//     static result ask(const evident::view_rows& rows, const query& q);
//     // optional:
//     static constexpr bool durable = false;           // default true (rows in LMDB)
//     static evident::subscription_filter filter();    // e.g. categories {"account"}
//   };
//
// The view subscribes to the events its registry knows (other types are skipped; the
// view's position still moves past them), filtered further by `filter()`.
//
// Durable views (the default) keep their rows in their own LMDB named DB "view.<name>"
// and their position under the checkpoint "view.<name>", and write the rows of one
// delivered batch and the position in ONE write transaction: after a crash both or
// neither are there, so every event's effect is applied exactly once. They resume from
// that position when they start. In-memory views keep their rows in a std::map and
// rebuild from position 0 at every start.
//
// `project` and `ask` run on the view's thread, one at a time; they must be pure
// functions of their arguments (a rebuild replays the same events). An exception from
// `project` stops the view: its rows stay as of the last good batch, the error (naming
// position, stream and type of the event) is logged and answers every later query; the
// other views go on. `reset` drops the rows and rebuilds, also after such a failure.
//
// Protocol (untyped `caf::actor`; atoms in atoms.hpp):
//
//   (deliver_atom, event_batch) -> uint64_t                 from its subscription
//   (query_atom, view_query, uint64_t min_position, int64_t timeout_ms) -> view_result
//       Answers `Spec::ask(rows, query)` once the view's position is >= min_position
//       (0: at once): read-your-writes after an append whose last position is known.
//       Fails with: timeout (position not reached in timeout_ms), corrupted (the view
//       stopped on a projection error), invalid_input (a query of another type, or
//       `ask` threw), io_error (LMDB).
//   (reset_atom) -> uint64_t   drops the rows and the position (one transaction),
//                              rebuilds from 0; answers 0 once the rows are dropped.
//   (metrics_atom) -> view_metrics

#include "evident/actors/describe_exception.hpp"
#include "evident/actors/subscription.hpp"
#include "evident/persistence/checkpoint_store.hpp"
#include "evident/persistence/envelope.hpp"
#include "evident/persistence/environment.hpp"
#include "evident/persistence/errc.hpp"
#include "evident/persistence/journal.hpp"
#include "evident/persistence/type_registry.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/meta/type_name.hpp>

#include <any>
#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace evident {

// -- rows ------------------------------------------------------------------------------

/// Thrown by view_rows when the store fails (LMDB error, map full) or a row does not
/// decode; the view turns it back into `err()`.
class view_store_error : public std::runtime_error {
public:
  explicit view_store_error(error err) : std::runtime_error(to_string(err)), err_(std::move(err)) {
    // nop
  }
  const error& err() const noexcept {
    return err_;
  }

private:
  error err_;
};

/// A view's read model: byte keys to byte values, ordered by key. Within `project` the
/// rows are writable and see the batch's own writes; within `ask` they are read-only
/// (writes throw std::logic_error).
///
/// Errors throw view_store_error (let them pass: the view handles them).
class view_rows {
public:
  virtual ~view_rows();

  virtual std::optional<std::string> get(std::string_view key) const = 0;
  virtual void put(std::string_view key, std::string_view value) = 0;
  /// Removing an absent key is no error.
  virtual void erase(std::string_view key) = 0;
  /// Visits the rows whose key starts with `prefix`, in key order, until `f` returns
  /// false.
  virtual void
  for_each(std::string_view prefix,
           const std::function<bool(std::string_view key, std::string_view value)>& f) const = 0;

  /// The row under `key` decoded as T (msgpack); nullopt when absent.
  /// Throws view_store_error (invalid_input) when the bytes are not a T.
  template <class T>
  std::optional<T> get_as(std::string_view key) const {
    auto bytes = get(key);
    if (!bytes)
      return std::nullopt;
    auto x = from_msgpack<T>(*bytes);
    if (!x)
      throw view_store_error(
          error{errc::invalid_input, "row '" + std::string{key} + "': " + x.err().message});
    return std::move(*x);
  }

  /// Stores `x` (msgpack) under `key`.
  template <class T>
  void put_as(std::string_view key, const T& x) {
    put(key, to_msgpack(x));
  }
};

// -- the spec concept ------------------------------------------------------------------

template <class Spec>
concept view_spec = requires(view_rows& rows, const view_rows& crows, const recorded_event& meta,
                             const typename Spec::event& e, const typename Spec::query& q,
                             type_registry<typename Spec::event>& r) {
  typename Spec::event;
  typename Spec::query;
  typename Spec::result;
  { Spec::name } -> std::convertible_to<std::string_view>;
  Spec::register_events(r);
  Spec::project(rows, meta, e);
  { Spec::ask(crows, q) } -> std::convertible_to<typename Spec::result>;
}
&&std::is_copy_constructible_v<typename Spec::query>&&
    std::is_copy_constructible_v<typename Spec::result>;

// -- boxes -----------------------------------------------------------------------------

/// A query of any view type (local only: std::any is not serializable).
struct view_query {
  std::any value;
};

/// A view's answer, with the position the rows were at.
struct view_result {
  std::any value;
  uint64_t position = 0;
};

// -- the type-erased model -------------------------------------------------------------

/// A view type with its spec's types erased; built once by `make_view_model<Spec>()`.
/// Thread: const, any number of threads at once. Never throws.
class view_model {
public:
  virtual ~view_model();

  virtual std::string_view name() const noexcept = 0;
  virtual bool durable() const noexcept = 0;
  /// Spec::filter() (or none), narrowed to the event types the registry knows.
  virtual subscription_filter filter() const = 0;

  /// Decodes `e` and runs `Spec::project`.
  /// Fails with: corrupted (project threw, or the payload does not decode: the message
  ///   names position, stream and type), unknown_event_type, and what the rows threw
  ///   (storage_full, io_error, invalid_input).
  [[nodiscard]] virtual status project(view_rows& rows, const recorded_event& e) const = 0;

  /// Runs `Spec::ask`. Fails with invalid_input (query of another type, ask threw) and
  /// what the rows threw.
  [[nodiscard]] virtual expected<std::any> ask(const view_rows& rows, const std::any& q) const = 0;
};

namespace detail {

template <class Spec>
constexpr bool spec_durable() {
  if constexpr (requires { Spec::durable; })
    return static_cast<bool>(Spec::durable);
  else
    return true;
}

/// Names an event in error messages: "position 17 (stream 'account-3', type 'x')".
std::string describe_event(const recorded_event& e);

} // namespace detail

template <view_spec Spec>
class view_spec_model final : public view_model {
public:
  using event_type = typename Spec::event;
  using query_type = typename Spec::query;
  using result_type = typename Spec::result;

  /// Throws std::invalid_argument when register_events misuses the registry.
  view_spec_model() : registry_(std::make_shared<type_registry<event_type>>()) {
    Spec::register_events(*registry_);
  }

  std::string_view name() const noexcept override {
    return std::string_view{Spec::name};
  }

  bool durable() const noexcept override {
    return detail::spec_durable<Spec>();
  }

  subscription_filter filter() const override {
    subscription_filter f;
    if constexpr (requires { Spec::filter(); })
      f = Spec::filter();
    auto user = std::move(f.predicate);
    // Shared: the subscription that runs this may outlive the view (and its model).
    std::shared_ptr<const type_registry<event_type>> reg = registry_;
    f.predicate
        = [reg, user](const recorded_event& e) { return reg->knows(e.type) && (!user || user(e)); };
    return f;
  }

  status project(view_rows& rows, const recorded_event& e) const override {
    auto ev = registry_->decode(e);
    if (!ev) {
      auto err = std::move(ev).err();
      err.message = detail::describe_event(e) + ": " + err.message;
      err.position = e.position;
      return err;
    }
    try {
      Spec::project(rows, e, *ev);
    } catch (const view_store_error& ex) {
      return ex.err();
    } catch (...) {
      error err{errc::corrupted, std::string{name()} + " project threw on "
                                     + detail::describe_event(e) + ": "
                                     + detail::describe_current_exception()};
      err.position = e.position;
      return err;
    }
    return {};
  }

  expected<std::any> ask(const view_rows& rows, const std::any& q) const override {
    const auto* query = std::any_cast<query_type>(&q);
    if (query == nullptr)
      return error{errc::invalid_input, "view '" + std::string{name()}
                                            + "' got a query of another type (" + q.type().name()
                                            + ")"};
    try {
      return std::any{result_type{Spec::ask(rows, *query)}};
    } catch (const view_store_error& ex) {
      return ex.err();
    } catch (...) {
      return error{errc::invalid_input,
                   std::string{name()} + " ask threw: " + detail::describe_current_exception()};
    }
  }

private:
  std::shared_ptr<type_registry<event_type>> registry_;
};

/// The model of `Spec`. Throws std::invalid_argument when Spec::register_events
/// misuses the registry (run it at startup).
template <view_spec Spec>
std::shared_ptr<const view_model> make_view_model() {
  return std::make_shared<view_spec_model<Spec>>();
}

// -- the actor -------------------------------------------------------------------------

/// Seams for tests.
struct view_hooks {
  /// Durable views: runs inside the batch's write transaction after the rows were put
  /// and before the checkpoint is; an error it returns aborts the transaction (neither
  /// rows nor checkpoint are stored) and stops the view with that error.
  std::function<status(uint64_t through)> after_rows;
};

struct view_options {
  /// Subscription tuning (name, filter, checkpoints and start are the view's own).
  size_t read_batch = defaults::subscription::read_batch;
  size_t max_buffer_events = defaults::subscription::max_buffer_events;
  std::chrono::milliseconds deliver_timeout{defaults::subscription::deliver_timeout_ms};
  /// Durable views: shortest time from the start of one commit to the start of the next
  /// (0: commit every delivery at once). Events arriving meanwhile wait in the
  /// subscription and go into the next commit together. Must be below deliver_timeout.
  std::chrono::milliseconds commit_interval{defaults::view::commit_interval_ms};
  view_hooks hooks;
};

/// What a view reads and writes.
struct view_env {
  caf::actor bus;
  std::shared_ptr<journal> jnl;
  /// Required for durable views (rows DB and checkpoint live there).
  std::shared_ptr<environment> env;
};

/// A view's counters, answered to (metrics_atom).
struct view_metrics {
  std::string name;
  bool durable = false;
  /// Everything up to here is in the rows.
  uint64_t position = 0;
  /// The journal's last position when asked, and head - position.
  uint64_t head = 0;
  uint64_t lag = 0;
  /// Events projected (matched the filter), batches applied, since start.
  uint64_t events = 0;
  uint64_t batches = 0;
  /// Events projected per second over the last completed window (about 1 s).
  uint64_t events_per_s = 0;
  /// Projection or storage errors (the view stops at the first), and queries answered.
  uint64_t errors = 0;
  uint64_t queries = 0;
  /// Rebuilds (resets) since start.
  uint64_t resets = 0;
  /// True after a projection error stopped the view.
  bool failed = false;
  std::string last_error;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, view_metrics& x) {
  return f(caf::meta::type_name("evident.view_metrics"), x.name, x.durable, x.position, x.head,
           x.lag, x.events, x.batches, x.events_per_s, x.errors, x.queries, x.resets, x.failed,
           x.last_error);
}

/// The checkpoint and the rows DB of a durable view: "view." + name.
std::string view_db_name(std::string_view view_name);

/// Spawns a view actor (durable: on its own thread, since its commits fsync; in-memory:
/// cooperative) and its subscription. A durable view opens its rows DB and loads its
/// position before this returns.
/// Throws std::invalid_argument: null model or journal, durable without `env.env`, bad
/// options; view_store_error when the rows DB or checkpoint cannot be opened/loaded.
caf::actor spawn_view(caf::actor_system& sys, view_env env, std::shared_ptr<const view_model> model,
                      view_options opts = {});

} // namespace evident

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(evident::view_query)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(evident::view_result)
