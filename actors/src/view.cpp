#include "evident/actors/view.hpp"

#include "evident/actors/atoms.hpp"
#include "evident/actors/errc.hpp"
#include "evident/actors/event_batch.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <chrono>
#include <exception>
#include <iostream>
#include <map>
#include <stdexcept>
#include <utility>
#include <vector>

namespace evident {

view_rows::~view_rows() {
  // nop
}

view_model::~view_model() {
  // nop
}

std::string view_db_name(std::string_view view_name) {
  return "view." + std::string{view_name};
}

namespace detail {

std::string describe_event(const recorded_event& e) {
  return "position " + std::to_string(e.position) + " (stream '" + e.stream + "' version "
         + std::to_string(e.version) + ", type '" + e.type + "')";
}

} // namespace detail

namespace {

// -- rows ------------------------------------------------------------------------------

template <class T>
T value_or_throw(expected<T>&& x) {
  if (!x)
    throw view_store_error(std::move(x).err());
  return std::move(*x);
}

void throw_if(status st) {
  if (st)
    throw view_store_error(std::move(st));
}

// Rows in a named DB, inside the caller's transaction (the batch's write txn, or a
// query's read txn).
class lmdb_rows final : public view_rows {
public:
  lmdb_rows(txn& t, MDB_dbi dbi) : t_(t), dbi_(dbi) {
    // nop
  }

  std::optional<std::string> get(std::string_view key) const override {
    auto v = value_or_throw(t_.get(dbi_, key));
    if (!v)
      return std::nullopt;
    return std::string{*v};
  }

  void put(std::string_view key, std::string_view value) override {
    check_writable();
    throw_if(t_.put(dbi_, key, value));
  }

  void erase(std::string_view key) override {
    check_writable();
    throw_if(t_.del(dbi_, key));
  }

  void for_each(std::string_view prefix,
                const std::function<bool(std::string_view, std::string_view)>& f) const override {
    cursor c{t_, dbi_};
    auto x = value_or_throw(prefix.empty() ? c.first() : c.seek(prefix));
    while (x && x->key.substr(0, prefix.size()) == prefix) {
      if (!f(x->key, x->value))
        return;
      x = value_or_throw(c.next());
    }
  }

private:
  void check_writable() const {
    if (!t_.writable())
      throw std::logic_error("view rows are read-only in a query");
  }

  txn& t_;
  MDB_dbi dbi_;
};

using row_map = std::map<std::string, std::string, std::less<>>;

class map_rows final : public view_rows {
public:
  map_rows(row_map& rows, bool writable) : rows_(rows), writable_(writable) {
    // nop
  }

  std::optional<std::string> get(std::string_view key) const override {
    auto i = rows_.find(key);
    if (i == rows_.end())
      return std::nullopt;
    return i->second;
  }

  void put(std::string_view key, std::string_view value) override {
    check_writable();
    rows_.insert_or_assign(std::string{key}, std::string{value});
  }

  void erase(std::string_view key) override {
    check_writable();
    if (auto i = rows_.find(key); i != rows_.end())
      rows_.erase(i);
  }

  void for_each(std::string_view prefix,
                const std::function<bool(std::string_view, std::string_view)>& f) const override {
    for (auto i = rows_.lower_bound(prefix);
         i != rows_.end() && std::string_view{i->first}.substr(0, prefix.size()) == prefix; ++i)
      if (!f(i->first, i->second))
        return;
  }

private:
  void check_writable() const {
    if (!writable_)
      throw std::logic_error("view rows are read-only in a query");
  }

  row_map& rows_;
  bool writable_;
};

// A batch's writes to an in-memory view, kept aside until the whole batch projected, so
// that a projection that throws leaves the rows as of the last good batch (as the LMDB
// transaction does for durable views).
class staged_rows final : public view_rows {
public:
  explicit staged_rows(row_map& base) : base_(base) {
    // nop
  }

  std::optional<std::string> get(std::string_view key) const override {
    if (auto i = changes_.find(key); i != changes_.end())
      return i->second;
    if (auto i = base_.find(key); i != base_.end())
      return i->second;
    return std::nullopt;
  }

  void put(std::string_view key, std::string_view value) override {
    changes_.insert_or_assign(std::string{key}, std::string{value});
  }

  void erase(std::string_view key) override {
    changes_.insert_or_assign(std::string{key}, std::nullopt);
  }

