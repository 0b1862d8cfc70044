#pragma once

// Download licensing, as an evident aggregate spec: one License per account (stream
// "license-<account>"). The account's devices together may hold at most `limit` active
// downloads. Plain C++ and msgpack; no CAF.
//
//   open(limit)                         -> opened            refused: already_open
//   set_limit(n)                        -> limit_changed     refused: not_open
//   start_download(device, id, title)   -> download_started  refused: not_open,
//                                          limit_reached, device_revoked, download_exists
//   finish_download(id)                 -> download_finished refused: not_open,
//                                                                     unknown_download
//   revoke_device(device)               -> device_revoked    refused: not_open,
//                                                                     device_revoked
//   (any: empty names, a limit above max_limit -> invalid_request)
//
// The invariant, checked in one place (start_download): active downloads across all
// devices <= limit whenever a download starts. The aggregate decides its commands one at
// a time against the state that includes every earlier accepted command (also ones still
// being written), so concurrent starts can never overshoot.
//
// Lowering the limit below the active count is accepted: running downloads go on (a
// licence change does not break a transfer in progress), and new starts are refused with
// limit_reached until finishes or revocations bring the count below the new limit.
//
// Revoking a device ends its active downloads (listed in the event, so readers need no
// lookup) and refuses its later starts. Download ids are unique among active downloads
// of the account; a finished id may be used again.
//
// Retries: pass a command id. A committed command's retry gets the original reply
// (stored with its event). A refusal persists nothing, so its retry is decided again.

#include "evident/actors/aggregate.hpp"
#include "evident/actors/effect.hpp"

#include <msgpack.hpp>

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace downloads {

/// The highest limit an account may have (a sanity bound on input, not a business rule).
inline constexpr uint32_t max_limit = 1000;

// -- events (stored forever: names and shapes are a contract) --------------------------

struct opened {
  uint32_t limit = 0;
  MSGPACK_DEFINE(limit)
  bool operator==(const opened&) const = default;
};

struct limit_changed {
  uint32_t limit = 0;
  MSGPACK_DEFINE(limit)
  bool operator==(const limit_changed&) const = default;
};

struct download_started {
  std::string device;
  std::string download_id;
  std::string title;
  MSGPACK_DEFINE(device, download_id, title)
  bool operator==(const download_started&) const = default;
};

struct download_finished {
  std::string device;
  std::string download_id;
  MSGPACK_DEFINE(device, download_id)
  bool operator==(const download_finished&) const = default;
};

struct device_revoked {
  std::string device;
  /// The device's downloads that were active and are now ended.
  std::vector<std::string> download_ids;
  MSGPACK_DEFINE(device, download_ids)
  bool operator==(const device_revoked&) const = default;
};

using license_event
    = std::variant<opened, limit_changed, download_started, download_finished, device_revoked>;

// -- state ----------------------------------------------------------------------------

struct active_download {
  std::string device;
  std::string title;
  MSGPACK_DEFINE(device, title)
  bool operator==(const active_download&) const = default;
};

struct license {
  bool open = false;
  uint32_t limit = 0;
  std::map<std::string, active_download> active; // by download id
  std::set<std::string> revoked;                 // devices
  MSGPACK_DEFINE(open, limit, active, revoked)
  bool operator==(const license&) const = default;
};

// -- commands -------------------------------------------------------------------------

struct open {
  uint32_t limit = 0;
};
struct set_limit {
  uint32_t limit = 0;
};
struct start_download {
  std::string device;
  std::string download_id;
  std::string title;
};
struct finish_download {
  std::string download_id;
};
struct revoke_device {
  std::string device;
};

using license_command
    = std::variant<open, set_limit, start_download, finish_download, revoke_device>;

// -- reply ----------------------------------------------------------------------------

/// Why a command was refused. A refusal persists nothing.
enum class refusal : uint8_t {
  none = 0,
  already_open,
  not_open,
  limit_reached,
  device_revoked,
  download_exists,
  unknown_download,
  invalid_request,
};

} // namespace downloads

MSGPACK_ADD_ENUM(downloads::refusal);

