// The remaining-seats view: its projection on in-memory rows, one event at a time.

#include <boost/test/unit_test.hpp>

#include "print.hpp"

#include "conference/remaining_seats.hpp"

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

using namespace conference;

namespace {

/// Rows in a std::map, as an in-memory view keeps them.
class map_rows final : public evident::view_rows {
public:
  std::optional<std::string> get(std::string_view key) const override {
    auto i = rows_.find(std::string{key});
    return i == rows_.end() ? std::nullopt : std::optional<std::string>{i->second};
  }
  void put(std::string_view key, std::string_view value) override {
    rows_[std::string{key}] = std::string{value};
  }
  void erase(std::string_view key) override {
    rows_.erase(std::string{key});
  }
  void for_each(std::string_view prefix,
                const std::function<bool(std::string_view, std::string_view)>& f) const override {
    for (auto i = rows_.lower_bound(std::string{prefix});
         i != rows_.end() && i->first.starts_with(prefix); ++i)
      if (!f(i->first, i->second))
        return;
  }

private:
  std::map<std::string, std::string> rows_;
};

struct projected {
  map_rows rows;

  projected& on(const conference_event& e) {
    remaining_seats_view::project(rows, evident::recorded_event{}, e);
    return *this;
  }
  seat_counts of(const std::string& conf = {}) const {
    return remaining_seats_view::ask(rows, seats_query{conf});
  }
};

} // namespace

BOOST_AUTO_TEST_SUITE(conference_remaining_seats)

BOOST_AUTO_TEST_CASE(seats_move_from_pending_to_confirmed_and_back_to_remaining) {
  projected v;
  v.on(conference_created{"c1", 10}).on(seats_reserved{"c1", "r1", 4});
  BOOST_TEST(v.of("c1") == (seat_counts{1, 10, 4, 0}));
  v.on(seats_reserved{"c1", "r2", 3}).on(reservation_confirmed{"c1", "r1", 4});
  BOOST_TEST(v.of("c1") == (seat_counts{1, 10, 3, 4}));
  BOOST_TEST(v.of("c1").remaining() == 3);
  v.on(reservation_cancelled{"c1", "r2", 3, false, true}); // expired, unpaid
  v.on(reservation_cancelled{"c1", "r1", 4, true, false}); // paid, then cancelled
  BOOST_TEST(v.of("c1") == (seat_counts{1, 10, 0, 0}));
  BOOST_TEST(v.of("c1").remaining() == 10);
}

BOOST_AUTO_TEST_CASE(totals_sum_every_conference_and_unknown_ones_read_as_zero) {
  projected v;
  v.on(conference_created{"c1", 10}).on(conference_created{"c2", 5});
  v.on(seats_reserved{"c1", "r1", 2}).on(seats_reserved{"c2", "r1", 5});
  BOOST_TEST(v.of() == (seat_counts{2, 15, 7, 0}));
  BOOST_TEST(v.of().remaining() == 8);
  BOOST_TEST(v.of("c2").remaining() == 0);
  BOOST_TEST(v.of("nope") == seat_counts{});
}

BOOST_AUTO_TEST_SUITE_END()
