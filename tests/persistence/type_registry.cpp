#include "evident/persistence/type_registry.hpp"

#include "checks.hpp"

#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <string>
#include <variant>

using namespace evident;
using evident::test::why;

namespace {

// -- today's events ------------------------------------------------------------------

struct opened {
  std::string owner;
  MSGPACK_DEFINE(owner)
};

// Schema 3: amount in cents plus the currency.
struct deposited {
  int64_t cents = 0;
  std::string currency;
  MSGPACK_DEFINE(cents, currency)
};

struct closed {
  std::string reason;
  MSGPACK_DEFINE(reason)
};

using account_event = std::variant<opened, deposited, closed>;

// -- yesterday's shapes --------------------------------------------------------------

// Schema 1: whole units.
struct deposited_v1 {
  int64_t amount = 0;
  MSGPACK_DEFINE(amount)
};

// Schema 2: cents, no currency yet.
struct deposited_v2 {
  int64_t cents = 0;
  MSGPACK_DEFINE(cents)
};

// Stored before "bank.closed" existed under that name.
struct account_terminated {
  std::string why;
  int32_t code = 0;
  MSGPACK_DEFINE(why, code)
};

type_registry<account_event> make_registry() {
  type_registry<account_event> reg;
  reg.add<opened>("bank.opened")
    .add<deposited>("bank.deposited", 3)
    .add<closed>("bank.closed", 1)
    .upcast<deposited_v1, deposited_v2>("bank.deposited", 1,
                                        [](const deposited_v1& o) {
                                          return deposited_v2{o.amount * 100};
                                        })
    .upcast<deposited_v2, deposited>("bank.deposited", 2, [](const deposited_v2& o) {
      return deposited{o.cents, "EUR"};
    });
  return reg;
}

// The error of `x` for a failure message (BOOST_REQUIRE_MESSAGE builds it eagerly).
recorded_event stored(std::string type, uint32_t schema, std::string payload) {
  recorded_event e;
  e.stream = "account-1";
  e.version = 1;
  e.position = 1;
  e.type = std::move(type);
  e.schema = schema;
  e.payload = std::move(payload);
  return e;
}

} // namespace

BOOST_AUTO_TEST_SUITE(type_registry_tests)

BOOST_AUTO_TEST_CASE(encode_writes_registered_name_and_current_schema) {
  auto reg = make_registry();
  auto data = reg.encode(account_event{deposited{250, "EUR"}});
  BOOST_REQUIRE(data.has_value());
  BOOST_TEST(data->type == "bank.deposited");
  BOOST_TEST(data->schema == 3u);
  BOOST_TEST(data->payload == to_msgpack(deposited{250, "EUR"}));
}

BOOST_AUTO_TEST_CASE(decode_of_encode_round_trips_every_alternative) {
  auto reg = make_registry();
  for (const auto& ev : {account_event{opened{"ada"}}, account_event{deposited{7, "CHF"}},
                         account_event{closed{"moved"}}}) {
    auto data = reg.encode(ev);
    BOOST_REQUIRE(data.has_value());
    auto back = reg.decode(stored(data->type, data->schema, data->payload));
    BOOST_REQUIRE_MESSAGE(back.has_value(), why(back));
    BOOST_TEST(back->index() == ev.index());
  }
  auto back = reg.decode(stored("bank.deposited", 3, to_msgpack(deposited{7, "CHF"})));
  BOOST_REQUIRE(back.has_value());
  BOOST_TEST(std::get<deposited>(*back).cents == 7);
  BOOST_TEST(std::get<deposited>(*back).currency == "CHF");
}

BOOST_AUTO_TEST_CASE(name_of_and_knows_reflect_registrations) {
  auto reg = make_registry();
  BOOST_TEST(reg.name_of<deposited>() == "bank.deposited");
  BOOST_TEST(reg.name_of<closed>() == "bank.closed");
  BOOST_TEST(reg.knows("bank.opened"));
  BOOST_TEST(!reg.knows("bank.frozen"));
  BOOST_TEST(reg.current_schema("bank.deposited").value_or(0) == 3u);
  BOOST_TEST(!reg.current_schema("bank.frozen").has_value());
  type_registry<account_event> empty;
  BOOST_TEST(empty.name_of<opened>().empty());
}

BOOST_AUTO_TEST_CASE(schema_1_is_upcast_through_2_to_3) {
  auto reg = make_registry();
  auto ev = reg.decode(stored("bank.deposited", 1, to_msgpack(deposited_v1{12})));
  BOOST_REQUIRE_MESSAGE(ev.has_value(), why(ev));
  const auto& d = std::get<deposited>(*ev);
  BOOST_TEST(d.cents == 1200);
  BOOST_TEST(d.currency == "EUR");
}

BOOST_AUTO_TEST_CASE(schema_2_runs_only_the_last_upcaster) {
  auto reg = make_registry();
  auto ev = reg.decode("bank.deposited", 2, to_msgpack(deposited_v2{1234}));
  BOOST_REQUIRE_MESSAGE(ev.has_value(), why(ev));
  BOOST_TEST(std::get<deposited>(*ev).cents == 1234);
  BOOST_TEST(std::get<deposited>(*ev).currency == "EUR");
}