  void for_each(std::string_view prefix,
                const std::function<bool(std::string_view, std::string_view)>& f) const override {
    auto in_range = [&](const std::string& k) {
      return std::string_view{k}.substr(0, prefix.size()) == prefix;
    };
    row_map merged;
    for (auto i = base_.lower_bound(prefix); i != base_.end() && in_range(i->first); ++i)
      merged.emplace(i->first, i->second);
    for (auto i = changes_.lower_bound(prefix); i != changes_.end() && in_range(i->first); ++i) {
      if (i->second)
        merged.insert_or_assign(i->first, *i->second);
      else
        merged.erase(i->first);
    }
    for (const auto& [k, v] : merged)
      if (!f(k, v))
        return;
  }

  void commit() {
    for (auto& [k, v] : changes_) {
      if (v)
        base_.insert_or_assign(k, std::move(*v));
      else if (auto i = base_.find(k); i != base_.end())
        base_.erase(i);
    }
    changes_.clear();
  }

private:
  row_map& base_;
  std::map<std::string, std::optional<std::string>, std::less<>> changes_;
};

// -- the actor -------------------------------------------------------------------------

using qtimeout_atom = caf::atom_constant<caf::atom("v_qtimeout")>;
// Self-sent: the commit interval is over, answer the subscription's held batch.
using release_atom = caf::atom_constant<caf::atom("v_release")>;

using clock_type = std::chrono::steady_clock;

struct waiter {
  uint64_t id = 0;
  uint64_t min_position = 0;
  view_query query;
  caf::typed_response_promise<view_result> rp;
};

struct view_state {
  view_env env;
  std::shared_ptr<const view_model> model;
  view_options opts;
  std::string db_name;
  MDB_dbi dbi = 0;
  std::shared_ptr<checkpoint_store> checkpoints;
  row_map mem;
  uint64_t position = 0;
  caf::actor sub;
  std::optional<error> failed;
  std::vector<waiter> waiting;
  uint64_t next_waiter = 0;
  view_metrics m;
  clock_type::time_point window_start = clock_type::now();
  uint64_t window_events = 0;
  // The answer to the last batch, held until commit_interval after its commit began:
  // the subscription sends the next batch only after it (see view_options).
  std::optional<caf::typed_response_promise<uint64_t>> held;
};

using view_actor = caf::stateful_actor<view_state>;

void log_failure(const view_state& st, const error& err) {
  std::cerr << "evident: view '" << st.model->name() << "' stopped: " << to_string(err)
            << std::endl;
}

void start_subscription(view_actor* self, uint64_t after) {
  auto& st = self->state;
  subscription_options so;
  so.name = st.db_name;
  so.filter = st.model->filter();
  so.checkpoints = checkpoint_mode::by_subscriber;
  so.start_after = after;
  so.read_batch = st.opts.read_batch;
  so.max_buffer_events = st.opts.max_buffer_events;
  so.deliver_timeout = st.opts.deliver_timeout;
  subscription_env se;
  se.bus = st.env.bus;
  se.jnl = st.env.jnl;
  st.sub = spawn_subscription(self->home_system(), std::move(se), caf::actor_cast<caf::actor>(self),
                              std::move(so));
  self->monitor(st.sub);
}

void stop_subscription(view_actor* self) {
  auto& st = self->state;
  if (!st.sub)
    return;
  self->demonitor(st.sub);
  self->send_exit(st.sub, caf::exit_reason::user_shutdown);
  st.sub = nullptr;
}

expected<view_result> answer(view_state& st, const view_query& q) {
  ++st.m.queries;
  if (st.model->durable()) {
    auto t = st.env.env->begin_read();
    if (!t)
      return std::move(t).err();
    lmdb_rows rows{*t, st.dbi};
    auto r = st.model->ask(rows, q.value);
    if (!r)
      return std::move(r).err();
    return view_result{std::move(*r), st.position};
  }
  map_rows rows{st.mem, false};
  auto r = st.model->ask(rows, q.value);
  if (!r)
    return std::move(r).err();
  return view_result{std::move(*r), st.position};
}

void deliver_to(waiter& w, view_state& st) {
  auto r = answer(st, w.query);
  if (r)
    w.rp.deliver(std::move(*r));
  else
    w.rp.deliver(to_caf_error(r.err()));
}

// Answers the queries waiting for a position the view has now reached (or all of them
// with the error that stopped the view).
void wake_waiters(view_actor* self) {
  auto& st = self->state;
  auto i = std::stable_partition(st.waiting.begin(), st.waiting.end(), [&](const waiter& w) {
    return !st.failed && w.min_position > st.position;
  });
  std::vector<waiter> ready{std::make_move_iterator(i), std::make_move_iterator(st.waiting.end())};
  st.waiting.erase(i, st.waiting.end());
  for (auto& w : ready) {
    if (st.failed)
      w.rp.deliver(to_caf_error(*st.failed));
    else
      deliver_to(w, st);
  }
}

void fail_view(view_actor* self, error err) {
  auto& st = self->state;
  ++st.m.errors;
  st.m.failed = true;
  st.m.last_error = to_string(err);
  log_failure(st, err);
  st.failed = std::move(err);
  wake_waiters(self);
}

status apply_batch(view_state& st, const event_batch& b) {
  if (st.model->durable()) {
    // Deferred: the meta page reaches the disk with the journal writer's next commit. A
    // machine crash before that undoes rows and position together, and the view applies
    // the batch again; meanwhile the writer does not wait for a second flush.
    return st.env.env->write([&](txn& t) -> status {
      lmdb_rows rows{t, st.dbi};
      for (const auto& e : b.events)
        if (auto err = st.model->project(rows, e))
          return err;
      if (st.opts.hooks.after_rows)
        if (auto err = st.opts.hooks.after_rows(b.through))
          return err;
      return st.checkpoints->save(t, st.db_name, b.through);
    }, commit_sync::deferred);
  }
  staged_rows rows{st.mem};
  for (const auto& e : b.events)
    if (auto err = st.model->project(rows, e))
      return err;
  rows.commit();
  return {};
}

void roll_window(view_state& st, clock_type::time_point now) {
  auto elapsed = now - st.window_start;
  if (elapsed < std::chrono::seconds{1})
    return;
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count();
  st.m.events_per_s = static_cast<uint64_t>(static_cast<double>(st.window_events) * 1e9
                                            / static_cast<double>(ns));
  st.window_start = now;
  st.window_events = 0;
}

caf::behavior view_behavior(view_actor* self, view_env env, std::shared_ptr<const view_model> model,
                            view_options opts, MDB_dbi dbi, uint64_t start) {
  auto& st = self->state;
  st.env = std::move(env);
  st.model = std::move(model);
  st.opts = std::move(opts);
  st.db_name = view_db_name(st.model->name());
  st.dbi = dbi;
  if (st.model->durable())
    st.checkpoints = std::make_shared<checkpoint_store>(st.env.env);
  st.position = start;
  st.m.name = std::string{st.model->name()};
  st.m.durable = st.model->durable();
  st.m.position = start;
  start_subscription(self, start);
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& s = self->state;
    if (!s.sub || dm.source != s.sub.address())
      return;
    s.sub = nullptr;
    // A subscription that stopped with an error (journal unreadable) leaves the view
    // without input; say so instead of going stale silently.
    if (!s.failed && dm.reason && dm.reason != caf::exit_reason::user_shutdown
        && dm.reason != caf::exit_reason::normal) {
      auto err = from_caf_error(dm.reason);
      err.message = "its subscription stopped: " + err.message;
      fail_view(self, std::move(err));
    }
  });
  self->set_exit_handler([=](caf::exit_msg& em) {
    stop_subscription(self);
    auto& s = self->state;
    s.held.reset();
    for (auto& w : s.waiting)
      w.rp.deliver(to_caf_error(
          error{errc::unavailable, "view '" + std::string{s.model->name()} + "' is stopping"}));
    s.waiting.clear();
    self->quit(em.reason);
  });
  return {
      [=](deliver_atom, const event_batch& b) -> caf::result<uint64_t> {
        auto& s = self->state;
        if (!s.sub || self->current_sender() != caf::actor_cast<caf::strong_actor_ptr>(s.sub))
          return to_caf_error(error{errc::invalid_input, "a batch from a replaced subscription"});
        if (s.failed)
          return to_caf_error(*s.failed);
        if (b.through <= s.position)
          return s.position;
        auto began = clock_type::now();
        if (auto err = apply_batch(s, b)) {
          auto reply = to_caf_error(err);
          fail_view(self, std::move(err));
          return reply;
        }
        s.position = b.through;
        ++s.m.batches;
        s.m.events += b.events.size();
        s.window_events += b.events.size();
        roll_window(s, clock_type::now());
        s.m.position = s.position;
        if (!s.waiting.empty())
          wake_waiters(self);
        if (s.model->durable() && s.opts.commit_interval.count() > 0) {
          auto rest = began + s.opts.commit_interval - clock_type::now();
          if (rest > clock_type::duration::zero()) {
            auto rp = self->make_response_promise<uint64_t>();
            s.held = rp;
            self->delayed_send(self, rest, release_atom::value);
            return rp;
          }
        }
        return s.position;
      },
      [=](release_atom) {
        auto& s = self->state;
        if (s.held) {
          s.held->deliver(s.position);
          s.held.reset();
        }
      },
      [=](query_atom, view_query& q, uint64_t min_position,
          int64_t timeout_ms) -> caf::result<view_result> {
        auto& s = self->state;
        if (s.failed)
          return to_caf_error(*s.failed);
        if (min_position <= s.position) {
          auto r = answer(s, q);
          if (!r)
            return to_caf_error(r.err());
          return std::move(*r);
        }
        auto rp = self->make_response_promise<view_result>();
        auto id = ++s.next_waiter;
        s.waiting.push_back(waiter{id, min_position, std::move(q), rp});
        self->delayed_send(self, std::chrono::milliseconds{std::max<int64_t>(timeout_ms, 0)},
                           qtimeout_atom::value, id);
        return rp;
      },
      [=](qtimeout_atom, uint64_t id) {
        auto& s = self->state;
        auto i = std::find_if(s.waiting.begin(), s.waiting.end(),
                              [&](const waiter& w) { return w.id == id; });
        if (i == s.waiting.end())
          return;
        auto w = std::move(*i);
        s.waiting.erase(i);
        w.rp.deliver(to_caf_error(
            error{errc::timeout, "view '" + std::string{s.model->name()} + "' is at position "
                                     + std::to_string(s.position) + ", not yet at "
                                     + std::to_string(w.min_position)}));
      },
      [=](reset_atom) -> caf::result<uint64_t> {
        auto& s = self->state;
        stop_subscription(self);
        s.held.reset(); // its subscription is gone
        if (s.model->durable()) {
          auto err = s.env.env->write([&](txn& t) -> status {
            if (int rc = mdb_drop(t.native(), s.dbi, 0); rc != 0)
              return environment::translate(rc, "dropping the rows of view '" + s.db_name + "'");
            return s.checkpoints->save(t, s.db_name, 0);
          });
          if (err) {
            // Rows and position are as before (the txn did not commit): keep them and go on.
            start_subscription(self, s.position);
            return to_caf_error(err);
          }
        } else {
          s.mem.clear();
        }
        s.position = 0;
        s.failed.reset();
        s.m.failed = false;
        s.m.position = 0;
        ++s.m.resets;
        start_subscription(self, 0);
        return uint64_t{0};
      },
      [=](metrics_atom) {
        auto& s = self->state;
        auto head = s.env.jnl->last_position();
        s.m.head = head ? std::max(*head, s.position) : s.position;
        s.m.lag = s.m.head - s.position;
        roll_window(s, clock_type::now());
        return s.m;
      },
  };
}

} // namespace

