#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace evident {

/// Every error the persistence floor can report. Names are stable: the CLI prints
/// them (`to_string`) and later floors register this enum with CAF.
enum class errc : uint8_t {
  none = 0,
  /// An append's expected version did not match; `error::expected` and `error::actual`
  /// say what was expected and what the stream is at. Re-read, decide again.
  wrong_expected_version = 1,
  /// The stream is tombstoned: it refuses every append and every read.
  stream_deleted,
  /// The stream does not exist (never written, or soft-deleted).
  stream_not_found,
  /// A record failed its checksum or does not decode; `error::position` names it.
  corrupted,
  /// The LMDB map reached its configured cap; nothing of the failed write was stored.
  storage_full,
  /// An event, a batch or an id exceeds a configured limit; nothing was stored.
  too_large,
  /// Malformed input: bad JSON or msgpack, a bad id, a missing field. Nothing stored.
  invalid_input,
  /// The directory holds no evident journal (or a foreign LMDB file).
  not_a_journal,
  /// The journal was written by a newer format version than this build reads.
  unsupported_format,
  /// A typed read met an event type (or schema version) no one registered.
  unknown_event_type,
  /// An I/O or LMDB failure: the outcome of a write is unknown; the caller must
  /// re-read before deciding again.
  io_error,
  /// A bounded queue was full; the request was not taken. Retry later.
  overloaded,
  /// A request did not finish in its time limit; its outcome is unknown.
  timeout,
  /// The component that should take the request is not running (the runtime is
  /// stopping or stopped, or the owner node is down). Nothing was taken or written;
  /// retry elsewhere or later.
  unavailable,
};

/// The stable name of `x`, e.g. "wrong_expected_version".
std::string_view to_string(errc x) noexcept;

/// Parses a name produced by `to_string`.
std::optional<errc> errc_from_string(std::string_view name) noexcept;

/// An error code with a human-readable message and, where they apply, the facts a
/// caller needs to react (a conflict's versions, a corrupt record's position).
struct error {
  errc code = errc::none;
  std::string message;
  /// For wrong_expected_version: what the caller expected ("any", "no_stream",
  /// "stream_exists" or a number) and the stream's actual version.
  std::string expected;
  std::optional<uint64_t> actual;
  /// For corrupted: the global position of the bad record.
  std::optional<uint64_t> position;

  error() = default;
  error(errc c, std::string msg) : code(c), message(std::move(msg)) {
    // nop
  }

  explicit operator bool() const noexcept {
    return code != errc::none;
  }
};

/// "code: message" for logs.
std::string to_string(const error& x);

/// Either a value or an error (C++23's std::expected is not available with g++ 12 in
/// C++20 mode). Cheap to move; the error path is the cold one.
template <class T>
class [[nodiscard]] expected {
public:
  using value_type = T;

  expected(T x) : data_(std::in_place_index<0>, std::move(x)) {
    // nop
  }
  expected(error e) : data_(std::in_place_index<1>, std::move(e)) {
    // nop
  }
  expected(errc c, std::string msg) : data_(std::in_place_index<1>, error{c, std::move(msg)}) {
    // nop
  }

  bool has_value() const noexcept {
    return data_.index() == 0;
  }
  explicit operator bool() const noexcept {
    return has_value();
  }

  T& value() & {
    return std::get<0>(data_);
  }
  const T& value() const& {
    return std::get<0>(data_);
  }
  T&& value() && {
    return std::get<0>(std::move(data_));
  }
  T& operator*() & {
    return value();
  }
  const T& operator*() const& {
    return value();
  }
  T&& operator*() && {
    return std::move(*this).value();
  }
  T* operator->() {
    return &value();
  }
  const T* operator->() const {
    return &value();
  }

  /// The error; an empty error (code none) when there is a value.
  const error& err() const& {
    static const error no_error;
    return data_.index() == 1 ? std::get<1>(data_) : no_error;
  }
  error err() && {
    return data_.index() == 1 ? std::get<1>(std::move(data_)) : error{};
  }

private:
  std::variant<T, error> data_;
};

/// The result of an operation that yields no value: an empty error means success.
using status = error;

/// Marks an error that is dropped on purpose, so such places can be found with grep.
inline void ignore(const error&, const char* /*why*/) noexcept {
  // nop
}

} // namespace evident
