#pragma once

// A tiny bank account aggregate for the actor tests: plain C++ and msgpack, no CAF.

#include "evident/actors/aggregate.hpp"
#include "evident/actors/effect.hpp"

#include <msgpack.hpp>

#include <cstdint>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace bank {

// -- events ---------------------------------------------------------------------------

struct opened {
  std::string owner;
  MSGPACK_DEFINE(owner)
  friend bool operator==(const opened&, const opened&) = default;
};

struct deposited {
  int64_t amount = 0;
  MSGPACK_DEFINE(amount)
  friend bool operator==(const deposited&, const deposited&) = default;
};

struct withdrawn {
  int64_t amount = 0;
  MSGPACK_DEFINE(amount)
  friend bool operator==(const withdrawn&, const withdrawn&) = default;
};

/// Free text (large ones test too_large).
struct noted {
  std::string text;
  MSGPACK_DEFINE(text)
  friend bool operator==(const noted&, const noted&) = default;
};

/// An event whose apply throws (tests that user exceptions never kill an actor).
struct cursed {
  int64_t x = 0;
  MSGPACK_DEFINE(x)
  friend bool operator==(const cursed&, const cursed&) = default;
};

using account_event = std::variant<opened, deposited, withdrawn, noted, cursed>;

// -- state ----------------------------------------------------------------------------

struct account {
  std::string owner;
  int64_t balance = 0;
  bool open = false;
  /// Events folded in: makes "snapshot + replay == full replay" sensitive to every event.
  uint64_t applied = 0;
  std::string last_note;
  MSGPACK_DEFINE(owner, balance, open, applied, last_note)
  friend bool operator==(const account&, const account&) = default;
};

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
struct note {
  std::string text;
};
/// Several deposits in one atomic append (persist_all).
struct deposit_many {
  std::vector<int64_t> amounts;
};
struct get_balance {};
/// decide throws.
struct explode {};
/// decide persists a `cursed` event, whose apply throws.
struct curse {};

using account_command
  = std::variant<open, deposit, withdraw, note, deposit_many, get_balance, explode, curse>;

// -- reply ----------------------------------------------------------------------------

struct account_reply {
  bool ok = true;
  int64_t balance = 0;
  std::string reason;
  MSGPACK_DEFINE(ok, balance, reason)
  friend bool operator==(const account_reply&, const account_reply&) = default;

  static account_reply balance_of(const account& s) {
    return {true, s.balance, {}};
  }
  static account_reply refused(std::string why) {
    return {false, 0, std::move(why)};
  }
};

inline std::ostream& operator<<(std::ostream& os, const account_reply& x) {
  return os << (x.ok ? "ok " : "refused ") << x.balance << (x.reason.empty() ? "" : " ")
            << x.reason;
}

// -- the spec -------------------------------------------------------------------------

struct account_aggregate {
  using state = account;
  using command = account_command;
  using event = account_event;
  using reply = account_reply;

  static constexpr std::string_view name = "account";
  static constexpr evident::snapshot_policy snapshots{.every_events = 10, .keep_last = 2};

  static void register_events(evident::type_registry<event>& r) {
    r.add<opened>("bank.opened")
      .add<deposited>("bank.deposited")
      .add<withdrawn>("bank.withdrawn")
      .add<noted>("bank.noted")
      .add<cursed>("bank.cursed");
  }

  static evident::effect<state, event, reply> decide(const state& s, const command& c) {
    auto now = [](const account& x) { return account_reply::balance_of(x); };
    return std::visit(
      [&](const auto& cmd) -> evident::effect<state, event, reply> {
        using T = std::decay_t<decltype(cmd)>;
        if constexpr (std::is_same_v<T, open>) {
          if (s.open)
            return evident::reply(account_reply::refused("already open"));
          return evident::persist(opened{cmd.owner}).then_reply(now);
        } else if constexpr (std::is_same_v<T, get_balance>) {
          return evident::reply(account_reply::balance_of(s));
        } else if constexpr (std::is_same_v<T, explode>) {
          throw std::runtime_error("decide exploded");
        } else {
          if (!s.open)
            return evident::reply(account_reply::refused("account not open"));
          if constexpr (std::is_same_v<T, deposit>) {
            if (cmd.amount <= 0)
              return evident::reply(account_reply::refused("amount must be positive"));
            return evident::persist(deposited{cmd.amount}).then_reply(now);
          } else if constexpr (std::is_same_v<T, withdraw>) {
            if (cmd.amount > s.balance)
              return evident::reply(account_reply::refused("insufficient funds"));
            return evident::persist(withdrawn{cmd.amount}).then_reply(now);
          } else if constexpr (std::is_same_v<T, deposit_many>) {
            std::vector<event> events;
            for (auto amount : cmd.amounts)
              events.emplace_back(deposited{amount});
            return evident::persist_all(std::move(events)).then_reply(now);
          } else if constexpr (std::is_same_v<T, note>) {
            return evident::persist(noted{cmd.text}).then_reply(now);
          } else {
            static_assert(std::is_same_v<T, curse>);
            return evident::persist(cursed{1}).then_reply(now);
          }
        }
      },
      c);
  }

  static state apply(state s, const event& e) {
    std::visit(
      [&](const auto& ev) {
        using T = std::decay_t<decltype(ev)>;
        if constexpr (std::is_same_v<T, opened>) {
          s.owner = ev.owner;
          s.open = true;
        } else if constexpr (std::is_same_v<T, deposited>) {
          s.balance += ev.amount;
        } else if constexpr (std::is_same_v<T, withdrawn>) {
          s.balance -= ev.amount;
        } else if constexpr (std::is_same_v<T, noted>) {
          s.last_note = ev.text;
        } else {
          throw std::runtime_error("cursed event");
        }
      },
      e);
    ++s.applied;
    return s;
  }
};

/// The same aggregate after a change of its state struct: snapshots of schema 1 no
/// longer fit, so recovery must ignore them and replay everything.
struct account_aggregate_v2 : account_aggregate {
  static constexpr uint32_t state_schema = 2;
};

/// Never snapshots (hot-path and deterministic tests that count messages).
struct account_no_snapshots : account_aggregate {
  static constexpr evident::snapshot_policy snapshots{.every_events = 0, .keep_last = 1};
};

} // namespace bank
