#pragma once

// evident::runtime: what a daemon embeds. One object per node: it owns the CAF actor
// system, the LMDB journal and snapshot store, the journal writer and the aggregate
// router, and it stops them in the right order.
//
//   int main(int argc, char** argv) {
//     auto cfg = evident::load_config(argv[1]);            // or set members in code
//     if (!cfg) { std::cerr << to_string(cfg.err()) << '\n'; return 2; }
//     evident::runtime::install_signal_handlers();          // SIGTERM, SIGINT -> stop
//     evident::runtime rt{std::move(*cfg)};                 // throws startup_error
//     rt.register_aggregate<bank::account_aggregate>();     // before the first ask
//     auto r = rt.ask<bank::account_aggregate>("acc-1", bank::deposit{5}, "cmd-17");
//     ...                                                   // serve requests
//     auto err = rt.run_until_stopped();                    // blocks until a signal
//     return err ? 1 : 0;
//   }
//
// Lifecycle:
//
//   constructor ──▶ running ──stop()──▶ stopping ──▶ stopped
//        │                                 │
//   startup_error                  1. refuse new requests (errc::unavailable)
//   (bad config,                   2. wait for requests in flight to be answered
//    unopenable journal)              (ask_async ones too: their callbacks have run),
//                                     then stop the ask_async bridges
//                                  3. sagas: subscription, then manager (appends
//                                     already sent still commit: the writer is alive)
//                                  3b. router: stop every aggregate, quit
//                                  4. views and raw subscriptions: each finishes the
//                                     batch it holds (rows + position committed
//                                     together), managed checkpoints are saved
//                                  5. writer: commit and answer what it holds, quit
//                                  6. event bus
//                                  7. close the snapshot store and the journal (LMDB)
//
// Views stop before the writer's last commit: what they miss is in the journal and
// they catch up from their stored position at the next start (nothing lost).
//
// Each wait of a stop is bounded by `shutdown.drain_timeout`; past it the actor is
// killed (what the writer held has an unknown outcome; nothing committed is lost).

#include "evident/actors/aggregate.hpp"
#include "evident/actors/aggregate_router.hpp"
#include "evident/actors/event_bus.hpp"
#include "evident/actors/subscription.hpp"
#include "evident/actors/temporal.hpp"
#include "evident/actors/view.hpp"
#include "evident/sagas/saga.hpp"
#include "evident/sagas/saga_manager.hpp"
#include "evident/persistence/journal.hpp"
#include "evident/persistence/lmdb_journal.hpp"
#include "evident/persistence/snapshot_store.hpp"
#include "evident/runtime/config.hpp"
#include "evident/runtime/metrics.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace evident {

namespace detail {
struct async_request; // ask_async.cpp
} // namespace detail

/// Why a runtime did not start. `what()` is the message; `err()` has the errc too:
/// invalid_input (bad config), not_a_journal, unsupported_format, io_error (the data
/// directory), or whatever else opening the journal reported.
class startup_error : public std::runtime_error {
public:
  explicit startup_error(error err);

  const error& err() const noexcept {
    return err_;
  }

private:
  error err_;
};

/// Optional seams for tests and tools.
struct runtime_hooks {
  /// Wraps the journal the writer appends to (e.g. in a failing_journal). Called once
  /// during start with the LMDB journal; must not return null. Reads through
  /// `runtime::journal()` still go to the LMDB journal directly.
  std::function<std::shared_ptr<journal>(std::shared_ptr<journal>)> wrap_journal;
};

/// `model` with `policy` as its snapshot policy (everything else unchanged). How
/// `runtime::register_aggregate` applies the config's snapshot defaults.
std::shared_ptr<const aggregate_model>
with_snapshot_policy(std::shared_ptr<const aggregate_model> model, snapshot_policy policy);

/// One node. Not copyable or movable (actors hold pointers into it).
///
/// Thread: every member may be called from any thread, except that the destructor must
/// not run while other members are still being called.
class runtime {
public:
  // -- construction -----------------------------------------------------------------

