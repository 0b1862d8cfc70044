#pragma once

// The per-account downloads view: a durable view over every licence's events. Rows (LMDB
// DB "view.account_downloads", written with the view's position in one transaction):
//
//   "a/<account>" -> account_row {limit, finished, revoked, devices: name -> device_row}
//   "totals"      -> totals_row {accounts, active}
//
// One row per account keeps a query to one read (an account has a handful of devices);
// "totals" is the top-level count without a scan.

#include "license.hpp"

#include "evident/actors/view.hpp"

#include <msgpack.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace downloads {

struct account_downloads_query {
  std::string account;
};

struct device_downloads {
  std::string device;
  bool revoked = false;
  /// Active downloads: id -> title.
  std::map<std::string, std::string> active;
};

struct account_downloads_result {
  bool found = false; // the account was opened
  uint32_t limit = 0;
  uint64_t active = 0; // across the account's devices
  uint64_t finished = 0;
  uint64_t revoked = 0; // downloads ended by revoking their device
  std::vector<device_downloads> devices;
  // Every account's figures, for the top-level count.
  uint64_t all_accounts = 0;
  uint64_t all_active = 0;
};

struct account_downloads_view {
  using event = license_event;
  using query = account_downloads_query;
  using result = account_downloads_result;
  static constexpr std::string_view name = "account_downloads";

  struct device_row {
    bool revoked = false;
    std::map<std::string, std::string> active;
    MSGPACK_DEFINE(revoked, active)
  };
  struct account_row {
    uint32_t limit = 0;
    uint64_t finished = 0;
    uint64_t revoked = 0;
    std::map<std::string, device_row> devices;
    MSGPACK_DEFINE(limit, finished, revoked, devices)
  };
  struct totals_row {
    uint64_t accounts = 0;
    uint64_t active = 0;
    MSGPACK_DEFINE(accounts, active)
  };

  static void register_events(evident::type_registry<event>& r) {
    license_aggregate::register_events(r);
  }

  static evident::subscription_filter filter() {
    evident::subscription_filter f;
    f.categories = {"license"};
    return f;
  }

  static void project(evident::view_rows& rows, const evident::recorded_event& meta,
                      const event& e) {
    auto key = "a/" + account_of(meta.stream);
    auto row = rows.get_as<account_row>(key).value_or(account_row{});
    auto totals = rows.get_as<totals_row>("totals").value_or(totals_row{});
    std::visit(
        [&](const auto& ev) {
          using T = std::decay_t<decltype(ev)>;
          if constexpr (std::is_same_v<T, opened>) {
            row.limit = ev.limit;
            ++totals.accounts;
          } else if constexpr (std::is_same_v<T, limit_changed>) {
            row.limit = ev.limit;
          } else if constexpr (std::is_same_v<T, download_started>) {
            row.devices[ev.device].active[ev.download_id] = ev.title;
            ++totals.active;
          } else if constexpr (std::is_same_v<T, download_finished>) {
            row.devices[ev.device].active.erase(ev.download_id);
            ++row.finished;
            --totals.active;
          } else if constexpr (std::is_same_v<T, device_revoked>) {
            auto& dev = row.devices[ev.device];
            dev.revoked = true;
            dev.active.clear();
            row.revoked += ev.download_ids.size();
            totals.active -= ev.download_ids.size();
          }
        },
        e);
    rows.put_as(key, row);
    rows.put_as("totals", totals);
  }

  static result ask(const evident::view_rows& rows, const query& q) {
    result out;
    if (auto t = rows.get_as<totals_row>("totals")) {
      out.all_accounts = t->accounts;
      out.all_active = t->active;
    }
    auto row = rows.get_as<account_row>("a/" + q.account);
    if (!row)
      return out;
    out.found = true;
    out.limit = row->limit;
    out.finished = row->finished;
    out.revoked = row->revoked;
    for (auto& [device, d] : row->devices) {
      out.active += d.active.size();
      out.devices.push_back(device_downloads{device, d.revoked, std::move(d.active)});
    }
    return out;
  }

private:
  static std::string account_of(std::string_view stream) {
    constexpr std::string_view prefix = "license-";
    if (stream.starts_with(prefix))
      stream.remove_prefix(prefix.size());
    return std::string{stream};
  }
};

} // namespace downloads