BOOST_AUTO_TEST_CASE(lift_reports_the_path_taken) {
  auto reg = make_registry();
  std::string buffer;
  auto original = to_msgpack(deposited_v1{1});
  auto l = reg.schemas().lift("bank.deposited", 1, original, buffer);
  BOOST_REQUIRE(l.has_value());
  BOOST_TEST(l->type == "bank.deposited");
  BOOST_TEST(l->schema == 3u);
  BOOST_TEST(l->steps == 2u);
  BOOST_TEST(l->payload == to_msgpack(deposited{100, "EUR"}));
  auto current = to_msgpack(deposited{5, "EUR"});
  auto same = reg.schemas().lift("bank.deposited", 3, current, buffer);
  BOOST_REQUIRE(same.has_value());
  BOOST_TEST(same->steps == 0u);
  BOOST_TEST(same->payload.data() == current.data()); // no copy when nothing to do
}

BOOST_AUTO_TEST_CASE(byte_level_upcaster_maps_bytes_to_bytes) {
  type_registry<deposited> reg;
  reg.add<deposited>("bank.deposited", 2).upcast("bank.deposited", 1, [](std::string_view bytes) {
    auto handle = msgpack::unpack(bytes.data(), bytes.size());
    auto units = handle.get().via.array.ptr[0].as<int64_t>();
    return to_msgpack(deposited{units * 100, "USD"});
  });
  auto ev = reg.decode("bank.deposited", 1, to_msgpack(deposited_v1{3}));
  BOOST_REQUIRE_MESSAGE(ev.has_value(), why(ev));
  BOOST_TEST(ev->cents == 300);
  BOOST_TEST(ev->currency == "USD");
}

BOOST_AUTO_TEST_CASE(renamed_type_decodes_into_its_new_type) {
  auto reg = make_registry();
  reg.rename("bank.account_terminated", 1, "bank.closed", 1, [](std::string_view bytes) {
    auto old = from_msgpack<account_terminated>(bytes);
    if (!old)
      throw std::runtime_error(old.err().message);
    return to_msgpack(closed{old->why + " (" + std::to_string(old->code) + ")"});
  });
  BOOST_TEST(reg.knows("bank.account_terminated"));
  auto ev = reg.decode(stored("bank.account_terminated", 1,
                              to_msgpack(account_terminated{"fraud", 7})));
  BOOST_REQUIRE_MESSAGE(ev.has_value(), why(ev));
  BOOST_TEST(std::get<closed>(*ev).reason == "fraud (7)");
}

BOOST_AUTO_TEST_CASE(pure_rename_keeps_the_bytes) {
  auto reg = make_registry();
  reg.rename("bank.account_opened", 1, "bank.opened", 1);
  auto ev = reg.decode("bank.account_opened", 1, to_msgpack(opened{"grace"}));
  BOOST_REQUIRE_MESSAGE(ev.has_value(), why(ev));
  BOOST_TEST(std::get<opened>(*ev).owner == "grace");
}

BOOST_AUTO_TEST_CASE(rename_then_upcast_chains) {
  // "bank.money_in" schema 1 held whole units; it became "bank.deposited" schema 1.
  auto reg = make_registry();
  reg.rename("bank.money_in", 1, "bank.deposited", 1);
  auto ev = reg.decode("bank.money_in", 1, to_msgpack(deposited_v1{2}));
  BOOST_REQUIRE_MESSAGE(ev.has_value(), why(ev));
  BOOST_TEST(std::get<deposited>(*ev).cents == 200);
}