  /// Validates `cfg`, starts the actor system with `scheduler.threads` workers, opens
  /// the journal and the snapshot store in `storage.data_dir` and spawns the journal
  /// writer. Cost: opening the journal re-reads its unindexed tail (about 0.2 s per
  /// million events).
  /// Throws startup_error: invalid_input (validate(cfg) failed), or what opening the
  /// journal failed with (not_a_journal, unsupported_format, io_error, ...).
  explicit runtime(runtime_config cfg, runtime_hooks hooks = {});

  /// Like the constructor, but returns the error instead of throwing.
  [[nodiscard]] static expected<std::unique_ptr<runtime>> start(runtime_config cfg,
                                                                runtime_hooks hooks = {});

  /// Stops (see stop()); errors of the stop are dropped.
  ~runtime();

  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  // -- requests ---------------------------------------------------------------------

  /// Appends through the journal writer (group commit) and waits for its answer, at
  /// most `requests.ask_timeout`. Blocks the calling thread: for tools, tests and
  /// setup code, not for actors (they talk to `writer()` directly).
  /// Fails with: what the writer answers (see spawn_journal_writer: wrong_expected_version,
  ///   too_large, overloaded, storage_full, io_error, ...), timeout (outcome unknown),
  ///   unavailable (the runtime is stopping or stopped: nothing was taken).
  [[nodiscard]] expected<append_result> append(append_request req);
  [[nodiscard]] expected<append_result> append(append_request req,
                                               std::chrono::milliseconds timeout);

  // -- aggregates -------------------------------------------------------------------

  /// Registers the aggregate type `Spec` (see aggregate.hpp). A spec without its own
  /// `snapshots` policy gets the config's (snapshots.every, snapshots.keep_last).
  /// Call during setup, before the first ask (or `router()`): the router starts with the
  /// types registered by then.
  /// Throws std::logic_error after the router started, std::invalid_argument when a type
  /// of that name is registered already or Spec::register_events misuses its registry.
  template <aggregate_spec Spec>
  void register_aggregate() {
    auto model = make_model<Spec>();
    if constexpr (!requires { Spec::snapshots; })
      model = with_snapshot_policy(std::move(model),
                                   snapshot_policy{cfg_.snapshots.every, cfg_.snapshots.keep_last});
    register_aggregate(std::move(model));
  }

  /// Registers a type-erased model as is (no snapshot policy from the config).
  /// Throws as the template does, and std::invalid_argument when `model` is null.
  void register_aggregate(std::shared_ptr<const aggregate_model> model);

  /// Sends `cmd` to the aggregate `id` of type `Spec` and waits for its reply, at most
  /// `requests.ask_timeout` (or `timeout`). The reply comes only after the command's
  /// events are committed. `command_id` (optional) makes a retry return the first
  /// attempt's reply instead of deciding again. A command that meets an aggregate that
  /// just passivated (sec::request_receiver_down: nothing happened) is sent once more.
  /// Blocks the calling thread: for request handlers of a daemon, tools and tests; an
  /// actor talks to `router()` instead.
  /// Fails with: what the router answers (aggregate_router.hpp: invalid_input,
  ///   overloaded, wrong_expected_version, too_large, stream_deleted, corrupted,
  ///   storage_full, io_error), timeout (outcome unknown: retry with the same command
  ///   id), unavailable (the runtime is stopping or stopped: nothing was taken).
  template <aggregate_spec Spec>
  [[nodiscard]] expected<typename Spec::reply>
  ask(const std::string& id, typename Spec::command cmd, const std::string& command_id = {}) {
    return ask<Spec>(id, std::move(cmd), command_id, cfg_.requests.ask_timeout);
  }

  template <aggregate_spec Spec>
  [[nodiscard]] expected<typename Spec::reply>
  ask(const std::string& id, typename Spec::command cmd, const std::string& command_id,
      std::chrono::milliseconds timeout) {
    return typed_reply<Spec>(
        ask_boxed(std::string{Spec::name}, id, box_command(std::move(cmd)), command_id, timeout));
  }

