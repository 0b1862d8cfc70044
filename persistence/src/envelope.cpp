#include "evident/persistence/envelope.hpp"

#include "evident/persistence/detail/msgpack_io.hpp"

namespace evident::envelope {

using namespace evident::detail;

namespace {

constexpr size_t body_fields = 12;

error corrupt(uint64_t position, std::string_view why) {
  error err{errc::corrupted, "event at position " + std::to_string(position) + ": "
                               + std::string{why}};
  err.position = position;
  return err;
}

// Checks the trailer and returns the body, or an empty view after setting `err`.
std::string_view checked_body(uint64_t position, std::string_view stored, error& err) {
  if (stored.size() < trailer_size + 1) {
    err = corrupt(position, "record too short");
    return {};
  }
  auto body = stored.substr(0, stored.size() - trailer_size);
  auto trailer = stored.data() + body.size();
  if (static_cast<unsigned char>(trailer[0]) != 0xce) {
    err = corrupt(position, "missing checksum trailer");
    return {};
  }
  auto stored_crc = static_cast<uint32_t>(get_be(trailer + 1, 4));
  auto key = be64(position);
  auto crc = crc32c(body, crc32c(key));
  if (crc != stored_crc) {
    err = corrupt(position, "checksum mismatch");
    return {};
  }
  return body;
}

} // namespace

size_t encoded_size(const recorded_event& e) noexcept {
  size_t n = 1 /*array*/ + uint_size(record_format) + str_size(e.stream.size())
             + uint_size(e.version) + str_size(e.type.size()) + uint_size(e.schema)
             + int_size(e.time_ns) + bin_size(16) + str_size(e.correlation_id.size())
             + str_size(e.causation_id.size()) + str_size(e.command_id.size())
             + container_header_size(e.meta.size()) + bin_size(e.payload.size())
             + trailer_size;
  for (auto& [k, v] : e.meta)
    n += str_size(k.size()) + str_size(v.size());
  return n;
}

namespace {

struct parts {
  uint64_t position;
  std::string_view stream;
  uint64_t version;
  std::string_view type;
  uint32_t schema;
  int64_t time_ns;
  const uuid& event_id;
  std::string_view correlation_id;
  std::string_view causation_id;
  std::string_view command_id;
  const metadata& meta;
  std::string_view payload;
};

void encode_parts(const parts& e, std::string& out) {
  auto start = out.size();
  pack_array_header(out, body_fields);
  pack_uint(out, record_format);
  pack_str(out, e.stream);
  pack_uint(out, e.version);
  pack_str(out, e.type);
  pack_uint(out, e.schema);
  pack_int(out, e.time_ns);
  pack_bin(out, std::string_view{reinterpret_cast<const char*>(e.event_id.bytes.data()), 16});
  pack_str(out, e.correlation_id);
  pack_str(out, e.causation_id);
  pack_str(out, e.command_id);
  pack_map_header(out, e.meta.size());
  for (auto& [k, v] : e.meta) {
    pack_str(out, k);
    pack_str(out, v);
  }
  pack_bin(out, e.payload);
  char key[8];
  for (int i = 0; i < 8; ++i)
    key[i] = static_cast<char>(e.position >> ((7 - i) * 8));
  auto body = std::string_view{out}.substr(start);
  auto crc = crc32c(body, crc32c(std::string_view{key, 8}));
  out.push_back(static_cast<char>(0xce));
  put_be(out, crc, 4);
}

} // namespace

size_t encoded_size_bound(std::string_view stream, std::string_view command_id,
                          const event_data& e) noexcept {
  size_t n = 1 + uint_size(record_format) + str_size(stream.size()) + 9 /*version*/
             + str_size(e.type.size()) + uint_size(e.schema) + 9 /*time*/ + bin_size(16)
             + str_size(e.correlation_id.size()) + str_size(e.causation_id.size())
             + str_size(command_id.size()) + container_header_size(e.meta.size())
             + bin_size(e.payload.size()) + trailer_size;
  for (auto& [k, v] : e.meta)
    n += str_size(k.size()) + str_size(v.size());
  return n;
}

void encode(const recorded_event& e, std::string& out) {
  out.reserve(out.size() + encoded_size(e));
  encode_parts({e.position, e.stream, e.version, e.type, e.schema, e.time_ns, e.event_id,
                e.correlation_id, e.causation_id, e.command_id, e.meta, e.payload},
               out);
}

void encode(uint64_t position, std::string_view stream, uint64_t version,
            std::string_view command_id, const event_data& e, int64_t time_ns,
            const uuid& event_id, std::string& out) {
  encode_parts({position, stream, version, e.type, e.schema, time_ns, event_id,
                e.correlation_id, e.causation_id, command_id, e.meta, e.payload},
               out);
}

status decode_into(uint64_t position, std::string_view stored, recorded_event& out) {
  error err;
  auto body = checked_body(position, stored, err);
  if (err)
    return err;
  reader r{body};
  if (r.read_array_header() != body_fields || r.read_uint() != record_format)
    return corrupt(position, "unknown record layout");
  out.position = position;
  out.stream.assign(r.read_str());
  out.version = r.read_uint();
  out.type.assign(r.read_str());
  out.schema = static_cast<uint32_t>(r.read_uint());
  out.time_ns = r.read_int();
  auto id = r.read_bin();
  if (id.size() != 16)
    return corrupt(position, "event id is not 16 bytes");
  std::memcpy(out.event_id.bytes.data(), id.data(), 16);
  out.correlation_id.assign(r.read_str());
  out.causation_id.assign(r.read_str());
  out.command_id.assign(r.read_str());
  auto n = r.read_map_header();
  out.meta.resize(r.ok() ? n : 0);
  for (size_t i = 0; i < out.meta.size() && r.ok(); ++i) {
    out.meta[i].first.assign(r.read_str());
    out.meta[i].second.assign(r.read_str());
  }
  out.payload.assign(r.read_bin());
  if (!r.ok() || !r.at_end())
    return corrupt(position, "malformed envelope");
  return {};
}

expected<recorded_event> decode(uint64_t position, std::string_view stored) {
  recorded_event result;
  if (auto err = decode_into(position, stored, result))
    return err;
  return result;
}

status decode_header(uint64_t position, std::string_view stored, header& out) {
  error err;
  auto body = checked_body(position, stored, err);
  if (err)
    return err;
  reader r{body};
  if (r.read_array_header() != body_fields || r.read_uint() != record_format)
    return corrupt(position, "unknown record layout");
  out.stream = r.read_str();
  out.version = r.read_uint();
  r.read_str();  // type
  r.read_uint(); // schema
  r.read_int();  // time
  if (r.read_bin().size() != 16)
    return corrupt(position, "event id is not 16 bytes");
  r.read_str(); // correlation id
  r.read_str(); // causation id
  out.command_id = r.read_str();
  if (!r.ok())
    return corrupt(position, "malformed envelope");
  return {};
}

} // namespace evident::envelope
