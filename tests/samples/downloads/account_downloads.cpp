// The per-account downloads view on a runtime: it agrees with the licence aggregates,
// also after a restart on the same data dir (it resumes from its stored position), and
// a command retried after the restart gets its original reply. Real scheduler and LMDB.

#include <boost/test/unit_test.hpp>

#include "downloads/account_downloads.hpp"
#include "downloads/license.hpp"
#include "print.hpp"

#include "evident/runtime/runtime.hpp"

#include "support/temp_dir.hpp"

#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>

using namespace std::chrono_literals;
using namespace downloads;

namespace {

std::unique_ptr<evident::runtime> start(const evident::test::temp_dir& dir) {
  evident::runtime_config cfg;
  cfg.storage.data_dir = dir.str();
  cfg.storage.sync = evident::durability::no_sync;
  cfg.requests.ask_timeout = 10s;
  cfg.shutdown.drain_timeout = 10s;
  auto rt = std::make_unique<evident::runtime>(cfg);
  rt->register_aggregate<license_aggregate>();
  rt->register_view<account_downloads_view>();
  return rt;
}

license_reply command(evident::runtime& rt, const std::string& account, license_command c,
                      const std::string& command_id = {}) {
  auto r = rt.ask<license_aggregate>(account, std::move(c), command_id);
  BOOST_REQUIRE_MESSAGE(r.has_value(), "command to " << account);
  return *r;
}

/// The view of `account` once it has applied everything written so far.
account_downloads_result view_of(evident::runtime& rt, const std::string& account) {
  auto head = rt.journal()->last_position();
  BOOST_REQUIRE(head.has_value());
  auto v = rt.query<account_downloads_view>(account_downloads_query{account}, *head, 10s);
  BOOST_REQUIRE_MESSAGE(v.has_value(), "view of " << account);
  return *v;
}

/// Checks the view of `account` against the aggregate's own state; returns its active count.
uint64_t check_view_matches_aggregate(evident::runtime& rt, const std::string& account) {
  auto st = rt.state_of<license_aggregate>(account);
  BOOST_REQUIRE(st.has_value());
  auto v = view_of(rt, account);
  BOOST_TEST(v.found);
  BOOST_TEST(v.limit == st->state.limit);
  BOOST_TEST(v.active == st->state.active.size());
  std::map<std::string, std::map<std::string, std::string>> by_device;
  for (const auto& [id, d] : st->state.active)
    by_device[d.device][id] = d.title;
  std::set<std::string> revoked;
  for (const auto& d : v.devices) {
    if (d.revoked)
      revoked.insert(d.device);
    if (!d.active.empty())
      BOOST_TEST((d.active == by_device[d.device]), account << "/" << d.device);
    else
      BOOST_TEST(by_device[d.device].empty(), account << "/" << d.device);
  }
  BOOST_TEST((revoked == st->state.revoked));
  return v.active;
}

} // namespace

BOOST_AUTO_TEST_SUITE(account_downloads)

BOOST_AUTO_TEST_CASE(the_view_matches_the_aggregates_after_a_restart) {
  evident::test::temp_dir dir;
  {
    auto rt = start(dir);
    command(*rt, "acme", open{3});
    command(*rt, "acme", start_download{"laptop", "d1", "A"}, "s1");
    command(*rt, "acme", start_download{"phone", "d2", "B"}, "s2");
    command(*rt, "acme", start_download{"laptop", "d3", "C"}, "s3");
    BOOST_TEST(command(*rt, "acme", start_download{"tv", "d4", "D"}).refused
               == refusal::limit_reached);
    command(*rt, "acme", finish_download{"d2"});
    command(*rt, "acme", revoke_device{"laptop"});
    command(*rt, "beta", open{1});
    command(*rt, "beta", start_download{"tv", "x1", "X"});
    BOOST_TEST(!rt->stop());
  }
  auto rt = start(dir);
  // A retry after the restart: the original reply (1 of 3 active then), not a new start.
  auto retry = command(*rt, "acme", start_download{"laptop", "d1", "A"}, "s1");
  BOOST_TEST(retry.ok());
  BOOST_TEST(retry.active == 1u);
  command(*rt, "acme", start_download{"phone", "d5", "E"});
  command(*rt, "beta", finish_download{"x1"});

  auto acme = view_of(*rt, "acme");
  BOOST_TEST(acme.finished == 1u);
  BOOST_TEST(acme.revoked == 2u); // d1 and d3 with the laptop
  BOOST_TEST(acme.active == 1u);  // d5; the retry started nothing
  BOOST_TEST(acme.all_accounts == 2u);
  BOOST_TEST(acme.all_active == 1u);
  BOOST_TEST(check_view_matches_aggregate(*rt, "acme") == 1u);
  BOOST_TEST(check_view_matches_aggregate(*rt, "beta") == 0u);
  BOOST_TEST(!rt->stop());
}

BOOST_AUTO_TEST_CASE(an_unknown_account_is_not_found_but_gets_the_top_level_count) {
  evident::test::temp_dir dir;
  auto rt = start(dir);
  command(*rt, "acme", open{2});
  command(*rt, "acme", start_download{"tv", "d1", "A"});
  auto v = view_of(*rt, "nobody");
  BOOST_TEST(!v.found);
  BOOST_TEST(v.devices.empty());
  BOOST_TEST(v.all_accounts == 1u);
  BOOST_TEST(v.all_active == 1u);
  BOOST_TEST(!rt->stop());
}

BOOST_AUTO_TEST_SUITE_END()