  /// `ask` with the command and reply boxed, by type name.
  [[nodiscard]] expected<reply_box> ask_boxed(const std::string& type, const std::string& id,
                                              command_box cmd, const std::string& command_id,
                                              std::chrono::milliseconds timeout);

  /// The state of aggregate `id` of type `Spec` per `q` (latest, at a version, at a
  /// time), folded from committed events by a one-shot actor (not the live aggregate).
  /// Waits at most `requests.ask_timeout`.
  /// Fails with: invalid_input (type not registered), stream_deleted, corrupted,
  ///   unknown_event_type, io_error, timeout, unavailable.
  template <aggregate_spec Spec>
  [[nodiscard]] expected<typed_state<Spec>> state_of(const std::string& id, state_query q = {}) {
    return typed_state_of<Spec>(
        state_of_boxed(std::string{Spec::name}, id, q, cfg_.requests.ask_timeout));
  }

  /// `state_of` with the state boxed, by type name.
  [[nodiscard]] expected<aggregate_state> state_of_boxed(const std::string& type,
                                                         const std::string& id, state_query q,
                                                         std::chrono::milliseconds timeout);

  // -- asynchronous requests --------------------------------------------------------
  //
  // ask and state_of without a waiting thread, for event loops (an HTTP server's I/O
  // threads) and other code that must not block:
  //
  //   caller --(request)--> bridge --request--> router --delegate--> aggregate
  //                           |  (one of a small pool, picked by the id's hash)    |
  //   done(answer) <----------'<------------- reply_box | error --------------------'
  //
  // Each call is counted in requests_in_flight() from the call until `done` returned,
  // so stop() waits for it like for a blocking ask: `done` runs before stop() returns
  // (unless the drain ran out of time: then it gets `timeout`, still before stop()
  // returns). Calls from one thread to one aggregate are decided in call order.

  /// Where an asynchronous answer goes. Called exactly once with the answer or the error.
  /// Thread: a CAF worker (inside the bridge actor), or the calling thread when the call
  /// is refused at once (runtime not running, bad timeout). It must be short and must not
  /// block: no blocking ask, no stop(), no waiting on a lock held across another ask;
  /// hand the answer on (post it to an executor) and return. Another ask_async from it is
  /// fine. An exception it throws is caught and dropped.
  template <class T>
  using async_callback = std::function<void(expected<T>)>;

  /// `ask` without the wait: sends `cmd` to the aggregate `id` of type `Spec` and returns;
  /// `done` gets the reply (after the command's events committed) or the error. Same
  /// semantics as ask: a command that meets an aggregate that just passivated
  /// (sec::request_receiver_down) is sent once more within the same deadline; a domain
  /// refusal is a reply. Cost: one small allocation and one message more than a blocking
  /// ask, but no thread switch; timeouts are checked by one timer per bridge, not one per
  /// call.
  /// Fails (through `done`) with: what ask fails with (the router's errors, timeout:
  ///   outcome unknown, retry with the same command id; unavailable: the runtime is
  ///   stopping or stopped, nothing was taken), and invalid_input for a timeout <= 0.
  /// Throws std::invalid_argument (on the calling thread) when `done` is empty.
  template <aggregate_spec Spec>
  void ask_async(std::string id, typename Spec::command cmd, std::string command_id,
                 async_callback<typename Spec::reply> done) {
    ask_async<Spec>(std::move(id), std::move(cmd), std::move(command_id), cfg_.requests.ask_timeout,
                    std::move(done));
  }

  template <aggregate_spec Spec>
  void ask_async(std::string id, typename Spec::command cmd, std::string command_id,
                 std::chrono::milliseconds timeout, async_callback<typename Spec::reply> done) {
    if (!done)
      throw std::invalid_argument("ask_async: the callback is empty");
    ask_async_boxed(
        std::string{Spec::name}, std::move(id), box_command(std::move(cmd)), std::move(command_id),
        timeout,
        [done = std::move(done)](expected<reply_box> r) { done(typed_reply<Spec>(std::move(r))); });
  }

