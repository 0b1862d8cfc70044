#include "evident/runtime/runtime.hpp"

#include "evident/actors/atoms.hpp"
#include "evident/actors/errc.hpp"
#include "evident/actors/journal_writer.hpp"
#include "evident/actors/message_types.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

namespace evident {

// -- startup_error ------------------------------------------------------------------

startup_error::startup_error(error err)
    : std::runtime_error("evident runtime did not start: " + to_string(err)), err_(std::move(err)) {
  // nop
}

// -- signals ------------------------------------------------------------------------

namespace {

// The stop request is process-wide state touched by a signal handler, so it is limited
// to what is async-signal-safe: a lock-free atomic flag and write(2) to a pipe whose
// descriptor is published before the handler is installed. Waiters poll(2) the read
// end; the bytes stay in the pipe until clear_stop_request, so every waiter (and every
// later wait) sees the request.
static_assert(std::atomic<bool>::is_always_lock_free);
static_assert(std::atomic<int>::is_always_lock_free);

std::atomic<bool> stop_flag{false};
std::atomic<int> pipe_read_fd{-1};
std::atomic<int> pipe_write_fd{-1};
std::once_flag pipe_once;

std::mutex handlers_mtx;
bool handlers_installed = false;
struct sigaction old_term_action;
struct sigaction old_int_action;

void make_pipe() {
  std::call_once(pipe_once, [] {
    int fds[2];
    if (::pipe(fds) != 0)
      return; // waiters fall back to polling the flag
    for (int fd : fds) {
      ::fcntl(fd, F_SETFD, FD_CLOEXEC);
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    }
    pipe_read_fd.store(fds[0]);
    pipe_write_fd.store(fds[1]);
  });
}

extern "C" void on_stop_signal(int) {
  auto saved_errno = errno;
  runtime::request_stop();
  errno = saved_errno;
}

} // namespace

void runtime::request_stop() noexcept {
  stop_flag.store(true);
  if (auto fd = pipe_write_fd.load(); fd >= 0) {
    char byte = 1;
    // A full pipe (EAGAIN) already wakes every waiter; nothing else can go wrong here.
    if (::write(fd, &byte, 1) < 0) {
      // nop
    }
  }
}

bool runtime::stop_requested() noexcept {
  return stop_flag.load();
}

void runtime::clear_stop_request() noexcept {
  stop_flag.store(false);
  if (auto fd = pipe_read_fd.load(); fd >= 0) {
    char buf[64];
    while (::read(fd, buf, sizeof(buf)) > 0) {
      // drain
    }
  }
}

void runtime::install_signal_handlers() {
  make_pipe();
  std::lock_guard guard{handlers_mtx};
  if (handlers_installed)
    return;
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  ::sigaction(SIGTERM, &sa, &old_term_action);
  ::sigaction(SIGINT, &sa, &old_int_action);
  handlers_installed = true;
}

void runtime::restore_signal_handlers() {
  std::lock_guard guard{handlers_mtx};
  if (!handlers_installed)
    return;
  ::sigaction(SIGTERM, &old_term_action, nullptr);
  ::sigaction(SIGINT, &old_int_action, nullptr);
  handlers_installed = false;
}

bool runtime::wait_for_stop_signal(std::optional<std::chrono::milliseconds> timeout) {
  using clock = std::chrono::steady_clock;
  make_pipe();
  auto deadline = timeout ? clock::now() + *timeout : clock::time_point::max();
  for (;;) {
    if (stop_flag.load())
      return true;
    auto now = clock::now();
    if (now >= deadline)
      return false;
    // Without a pipe (pipe(2) failed) we still notice the flag within 100 ms.
    auto fd = pipe_read_fd.load();
    auto slice = std::chrono::milliseconds{fd >= 0 ? 1'000 : 100};
    if (timeout)
      slice = std::min(slice, std::chrono::ceil<std::chrono::milliseconds>(deadline - now));
    if (fd >= 0) {
      pollfd pfd{fd, POLLIN, 0};
      ::poll(&pfd, 1, static_cast<int>(slice.count())); // EINTR: loop and re-check
    } else {
      ::poll(nullptr, 0, static_cast<int>(slice.count()));
    }
  }
}

// -- construction -------------------------------------------------------------------

runtime::runtime(runtime_config cfg, runtime_hooks hooks) : cfg_(std::move(cfg)) {
  if (auto err = validate(cfg_))
    throw startup_error(std::move(err));
  // CAF first: if the journal fails to open, the system (with no actors yet) goes down
  // cleanly during unwinding.
  caf_cfg_ = std::make_unique<caf::actor_system_config>();
  caf_cfg_->set("scheduler.max-threads", static_cast<int64_t>(cfg_.scheduler.threads));
  caf_cfg_->set("scheduler.max-throughput", static_cast<int64_t>(cfg_.scheduler.max_throughput));
  caf_cfg_->set("scheduler.policy", caf::atom_from_string(std::string{to_string(cfg_.scheduler.policy)}));
  add_message_types(*caf_cfg_);
  sys_ = std::make_unique<caf::actor_system>(*caf_cfg_);
  if (sys_->scheduler().num_workers() > cfg_.scheduler.threads)
    throw startup_error(
        error{errc::invalid_input, "CAF started " + std::to_string(sys_->scheduler().num_workers())
                                       + " workers, more than scheduler.threads = "
                                       + std::to_string(cfg_.scheduler.threads)});
  auto jnl = lmdb_journal::open(cfg_.journal());
  if (!jnl) {
    auto err = std::move(jnl).err();
    err.message = "cannot open the journal in '" + cfg_.storage.data_dir + "': " + err.message;
    throw startup_error(std::move(err));
  }
  journal_ = std::move(*jnl);
  snapshots_ = std::make_shared<lmdb_snapshot_store>(journal_->env());
  writer_journal_ = journal_;
  if (hooks.wrap_journal) {
    writer_journal_ = hooks.wrap_journal(writer_journal_);
    if (!writer_journal_)
      throw startup_error(error{errc::invalid_input, "runtime_hooks::wrap_journal returned null"});
  }
  // The bus starts at the journal's head, so that a subscription that asks it before
  // the first commit learns where live delivery begins.
  auto head = journal_->last_position();
  if (!head)
    throw startup_error(head.err());
  bus_ = spawn_event_bus(*sys_, *head);
  commit_listener listener;
  listener.actor = bus_;
  // validate(cfg_) checked the options, so this does not throw.
  writer_ = spawn_journal_writer(*sys_, writer_journal_, cfg_.group_commit, std::move(listener));
}

expected<std::unique_ptr<runtime>> runtime::start(runtime_config cfg, runtime_hooks hooks) {
  try {
    return std::make_unique<runtime>(std::move(cfg), std::move(hooks));
  } catch (const startup_error& ex) {
    return ex.err();
  } catch (const std::exception& ex) {
    return error{errc::io_error, std::string{"evident runtime did not start: "} + ex.what()};
  }
}

runtime::~runtime() {
  ignore(stop(), "a destructor cannot report; call stop() first to see its result");
}

// -- requests -----------------------------------------------------------------------

error runtime::refuse_locked() {
  ++refused_;
  return error{errc::unavailable, phase_ == phase::stopping
                                      ? "the runtime is stopping; the request was not taken"
                                      : "the runtime is stopped; the request was not taken"};
}

status runtime::enter_request() {
  std::lock_guard guard{mtx_};
  if (phase_ != phase::running)
    return refuse_locked();
  // stop() waits for in_flight_ to drop to 0 before it stops the router and the writer,
  // so a request that got past this check is answered by live actors.
  ++in_flight_;
  ++requests_;
  return {};
}

void runtime::leave_request() {
  std::lock_guard guard{mtx_};
  if (--in_flight_ == 0)
    idle_cv_.notify_all();
}

namespace {

// Leaves the request slot however the request ends.
template <class F>
struct scope_exit {
  F f;
  ~scope_exit() {
    f();
  }
};
template <class F>
scope_exit(F) -> scope_exit<F>;

} // namespace

expected<append_result> runtime::append(append_request req) {
  return append(std::move(req), cfg_.requests.ask_timeout);
}

expected<append_result> runtime::append(append_request req, std::chrono::milliseconds timeout) {
  if (auto err = enter_request())
    return err;
  scope_exit done{[this] { leave_request(); }};
  auto dest = writer();
  expected<append_result> result{errc::timeout, "no answer from the journal writer"};
  caf::scoped_actor self{*sys_};
  self->request(dest, timeout, append_atom::value, std::move(req))
      .receive([&](append_result& res) { result = res; },
               [&](caf::error& err) { result = from_caf_error(err); });
  return result;
}

// -- aggregates ---------------------------------------------------------------------

namespace {

// Everything as `inner`, but another snapshot policy.
class policy_model final : public aggregate_model {
public:
  policy_model(std::shared_ptr<const aggregate_model> inner, snapshot_policy policy)
      : inner_(std::move(inner)), policy_(policy) {
    // nop
  }
  std::string_view name() const noexcept override {
    return inner_->name();
  }
  std::string_view state_type() const noexcept override {
    return inner_->state_type();
  }
  uint32_t state_schema() const noexcept override {
    return inner_->state_schema();
  }
  snapshot_policy snapshots() const noexcept override {
    return policy_;
  }
  std::any initial_state() const override {
    return inner_->initial_state();
  }
  expected<decision> decide(std::any& pending, const std::any& command) const override {
    return inner_->decide(pending, command);
  }
  status apply(std::any& state, const decision& d) const override {
    return inner_->apply(state, d);
  }
  status apply(std::any& state, const recorded_event& e) const override {
    return inner_->apply(state, e);
  }
  std::any copy_state(const std::any& state) const override {
    return inner_->copy_state(state);
  }
  expected<std::string> encode_state(const std::any& state) const override {
    return inner_->encode_state(state);
  }
  expected<std::any> decode_state(std::string_view bytes) const override {
    return inner_->decode_state(bytes);
  }
  expected<std::any> decode_reply(std::string_view bytes) const override {
    return inner_->decode_reply(bytes);
  }

private:
  std::shared_ptr<const aggregate_model> inner_;
  snapshot_policy policy_;
};

} // namespace

std::shared_ptr<const aggregate_model>
with_snapshot_policy(std::shared_ptr<const aggregate_model> model, snapshot_policy policy) {
  if (!model)
    throw std::invalid_argument("with_snapshot_policy: model is null");
  return std::make_shared<policy_model>(std::move(model), policy);
}

void runtime::register_aggregate(std::shared_ptr<const aggregate_model> model) {
  if (!model)
    throw std::invalid_argument("register_aggregate: model is null");
  std::lock_guard guard{mtx_};
  if (router_started_)
    throw std::logic_error("register_aggregate('" + std::string{model->name()}
                           + "'): the router has started; register every aggregate type "
                             "before the first ask");
  for (const auto& m : models_)
    if (m->name() == model->name())
      throw std::invalid_argument("register_aggregate: aggregate type '"
                                  + std::string{model->name()} + "' is registered already");
  models_.push_back(std::move(model));
}

caf::actor runtime::router_locked() {
  if (!router_started_) {
    router_started_ = true;
    aggregate_env env;
    env.writer = writer_;
    env.journal = writer_journal_;
    env.snapshots = snapshots_;
    auto& a = cfg_.aggregates;
    env.options.replay_batch = a.replay_batch;
    env.options.max_stash = a.max_stash;
    env.options.max_in_flight = a.max_in_flight;
    env.options.append_timeout = a.append_timeout;
    env.options.idle_timeout = a.idle_timeout;
    env.options.max_active = a.max_active;
    // validate(cfg_) covered the options and register_aggregate the names, so this
    // does not throw.
    router_ = spawn_aggregate_router(*sys_, std::move(env), models_);
  }
  return router_;
}

caf::actor runtime::router() {
  std::lock_guard guard{mtx_};
  if (phase_ != phase::running)
    return {};
  return router_locked();
}

expected<reply_box> runtime::ask_boxed(const std::string& type, const std::string& id,
                                       command_box cmd, const std::string& command_id,
                                       std::chrono::milliseconds timeout) {
  if (auto err = enter_request())
    return err;
  scope_exit done{[this] { leave_request(); }};
  caf::actor dest;
  {
    std::lock_guard guard{mtx_};
    dest = router_locked();
  }
  using clock = std::chrono::steady_clock;
  auto deadline = clock::now() + timeout;
  caf::scoped_actor self{*sys_};
  expected<reply_box> result{errc::timeout, "no answer from the aggregate"};
  for (int attempt = 1; attempt <= 2; ++attempt) {
    // Between an aggregate's passivation and the router learning of it, a command
    // bounces with request_receiver_down and nothing happened: send it once more (so
    // the first attempt sends a copy).
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
    bool bounced = false;
    self->request(dest, std::max(left, std::chrono::milliseconds{1}), command_atom::value, type, id,
                  command_id, attempt == 1 ? command_box{cmd} : std::move(cmd))
        .receive([&](reply_box& r) { result = std::move(r); },
                 [&](caf::error& err) {
                   bounced = err == caf::sec::request_receiver_down;
                   result = from_caf_error(err);
                 });
    if (!bounced)
      break;
  }
  return result;
}

expected<aggregate_state> runtime::state_of_boxed(const std::string& type, const std::string& id,
                                                  state_query q,
                                                  std::chrono::milliseconds timeout) {
  if (auto err = enter_request())
    return err;
  scope_exit done{[this] { leave_request(); }};
  caf::actor dest;
  {
    std::lock_guard guard{mtx_};
    dest = router_locked();
  }
  caf::scoped_actor self{*sys_};
  expected<aggregate_state> result{errc::timeout, "no answer from the state query"};
  self->request(dest, timeout, state_atom::value, type, id, q)
      .receive([&](aggregate_state& st) { result = std::move(st); },
               [&](caf::error& err) { result = from_caf_error(err); });
  return result;
}

// -- views and subscriptions --------------------------------------------------------

view_options runtime::default_view_options() const {
  view_options o;
  o.read_batch = cfg_.views.read_batch;
  o.max_buffer_events = cfg_.views.max_buffer_events;
  o.deliver_timeout = cfg_.views.deliver_timeout;
  o.commit_interval = cfg_.views.commit_interval;
  return o;
}

void runtime::register_view(std::shared_ptr<const view_model> model, view_options opts) {
  if (!model)
    throw std::invalid_argument("register_view: model is null");
  std::lock_guard guard{mtx_};
  if (phase_ != phase::running)
    throw std::logic_error("register_view('" + std::string{model->name()}
                           + "'): the runtime is not running");
  for (const auto& v : views_)
    if (v.name == model->name())
      throw std::invalid_argument("register_view: a view named '" + std::string{model->name()}
                                  + "' is registered already");
  view_env env;
  env.bus = bus_;
  env.jnl = journal_;
  env.env = journal_->env();
  auto name = std::string{model->name()};
  auto actor = spawn_view(*sys_, std::move(env), std::move(model), std::move(opts));
  views_.push_back(view_entry{std::move(name), std::move(actor)});
}

caf::actor runtime::view(std::string_view name) const {
  std::lock_guard guard{mtx_};
  for (const auto& v : views_)
    if (v.name == name)
      return v.actor;
  return {};
}

caf::actor runtime::spawn_subscription_locked(caf::actor subscriber, subscription_options opts) {
  const subscription_options defaults_of_subscription;
  if (opts.read_batch == defaults_of_subscription.read_batch)
    opts.read_batch = cfg_.views.read_batch;
  if (opts.max_buffer_events == defaults_of_subscription.max_buffer_events)
    opts.max_buffer_events = cfg_.views.max_buffer_events;
  if (opts.checkpoint_every == defaults_of_subscription.checkpoint_every)
    opts.checkpoint_every = cfg_.views.checkpoint_every;
  if (opts.checkpoint_interval == defaults_of_subscription.checkpoint_interval)
    opts.checkpoint_interval = cfg_.views.checkpoint_interval;
  if (opts.deliver_timeout == defaults_of_subscription.deliver_timeout)
    opts.deliver_timeout = cfg_.views.deliver_timeout;
  subscription_env env;
  env.bus = bus_;
  env.jnl = journal_;
  env.checkpoints = std::make_shared<checkpoint_store>(journal_->env());
  return spawn_subscription(*sys_, std::move(env), std::move(subscriber), std::move(opts));
}

caf::actor runtime::subscribe(caf::actor subscriber, subscription_options opts) {
  std::lock_guard guard{mtx_};
  if (phase_ != phase::running)
    throw std::logic_error("subscribe('" + opts.name + "'): the runtime is not running");
  auto sub = spawn_subscription_locked(std::move(subscriber), std::move(opts));
  subscriptions_.push_back(sub);
  return sub;
}

expected<view_result> runtime::query_boxed(const std::string& view_name, view_query q,
                                           uint64_t wait_for_position,
                                           std::chrono::milliseconds timeout) {
  if (auto err = enter_request())
    return err;
  scope_exit done{[this] { leave_request(); }};
  auto dest = view(view_name);
  if (!dest)
    return error{errc::invalid_input, "no view named '" + view_name + "' is registered"};
  expected<view_result> result{errc::timeout, "no answer from view '" + view_name + "'"};
  caf::scoped_actor self{*sys_};
  // The view times the wait itself (a precise timeout error); the request's own bound
  // only catches a view that cannot answer at all.
  self->request(dest, timeout + std::chrono::seconds{1}, query_atom::value, std::move(q),
                wait_for_position, static_cast<int64_t>(timeout.count()))
      .receive([&](view_result& r) { result = std::move(r); },
               [&](caf::error& err) { result = from_caf_error(err); });
  return result;
}

// -- sagas --------------------------------------------------------------------------

namespace {

using saga_restart_atom = caf::atom_constant<caf::atom("saga_rst")>;

subscription_options saga_subscription(const std::shared_ptr<const saga_model>& model) {
  subscription_options so;
  so.name = saga_subscription_name(*model);
  so.filter.predicate = [model](const recorded_event& e) { return model->knows(e.type); };
  return so;
}

// Watches one saga type's manager. A manager stops on its own only when a progress
// append had an unknown outcome (saga_manager.hpp, "Failures"): then a new one, which
// recovers from the journal, takes its place, after a backoff (100 ms doubling up to
// 10 s) so that a journal that keeps failing is not hammered. stop() kills the
// supervisor before it stops the manager.
caf::behavior saga_supervisor(caf::event_based_actor* self, caf::actor manager,
                              std::function<std::optional<caf::actor>()> restart) {
  self->monitor(manager);
  auto failures = std::make_shared<unsigned>(0);
  self->set_down_handler([self, failures](caf::down_msg& dm) {
    if (dm.reason == caf::exit_reason::user_shutdown || dm.reason == caf::exit_reason::kill) {
      self->quit();
      return;
    }
    auto delay = std::min<std::chrono::milliseconds>(
        std::chrono::milliseconds{100} * (1u << std::min(*failures, 7u)),
        std::chrono::seconds{10});
    ++*failures;
    self->delayed_send(self, delay, saga_restart_atom::value);
  });
  return {
      [self, failures, restart](saga_restart_atom) {
        auto m = restart();
        if (!m) {
          self->quit(); // the runtime is stopping
          return;
        }
        if (!*m) { // spawning failed: try again later
          ++*failures;
          self->delayed_send(self, std::chrono::milliseconds{100} * (1u << std::min(*failures, 7u)),
                             saga_restart_atom::value);
          return;
        }
        self->monitor(*m);
      },
  };
}

} // namespace

void runtime::register_saga(std::shared_ptr<const saga_model> model, saga_options opts,
                            std::shared_ptr<const saga_clock> clock) {
  if (!model)
    throw std::invalid_argument("register_saga: model is null");
  auto name = std::string{model->name()};
  std::lock_guard guard{mtx_};
  if (phase_ != phase::running)
    throw std::logic_error("register_saga('" + name + "'): the runtime is not running");
  for (const auto& x : sagas_)
    if (x.name == name)
      throw std::invalid_argument("register_saga: a saga named '" + name
                                  + "' is registered already");
  saga_env env;
  env.writer = writer_;
  env.journal = journal_;
  env.router = router_locked();
  env.clock = clock;
  env.options = opts;
  auto manager = spawn_saga_manager(*sys_, std::move(env), model);
  // Not in subscriptions_: a saga's subscription stops earlier, with its manager.
  auto sub = spawn_subscription_locked(manager, saga_subscription(model));
  auto supervisor = sys_->spawn(saga_supervisor, manager,
                                [this, name]() { return restart_saga(name); });
  sagas_.push_back(saga_entry{name, std::move(manager), std::move(sub), std::move(model),
                              std::move(opts), std::move(clock), std::move(supervisor), 0});
}

std::optional<caf::actor> runtime::restart_saga(const std::string& name) {
  std::lock_guard guard{mtx_};
  if (phase_ != phase::running)
    return std::nullopt;
  auto i = std::find_if(sagas_.begin(), sagas_.end(),
                        [&](const saga_entry& x) { return x.name == name; });
  if (i == sagas_.end())
    return std::nullopt;
  // Usually gone already (its batch was answered with the manager's error); a new one
  // starts from the checkpoint, and the new manager skips what it already recorded.
  caf::anon_send_exit(i->subscription, caf::exit_reason::user_shutdown);
  saga_env env;
  env.writer = writer_;
  env.journal = journal_;
  env.router = router_locked();
  env.clock = i->clock;
  env.options = i->options;
  try {
    auto manager = spawn_saga_manager(*sys_, std::move(env), i->model);
    i->subscription = spawn_subscription_locked(manager, saga_subscription(i->model));
    i->manager = manager;
    ++i->restarts;
    return manager;
  } catch (const std::exception&) {
    return caf::actor{}; // recovery failed (the journal?): the supervisor tries again
  }
}

caf::actor runtime::saga_manager(std::string_view name) const {
  std::lock_guard guard{mtx_};
  for (const auto& x : sagas_)
    if (x.name == name)
      return x.manager;
  return {};
}

template <class T, class... Ts>
expected<T> runtime::ask_saga(const std::string& name, std::chrono::milliseconds timeout,
                              Ts&&... xs) {
  if (auto err = enter_request())
    return err;
  scope_exit done{[this] { leave_request(); }};
  auto dest = saga_manager(name);
  if (!dest)
    return error{errc::invalid_input, "no saga named '" + name + "' is registered"};
  expected<T> result{errc::timeout, "no answer from the manager of saga '" + name + "'"};
  caf::scoped_actor self{*sys_};
  self->request(dest, timeout, std::forward<Ts>(xs)...)
      .receive([&](T& r) { result = std::move(r); },
               [&](caf::error& err) { result = from_caf_error(err); });
  return result;
}

expected<std::vector<saga_summary>> runtime::saga_list(const std::string& name, saga_query q) {
  return ask_saga<std::vector<saga_summary>>(name, cfg_.requests.ask_timeout,
                                             saga_list_atom::value, std::move(q));
}

expected<saga_detail> runtime::saga_show(const std::string& name, const std::string& key) {
  return ask_saga<saga_detail>(name, cfg_.requests.ask_timeout, saga_show_atom::value, key);
}

expected<saga_summary> runtime::saga_retry(const std::string& name, const std::string& key) {
  return ask_saga<saga_summary>(name, cfg_.requests.ask_timeout, saga_retry_atom::value, key);
}

expected<saga_summary> runtime::saga_wait(const std::string& name, const std::string& key,
                                          std::chrono::milliseconds timeout) {
  return ask_saga<saga_summary>(name, timeout, saga_wait_atom::value, key);
}

caf::actor runtime::bus() const {
  std::lock_guard guard{mtx_};
  return bus_;
}

// -- stopping -----------------------------------------------------------------------

bool runtime::running() const noexcept {
  std::lock_guard guard{mtx_};
  return phase_ == phase::running;
}

status runtime::stop() {
  std::lock_guard stop_guard{stop_mtx_};
  if (!stop_result_)
    stop_result_ = do_stop();
  return *stop_result_;
}

status runtime::do_stop() {
  using clock = std::chrono::steady_clock;
  status result;
  auto keep_first = [&](status err) {
    if (err && !result)
      result = std::move(err);
  };
  // 1. Refuse new requests.
  caf::actor router_handle;
  caf::actor writer_handle;
  caf::actor bus_handle;
  std::vector<view_entry> views;
  std::vector<caf::actor> subscriptions;
  std::vector<saga_entry> sagas;
  std::vector<caf::actor> bridges;
  {
    std::lock_guard guard{mtx_};
    phase_ = phase::stopping;
    bridges = bridges_;
    router_handle = router_;
    writer_handle = writer_;
    bus_handle = bus_;
    views = views_;
    subscriptions = subscriptions_;
    sagas = sagas_;
  }
  // 2. Let the requests in flight be answered: each has a finite timeout of its own, so
  //    this ends; the bound only caps how long stop() may take.
  {
    std::unique_lock guard{mtx_};
    auto deadline = clock::now() + cfg_.shutdown.drain_timeout;
    if (!idle_cv_.wait_until(guard, deadline, [&] { return in_flight_ == 0; }))
      keep_first(error{errc::timeout, std::to_string(in_flight_)
                                          + " request(s) still in flight after "
                                            "shutdown.drain_timeout"});
  }
  // 2b. The bridges of ask_async: after a drain they hold nothing; past its bound, what
  //     they still hold is answered with timeout (outcome unknown) as they stop.
  for (const auto& b : bridges)
    keep_first(stop_actor(b, "ask_async bridge"));
  // The last counters (nothing answers them after its exit). Best effort with a short
  // bound: an actor stuck in a commit gets its exit anyway.
  auto metrics_bound = std::min(cfg_.requests.ask_timeout, cfg_.shutdown.drain_timeout);
  // 3. Sagas: each subscription, then its manager. Before the router, so that no saga
  //    sees its commands fail because the router went away (that would count towards
  //    parking); progress appends already sent still commit (the writer stops later).
  {
    auto sms = ask_saga_metrics(sagas, metrics_bound);
    std::lock_guard guard{mtx_};
    if (!sms.empty())
      last_saga_metrics_ = std::move(sms);
  }
  for (const auto& x : sagas) {
    keep_first(stop_actor(x.supervisor, "saga supervisor"));
    keep_first(stop_actor(x.subscription, "saga subscription"));
    keep_first(stop_actor(x.manager, "saga manager"));
  }
  // 3b. The router stops every aggregate (each answers what it holds), then quits.
  if (router_handle) {
    if (auto m = ask_metrics<router_metrics>(router_handle, metrics_bound)) {
      std::lock_guard guard{mtx_};
      last_router_metrics_ = *m;
    }
    keep_first(stop_actor(router_handle, "aggregate router"));
  }
  // 4. Views and raw subscriptions: each finishes the batch it is in (a durable view
  //    commits rows and position together), managed checkpoints are saved on exit.
  {
    auto vms = ask_view_metrics(views, metrics_bound);
    std::lock_guard guard{mtx_};
    if (!vms.empty())
      last_view_metrics_ = std::move(vms);
  }
  for (const auto& v : views)
    keep_first(stop_actor(v.actor, "view"));
  for (const auto& sub : subscriptions)
    keep_first(stop_actor(sub, "subscription"));
  // 5. The writer commits and answers what it holds, then quits.
  if (writer_handle) {
    if (auto m = ask_metrics<journal_writer_metrics>(writer_handle, metrics_bound)) {
      std::lock_guard guard{mtx_};
      last_writer_metrics_ = *m;
    }
    keep_first(stop_actor(writer_handle, "journal writer"));
  }
  // 6. The bus (nothing publishes any more).
  if (bus_handle) {
    if (auto m = ask_metrics<event_bus_metrics>(bus_handle, metrics_bound)) {
      std::lock_guard guard{mtx_};
      last_bus_metrics_ = *m;
    }
    keep_first(stop_actor(bus_handle, "event bus"));
  }
  // 7. Close LMDB. The writer's state held the journal; aggregates and the snapshot
  //    writer (stopped by the router, but maybe still finishing) hold it through the
  //    router's context. The environment closes when the last of them lets go, and
  //    opening the same environment twice in one process is unsafe (LMDB's locks), so
  //    wait for that: a restart in this process must find it closed.
  std::weak_ptr<environment> env;
  {
    std::lock_guard guard{mtx_};
    if (journal_)
      env = journal_->env();
    snapshots_.reset();
    writer_journal_.reset();
    journal_.reset();
    models_.clear();
  }
  auto deadline = clock::now() + cfg_.shutdown.drain_timeout;
  while (!env.expired() && clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds{1});
  if (!env.expired())
    keep_first(error{errc::timeout, "the journal is still open after shutdown.drain_timeout: "
                                    "something holds it (a copy of runtime::journal() or "
                                    "snapshots(), or an actor that did not stop)"});
  {
    std::lock_guard guard{mtx_};
    phase_ = phase::stopped;
  }
  return result;
}

template <class T>
std::optional<T> runtime::ask_metrics(const caf::actor& dest, std::chrono::milliseconds timeout) {
  if (!dest)
    return std::nullopt;
  std::optional<T> result;
  caf::scoped_actor self{*sys_};
  self->request(dest, timeout, metrics_atom::value)
      .receive([&](T& m) { result = std::move(m); },
               [&](caf::error& err) { ignore(from_caf_error(err), "metrics are best effort"); });
  return result;
}

status runtime::stop_actor(const caf::actor& dest, const char* what) {
  status result;
  caf::scoped_actor self{*sys_};
  self->monitor(dest);
  self->send_exit(dest, caf::exit_reason::user_shutdown);
  bool down = false;
  self->receive([&](caf::down_msg&) { down = true; },
                caf::after(cfg_.shutdown.drain_timeout) >> [] {});
  if (!down) {
    // Stuck (the writer in a commit on a hung disk?). Kill it; what it held gets no
    // answer and its callers time out: outcome unknown, which is what timeout promises.
    result = error{errc::timeout, std::string{"the "} + what
                                      + " did not stop within shutdown.drain_timeout; killed it"};
    self->send_exit(dest, caf::exit_reason::kill);
    self->receive([&](caf::down_msg&) { down = true; },
                  caf::after(std::chrono::seconds(1)) >> [] {});
  }
  return result;
}

status runtime::run_until_stopped() {
  // A stop request wakes us at once through the self-pipe; a stop() from another thread
  // is noticed within the slice.
  while (!wait_for_stop_signal(std::chrono::milliseconds{100}))
    if (!running())
      break;
  return stop();
}

// -- observers ----------------------------------------------------------------------

std::vector<view_metrics> runtime::ask_view_metrics(const std::vector<view_entry>& views,
                                                    std::chrono::milliseconds timeout) {
  std::vector<view_metrics> out;
  for (const auto& v : views)
    if (auto x = ask_metrics<view_metrics>(v.actor, timeout))
      out.push_back(std::move(*x));
  return out;
}

std::vector<named_saga_metrics>
runtime::ask_saga_metrics(const std::vector<saga_entry>& sagas, std::chrono::milliseconds timeout) {
  std::vector<named_saga_metrics> out;
  for (const auto& x : sagas)
    if (auto y = ask_metrics<saga_metrics>(x.manager, timeout))
      out.push_back(named_saga_metrics{x.name, *y, x.restarts});
  return out;
}

runtime_metrics runtime::metrics() {
  runtime_metrics m;
  caf::actor writer_handle;
  caf::actor router_handle;
  caf::actor bus_handle;
  std::vector<view_entry> views;
  std::vector<saga_entry> sagas;
  {
    std::lock_guard guard{mtx_};
    if (phase_ == phase::running) {
      writer_handle = writer_;
      router_handle = router_;
      bus_handle = bus_;
      views = views_;
      sagas = sagas_;
    }
  }
  auto wm = ask_metrics<journal_writer_metrics>(writer_handle, cfg_.requests.ask_timeout);
  auto rm = ask_metrics<router_metrics>(router_handle, cfg_.requests.ask_timeout);
  auto bm = ask_metrics<event_bus_metrics>(bus_handle, cfg_.requests.ask_timeout);
  auto vms = ask_view_metrics(views, cfg_.requests.ask_timeout);
  auto sms = ask_saga_metrics(sagas, cfg_.requests.ask_timeout);
  std::lock_guard guard{mtx_};
  if (wm)
    last_writer_metrics_ = *wm;
  if (!sagas.empty())
    last_saga_metrics_ = std::move(sms);
  if (rm)
    last_router_metrics_ = *rm;
  if (bm)
    last_bus_metrics_ = *bm;
  if (!views.empty())
    last_view_metrics_ = std::move(vms);
  m.running = phase_ == phase::running;
  m.writer = last_writer_metrics_;
  m.aggregates = last_router_metrics_;
  m.views = last_view_metrics_;
  m.bus = last_bus_metrics_;
  m.sagas = last_saga_metrics_;
  m.requests = requests_;
  m.refused_unavailable = refused_;
  return m;
}

size_t runtime::requests_in_flight() const {
  std::lock_guard guard{mtx_};
  return in_flight_;
}

std::shared_ptr<lmdb_journal> runtime::journal() const {
  std::lock_guard guard{mtx_};
  return journal_;
}

std::shared_ptr<snapshot_store> runtime::snapshots() const {
  std::lock_guard guard{mtx_};
  return snapshots_;
}

caf::actor runtime::writer() const {
  std::lock_guard guard{mtx_};
  return writer_;
}

} // namespace evident
