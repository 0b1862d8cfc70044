#pragma once

// A transfer between two accounts for the saga tests and the saga bench: a transfer
// aggregate that records requests and approvals, and the choreography saga that moves
// the money between two `bank::account_aggregate`s (tests/support/account_aggregate.hpp).
//
//   transfer_requested ──▶ debit (withdraw from `from`) ──refused──▶ failed
//        │ amount >= approval_limit: wait for transfer_approved (deadline "approval":
//        │ expiry fails the saga)          │ ok
//        ▼                                 ▼
//                              credit (deposit to `to`) ──ok──▶ completed
//                                          │ refused / error
//                                          ▼
//                              refund (deposit back to `from`) ──ok──▶ compensated

#include "support/account_aggregate.hpp"

#include "evident/actors/aggregate.hpp"
#include "evident/sagas/saga.hpp"

#include <msgpack.hpp>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <variant>

namespace transfers {

// -- the transfer aggregate --------------------------------------------------------------

struct transfer_requested {
  std::string id;
  std::string from;
  std::string to;
  int64_t amount = 0;
  MSGPACK_DEFINE(id, from, to, amount)
  friend bool operator==(const transfer_requested&, const transfer_requested&) = default;
};

struct transfer_approved {
  std::string id;
  MSGPACK_DEFINE(id)
  friend bool operator==(const transfer_approved&, const transfer_approved&) = default;
};

using transfer_event = std::variant<transfer_requested, transfer_approved>;

struct transfer {
  bool requested = false;
  bool approved = false;
  MSGPACK_DEFINE(requested, approved)
};

/// The transfer's id is repeated in its commands: decide cannot see the aggregate id,
/// and the saga's route needs it in the event.
struct request_transfer {
  std::string id;
  std::string from;
  std::string to;
  int64_t amount = 0;
};
struct approve_transfer {
  std::string id;
};
using transfer_command = std::variant<request_transfer, approve_transfer>;

struct transfer_reply {
  bool ok = true;
  std::string reason;
  MSGPACK_DEFINE(ok, reason)
};

struct transfer_aggregate {
  using state = transfer;
  using command = transfer_command;
  using event = transfer_event;
  using reply = transfer_reply;
  static constexpr std::string_view name = "transfer";

  static void register_events(evident::type_registry<event>& r) {
    r.add<transfer_requested>("bank.transfer_requested").add<transfer_approved>("bank.transfer_approved");
  }
  static evident::effect<state, event, reply> decide(const state& s, const command& c) {
    if (const auto* a = std::get_if<approve_transfer>(&c)) {
      if (!s.requested || s.approved)
        return evident::reply(transfer_reply{false, "nothing to approve"});
      return evident::persist(transfer_approved{a->id}).then_reply_value(transfer_reply{});
    }
    if (s.requested)
      return evident::reply(transfer_reply{false, "already requested"});
    const auto& r = std::get<request_transfer>(c);
    if (r.amount <= 0)
      return evident::reply(transfer_reply{false, "amount must be positive"});
    return evident::persist(transfer_requested{r.id, r.from, r.to, r.amount})
      .then_reply_value(transfer_reply{});
  }
  static state apply(state s, const event& e) {
    if (std::holds_alternative<transfer_requested>(e))
      s.requested = true;
    else
      s.approved = true;
    return s;
  }
};

// -- the saga --------------------------------------------------------------------------

/// What the saga sends to accounts (msgpack: it is kept in the outbox).
struct account_op {
  bool deposit = false;
  int64_t amount = 0;
  MSGPACK_DEFINE(deposit, amount)
};

enum class phase : uint8_t { start, approval, debiting, crediting, refunding, done };

struct transfer_state {
  std::string from;
  std::string to;
  int64_t amount = 0;
  uint8_t at = 0; // a phase
  std::string reason;
  MSGPACK_DEFINE(from, to, amount, at, reason)
};

/// Transfers of at least this amount wait for an approval.
inline constexpr int64_t approval_limit = 1'000;
inline constexpr auto approval_timeout = std::chrono::minutes(1);

/// While set, a transfer from the account "poison" makes the handler throw.
inline std::atomic<bool> poison_active{true};

struct transfer_saga {
  using state = transfer_state;
  using event = transfer_event;
  using command = account_op;
  using step = evident::saga_step<state, command>;
  static constexpr std::string_view name = "transfer";

  static void register_events(evident::type_registry<event>& r) {
    transfer_aggregate::register_events(r);
  }

  static evident::saga_route route(const event& e) {
    if (const auto* r = std::get_if<transfer_requested>(&e))
      return evident::starts(r->id);
    return evident::continues(std::get<transfer_approved>(e).id);
  }

  static evident::command_box to_aggregate(const account_op& op) {
    if (op.deposit)
      return evident::box_command(bank::account_command{bank::deposit{op.amount}});
    return evident::box_command(bank::account_command{bank::withdraw{op.amount}});
  }

  static step debit(state s) {
    s.at = static_cast<uint8_t>(phase::debiting);
    step next{s};
    next.send("debit", "account", s.from, account_op{false, s.amount});
    return next;
  }

  static step handle(const state& s, const evident::saga_input<event>& in) {
    if (const auto* r = in.event_as<transfer_requested>()) {
      if (r->from == "poison" && poison_active)
        throw std::runtime_error("poisoned transfer");
      if (s.at != static_cast<uint8_t>(phase::start))
        return step{s};
      state n{r->from, r->to, r->amount, static_cast<uint8_t>(phase::start), {}};
      if (r->amount >= approval_limit) {
        n.at = static_cast<uint8_t>(phase::approval);
        step next{n};
        next.set_deadline("approval", approval_timeout);
        return next;
      }
      return debit(n);
    }
    if (in.event_as<transfer_approved>() != nullptr) {
      if (s.at != static_cast<uint8_t>(phase::approval))
        return step{s};
      auto next = debit(s);
      next.cancel_deadline("approval");
      return next;
    }
    if (in.is_deadline("approval")) {
      state n = s;
      n.reason = "approval timed out";
      n.at = static_cast<uint8_t>(phase::done);
      return step{n}.fail();
    }
    const auto* reply = in.outcome.reply_as<bank::account_reply>();
    bool ok = in.outcome.ok() && reply != nullptr && reply->ok;
    std::string why = !in.outcome.ok() ? evident::to_string(in.outcome.error)
                      : reply != nullptr ? reply->reason
                                         : "reply of another type";
    state n = s;
    if (in.is_outcome("debit")) {
      if (!ok) {
        n.reason = "debit refused: " + why;
        n.at = static_cast<uint8_t>(phase::done);
        return step{n}.fail();
      }
      n.at = static_cast<uint8_t>(phase::crediting);
      step next{n};
      next.send("credit", "account", s.to, account_op{true, s.amount});
      return next;
    }
    if (in.is_outcome("credit")) {
      if (ok) {
        n.at = static_cast<uint8_t>(phase::done);
        return step{n}.complete();
      }
      n.reason = "credit refused: " + why;
      n.at = static_cast<uint8_t>(phase::refunding);
      step next{n};
      next.send("refund", "account", s.from, account_op{true, s.amount});
      return next;
    }
    if (in.is_outcome("refund")) {
      n.at = static_cast<uint8_t>(phase::done);
      if (ok)
        return step{n}.compensated();
      n.reason += "; refund refused: " + why;
      return step{n}.fail();
    }
    return step{s};
  }
};

} // namespace transfers