BOOST_AUTO_TEST_CASE(unknown_type_is_unknown_event_type) {
  auto reg = make_registry();
  auto ev = reg.decode("bank.frozen", 1, to_msgpack(closed{"x"}));
  BOOST_REQUIRE(!ev.has_value());
  BOOST_TEST(ev.err().code == errc::unknown_event_type);
  BOOST_TEST(ev.err().message.find("bank.frozen") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(schema_newer_than_registered_is_unknown_event_type) {
  auto reg = make_registry();
  auto ev = reg.decode("bank.deposited", 4, to_msgpack(deposited{1, "EUR"}));
  BOOST_REQUIRE(!ev.has_value());
  BOOST_TEST(ev.err().code == errc::unknown_event_type);
  BOOST_TEST(ev.err().message.find("newer") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(old_schema_without_upcaster_is_unknown_event_type) {
  type_registry<account_event> reg;
  reg.add<deposited>("bank.deposited", 3)
    .upcast<deposited_v2, deposited>("bank.deposited", 2,
                                     [](const deposited_v2& o) { return deposited{o.cents, "EUR"}; });
  auto ev = reg.decode("bank.deposited", 1, to_msgpack(deposited_v1{1}));
  BOOST_REQUIRE(!ev.has_value());
  BOOST_TEST(ev.err().code == errc::unknown_event_type);
  BOOST_TEST(ev.err().message.find("no upcaster") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(rename_to_unregistered_type_is_unknown_event_type) {
  auto reg = make_registry();
  reg.rename("bank.old", 1, "bank.nowhere", 1);
  auto ev = reg.decode("bank.old", 1, to_msgpack(closed{"x"}));
  BOOST_REQUIRE(!ev.has_value());
  BOOST_TEST(ev.err().code == errc::unknown_event_type);
  BOOST_TEST(ev.err().message.find("bank.nowhere") != std::string::npos);
  BOOST_TEST(ev.err().message.find("reached from 'bank.old'") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(garbage_payload_is_corrupted) {
  auto reg = make_registry();
  for (std::string garbage : {std::string{"\xc1"}, std::string{"hello"}, std::string{},
                              std::string{"\x93\x01"}, to_msgpack(42)}) {
    auto ev = reg.decode("bank.deposited", 3, garbage);
    BOOST_REQUIRE(!ev.has_value());
    BOOST_TEST(ev.err().code == errc::corrupted);
    BOOST_TEST(ev.err().message.find("bank.deposited") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(garbage_payload_in_upcaster_is_corrupted) {
  auto reg = make_registry();
  auto ev = reg.decode("bank.deposited", 1, std::string{"\xc1"});
  BOOST_REQUIRE(!ev.has_value());
  BOOST_TEST(ev.err().code == errc::corrupted);
  BOOST_TEST(ev.err().message.find("upcaster from 'bank.deposited' schema 1") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(upcaster_output_that_does_not_decode_is_corrupted) {
  type_registry<deposited> reg;
  reg.add<deposited>("bank.deposited", 2).upcast("bank.deposited", 1, [](std::string_view) {
    return to_msgpack(std::string{"not an array"});
  });
  auto ev = reg.decode("bank.deposited", 1, to_msgpack(deposited_v1{1}));
  BOOST_REQUIRE(!ev.has_value());
  BOOST_TEST(ev.err().code == errc::corrupted);
  BOOST_TEST(ev.err().message.find("upcast to 'bank.deposited' schema 2") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(encoding_an_unregistered_alternative_is_unknown_event_type) {
  type_registry<account_event> reg;
  reg.add<opened>("bank.opened");
  auto data = reg.encode(account_event{closed{"x"}});
  BOOST_REQUIRE(!data.has_value());
  BOOST_TEST(data.err().code == errc::unknown_event_type);
}

BOOST_AUTO_TEST_CASE(misuse_at_registration_throws_invalid_argument) {
  type_registry<account_event> reg;
  reg.add<opened>("bank.opened");
  BOOST_CHECK_THROW(reg.add<opened>("bank.opened2"), std::invalid_argument);   // type twice
  BOOST_CHECK_THROW(reg.add<closed>("bank.opened"), std::invalid_argument);    // name twice
  BOOST_CHECK_THROW(reg.add<closed>("bank.closed", 0), std::invalid_argument); // schema 0
  BOOST_CHECK_THROW(reg.upcast("bank.opened", 1, [](std::string_view b) {
    return std::string{b};
  }),
                    std::invalid_argument); // from the current schema
  BOOST_CHECK_THROW(reg.upcast("bank.x", 1, {}), std::invalid_argument); // empty fn
  BOOST_CHECK_THROW(reg.rename("bank.opened", 1, "bank.opened", 1), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(registration_refuses_cycles) {
  schema_registry core;
  BOOST_TEST(!core.rename("a", 1, "b", 1));
  BOOST_TEST(!core.rename("b", 1, "c", 1));
  auto err = core.rename("c", 1, "a", 1);
  BOOST_TEST(err.code == errc::invalid_input);
  BOOST_TEST(err.message.find("cycle") != std::string::npos);
  std::string buffer;
  auto l = core.lift("a", 1, "x", buffer);
  BOOST_REQUIRE(!l.has_value());
  BOOST_TEST(l.err().code == errc::unknown_event_type);
}

BOOST_AUTO_TEST_CASE(upcaster_from_a_later_schema_than_current_is_refused) {
  schema_registry core;
  BOOST_TEST(!core.upcast("t", 3, [](std::string_view b) { return std::string{b}; }));
  auto err = core.add("t", 2);
  BOOST_TEST(err.code == errc::invalid_input);
}

BOOST_AUTO_TEST_CASE(single_type_registry_round_trips) {
  type_registry<opened> reg;
  reg.add<opened>("bank.opened");
  auto data = reg.encode(opened{"linus"});
  BOOST_REQUIRE(data.has_value());
  BOOST_TEST(data->type == "bank.opened");
  auto back = reg.decode(data->type, data->schema, data->payload);
  BOOST_REQUIRE(back.has_value());
  BOOST_TEST(back->owner == "linus");
}

BOOST_AUTO_TEST_CASE(from_msgpack_refuses_trailing_bytes) {
  auto bytes = to_msgpack(opened{"a"}) + "x";
  auto x = from_msgpack<opened>(bytes);
  BOOST_REQUIRE(!x.has_value());
  BOOST_TEST(x.err().code == errc::invalid_input);
}

BOOST_AUTO_TEST_SUITE_END()
