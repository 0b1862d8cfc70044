#pragma once

// A minimal msgpack writer and strict reader for the fixed layouts of our records
// (envelopes, heads, dedup records). msgpack-c's generic object model allocates per
// field; replay decodes millions of envelopes per second, so the hot layouts are
// written and read by hand. Internal to persistence/.

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace evident::detail {

inline void put_be(std::string& out, uint64_t x, int bytes) {
  for (int i = bytes - 1; i >= 0; --i)
    out.push_back(static_cast<char>((x >> (i * 8)) & 0xff));
}

inline uint64_t get_be(const char* p, int bytes) noexcept {
  uint64_t x = 0;
  for (int i = 0; i < bytes; ++i)
    x = (x << 8) | static_cast<unsigned char>(p[i]);
  return x;
}

/// 8-byte big-endian, the key form of positions and versions.
inline std::string be64(uint64_t x) {
  std::string out;
  out.reserve(8);
  put_be(out, x, 8);
  return out;
}

inline void pack_uint(std::string& out, uint64_t x) {
  if (x < 128) {
    out.push_back(static_cast<char>(x));
  } else if (x <= 0xff) {
    out.push_back(static_cast<char>(0xcc));
    put_be(out, x, 1);
  } else if (x <= 0xffff) {
    out.push_back(static_cast<char>(0xcd));
    put_be(out, x, 2);
  } else if (x <= 0xffffffffu) {
    out.push_back(static_cast<char>(0xce));
    put_be(out, x, 4);
  } else {
    out.push_back(static_cast<char>(0xcf));
    put_be(out, x, 8);
  }
}

inline size_t uint_size(uint64_t x) noexcept {
  return x < 128 ? 1 : x <= 0xff ? 2 : x <= 0xffff ? 3 : x <= 0xffffffffu ? 5 : 9;
}

inline void pack_int(std::string& out, int64_t x) {
  if (x >= 0) {
    pack_uint(out, static_cast<uint64_t>(x));
  } else if (x >= -32) {
    out.push_back(static_cast<char>(x));
  } else if (x >= INT8_MIN) {
    out.push_back(static_cast<char>(0xd0));
    put_be(out, static_cast<uint64_t>(x), 1);
  } else if (x >= INT16_MIN) {
    out.push_back(static_cast<char>(0xd1));
    put_be(out, static_cast<uint64_t>(x), 2);
  } else if (x >= INT32_MIN) {
    out.push_back(static_cast<char>(0xd2));
    put_be(out, static_cast<uint64_t>(x), 4);
  } else {
    out.push_back(static_cast<char>(0xd3));
    put_be(out, static_cast<uint64_t>(x), 8);
  }
}

inline size_t int_size(int64_t x) noexcept {
  if (x >= 0)
    return uint_size(static_cast<uint64_t>(x));
  return x >= -32 ? 1 : x >= INT8_MIN ? 2 : x >= INT16_MIN ? 3 : x >= INT32_MIN ? 5 : 9;
}

inline void pack_str(std::string& out, std::string_view s) {
  auto n = s.size();
  if (n < 32) {
    out.push_back(static_cast<char>(0xa0 | n));
  } else if (n <= 0xff) {
    out.push_back(static_cast<char>(0xd9));
    put_be(out, n, 1);
  } else if (n <= 0xffff) {
    out.push_back(static_cast<char>(0xda));
    put_be(out, n, 2);
  } else {
    out.push_back(static_cast<char>(0xdb));
    put_be(out, n, 4);
  }
  out.append(s);
}

inline size_t str_size(size_t n) noexcept {
  return n + (n < 32 ? 1 : n <= 0xff ? 2 : n <= 0xffff ? 3 : 5);
}

inline void pack_bin(std::string& out, std::string_view s) {
  auto n = s.size();
  if (n <= 0xff) {
    out.push_back(static_cast<char>(0xc4));
    put_be(out, n, 1);
  } else if (n <= 0xffff) {
    out.push_back(static_cast<char>(0xc5));
    put_be(out, n, 2);
  } else {
    out.push_back(static_cast<char>(0xc6));
    put_be(out, n, 4);
  }
  out.append(s);
}

inline size_t bin_size(size_t n) noexcept {
  return n + (n <= 0xff ? 2 : n <= 0xffff ? 3 : 5);
}

inline void pack_array_header(std::string& out, size_t n) {
  if (n < 16) {
    out.push_back(static_cast<char>(0x90 | n));
  } else if (n <= 0xffff) {
    out.push_back(static_cast<char>(0xdc));
    put_be(out, n, 2);
  } else {
    out.push_back(static_cast<char>(0xdd));
    put_be(out, n, 4);
  }
}

inline void pack_map_header(std::string& out, size_t n) {
  if (n < 16) {
    out.push_back(static_cast<char>(0x80 | n));
  } else if (n <= 0xffff) {
    out.push_back(static_cast<char>(0xde));
    put_be(out, n, 2);
  } else {
    out.push_back(static_cast<char>(0xdf));
    put_be(out, n, 4);
  }
}

inline size_t container_header_size(size_t n) noexcept {
  return n < 16 ? 1 : n <= 0xffff ? 3 : 5;
}

/// Reads what the writer above produces, refusing anything else. Every read checks
/// bounds; after any failure `ok()` is false and further reads return defaults.
class reader {
public:
  explicit reader(std::string_view buf) noexcept : p_(buf.data()), end_(buf.data() + buf.size()) {
    // nop
  }

  bool ok() const noexcept {
    return ok_;
  }
  bool at_end() const noexcept {
    return p_ == end_;
  }
  const char* pos() const noexcept {
    return p_;
  }

  uint64_t read_uint() noexcept {
    if (!need(1))
      return 0;
    auto tag = static_cast<unsigned char>(*p_++);
    if (tag < 0x80)
      return tag;
    switch (tag) {
      case 0xcc:
        return fixed(1);
      case 0xcd:
        return fixed(2);
      case 0xce:
        return fixed(4);
      case 0xcf:
        return fixed(8);
      default:
        return fail();
    }
  }

  int64_t read_int() noexcept {
    if (!need(1))
      return 0;
    auto tag = static_cast<unsigned char>(*p_);
    if (tag < 0x80 || (tag >= 0xcc && tag <= 0xcf))
      return static_cast<int64_t>(read_uint());
    ++p_;
    if (tag >= 0xe0)
      return static_cast<int8_t>(tag);
    switch (tag) {
      case 0xd0:
        return static_cast<int8_t>(fixed(1));
      case 0xd1:
        return static_cast<int16_t>(fixed(2));
      case 0xd2:
        return static_cast<int32_t>(fixed(4));
      case 0xd3:
        return static_cast<int64_t>(fixed(8));
      default:
        return static_cast<int64_t>(fail());
    }
  }

  std::string_view read_str() noexcept {
    if (!need(1))
      return {};
    auto tag = static_cast<unsigned char>(*p_++);
    size_t n = 0;
    if ((tag & 0xe0) == 0xa0)
      n = tag & 0x1f;
    else if (tag == 0xd9)
      n = fixed(1);
    else if (tag == 0xda)
      n = fixed(2);
    else if (tag == 0xdb)
      n = fixed(4);
    else
      return fail(), std::string_view{};
    return take(n);
  }

  std::string_view read_bin() noexcept {
    if (!need(1))
      return {};
    auto tag = static_cast<unsigned char>(*p_++);
    size_t n = 0;
    if (tag == 0xc4)
      n = fixed(1);
    else if (tag == 0xc5)
      n = fixed(2);
    else if (tag == 0xc6)
      n = fixed(4);
    else
      return fail(), std::string_view{};
    return take(n);
  }

  size_t read_array_header() noexcept {
    if (!need(1))
      return 0;
    auto tag = static_cast<unsigned char>(*p_++);
    if ((tag & 0xf0) == 0x90)
      return tag & 0x0f;
    if (tag == 0xdc)
      return fixed(2);
    if (tag == 0xdd)
      return fixed(4);
    return fail();
  }

  size_t read_map_header() noexcept {
    if (!need(1))
      return 0;
    auto tag = static_cast<unsigned char>(*p_++);
    if ((tag & 0xf0) == 0x80)
      return tag & 0x0f;
    if (tag == 0xde)
      return fixed(2);
    if (tag == 0xdf)
      return fixed(4);
    return fail();
  }

private:
  bool need(size_t n) noexcept {
    if (!ok_ || static_cast<size_t>(end_ - p_) < n) {
      ok_ = false;
      return false;
    }
    return true;
  }
  uint64_t fixed(int bytes) noexcept {
    if (!need(static_cast<size_t>(bytes)))
      return 0;
    auto x = get_be(p_, bytes);
    p_ += bytes;
    return x;
  }
  std::string_view take(size_t n) noexcept {
    if (!need(n))
      return {};
    std::string_view result{p_, n};
    p_ += n;
    return result;
  }
  uint64_t fail() noexcept {
    ok_ = false;
    return 0;
  }

  const char* p_;
  const char* end_;
  bool ok_ = true;
};

} // namespace evident::detail
