#include "codec.hpp"

#include <msgpack.hpp>

#include <array>
#include <cstdio>
#include <limits>
#include <stdexcept>

namespace evident::cli {

// -- base64 -----------------------------------------------------------------------

namespace {

constexpr char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int b64_value(char c) noexcept {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '+')
    return 62;
  if (c == '/')
    return 63;
  return -1;
}

} // namespace

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  auto at = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(bytes[k])); };
  for (; i + 3 <= bytes.size(); i += 3) {
    auto n = at(i) << 16 | at(i + 1) << 8 | at(i + 2);
    out += b64_chars[n >> 18];
    out += b64_chars[(n >> 12) & 63];
    out += b64_chars[(n >> 6) & 63];
    out += b64_chars[n & 63];
  }
  if (auto rest = bytes.size() - i; rest == 1) {
    auto n = at(i) << 16;
    out += b64_chars[n >> 18];
    out += b64_chars[(n >> 12) & 63];
    out += "==";
  } else if (rest == 2) {
    auto n = at(i) << 16 | at(i + 1) << 8;
    out += b64_chars[n >> 18];
    out += b64_chars[(n >> 12) & 63];
    out += b64_chars[(n >> 6) & 63];
    out += '=';
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0)
    return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    bool last = i + 4 == text.size();
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      auto c = text[i + k];
      if (c == '=' && last && k >= 2) {
        v[k] = 0;
        ++pad;
        continue;
      }
      if (pad > 0) // data after padding
        return std::nullopt;
      v[k] = b64_value(c);
      if (v[k] < 0)
        return std::nullopt;
    }
    auto n = static_cast<uint32_t>(v[0] << 18 | v[1] << 12 | v[2] << 6 | v[3]);
    out += static_cast<char>(n >> 16);
    if (pad < 2)
      out += static_cast<char>((n >> 8) & 0xff);
    if (pad < 1)
      out += static_cast<char>(n & 0xff);
  }
  // Canonical form only, so every byte string has exactly one accepted spelling.
  if (base64_encode(out) != text)
    return std::nullopt;
  return out;
}

// -- text -------------------------------------------------------------------------

bool valid_utf8(std::string_view s) noexcept {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t n = 0;
    uint32_t cp = 0;
    uint32_t min = 0;
    if ((c & 0xe0) == 0xc0) {
      n = 1;
      cp = c & 0x1f;
      min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2;
      cp = c & 0x0f;
      min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3;
      cp = c & 0x07;
      min = 0x10000;
    } else {
      return false;
    }
    if (i + n >= s.size()) // truncated sequence
      return false;
    for (size_t k = 1; k <= n; ++k) {
      auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xc0) != 0x80)
        return false;
      cp = cp << 6 | (d & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += n + 1;
  }
  return true;
}

json lossless(std::string_view s) {
  if (valid_utf8(s))
    return json(std::string{s});
  json j = json::object();
  j["base64"] = base64_encode(s);
  return j;
}

std::optional<std::string> from_lossless(const json& j) {
  if (j.is_string())
    return j.get<std::string>();
  if (j.is_object() && j.size() == 1 && j.contains("base64") && j["base64"].is_string())
    return base64_decode(j["base64"].get<std::string>());
  return std::nullopt;
}