namespace downloads {

constexpr std::string_view to_string(refusal x) noexcept {
  switch (x) {
    case refusal::none:
      return "none";
    case refusal::already_open:
      return "already_open";
    case refusal::not_open:
      return "not_open";
    case refusal::limit_reached:
      return "limit_reached";
    case refusal::device_revoked:
      return "device_revoked";
    case refusal::download_exists:
      return "download_exists";
    case refusal::unknown_download:
      return "unknown_download";
    case refusal::invalid_request:
      return "invalid_request";
  }
  return "unknown";
}

/// The answer to every command: the licence's counts after it (or as they are, for a
/// refusal; limit_reached thus carries the active count and the limit that refused).
struct license_reply {
  refusal refused = refusal::none;
  uint32_t active = 0;
  uint32_t limit = 0;
  MSGPACK_DEFINE(refused, active, limit)

  bool ok() const noexcept {
    return refused == refusal::none;
  }
};

// -- the spec -------------------------------------------------------------------------

struct license_aggregate {
  using state = license;
  using command = license_command;
  using event = license_event;
  using reply = license_reply;
  using effect = evident::effect<state, event, reply>;

  static constexpr std::string_view name = "license"; // streams "license-<account>"
  static constexpr std::string_view state_type = "downloads.license";
  static constexpr uint32_t state_schema = 1;

  static void register_events(evident::type_registry<event>& r) {
    r.add<opened>("downloads.opened")
        .add<limit_changed>("downloads.limit_changed")
        .add<download_started>("downloads.download_started")
        .add<download_finished>("downloads.download_finished")
        .add<device_revoked>("downloads.device_revoked");
  }

  static effect decide(const license& s, const license_command& c) {
    return std::visit([&](const auto& cmd) { return on(s, cmd); }, c);
  }

  static license apply(license s, const license_event& e) {
    std::visit([&](const auto& ev) { on_event(s, ev); }, e);
    return s;
  }

  static license_reply reply_of(const license& s) {
    return {refusal::none, static_cast<uint32_t>(s.active.size()), s.limit};
  }

private:
  static effect refuse(const license& s, refusal why) {
    auto r = reply_of(s);
    r.refused = why;
    return evident::reply(r);
  }

  static effect on(const license& s, const open& c) {
    if (c.limit > max_limit)
      return refuse(s, refusal::invalid_request);
    if (s.open)
      return refuse(s, refusal::already_open);
    return evident::persist(opened{c.limit}).then_reply(reply_of);
  }

  static effect on(const license& s, const set_limit& c) {
    if (c.limit > max_limit)
      return refuse(s, refusal::invalid_request);
    if (!s.open)
      return refuse(s, refusal::not_open);
    return evident::persist(limit_changed{c.limit}).then_reply(reply_of);
  }

  static effect on(const license& s, const start_download& c) {
    if (c.device.empty() || c.download_id.empty())
      return refuse(s, refusal::invalid_request);
    if (!s.open)
      return refuse(s, refusal::not_open);
    if (s.revoked.contains(c.device))
      return refuse(s, refusal::device_revoked);
    if (s.active.contains(c.download_id))
      return refuse(s, refusal::download_exists);
    if (s.active.size() >= s.limit) // the invariant
      return refuse(s, refusal::limit_reached);
    return evident::persist(download_started{c.device, c.download_id, c.title})
        .then_reply(reply_of);
  }

  static effect on(const license& s, const finish_download& c) {
    if (!s.open)
      return refuse(s, refusal::not_open);
    auto i = s.active.find(c.download_id);
    if (i == s.active.end())
      return refuse(s, refusal::unknown_download);
    return evident::persist(download_finished{i->second.device, c.download_id})
        .then_reply(reply_of);
  }

  static effect on(const license& s, const revoke_device& c) {
    if (c.device.empty())
      return refuse(s, refusal::invalid_request);
    if (!s.open)
      return refuse(s, refusal::not_open);
    if (s.revoked.contains(c.device))
      return refuse(s, refusal::device_revoked);
    device_revoked ev{c.device, {}};
    for (const auto& [id, d] : s.active)
      if (d.device == c.device)
        ev.download_ids.push_back(id);
    return evident::persist(std::move(ev)).then_reply(reply_of);
  }

  static void on_event(license& s, const opened& e) {
    s.open = true;
    s.limit = e.limit;
  }
  static void on_event(license& s, const limit_changed& e) {
    s.limit = e.limit;
  }
  static void on_event(license& s, const download_started& e) {
    s.active[e.download_id] = active_download{e.device, e.title};
  }
  static void on_event(license& s, const download_finished& e) {
    s.active.erase(e.download_id);
  }
  static void on_event(license& s, const device_revoked& e) {
    for (const auto& id : e.download_ids)
      s.active.erase(id);
    s.revoked.insert(e.device);
  }
};

} // namespace downloads
