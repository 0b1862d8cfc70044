// The licence spec: its rules on the test kit (given events, when a command, then events
// and reply), then the limit under concurrent starts on a real runtime.

#include <boost/test/unit_test.hpp>

#include "downloads/license.hpp"
#include "print.hpp"

#include "evident/actors/test_kit.hpp"
#include "evident/runtime/runtime.hpp"

#include "support/temp_dir.hpp"

#include <chrono>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using namespace downloads;

namespace {

using kit = evident::test_kit<license_aggregate>;

} // namespace

BOOST_AUTO_TEST_SUITE(license_spec)

BOOST_AUTO_TEST_CASE(open_sets_the_limit_once) {
  kit k;
  auto r = k.when(open{2});
  BOOST_TEST(r.events_are(opened{2}));
  BOOST_TEST(r.reply().limit == 2u);
  auto again = k.when(open{5});
  BOOST_TEST(again.events().empty());
  BOOST_TEST(again.reply().refused == refusal::already_open);
  BOOST_TEST(again.reply().limit == 2u);
}

BOOST_AUTO_TEST_CASE(commands_before_open_are_refused_with_not_open) {
  for (const license_command& c :
       {license_command{set_limit{1}}, license_command{start_download{"tv", "d1", "t"}},
        license_command{finish_download{"d1"}}, license_command{revoke_device{"tv"}}}) {
    auto r = kit{}.when(c);
    BOOST_TEST(r.events().empty());
    BOOST_TEST(r.reply().refused == refusal::not_open);
  }
}

BOOST_AUTO_TEST_CASE(a_start_at_the_limit_is_refused_with_the_active_count_and_the_limit) {
  kit k;
  k.given(opened{2}, download_started{"tv", "d1", "A"}, download_started{"phone", "d2", "B"});
  auto r = k.when(start_download{"tablet", "d3", "C"});
  BOOST_TEST(r.events().empty());
  BOOST_TEST(r.reply().refused == refusal::limit_reached);
  BOOST_TEST(r.reply().active == 2u);
  BOOST_TEST(r.reply().limit == 2u);
}

BOOST_AUTO_TEST_CASE(finishing_a_download_frees_a_slot) {
  kit k;
  k.given(opened{1}, download_started{"tv", "d1", "A"});
  auto fin = k.when(finish_download{"d1"});
  BOOST_TEST(fin.events_are(download_finished{"tv", "d1"}));
  BOOST_TEST(fin.reply().active == 0u);
  auto next = k.when(start_download{"phone", "d2", "B"});
  BOOST_TEST(next.events_are(download_started{"phone", "d2", "B"}));
  BOOST_TEST(next.reply().active == 1u);
  BOOST_TEST(k.when(finish_download{"d1"}).reply().refused == refusal::unknown_download);
}

BOOST_AUTO_TEST_CASE(revoking_a_device_ends_its_downloads_and_refuses_its_next_start) {
  kit k;
  k.given(opened{3}, download_started{"tv", "d1", "A"}, download_started{"phone", "d2", "B"},
          download_started{"tv", "d3", "C"});
  auto r = k.when(revoke_device{"tv"});
  BOOST_TEST(r.events_are(device_revoked{"tv", {"d1", "d3"}}));
  BOOST_TEST(r.reply().active == 1u);
  BOOST_TEST(r.state().active.count("d2") == 1u);
  auto start = k.when(start_download{"tv", "d4", "D"});
  BOOST_TEST(start.events().empty());
  BOOST_TEST(start.reply().refused == refusal::device_revoked);
  BOOST_TEST(k.when(finish_download{"d1"}).reply().refused == refusal::unknown_download);
  BOOST_TEST(k.when(revoke_device{"tv"}).reply().refused == refusal::device_revoked);
  // The freed slots serve the other devices.
  BOOST_TEST(k.when(start_download{"phone", "d4", "D"}).reply().active == 2u);
}

BOOST_AUTO_TEST_CASE(lowering_the_limit_keeps_running_downloads_and_refuses_new_starts) {
  kit k;
  k.given(opened{3}, download_started{"tv", "d1", "A"}, download_started{"tv", "d2", "B"});
  auto lower = k.when(set_limit{1});
  BOOST_TEST(lower.events_are(limit_changed{1}));
  BOOST_TEST(lower.reply().active == 2u); // over the new limit, not cancelled
  BOOST_TEST(lower.reply().limit == 1u);
  BOOST_TEST(k.when(start_download{"tv", "d3", "C"}).reply().refused == refusal::limit_reached);
  k.when(finish_download{"d1"});
  // 1 active of 1: still full.
  BOOST_TEST(k.when(start_download{"tv", "d3", "C"}).reply().refused == refusal::limit_reached);
  k.when(finish_download{"d2"});
  BOOST_TEST(k.when(start_download{"tv", "d3", "C"}).reply().ok());
}

