// The account routes: commands (open, deposit, withdraw, close) and states (latest, at a
// version, at a time) through runtime::ask_async (no thread waits for the aggregate), and
// the event history read from the journal on the blocking pool. docs/bank.md is the
// reference for clients.

#include "account.hpp"
#include "http.hpp"

#include "evident/persistence/uuid.hpp"

namespace bank {

using evident::errc;
using evident::error;
using nlohmann::json;

namespace {

/// What the route asked for, to word the answer (201 for open, 409 details).
enum class action_kind { open, deposit, withdraw, close };

// The domain's answer in HTTP terms. A refusal persisted nothing; a retry with the same
// command_id of a command that did persist gets the stored reply, so it renders the same.
void send_reply(response& res, const std::string& id, action_kind kind,
                std::optional<uint64_t> if_version, const account_reply& r, int64_t amount) {
  if (r.ok()) {
    if (kind == action_kind::open)
      send_json(res, 201, json{{"id", id}, {"version", r.version}});
    else
      send_json(res, 200, json{{"version", r.version}, {"balance", r.balance}});
    return;
  }
  // A command to an account that was never opened: the account is not there.
  if (r.status == account_status::unknown && kind != action_kind::open) {
    send_error(res, 404, "account_not_found", "no account '" + id + "'");
    return;
  }
  switch (r.refused) {
    case refusal::version_mismatch:
      send_error(res, 412, "version_mismatch", "the account is at another version",
                 json{{"expected", if_version.value_or(0)}, {"actual", r.version}});
      return;
    case refusal::account_exists:
      send_error(res, 409, "account_exists", "account '" + id + "' exists already",
                 json{{"version", r.version}});
      return;
    case refusal::not_open:
      send_error(res, 409, "not_open", "account '" + id + "' is closed");
      return;
    case refusal::insufficient_funds:
      send_error(res, 409, "insufficient_funds", "the balance is lower than the amount",
                 json{{"balance", r.balance}, {"amount", amount}});
      return;
    case refusal::balance_not_zero:
      send_error(res, 409, "balance_not_zero", "only an account with balance 0 can be closed",
                 json{{"balance", r.balance}});
      return;
    case refusal::balance_limit:
      send_error(res, 409, "balance_limit", "the deposit would exceed the largest balance",
                 json{{"balance", r.balance}});
      return;
    case refusal::invalid_amount:
    case refusal::none:
      break;
  }
  send_error(res, 400, to_string(r.refused));
}

// Asks the aggregate and answers from the reply's callback (a CAF worker thread): the
// I/O thread is free as soon as the command is sent.
void run(bank_context& ctx, std::string id, action_kind kind, account_command cmd,
         std::string command_id, int64_t amount, const responder& done) {
  // The reply needs the command's If-Match value (for 412), not the whole command.
  auto if_version = cmd.if_version;
  ctx.rt.ask_async<account_aggregate>(
      id, std::move(cmd), std::move(command_id),
      [done, id, kind, if_version, amount](evident::expected<account_reply> r) {
        response res;
        if (!r) {
          send_failure(res, r.err());
        } else {
          send_reply(res, id, kind, if_version, *r, amount);
        }
        done(std::move(res));
      });
}

// Answers an error found before anything was asked.
void refuse(const responder& done, int status, std::string_view code, std::string_view message) {
  response res;
  send_error(res, status, code, message);
  done(std::move(res));
}

void refuse(const responder& done, const error& err) {
  response res;
  send_failure(res, err);
  done(std::move(res));
}

// The checks every command route shares: a valid id in the path, a JSON object body,
// a valid optional command_id and If-Match. Answers 400 itself and returns false.
struct command_input {
  json body;
  std::string command_id;
  std::optional<uint64_t> if_version;
};

bool read_command(const request& req, const std::string* path_id, bool empty_ok, command_input& out,
                  const responder& done) {
  if (path_id != nullptr) {
    if (auto why = check_id(*path_id, "account id")) {
      refuse(done, 400, "invalid_id", *why);
      return false;
    }
  }
  auto body = parse_object(req, empty_ok);
  if (!body) {
    refuse(done, body.err());
    return false;
  }
  auto cid = optional_id_field(*body, "command_id", "command_id");
  if (!cid) {
    refuse(done, cid.err());
    return false;
  }
  auto version = if_match(req);
  if (!version) {
    refuse(done, version.err());
    return false;
  }
  out.body = std::move(*body);
  out.command_id = cid->value_or(std::string{});
  out.if_version = *version;
  return true;
}

void open_account(bank_context& ctx, const request& req, const responder& done) {
  command_input in;
  if (!read_command(req, nullptr, false, in, done))
    return;
  auto id = optional_id_field(in.body, "id", "account id");
  if (!id) {
    refuse(done, id.err());
    return;
  }
  auto owner = in.body.find("owner");
  if (owner == in.body.end() || !owner->is_string()) {
    refuse(done, 400, "invalid_input", "'owner' must be a string");
    return;
  }
  auto name = owner->get<std::string>();
  if (name.empty() || name.size() > max_owner_bytes) {
    refuse(done, 400, "invalid_input",
           "'owner' must have 1 to " + std::to_string(max_owner_bytes) + " bytes");
    return;
  }
  for (unsigned char c : name)
    if (c < 0x20 || c == 0x7f) {
      refuse(done, 400, "invalid_input", "'owner' contains a control character");
      return;
    }
  auto account_id = id->value_or(evident::uuid::random().to_string());
  run(ctx, std::move(account_id), action_kind::open, {open{std::move(name)}, in.if_version},
      std::move(in.command_id), 0, done);
}

template <class Action>
void move_money(bank_context& ctx, const request& req, const route_params& p,
                const responder& done) {
  command_input in;
  if (!read_command(req, &p[0], false, in, done))
    return;
  auto amount = amount_field(in.body, "amount");
  if (!amount) {
    refuse(done, amount.err());
    return;
  }
  auto kind = std::is_same_v<Action, deposit> ? action_kind::deposit : action_kind::withdraw;
  run(ctx, p[0], kind, {Action{*amount}, in.if_version}, std::move(in.command_id), *amount, done);
}

void close_account(bank_context& ctx, const request& req, const route_params& p,
                   const responder& done) {
  command_input in;
  if (!read_command(req, &p[0], true, in, done))
    return;
  run(ctx, p[0], action_kind::close, {close{}, in.if_version}, std::move(in.command_id), 0, done);
}

std::string_view status_name(account_status s) {
  switch (s) {
    case account_status::open:
      return "open";
    case account_status::closed:
      return "closed";
    case account_status::unknown:
      break;
  }
  return "unknown";
}

void get_account(bank_context& ctx, const request& req, const route_params& p,
                 const responder& done) {
  const auto& id = p[0];
  if (auto why = check_id(id, "account id")) {
    refuse(done, 400, "invalid_id", *why);
    return;
  }
  auto q = evident::state_query::latest();
  bool has_version = req.has_param("at_version");
  bool has_time = req.has_param("at_time");
  if (has_version && has_time) {
    refuse(done, 400, "invalid_input", "give at_version or at_time, not both");
    return;
  }
  if (has_version) {
    auto n = parse_uint(req.param("at_version"), "at_version");
    if (!n) {
      refuse(done, n.err());
      return;
    }
    q = evident::state_query::at_version(*n);
  } else if (has_time) {
    auto t = parse_iso8601(req.param("at_time"));
    if (!t) {
      refuse(done, t.err());
      return;
    }
    q = evident::state_query::at_time(*t);
  }
  bool past = has_version || has_time;
  ctx.rt.state_of_async<account_aggregate>(
      id, q, [done, id, past](evident::expected<evident::typed_state<account_aggregate>> st) {
        response res;
        if (!st) {
          if (st.err().code == errc::stream_not_found)
            send_error(res, 404, "account_not_found", "no account '" + id + "'");
          else
            send_failure(res, st.err());
          done(std::move(res));
          return;
        }
        if (st->version == 0 || st->state.status == account_status::unknown) {
          send_error(res, 404, "account_not_found",
                     past ? "account '" + id + "' did not exist then" : "no account '" + id + "'");
          done(std::move(res));
          return;
        }
        const auto& a = st->state;
        json body{{"id", id},
                  {"owner", a.owner},
                  {"balance", a.balance},
                  {"version", st->version},
                  {"open", a.status == account_status::open},
                  {"status", status_name(a.status)}};
        if (st->time_ns > 0)
          body["updated_at"] = format_iso8601(st->time_ns);
        res.set_header("ETag", "\"" + std::to_string(st->version) + "\"");
        send_json(res, 200, body);
        done(std::move(res));
      });
}

json event_data(const account_event& e) {
  return std::visit(
      [](const auto& ev) -> json {
        using T = std::decay_t<decltype(ev)>;
        if constexpr (std::is_same_v<T, opened>)
          return json{{"owner", ev.owner}};
        else if constexpr (std::is_same_v<T, deposited> || std::is_same_v<T, withdrawn>)
          return json{{"amount", ev.amount}};
        else
          return json::object();
      },
      e);
}

void get_events(bank_context& ctx, const request& req, const route_params& p, response& res) {
  const auto& id = p[0];
  if (auto why = check_id(id, "account id")) {
    send_error(res, 400, "invalid_id", *why);
    return;
  }
  uint64_t from = 1;
  uint64_t limit = max_events_page;
  if (req.has_param("from")) {
    auto n = parse_uint(req.param("from"), "from");
    if (!n) {
      send_failure(res, n.err());
      return;
    }
    from = std::max<uint64_t>(*n, 1);
  }
  if (req.has_param("limit")) {
    auto n = parse_uint(req.param("limit"), "limit");
    if (!n || *n == 0 || *n > max_events_page) {
      send_error(res, 400, "invalid_input",
                 "limit must be between 1 and " + std::to_string(max_events_page));
      return;
    }
    limit = *n;
  }
  auto jnl = ctx.rt.journal();
  if (!jnl) {
    send_failure(res, error{errc::unavailable, "the runtime is stopping"});
    return;
  }
  // One model for decoding: the registry is immutable after construction.
  static const evident::spec_model<account_aggregate> model;
  json events = json::array();
  std::optional<uint64_t> next;
  evident::status decode_err;
  evident::read_options opts;
  opts.from = from;
  opts.max_count = limit + 1; // one more says whether there is a next page
  auto err = jnl->read_stream(model.stream_of(id), opts, [&](const evident::recorded_event& e) {
    if (events.size() == limit) {
      next = e.version;
      return false;
    }
    auto ev = model.registry().decode(e);
    if (!ev) {
      decode_err = std::move(ev).err();
      return false;
    }
    json item{{"version", e.version},
              {"position", e.position},
              {"type", e.type},
              {"time", format_iso8601(e.time_ns)},
              {"data", event_data(*ev)}};
    if (!e.command_id.empty())
      item["command_id"] = e.command_id;
    events.push_back(std::move(item));
    return true;
  });
  jnl.reset();
  if (err && err.code == errc::stream_not_found) {
    send_error(res, 404, "account_not_found", "no account '" + id + "'");
    return;
  }
  if (err || decode_err) {
    send_failure(res, err ? err : decode_err);
    return;
  }
  json body{{"id", id}, {"events", std::move(events)}};
  body["next"] = next ? json(*next) : json(nullptr);
  send_json(res, 200, body);
}

} // namespace

void add_account_routes(route_table& routes, bank_context& ctx) {
  // Deposits first: the hot route is matched first.
  routes.add_async("POST", "/accounts/{id}/deposits",
                   [&ctx](const auto& req, const auto& p, const auto& done) {
                     move_money<deposit>(ctx, req, p, done);
                   });
  routes.add_async("POST", "/accounts/{id}/withdrawals",
                   [&ctx](const auto& req, const auto& p, const auto& done) {
                     move_money<withdraw>(ctx, req, p, done);
                   });
  routes.add_async("POST", "/accounts/{id}/close",
                   [&ctx](const auto& req, const auto& p, const auto& done) {
                     close_account(ctx, req, p, done);
                   });
  routes.add_async("POST", "/accounts", [&ctx](const auto& req, const auto&, const auto& done) {
    open_account(ctx, req, done);
  });
  routes.add_async(
      "GET", "/accounts/{id}",
      [&ctx](const auto& req, const auto& p, const auto& done) { get_account(ctx, req, p, done); });
  // Reads LMDB and may build a large answer: on the blocking pool.
  routes.add("GET", "/accounts/{id}/events",
             [&ctx](const auto& req, const auto& p, auto& res) { get_events(ctx, req, p, res); });
}

} // namespace bank