  /// `ask_async` with the command and reply boxed, by type name.
  void ask_async_boxed(std::string type, std::string id, command_box cmd, std::string command_id,
                       std::chrono::milliseconds timeout, async_callback<reply_box> done);

  /// `state_of` without the wait; `done` gets the state or the error (as state_of fails).
  /// Waits at most `requests.ask_timeout` (or `timeout`). Threads and callback rules as
  /// for ask_async.
  template <aggregate_spec Spec>
  void state_of_async(std::string id, state_query q, async_callback<typed_state<Spec>> done) {
    state_of_async<Spec>(std::move(id), q, cfg_.requests.ask_timeout, std::move(done));
  }

  template <aggregate_spec Spec>
  void state_of_async(std::string id, state_query q, std::chrono::milliseconds timeout,
                      async_callback<typed_state<Spec>> done) {
    if (!done)
      throw std::invalid_argument("state_of_async: the callback is empty");
    state_of_async_boxed(std::string{Spec::name}, std::move(id), q, timeout,
                         [done = std::move(done)](expected<aggregate_state> r) {
                           done(typed_state_of<Spec>(std::move(r)));
                         });
  }

  /// `state_of_async` with the state boxed, by type name.
  void state_of_async_boxed(std::string type, std::string id, state_query q,
                            std::chrono::milliseconds timeout,
                            async_callback<aggregate_state> done);

  // -- views and subscriptions ------------------------------------------------------

  /// Registers and starts the view `Spec` (see view.hpp). A durable view opens its rows
  /// DB and resumes from its stored position; an in-memory view rebuilds from 0. It
  /// stops with the runtime. `opts` defaults to the config's [views] settings.
  /// Throws std::invalid_argument (a view of that name exists, bad options, or
  /// Spec::register_events misuses its registry), std::logic_error (not running),
  /// view_store_error (the rows DB or the stored position cannot be read).
  template <view_spec Spec>
  void register_view() {
    register_view(make_view_model<Spec>(), default_view_options());
  }
  template <view_spec Spec>
  void register_view(view_options opts) {
    register_view(make_view_model<Spec>(), std::move(opts));
  }

  /// Registers a type-erased view model. Throws as the template does.
  void register_view(std::shared_ptr<const view_model> model, view_options opts);

  /// The [views] settings as view_options.
  view_options default_view_options() const;

  /// The view actor named `name` (view.hpp protocol); null when there is none.
  caf::actor view(std::string_view name) const;

  /// Starts a raw subscription feeding `subscriber` (event_batch.hpp protocol), with
  /// managed checkpoints in this journal unless `opts` says otherwise. Fields left at
  /// their subscription defaults take the config's [views] settings. It stops with the
  /// runtime (before the writer), saving its checkpoint.
  /// Throws std::invalid_argument (bad options), std::logic_error (not running).
  caf::actor subscribe(caf::actor subscriber, subscription_options opts);

  /// Asks the view `Spec` and waits for its answer: once the view has applied every
  /// event up to `wait_for_position` (0: at once; pass an append's last_position to
  /// read your own write). Waits at most `timeout` (default requests.ask_timeout).
  /// Blocks the calling thread (request handlers of a daemon, tools, tests).
  /// Fails with: invalid_input (no such view, or a result of another type), timeout
  ///   (position not reached in time), corrupted (a projection threw: the view
  ///   stopped), io_error, unavailable (the runtime is stopping or stopped).
  template <view_spec Spec>
  [[nodiscard]] expected<typename Spec::result>
  query(typename Spec::query q, uint64_t wait_for_position = 0,
        std::optional<std::chrono::milliseconds> timeout = std::nullopt) {
    auto r = query_boxed(std::string{Spec::name}, view_query{std::any{std::move(q)}},
                         wait_for_position, timeout.value_or(cfg_.requests.ask_timeout));
    if (!r)
      return std::move(r).err();
    if (const auto* x = std::any_cast<typename Spec::result>(&r->value))
      return *x;
    return error{errc::invalid_input,
                 "the result of view '" + std::string{Spec::name} + "' has another type"};
  }