BOOST_AUTO_TEST_CASE(a_retried_command_id_returns_the_original_reply_without_deciding_again) {
  kit k;
  k.given(opened{2});
  auto first = k.when(start_download{"tv", "d1", "A"}, "cmd-1");
  BOOST_TEST(first.reply().active == 1u);
  k.when(start_download{"tv", "d2", "B"}, "cmd-2");
  auto retry = k.when(start_download{"tv", "d1", "A"}, "cmd-1");
  BOOST_TEST(retry.duplicate());
  BOOST_TEST(retry.events().empty());
  BOOST_TEST(retry.reply().ok()); // not download_exists nor limit_reached
  BOOST_TEST(retry.reply().active == 1u);
  BOOST_TEST(retry.version() == 3u);
}

BOOST_AUTO_TEST_CASE(bad_input_is_refused_as_invalid_request_and_persists_nothing) {
  kit k;
  BOOST_TEST(k.when(open{max_limit + 1}).reply().refused == refusal::invalid_request);
  k.given(opened{2}, download_started{"tv", "d1", "A"});
  BOOST_TEST(k.when(set_limit{max_limit + 1}).reply().refused == refusal::invalid_request);
  BOOST_TEST(k.when(start_download{"", "d2", "B"}).reply().refused == refusal::invalid_request);
  BOOST_TEST(k.when(start_download{"tv", "", "B"}).reply().refused == refusal::invalid_request);
  BOOST_TEST(k.when(revoke_device{""}).reply().refused == refusal::invalid_request);
  auto dup = k.when(start_download{"phone", "d1", "A"});
  BOOST_TEST(dup.reply().refused == refusal::download_exists);
  BOOST_TEST(dup.version() == 2u); // only the given events
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(license_on_a_runtime)

// 8 clients race 40 starts on one account with room for 5: the aggregate decides them
// one at a time, so exactly 5 are accepted whatever the interleaving.
BOOST_AUTO_TEST_CASE(concurrent_starts_never_exceed_the_limit) {
  constexpr uint32_t limit = 5;
  constexpr int clients = 8;
  constexpr int per_client = 5;
  evident::test::temp_dir dir;
  evident::runtime_config cfg;
  cfg.storage.data_dir = dir.str();
  cfg.storage.sync = evident::durability::no_sync;
  cfg.requests.ask_timeout = 10s;
  evident::runtime rt{cfg};
  rt.register_aggregate<license_aggregate>();
  BOOST_REQUIRE(rt.ask<license_aggregate>("acme", open{limit}).has_value());

  std::vector<std::vector<evident::expected<license_reply>>> results(clients);
  {
    std::vector<std::jthread> threads;
    for (int c = 0; c < clients; ++c)
      threads.emplace_back([&, c] {
        for (int i = 0; i < per_client; ++i) {
          auto id = "c" + std::to_string(c) + "-" + std::to_string(i);
          results[c].push_back(rt.ask<license_aggregate>(
              "acme", start_download{"dev" + std::to_string(c), id, "t"}, "cmd-" + id));
        }
      });
  }
  uint32_t accepted = 0;
  uint32_t refused = 0;
  for (const auto& client : results)
    for (const auto& r : client) {
      BOOST_REQUIRE_MESSAGE(r.has_value(), evident::to_string(r.err()));
      if (r->ok()) {
        ++accepted;
        BOOST_TEST(r->active <= limit);
      } else {
        ++refused;
        BOOST_TEST(r->refused == refusal::limit_reached);
        BOOST_TEST(r->active == limit);
        BOOST_TEST(r->limit == limit);
      }
    }
  BOOST_TEST(accepted == limit);
  BOOST_TEST(refused == clients * per_client - limit);
  auto st = rt.state_of<license_aggregate>("acme");
  BOOST_REQUIRE(st.has_value());
  BOOST_TEST(st->state.active.size() == limit);
  BOOST_TEST(!rt.stop());
}

BOOST_AUTO_TEST_SUITE_END()
