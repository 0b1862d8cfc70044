#pragma once

// The bank account, as an evident aggregate spec: what an account is (state), what may
// happen to it (events), what a client may ask of it (commands), and the rules that
// decide between them. Plain C++ and msgpack; no CAF, no HTTP.
//
//   open(owner)        -> opened          refused: account_exists
//   deposit(amount)    -> deposited       refused: not_open, balance_limit
//   withdraw(amount)   -> withdrawn       refused: not_open, insufficient_funds
//   close()            -> closed          refused: not_open, balance_not_zero
//
// Every command may carry `if_version`: the client's view of the account. When the
// account has moved on, the command is refused with version_mismatch (optimistic
// concurrency for clients, HTTP If-Match). Amounts are validated at the edge (positive);
// the spec checks them again so that no caller can bypass the rules.

#include "evident/actors/aggregate.hpp"
#include "evident/actors/effect.hpp"

#include <msgpack.hpp>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>

namespace bank {

// -- events (stored forever: names and shapes are a contract) --------------------------

struct opened {
  std::string owner;
  MSGPACK_DEFINE(owner)
};

struct deposited {
  int64_t amount = 0;
  MSGPACK_DEFINE(amount)
};

struct withdrawn {
  int64_t amount = 0;
  MSGPACK_DEFINE(amount)
};

struct closed {
  MSGPACK_DEFINE()
};

using account_event = std::variant<opened, deposited, withdrawn, closed>;

// -- state ----------------------------------------------------------------------------

enum class account_status : uint8_t { unknown = 0, open = 1, closed = 2 };

} // namespace bank

MSGPACK_ADD_ENUM(bank::account_status);

namespace bank {

struct account {
  std::string owner;
  int64_t balance = 0;
  account_status status = account_status::unknown;
  /// Events folded in: the stream's version, which If-Match compares against.
  uint64_t version = 0;
  MSGPACK_DEFINE(owner, balance, status, version)
};

/// The largest balance an account may hold; a deposit beyond it is refused rather than
/// overflowing int64.
inline constexpr int64_t max_balance = std::numeric_limits<int64_t>::max() / 2;

// -- commands -------------------------------------------------------------------------

struct open {
  std::string owner;
};
struct deposit {
  int64_t amount = 0;
};
struct withdraw {
  int64_t amount = 0;
};
struct close {};

struct account_command {
  std::variant<open, deposit, withdraw, close> action;
  /// When set, the command applies only to an account at exactly this version.
  std::optional<uint64_t> if_version;
};

// -- reply ----------------------------------------------------------------------------

/// Why a command was refused. A refusal persists nothing.
enum class refusal : uint8_t {
  none = 0,
  account_exists,
  not_open,
  insufficient_funds,
  balance_not_zero,
  balance_limit,
  version_mismatch,
  invalid_amount,
};

} // namespace bank

MSGPACK_ADD_ENUM(bank::refusal);

namespace bank {

/// "insufficient_funds", ...: the `error` of an HTTP answer.
constexpr std::string_view to_string(refusal x) noexcept {
  switch (x) {
    case refusal::none:
      return "none";
    case refusal::account_exists:
      return "account_exists";
    case refusal::not_open:
      return "not_open";
    case refusal::insufficient_funds:
      return "insufficient_funds";
    case refusal::balance_not_zero:
      return "balance_not_zero";
    case refusal::balance_limit:
      return "balance_limit";
    case refusal::version_mismatch:
      return "version_mismatch";
    case refusal::invalid_amount:
      return "invalid_amount";
  }
  return "unknown";
}

/// The answer to every command: the account after it (or as it is, for a refusal).
struct account_reply {
  refusal refused = refusal::none;
  uint64_t version = 0;
  int64_t balance = 0;
  account_status status = account_status::unknown;
  MSGPACK_DEFINE(refused, version, balance, status)

  bool ok() const noexcept {
    return refused == refusal::none;
  }
};

// -- the spec -------------------------------------------------------------------------

struct account_aggregate {
  using state = account;
  using command = account_command;
  using event = account_event;
  using reply = account_reply;
  using effect = evident::effect<state, event, reply>;

  static constexpr std::string_view name = "account"; // streams "account-<id>"
  static constexpr std::string_view state_type = "bank.account";
  static constexpr uint32_t state_schema = 1;

  static void register_events(evident::type_registry<event>& r) {
    r.add<opened>("bank.opened")
        .add<deposited>("bank.deposited")
        .add<withdrawn>("bank.withdrawn")
        .add<closed>("bank.closed");
  }

  static effect decide(const account& s, const account_command& c) {
    if (c.if_version && *c.if_version != s.version)
      return refuse(s, refusal::version_mismatch);
    return std::visit([&](const auto& action) { return on(s, action); }, c.action);
  }

  static account apply(account s, const account_event& e) {
    std::visit([&](const auto& ev) { on_event(s, ev); }, e);
    ++s.version;
    return s;
  }

  static account_reply reply_of(const account& s) {
    return {refusal::none, s.version, s.balance, s.status};
  }

private:
  static effect refuse(const account& s, refusal why) {
    auto r = reply_of(s);
    r.refused = why;
    return evident::reply(r);
  }

  static effect on(const account& s, const open& c) {
    if (s.status != account_status::unknown)
      return refuse(s, refusal::account_exists);
    return evident::persist(opened{c.owner}).then_reply(reply_of);
  }

  static effect on(const account& s, const deposit& c) {
    if (s.status != account_status::open)
      return refuse(s, refusal::not_open);
    if (c.amount <= 0)
      return refuse(s, refusal::invalid_amount);
    if (c.amount > max_balance - s.balance)
      return refuse(s, refusal::balance_limit);
    return evident::persist(deposited{c.amount}).then_reply(reply_of);
  }

  static effect on(const account& s, const withdraw& c) {
    if (s.status != account_status::open)
      return refuse(s, refusal::not_open);
    if (c.amount <= 0)
      return refuse(s, refusal::invalid_amount);
    if (c.amount > s.balance)
      return refuse(s, refusal::insufficient_funds);
    return evident::persist(withdrawn{c.amount}).then_reply(reply_of);
  }

  static effect on(const account& s, const close&) {
    if (s.status != account_status::open)
      return refuse(s, refusal::not_open);
    if (s.balance != 0)
      return refuse(s, refusal::balance_not_zero);
    return evident::persist(closed{}).then_reply(reply_of);
  }

  static void on_event(account& s, const opened& e) {
    s.owner = e.owner;
    s.status = account_status::open;
  }
  static void on_event(account& s, const deposited& e) {
    s.balance += e.amount;
  }
  static void on_event(account& s, const withdrawn& e) {
    s.balance -= e.amount;
  }
  static void on_event(account& s, const closed&) {
    s.status = account_status::closed;
  }
};

} // namespace bank
