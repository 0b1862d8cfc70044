#pragma once

// Transfers between two bank accounts: a transfer aggregate that records the request,
// and the choreography saga that moves the money.
//
//   transfer_requested ──▶ debit `from` (withdraw) ──refused──▶ failed (nothing moved)
//                               │ ok
//                               ▼
//                          credit `to` (deposit) ──ok──▶ completed
//                               │ refused (closed, unknown, over the limit)
//                               ▼
//                          refund `from` (deposit) ──ok──▶ compensated
//
// The saga's commands carry deterministic command ids (saga stream + step), so a
// restart between any two steps never debits or credits twice.

#include "account.hpp"

#include "evident/actors/aggregate.hpp"
#include "evident/sagas/saga.hpp"

#include <msgpack.hpp>

#include <cstdint>
#include <string>
#include <variant>

namespace bank {

// -- the transfer aggregate ------------------------------------------------------------

struct transfer_requested {
  std::string id;
  std::string from;
  std::string to;
  int64_t amount = 0;
  MSGPACK_DEFINE(id, from, to, amount)
};

using transfer_event = std::variant<transfer_requested>;

struct transfer_record {
  bool requested = false;
  MSGPACK_DEFINE(requested)
};

/// The id repeats the aggregate id: decide cannot see it, and the saga routes by it.
struct request_transfer {
  std::string id;
  std::string from;
  std::string to;
  int64_t amount = 0;
};

enum class transfer_refusal : uint8_t { none = 0, exists, invalid_amount, same_account };

} // namespace bank

MSGPACK_ADD_ENUM(bank::transfer_refusal);

namespace bank {

struct transfer_reply {
  transfer_refusal refused = transfer_refusal::none;
  MSGPACK_DEFINE(refused)
  bool ok() const noexcept {
    return refused == transfer_refusal::none;
  }
};

struct transfer_aggregate {
  using state = transfer_record;
  using command = request_transfer;
  using event = transfer_event;
  using reply = transfer_reply;
  static constexpr std::string_view name = "transfer"; // streams "transfer-<id>"

  static void register_events(evident::type_registry<event>& r) {
    r.add<transfer_requested>("bank.transfer_requested");
  }

  static evident::effect<state, event, reply> decide(const state& s, const command& c) {
    if (s.requested)
      return evident::reply(transfer_reply{transfer_refusal::exists});
    if (c.amount <= 0)
      return evident::reply(transfer_reply{transfer_refusal::invalid_amount});
    if (c.from == c.to)
      return evident::reply(transfer_reply{transfer_refusal::same_account});
    return evident::persist(transfer_requested{c.id, c.from, c.to, c.amount})
      .then_reply_value(transfer_reply{});
  }

  static state apply(state s, const event&) {
    s.requested = true;
    return s;
  }
};

// -- the saga --------------------------------------------------------------------------

/// What the saga asks of an account (kept in its outbox, so msgpack).
struct money_move {
  bool deposit = false;
  int64_t amount = 0;
  MSGPACK_DEFINE(deposit, amount)
};

struct transfer_progress {
  std::string from;
  std::string to;
  int64_t amount = 0;
  /// Why it failed or was compensated; empty while it goes well.
  std::string reason;
  MSGPACK_DEFINE(from, to, amount, reason)
};

struct transfer_saga {
  using state = transfer_progress;
  using event = transfer_event;
  using command = money_move;
  using step = evident::saga_step<state, command>;
  static constexpr std::string_view name = "transfer";

  static void register_events(evident::type_registry<event>& r) {
    transfer_aggregate::register_events(r);
  }

  static evident::saga_route route(const event& e) {
    return evident::starts(std::get<transfer_requested>(e).id);
  }

  static evident::command_box to_aggregate(const money_move& m) {
    account_command c;
    if (m.deposit)
      c.action = deposit{m.amount};
    else
      c.action = withdraw{m.amount};
    return evident::box_command(std::move(c));
  }

  static step handle(const state& s, const evident::saga_input<event>& in) {
    if (const auto* r = in.event_as<transfer_requested>()) {
      if (!s.from.empty()) // a start event for a running transfer: nothing new
        return step{s};
      step next{state{r->from, r->to, r->amount, {}}};
      next.send("debit", "account", r->from, money_move{false, r->amount});
      return next;
    }
    const auto* reply = in.outcome.reply_as<account_reply>();
    bool ok = in.outcome.ok() && reply != nullptr && reply->ok();
    std::string why = !in.outcome.ok()   ? evident::to_string(in.outcome.error)
                      : reply != nullptr ? std::string{to_string(reply->refused)}
                                         : "unexpected reply";
    state n = s;
    if (in.is_outcome("debit")) {
      if (!ok) {
        n.reason = "debit of " + s.from + " refused: " + why;
        return step{n}.fail();
      }
      step next{n};
      next.send("credit", "account", s.to, money_move{true, s.amount});
      return next;
    }
    if (in.is_outcome("credit")) {
      if (ok)
        return step{n}.complete();
      n.reason = "credit of " + s.to + " refused: " + why;
      step next{n};
      next.send("refund", "account", s.from, money_move{true, s.amount});
      return next;
    }
    if (in.is_outcome("refund")) {
      if (ok)
        return step{n}.compensated();
      n.reason += "; refund of " + s.from + " refused: " + why;
      return step{n}.fail();
    }
    return step{s};
  }
};

} // namespace bank