  /// `query` with the query and result boxed, by view name.
  [[nodiscard]] expected<view_result> query_boxed(const std::string& view, view_query q,
                                                  uint64_t wait_for_position,
                                                  std::chrono::milliseconds timeout);

  // -- sagas ------------------------------------------------------------------------

  /// Registers and starts the saga type `Spec` (see sagas/saga.hpp): its manager
  /// recovers every unfinished instance from the journal, then a subscription named
  /// "saga.<name>" (managed checkpoint, filtered on the saga's event types) feeds it.
  /// Commands go through the aggregate router: register the aggregates the saga talks
  /// to first (this starts the router, which ends aggregate registration).
  /// Options: the configuration's [sagas] section (config().sagas).
  /// Throws std::logic_error when the runtime is not running, std::invalid_argument when
  /// a saga of that name exists.
  template <saga_spec Spec>
  void register_saga() {
    register_saga(make_saga_model<Spec>(), cfg_.sagas);
  }

  /// register_saga with options of its own for this saga type. Throws as above, and
  /// std::invalid_argument when `opts` is invalid.
  template <saga_spec Spec>
  void register_saga(saga_options opts) {
    register_saga(make_saga_model<Spec>(), std::move(opts));
  }

  /// Registers a type-erased saga model. Throws as the template does.
  void register_saga(std::shared_ptr<const saga_model> model, saga_options opts,
                     std::shared_ptr<const saga_clock> clock = nullptr);

  /// The manager of saga type `name` (saga_manager.hpp protocol); null when none.
  caf::actor saga_manager(std::string_view name) const;

  /// Instances of saga type `name` (by status, at most `q.limit`), waiting at most
  /// `requests.ask_timeout`. Fails with invalid_input (no such saga type), timeout,
  /// unavailable.
  [[nodiscard]] expected<std::vector<saga_summary>> saga_list(const std::string& name,
                                                              saga_query q = {});

  /// One instance of saga type `name` with its history. Fails with invalid_input (no
  /// such type or key), timeout, unavailable.
  [[nodiscard]] expected<saga_detail> saga_show(const std::string& name, const std::string& key);

  /// Un-parks a parked instance (operator retry). Fails with invalid_input (unknown or
  /// not parked), timeout, unavailable.
  [[nodiscard]] expected<saga_summary> saga_retry(const std::string& name,
                                                  const std::string& key);

  /// Waits (at most `timeout`) until the instance ended or was parked.
  [[nodiscard]] expected<saga_summary> saga_wait(const std::string& name, const std::string& key,
                                                 std::chrono::milliseconds timeout);

  /// The event bus (event_bus.hpp), the writer's listener.
  caf::actor bus() const;

  /// The aggregate router (aggregate_router.hpp protocol), for actors such as sagas.
  /// Starts it on the first call (registration ends then). Null once stopping.
  caf::actor router();

  // -- stopping ---------------------------------------------------------------------

  /// True from construction until stop() begins.
  bool running() const noexcept;

  /// Graceful stop (see the lifecycle above). Idempotent: later calls (also concurrent
  /// ones, which wait for the first) return the first call's result. Each step waits at
  /// most shutdown.drain_timeout, so a stop takes at most about (5 + views +
  /// subscriptions) x drain_timeout, plus 1 s per actor that had to be killed and a short
  /// metrics request to each actor.
  /// Fails with: timeout (naming the first step that ran out of time; the stop still
  ///   completes: stuck actors are killed, LMDB is closed as soon as nothing holds it).
  status stop();