caf::actor spawn_view(caf::actor_system& sys, view_env env, std::shared_ptr<const view_model> model,
                      view_options opts) {
  if (!model)
    throw std::invalid_argument("spawn_view: model is null");
  if (!env.jnl)
    throw std::invalid_argument("spawn_view('" + std::string{model->name()} + "'): no journal");
  subscription_options check;
  check.name = view_db_name(model->name());
  check.read_batch = opts.read_batch;
  check.max_buffer_events = opts.max_buffer_events;
  check.deliver_timeout = opts.deliver_timeout;
  if (auto err = validate(check))
    throw std::invalid_argument("view '" + std::string{model->name()} + "': " + err.message);
  if (opts.commit_interval.count() < 0 || opts.commit_interval >= opts.deliver_timeout)
    throw std::invalid_argument("view '" + std::string{model->name()}
                                + "': commit_interval must be at least 0 and below "
                                  "deliver_timeout");
  MDB_dbi dbi = 0;
  uint64_t start = 0;
  if (model->durable()) {
    if (!env.env)
      throw std::invalid_argument("spawn_view('" + std::string{model->name()}
                                  + "'): a durable view needs the LMDB environment");
    auto name = view_db_name(model->name());
    auto db = env.env->open_db(name);
    if (!db)
      throw view_store_error(std::move(db).err());
    dbi = *db;
    checkpoint_store cps{env.env};
    auto cp = cps.load(name);
    if (!cp)
      throw view_store_error(std::move(cp).err());
    start = cp->value_or(0);
    // Commits fsync: keep them off CAF's cooperative workers.
    return sys.spawn<caf::detached>(view_behavior, std::move(env), std::move(model),
                                    std::move(opts), dbi, start);
  }
  return sys.spawn(view_behavior, std::move(env), std::move(model), std::move(opts), dbi, start);
}

} // namespace evident
