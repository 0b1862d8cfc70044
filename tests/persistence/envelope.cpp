#include "evident/persistence/envelope.hpp"

#include <boost/test/unit_test.hpp>

using namespace evident;

namespace {

recorded_event sample() {
  recorded_event e;
  e.position = 42;
  e.stream = "account-7";
  e.version = 3;
  e.type = "bank.deposited";
  e.schema = 2;
  e.time_ns = 1'700'000'000'123'456'789;
  e.event_id = *uuid::parse("0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0");
  e.correlation_id = "corr";
  e.causation_id = "cause";
  e.command_id = "cmd-1";
  e.meta = {{"user", "ada"}, {"ip", "127.0.0.1"}};
  e.payload = std::string("\x81\xa6\x61mount\xcd\x01\xf4", 10);
  return e;
}

} // namespace

BOOST_AUTO_TEST_SUITE(envelope_codec)

BOOST_AUTO_TEST_CASE(crc32c_matches_the_castagnoli_check_value) {
  // The standard check value of CRC-32C over "123456789" (RFC 3720, appendix B.4).
  BOOST_TEST(crc32c("123456789") == 0xe3069283u);
  BOOST_TEST(crc32c("") == 0u);
  // Continuing a CRC equals computing it over the concatenation.
  BOOST_TEST(crc32c("56789", crc32c("1234")) == 0xe3069283u);
}

BOOST_AUTO_TEST_CASE(encode_then_decode_returns_every_field) {
  auto e = sample();
  std::string stored;
  envelope::encode(e, stored);
  BOOST_TEST(stored.size() == envelope::encoded_size(e));
  auto d = envelope::decode(42, stored);
  BOOST_REQUIRE(d.has_value());
  BOOST_TEST(d->position == 42u);
  BOOST_TEST(d->stream == e.stream);
  BOOST_TEST(d->version == 3u);
  BOOST_TEST(d->type == e.type);
  BOOST_TEST(d->schema == 2u);
  BOOST_TEST(d->time_ns == e.time_ns);
  BOOST_TEST(d->event_id.to_string() == "0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0");
  BOOST_TEST(d->correlation_id == "corr");
  BOOST_TEST(d->causation_id == "cause");
  BOOST_TEST(d->command_id == "cmd-1");
  BOOST_TEST(d->meta == e.meta);
  BOOST_TEST(d->payload == e.payload);
}

BOOST_AUTO_TEST_CASE(large_and_negative_fields_round_trip) {
  auto e = sample();
  e.version = UINT64_MAX;
  e.time_ns = -5'000'000'000;
  e.stream = std::string(300, 's');
  e.payload = std::string(70'000, 'p');
  for (int i = 0; i < 20; ++i)
    e.meta.emplace_back("k" + std::to_string(i), std::string(40, 'v'));
  std::string stored;
  envelope::encode(e, stored);
  BOOST_TEST(stored.size() == envelope::encoded_size(e));
  auto d = envelope::decode(e.position, stored);
  BOOST_REQUIRE(d.has_value());
  BOOST_TEST(d->version == UINT64_MAX);
  BOOST_TEST(d->time_ns == -5'000'000'000);
  BOOST_TEST(d->stream == e.stream);
  BOOST_TEST(d->payload.size() == 70'000u);
  BOOST_TEST(d->meta.size() == 22u);
}

BOOST_AUTO_TEST_CASE(any_flipped_byte_is_reported_as_corrupted_with_its_position) {
  auto e = sample();
  std::string stored;
  envelope::encode(e, stored);
  for (size_t i = 0; i < stored.size(); ++i) {
    auto bad = stored;
    bad[i] = static_cast<char>(bad[i] ^ 0x10);
    auto d = envelope::decode(42, bad);
    BOOST_REQUIRE_MESSAGE(!d.has_value(), "flip at byte " << i << " went unnoticed");
    BOOST_TEST((d.err().code == errc::corrupted));
    BOOST_TEST(d.err().position.value_or(0) == 42u);
  }
}

BOOST_AUTO_TEST_CASE(a_record_under_the_wrong_position_fails_its_checksum) {
  std::string stored;
  envelope::encode(sample(), stored);
  auto d = envelope::decode(43, stored);
  BOOST_REQUIRE(!d.has_value());
  BOOST_TEST((d.err().code == errc::corrupted));
}

BOOST_AUTO_TEST_CASE(truncated_or_garbage_records_are_corrupted_not_crashes) {
  std::string stored;
  envelope::encode(sample(), stored);
  for (size_t n = 0; n < stored.size(); ++n) {
    auto d = envelope::decode(42, std::string_view{stored}.substr(0, n));
    BOOST_TEST(!d.has_value());
  }
  std::string garbage(64, '\xff');
  BOOST_TEST(!envelope::decode(1, garbage).has_value());
}

BOOST_AUTO_TEST_CASE(decode_header_reads_stream_version_and_command_id) {
  std::string stored;
  envelope::encode(sample(), stored);
  envelope::header h;
  BOOST_TEST(!envelope::decode_header(42, stored, h));
  BOOST_TEST(h.stream == "account-7");
  BOOST_TEST(h.version == 3u);
  BOOST_TEST(h.command_id == "cmd-1");
}

BOOST_AUTO_TEST_CASE(uuid_text_form_round_trips_and_rejects_bad_text) {
  auto id = uuid::random();
  BOOST_TEST(!id.is_nil());
  BOOST_TEST((id.bytes[6] >> 4) == 4); // version 4
  auto back = uuid::parse(id.to_string());
  BOOST_REQUIRE(back.has_value());
  BOOST_TEST((*back == id));
  BOOST_TEST(!uuid::parse("not-a-uuid").has_value());
  BOOST_TEST(!uuid::parse("0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1fz").has_value());
}

BOOST_AUTO_TEST_SUITE_END()