std::string format_time(int64_t time_ns) {
  constexpr int64_t ns_per_day = int64_t{86'400} * 1'000'000'000;
  auto days = time_ns / ns_per_day;
  auto rem = time_ns % ns_per_day;
  if (rem < 0) { // floor division: times before 1970 count back from midnight
    rem += ns_per_day;
    --days;
  }
  // Howard Hinnant's civil_from_days (proleptic Gregorian calendar).
  auto z = days + 719'468;
  auto era = (z >= 0 ? z : z - 146'096) / 146'097;
  auto doe = z - era * 146'097;
  auto yoe = (doe - doe / 1460 + doe / 36'524 - doe / 146'096) / 365;
  auto y = yoe + era * 400;
  auto doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  auto mp = (5 * doy + 2) / 153;
  auto d = doy - (153 * mp + 2) / 5 + 1;
  auto m = mp < 10 ? mp + 3 : mp - 9;
  if (m <= 2)
    ++y;
  auto secs = rem / 1'000'000'000;
  auto frac = rem % 1'000'000'000;
  char buf[160];
  std::snprintf(buf, sizeof(buf), "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld.%09lldZ",
                static_cast<long long>(y), static_cast<long long>(m),
                static_cast<long long>(d), static_cast<long long>(secs / 3600),
                static_cast<long long>(secs / 60 % 60), static_cast<long long>(secs % 60),
                static_cast<long long>(frac));
  return buf;
}

// -- msgpack <-> JSON ---------------------------------------------------------------

namespace {

struct not_json : std::exception {};

json to_json(const msgpack::object& o, size_t depth) {
  if (depth > max_depth)
    throw not_json{};
  switch (o.type) {
    case msgpack::type::NIL:
      return nullptr;
    case msgpack::type::BOOLEAN:
      return o.via.boolean;
    case msgpack::type::POSITIVE_INTEGER:
      return o.via.u64;
    case msgpack::type::NEGATIVE_INTEGER:
      return o.via.i64;
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
      return o.via.f64;
    case msgpack::type::STR: {
      std::string_view s{o.via.str.ptr, o.via.str.size};
      if (!valid_utf8(s))
        throw not_json{};
      return std::string{s};
    }
    case msgpack::type::BIN: {
      json j = json::object();
      j["$bin"] = base64_encode({o.via.bin.ptr, o.via.bin.size});
      return j;
    }
    case msgpack::type::EXT: {
      json j = json::object();
      j["$ext"] = static_cast<int>(o.via.ext.type());
      j["$bin"] = base64_encode({o.via.ext.data(), o.via.ext.size});
      return j;
    }
    case msgpack::type::ARRAY: {
      json j = json::array();
      for (uint32_t i = 0; i < o.via.array.size; ++i)
        j.push_back(to_json(o.via.array.ptr[i], depth + 1));
      return j;
    }
    case msgpack::type::MAP: {
      json j = json::object();
      for (uint32_t i = 0; i < o.via.map.size; ++i) {
        const auto& kv = o.via.map.ptr[i];
        std::string key;
        if (kv.key.type == msgpack::type::STR) {
          key.assign(kv.key.via.str.ptr, kv.key.via.str.size);
          if (!valid_utf8(key))
            throw not_json{};
        } else {
          key = to_json(kv.key, depth + 1).dump();
        }
        j[key] = to_json(kv.val, depth + 1);
      }
      return j;
    }
  }
  throw not_json{};
}

using packer = msgpack::packer<msgpack::sbuffer>;

void pack(packer& pk, const json& j) {
  switch (j.type()) {
    case json::value_t::null:
    case json::value_t::discarded:
      pk.pack_nil();
      return;
    case json::value_t::boolean:
      if (j.get<bool>())
        pk.pack_true();
      else
        pk.pack_false();
      return;
    case json::value_t::number_unsigned:
      pk.pack_uint64(j.get<uint64_t>());
      return;
    case json::value_t::number_integer:
      pk.pack_int64(j.get<int64_t>());
      return;
    case json::value_t::number_float:
      pk.pack_double(j.get<double>());
      return;
    case json::value_t::string: {
      const auto& s = j.get_ref<const std::string&>();
      pk.pack_str(static_cast<uint32_t>(s.size()));
      pk.pack_str_body(s.data(), static_cast<uint32_t>(s.size()));
      return;
    }
    case json::value_t::binary: {
      const auto& b = j.get_binary();
      pk.pack_bin(static_cast<uint32_t>(b.size()));
      pk.pack_bin_body(reinterpret_cast<const char*>(b.data()), static_cast<uint32_t>(b.size()));
      return;
    }
    case json::value_t::array:
      pk.pack_array(static_cast<uint32_t>(j.size()));
      for (const auto& x : j)
        pack(pk, x);
      return;
    case json::value_t::object: {
      // {"$bin": base64} and {"$ext": type, "$bin": base64} are how msgpack_to_json
      // shows bin and ext values; they turn back into them.
      auto bin = j.find("$bin");
      if (bin != j.end() && bin->is_string()) {
        auto bytes = base64_decode(bin->get<std::string>());
        auto ext = j.find("$ext");
        if (bytes && j.size() == 1) {
          pk.pack_bin(static_cast<uint32_t>(bytes->size()));
          pk.pack_bin_body(bytes->data(), static_cast<uint32_t>(bytes->size()));
          return;
        }
        if (bytes && j.size() == 2 && ext != j.end() && ext->is_number_integer()
            && ext->get<int64_t>() >= -128 && ext->get<int64_t>() <= 127) {
          pk.pack_ext(bytes->size(), static_cast<int8_t>(ext->get<int64_t>()));
          pk.pack_ext_body(bytes->data(), static_cast<uint32_t>(bytes->size()));
          return;
        }
      }
      pk.pack_map(static_cast<uint32_t>(j.size()));
      for (const auto& [k, v] : j.items()) {
        pk.pack_str(static_cast<uint32_t>(k.size()));
        pk.pack_str_body(k.data(), static_cast<uint32_t>(k.size()));
        pack(pk, v);
      }
      return;
    }
  }
}

} // namespace

std::optional<json> msgpack_to_json(std::string_view bytes) {
  if (bytes.empty())
    return std::nullopt;
  // Each element takes at least one byte, so no count may exceed the input size; this
  // keeps a lying length header from allocating gigabytes.
  msgpack::unpack_limit limit{bytes.size(), bytes.size(), bytes.size(),
                              bytes.size(), bytes.size(), max_depth};
  try {
    size_t off = 0;
    auto handle = msgpack::unpack(bytes.data(), bytes.size(), off, nullptr, nullptr, limit);
    if (off != bytes.size())
      return std::nullopt;
    return to_json(handle.get(), 0);
  } catch (...) {
    // msgpack-c reports malformed input by exceptions of several types; all of them
    // mean "show the raw bytes instead".
    return std::nullopt;
  }
}

std::string json_to_msgpack(const json& j) {
  msgpack::sbuffer buf;
  packer pk{buf};
  pack(pk, j);
  return std::string{buf.data(), buf.size()};
}

size_t json_depth(std::string_view text) noexcept {
  size_t depth = 0;
  size_t deepest = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '[':
      case '{':
        deepest = std::max(deepest, ++depth);
        break;
      case ']':
      case '}':
        if (depth > 0)
          --depth;
        break;
      default:
        break;
    }
  }
  return deepest;
}

std::optional<uint64_t> parse_u64(std::string_view text) noexcept {
  if (text.empty() || text.size() > 20)
    return std::nullopt;
  uint64_t result = 0;
  for (char c : text) {
    if (c < '0' || c > '9')
      return std::nullopt;
    auto digit = static_cast<uint64_t>(c - '0');
    if (result > (std::numeric_limits<uint64_t>::max() - digit) / 10)
      return std::nullopt;
    result = result * 10 + digit;
  }
  return result;
}

} // namespace evident::cli