  /// Blocks until a stop is requested (signal or request_stop(), see below) or this
  /// runtime was stopped from another thread, then stops it. Returns stop()'s result.
  status run_until_stopped();

  // -- signals ----------------------------------------------------------------------
  // Process-wide: one flag and one self-pipe for all runtimes of the process.

  /// Installs handlers for SIGTERM and SIGINT that call request_stop(). The handler is
  /// async-signal-safe: it sets a lock-free flag and writes one byte to a self-pipe.
  /// Idempotent.
  static void install_signal_handlers();

  /// Puts back the handlers that install_signal_handlers replaced.
  static void restore_signal_handlers();

  /// Requests a stop: wakes every wait_for_stop_signal / run_until_stopped.
  /// Async-signal-safe; callable from any thread.
  static void request_stop() noexcept;

  /// True once a stop was requested (until clear_stop_request).
  static bool stop_requested() noexcept;

  /// Forgets a stop request (tests; a daemon that handles a request and keeps going).
  static void clear_stop_request() noexcept;

  /// Blocks until a stop is requested or `timeout` passes (nullopt: no bound). Returns
  /// whether a stop was requested.
  static bool wait_for_stop_signal(std::optional<std::chrono::milliseconds> timeout = std::nullopt);

  // -- observers --------------------------------------------------------------------

  /// Counters of the writer and the router, see runtime_metrics. Asks both (each at
  /// most requests.ask_timeout); after stop, the last values.
  runtime_metrics metrics();

  /// Requests (appends, asks, queries, asynchronous asks until their callback returned)
  /// taken and not yet answered. Cheap: no actor is asked.
  size_t requests_in_flight() const;

  /// The configuration this runtime started with (validated).
  const runtime_config& config() const noexcept {
    return cfg_;
  }

  /// The actor system (alive until the destructor returns).
  caf::actor_system& system() noexcept {
    return *sys_;
  }

  /// The LMDB journal, for reads. Null after stop(). Drop copies before stop(): stop
  /// closes LMDB and waits (up to drain_timeout) until nobody holds the environment.
  std::shared_ptr<lmdb_journal> journal() const;

  /// The snapshot store in the journal's environment. Null after stop().
  std::shared_ptr<snapshot_store> snapshots() const;

  /// The journal writer actor (see journal_writer.hpp for its protocol). After stop()
  /// it refers to a terminated actor: requests fail with request_receiver_down.
  caf::actor writer() const;

private:
  enum class phase : uint8_t { running, stopping, stopped };

  friend struct detail::async_request;

  /// A boxed reply as `Spec::reply`; invalid_input when it holds another type.
  template <aggregate_spec Spec>
  static expected<typename Spec::reply> typed_reply(expected<reply_box> r) {
    if (!r)
      return std::move(r).err();
    if (const auto* x = unbox_reply<typename Spec::reply>(*r))
      return *x;
    return error{errc::invalid_input,
                 "the reply of aggregate type '" + std::string{Spec::name} + "' has another type"};
  }

  /// A boxed state as typed_state<Spec>; invalid_input when it holds another type.
  template <aggregate_spec Spec>
  static expected<typed_state<Spec>> typed_state_of(expected<aggregate_state> r) {
    if (!r)
      return std::move(r).err();
    const auto* st = std::any_cast<typename Spec::state>(&r->state);
    if (st == nullptr)
      return error{errc::invalid_input, "the state of aggregate type '" + std::string{Spec::name}
                                            + "' has another type"};
    typed_state<Spec> out;
    out.state = *st;
    out.version = r->version;
    out.time_ns = r->time_ns;
    return out;
  }

