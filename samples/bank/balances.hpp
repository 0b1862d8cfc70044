#pragma once

// The balances report: a durable view over every account's events. Rows (LMDB DB
// "view.balances", written with the view's position in one transaction):
//
//   "a/<id>"                      -> account_row {balance, open}
//   "r/<~balance, 8 bytes BE><id>" -> empty: a rank index, largest balance first
//   "totals"                      -> totals_row {total balance, open accounts}
//
// so the report reads the totals row and the first ten rank keys instead of every
// account.

#include "account.hpp"

#include "evident/actors/view.hpp"

#include <msgpack.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace bank {

struct balances_query {
  /// How many of the largest accounts to list.
  size_t top = 10;
};

struct ranked_account {
  std::string id;
  int64_t balance = 0;
};

struct balances_report {
  int64_t total_balance = 0;
  uint64_t open_accounts = 0;
  std::vector<ranked_account> largest;
};

struct balances_view {
  using event = account_event;
  using query = balances_query;
  using result = balances_report;
  static constexpr std::string_view name = "balances";

  struct account_row {
    int64_t balance = 0;
    bool open = false;
    MSGPACK_DEFINE(balance, open)
  };
  struct totals_row {
    int64_t total = 0;
    uint64_t open = 0;
    MSGPACK_DEFINE(total, open)
  };

  static void register_events(evident::type_registry<event>& r) {
    account_aggregate::register_events(r);
  }

  static evident::subscription_filter filter() {
    evident::subscription_filter f;
    f.categories = {"account"};
    return f;
  }

  static void project(evident::view_rows& rows, const evident::recorded_event& meta,
                      const event& e) {
    auto id = account_id(meta.stream);
    auto before = rows.get_as<account_row>("a/" + id).value_or(account_row{});
    auto after = before;
    std::visit(
      [&](const auto& ev) {
        using T = std::decay_t<decltype(ev)>;
        if constexpr (std::is_same_v<T, opened>)
          after.open = true;
        else if constexpr (std::is_same_v<T, deposited>)
          after.balance += ev.amount;
        else if constexpr (std::is_same_v<T, withdrawn>)
          after.balance -= ev.amount;
        else if constexpr (std::is_same_v<T, closed>)
          after.open = false;
      },
      e);
    auto totals = rows.get_as<totals_row>("totals").value_or(totals_row{});
    totals.total += after.balance - before.balance;
    totals.open = totals.open + (after.open ? 1 : 0) - (before.open ? 1 : 0);
    if (before.open)
      rows.erase(rank_key(before.balance, id));
    if (after.open)
      rows.put(rank_key(after.balance, id), {});
    rows.put_as("a/" + id, after);
    rows.put_as("totals", totals);
  }

  static balances_report ask(const evident::view_rows& rows, const balances_query& q) {
    balances_report out;
    if (auto t = rows.get_as<totals_row>("totals")) {
      out.total_balance = t->total;
      out.open_accounts = t->open;
    }
    rows.for_each("r/", [&](std::string_view key, std::string_view) {
      if (out.largest.size() >= q.top)
        return false;
      std::string id{key.substr(2 + 8)};
      auto row = rows.get_as<account_row>("a/" + id).value_or(account_row{});
      out.largest.push_back(ranked_account{std::move(id), row.balance});
      return true;
    });
    return out;
  }

private:
  static std::string account_id(std::string_view stream) {
    constexpr std::string_view prefix = "account-";
    if (stream.substr(0, prefix.size()) == prefix)
      stream.remove_prefix(prefix.size());
    return std::string{stream};
  }

  /// Balances are >= 0 (withdrawals never overdraw), so the bitwise complement of the
  /// big-endian balance sorts the largest first.
  static std::string rank_key(int64_t balance, const std::string& id) {
    auto inverted = ~static_cast<uint64_t>(balance);
    std::string key = "r/";
    for (int shift = 56; shift >= 0; shift -= 8)
      key.push_back(static_cast<char>((inverted >> shift) & 0xff));
    key += id;
    return key;
  }
};

} // namespace bank