  status do_stop();
  /// Sends `user_shutdown` to `dest` and waits for its down message (drain_timeout);
  /// kills it past that. Fails with timeout naming `what`.
  status stop_actor(const caf::actor& dest, const char* what);
  /// Asks `dest` for its metrics (`metrics_atom`); nullopt on any error.
  template <class T>
  std::optional<T> ask_metrics(const caf::actor& dest, std::chrono::milliseconds timeout);
  /// The router, spawning it if needed. Needs mtx_ and phase running.
  caf::actor router_locked();
  /// Takes a request slot (counts it in flight) or says why not. Needs no lock.
  status enter_request();
  /// Why a request is refused when the phase is not running (counted). Needs mtx_.
  error refuse_locked();
  void leave_request();
  /// enter_request for an asynchronous request: also starts the router and the bridges
  /// if needed and returns the bridge for `id` (ask_async.cpp).
  expected<caf::actor> enter_async(const std::string& id);
  /// Hands `req` to its bridge, or answers it at once when the runtime refuses it.
  void start_async(std::shared_ptr<detail::async_request> req);

  runtime_config cfg_;
  std::unique_ptr<caf::actor_system_config> caf_cfg_;
  std::unique_ptr<caf::actor_system> sys_;

  mutable std::mutex mtx_;          // guards everything below
  std::condition_variable idle_cv_; // in_flight_ dropped to 0
  phase phase_ = phase::running;
  size_t in_flight_ = 0;
  uint64_t requests_ = 0;
  uint64_t refused_ = 0;
  std::shared_ptr<lmdb_journal> journal_;
  /// What the writer and the aggregates use: journal_, or its wrapper (runtime_hooks).
  std::shared_ptr<evident::journal> writer_journal_;
  std::shared_ptr<snapshot_store> snapshots_;
  caf::actor writer_;
  std::vector<std::shared_ptr<const aggregate_model>> models_;
  caf::actor router_;
  bool router_started_ = false;
  /// The bridges of ask_async / state_of_async (ask_async.cpp), spawned on the first
  /// asynchronous request; stopped by stop() right after the drain.
  std::vector<caf::actor> bridges_;
  caf::actor bus_;
  struct view_entry {
    std::string name;
    caf::actor actor;
  };
  std::vector<view_entry> views_;
  std::vector<caf::actor> subscriptions_;
  struct saga_entry {
    std::string name;
    caf::actor manager;
    caf::actor subscription;
    /// What a restart needs (restart_saga).
    std::shared_ptr<const saga_model> model;
    saga_options options;
    std::shared_ptr<const saga_clock> clock;
    /// Watches `manager`; stopped first by stop().
    caf::actor supervisor;
    uint64_t restarts = 0;
  };
  std::vector<saga_entry> sagas_;
  std::vector<named_saga_metrics> last_saga_metrics_;
  /// Asks each view / saga manager for its metrics; the ones that answer, in order.
  std::vector<view_metrics> ask_view_metrics(const std::vector<view_entry>& views,
                                             std::chrono::milliseconds timeout);
  std::vector<named_saga_metrics> ask_saga_metrics(const std::vector<saga_entry>& sagas,
                                                   std::chrono::milliseconds timeout);
  /// Replaces the manager of saga type `name` that stopped on its own (and its
  /// subscription) with a new one, which recovers from the journal. Runs on the
  /// supervisor's CAF worker. Returns the new manager; an invalid handle when spawning
  /// failed (try again later); nullopt when the runtime is stopping (give up).
  std::optional<caf::actor> restart_saga(const std::string& name);
  /// Spawns a subscription feeding `subscriber`, options left at their defaults taking
  /// the config's [views] settings. Records it nowhere. Needs mtx_ and phase running.
  caf::actor spawn_subscription_locked(caf::actor subscriber, subscription_options opts);
  /// Asks the manager of saga type `name` and waits for a `T` (saga_* helpers).
  template <class T, class... Ts>
  expected<T> ask_saga(const std::string& name, std::chrono::milliseconds timeout, Ts&&... xs);
  std::vector<view_metrics> last_view_metrics_;
  event_bus_metrics last_bus_metrics_;
  journal_writer_metrics last_writer_metrics_;
  router_metrics last_router_metrics_;

  std::mutex stop_mtx_; // serializes stop(); held for its whole duration
  std::optional<status> stop_result_;
};

} // namespace evident
