#pragma once

#include "evident/persistence/envelope.hpp"
#include "evident/persistence/errc.hpp"

#include <msgpack.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace evident {

// -- msgpack helpers ---------------------------------------------------------------

namespace detail {

/// Lets msgpack's packer append to a std::string.
struct string_sink {
  std::string& out;
  void write(const char* p, size_t n) {
    out.append(p, n);
  }
};

} // namespace detail

/// The msgpack encoding of `x`; T is anything msgpack-c can pack (e.g. a struct with
/// MSGPACK_DEFINE). Throws only what allocation throws.
template <class T>
std::string to_msgpack(const T& x) {
  std::string out;
  detail::string_sink sink{out};
  msgpack::pack(sink, x);
  return out;
}

namespace detail {

// msgpack::unpack without a zone makes a fresh one per call: an 8 KB malloc for every
// event, command or record decoded. Each thread keeps one zone instead, cleared after
// each decode (the decoded T owns copies of everything). A decode nested inside another
// (a converter that decodes an embedded payload) gets a zone of its own.
struct decode_zone {
  msgpack::zone* zone;
  std::unique_ptr<msgpack::zone> nested;

  decode_zone() {
    thread_local msgpack::zone shared;
    if (depth()++ == 0) {
      zone = &shared;
    } else {
      nested = std::make_unique<msgpack::zone>(1024);
      zone = nested.get();
    }
  }

  ~decode_zone() {
    if (--depth() == 0)
      zone->clear();
  }

  decode_zone(const decode_zone&) = delete;
  decode_zone& operator=(const decode_zone&) = delete;

  static int& depth() noexcept {
    thread_local int n = 0;
    return n;
  }
};

} // namespace detail

/// Decodes one T from all of `bytes`. T must be default-constructible.
/// Never throws (msgpack's exceptions are caught).
/// Fails with: invalid_input (not msgpack, trailing bytes, or not the shape of T).
template <class T>
expected<T> from_msgpack(std::string_view bytes) {
  try {
    detail::decode_zone z;
    size_t offset = 0;
    auto obj = msgpack::unpack(*z.zone, bytes.data(), bytes.size(), offset);
    if (offset != bytes.size())
      return error{errc::invalid_input, std::to_string(bytes.size() - offset)
                                          + " trailing bytes after the msgpack value"};
    T x{};
    obj.convert(x);
    return x;
  } catch (const std::exception& ex) {
    return error{errc::invalid_input, std::string{"msgpack does not decode: "} + ex.what()};
  }
}

// -- schema_registry ---------------------------------------------------------------

/// The non-template core of a type registry: which event type names exist today, at
/// which schema version, and the upcasters that lift payloads written under older
/// schemas (or older names) to them. Works on msgpack bytes only, so tools that do
/// not know the C++ types can use it too.
///
/// Each step is keyed by (name, schema) and produces (name', schema', bytes'):
///
///   ("bank.money_in", 1) --rename--> ("bank.deposited", 1) --upcast--> (…, 2) = current
///
/// A plain upcast keeps the name and raises the schema by one; a rename may change
/// both. Each (name, schema) has at most one step, so the path from any stored
/// (name, schema) is fixed, and registration refuses steps that would form a cycle.
///
/// Thread: build once (registration is not synchronized), then share; const members
/// may run on any number of threads at once.
class schema_registry {
public:
  /// Turns msgpack bytes of one schema into those of the next. Throws (any
  /// std::exception) when it cannot read its input; `lift` reports that as corrupted.
  using transform = std::function<std::string(std::string_view)>;

  /// Declares `name` a current type at `schema` (events of that type are written with
  /// it). Fails with invalid_input: empty name, schema 0, name already registered, or
  /// an upcaster from (name, s >= schema) exists.
  [[nodiscard]] status add(std::string name, uint32_t schema);

  /// Registers the step (name, from_schema) -> (name, from_schema + 1) via `fn`.
  /// Fails with invalid_input: empty name, schema 0 or max, missing fn, a step from
  /// (name, from_schema) exists already, `name` is current at a schema <= from_schema,
  /// or the step closes a cycle.
  [[nodiscard]] status upcast(std::string name, uint32_t from_schema, transform fn);

  /// Registers the step (old_name, old_schema) -> (new_name, new_schema), with `fn`
  /// converting the payload (none: the bytes stay as they are).
  /// Fails with invalid_input like `upcast`, and when the names are equal.
  [[nodiscard]] status rename(std::string old_name, uint32_t old_schema, std::string new_name,
                              uint32_t new_schema, transform fn = {});

  /// True when `name` is a current type or an old one that steps lead away from.
  bool knows(std::string_view name) const noexcept;

  /// The schema `name` is written with today; nullopt when it is not current.
  std::optional<uint32_t> current_schema(std::string_view name) const noexcept;

  /// A payload lifted to a current type.
  struct lifted {
    /// The current type name (points into the registry).
    std::string_view type;
    /// Its current schema.
    uint32_t schema = 0;
    /// The payload in that schema: the input itself when no step ran, else `buffer`.
    std::string_view payload;
    /// How many steps ran.
    unsigned steps = 0;
  };

  /// Applies the steps from (type, schema) until a current (name, schema) is reached.
  /// Cost: one map lookup per step plus what the transforms cost; nothing is copied
  /// when the input is current already. `buffer` holds transformed bytes.
  /// Never throws (transform exceptions are caught).
  /// Fails with: unknown_event_type (the type is unknown, its schema is newer than the
  ///   registered one, or no step leads from an old schema to the current one),
  ///   corrupted (a transform threw on the payload).
  [[nodiscard]] expected<lifted> lift(std::string_view type, uint32_t schema,
                                      std::string_view payload, std::string& buffer) const;

private:
  struct step {
    std::string to_name;
    uint32_t to_schema = 0;
    transform fn; // empty: bytes unchanged
  };

  status add_step(std::string name, uint32_t schema, step s);
  const step* find_step(std::string_view name, uint32_t schema) const noexcept;

  std::map<std::string, uint32_t, std::less<>> current_;
  std::map<std::string, std::map<uint32_t, step>, std::less<>> steps_;
  size_t step_count_ = 0;
};

// -- type_registry -----------------------------------------------------------------

namespace detail {

/// The alternatives of an event type: a std::variant's, or the type itself.
template <class Event>
struct event_alternatives {
  static constexpr size_t size = 1;
  template <class T>
  static constexpr size_t index_of() noexcept {
    return std::is_same_v<T, Event> ? 0 : size_t(-1);
  }
};

template <class... Ts>
struct event_alternatives<std::variant<Ts...>> {
  static constexpr size_t size = sizeof...(Ts);
  template <class T>
  static constexpr size_t index_of() noexcept {
    constexpr bool same[] = {std::is_same_v<T, Ts>...};
    for (size_t i = 0; i < size; ++i)
      if (same[i])
        return i;
    return size_t(-1);
  }
};

template <class Event>
inline constexpr bool is_variant_v = false;

template <class... Ts>
inline constexpr bool is_variant_v<std::variant<Ts...>> = true;

} // namespace detail

/// Maps the C++ event types of one domain to (type name, schema version) and back.
/// `Event` is a std::variant<A, B, ...> of msgpack-serializable structs
/// (MSGPACK_DEFINE, default-constructible), or a single such struct.
///
///   type_registry<account_event> reg;
///   reg.add<deposited>("bank.deposited", 2)
///      .add<withdrawn>("bank.withdrawn")
///      .upcast<deposited_v1, deposited>("bank.deposited", 1,
///                                       [](const deposited_v1& o) { return deposited{…}; });
///   auto data = reg.encode(account_event{deposited{100}}); // event_data for the journal
///   auto ev = reg.decode(recorded);                        // old schemas are upcast
///
/// Registration throws std::invalid_argument on misuse (it runs at startup);
/// encode and decode never throw. Events the registry does not know are not the
/// journal's concern: tools that do not know the types read recorded_event as is.
///
/// Thread: build once, then share; const members may run on any thread at once.
template <class Event>
class type_registry {
public:
  using alternatives = detail::event_alternatives<Event>;
  using transform = schema_registry::transform;

  // -- registration ----------------------------------------------------------------

  /// Writes and reads T as `name` at `schema` (default 1).
  /// Throws std::invalid_argument when T or `name` is registered already, or as
  /// schema_registry::add fails.
  template <class T>
  type_registry& add(std::string name, uint32_t schema = 1) {
    constexpr auto index = alternatives::template index_of<T>();
    static_assert(index != size_t(-1), "T is not an alternative of Event");
    if (names_[index])
      throw std::invalid_argument("type_registry: a C++ type is registered twice (as '"
                                  + names_[index]->first + "' and '" + name + "')");
    check(core_.add(name, schema));
    decoders_.emplace(name, &decode_as<T>);
    names_[index].emplace(std::move(name), schema);
    return *this;
  }

  /// Lifts payloads of `name` at `from_schema` to `from_schema + 1` with `fn`, which
  /// maps msgpack bytes to msgpack bytes and throws on input it cannot read.
  /// Throws std::invalid_argument as schema_registry::upcast fails.
  type_registry& upcast(std::string name, uint32_t from_schema, transform fn) {
    check(core_.upcast(std::move(name), from_schema, std::move(fn)));
    return *this;
  }

  /// Typed form of `upcast`: decodes the payload as Old (a struct mirroring the old
  /// schema), maps it with `fn` and encodes the New result. A payload that does not
  /// decode as Old makes `decode` fail with corrupted.
  template <class Old, class New>
  type_registry& upcast(std::string name, uint32_t from_schema,
                        std::function<New(const Old&)> fn) {
    return upcast(std::move(name), from_schema, typed<Old, New>(std::move(fn)));
  }

  /// Reads payloads stored as (old_name, old_schema) as (new_name, new_schema),
  /// converting them with `fn` when given. Throws std::invalid_argument as
  /// schema_registry::rename fails.
  type_registry& rename(std::string old_name, uint32_t old_schema, std::string new_name,
                        uint32_t new_schema, transform fn = {}) {
    check(core_.rename(std::move(old_name), old_schema, std::move(new_name), new_schema,
                       std::move(fn)));
    return *this;
  }

  // -- queries ---------------------------------------------------------------------

  /// The name T is registered under; empty when it is not.
  template <class T>
  std::string_view name_of() const noexcept {
    constexpr auto index = alternatives::template index_of<T>();
    static_assert(index != size_t(-1), "T is not an alternative of Event");
    return names_[index] ? std::string_view{names_[index]->first} : std::string_view{};
  }

  /// True when events stored as `name` can be decoded (current or upcast names).
  bool knows(std::string_view name) const noexcept {
    return core_.knows(name);
  }

  /// The schema `name` is written with today.
  std::optional<uint32_t> current_schema(std::string_view name) const noexcept {
    return core_.current_schema(name);
  }

  const schema_registry& schemas() const noexcept {
    return core_;
  }

  // -- encoding --------------------------------------------------------------------

  /// The envelope fields of `e`: type name, current schema and msgpack payload (the
  /// other fields of event_data keep their defaults).
  /// Fails with: unknown_event_type (e's type was not added), invalid_input (msgpack
  ///   refused to encode it).
  [[nodiscard]] expected<event_data> encode(const Event& e) const {
    size_t index = 0;
    if constexpr (detail::is_variant_v<Event>)
      index = e.index();
    if (index >= names_.size() || !names_[index])
      return error{errc::unknown_event_type,
                   "the event's C++ type (alternative " + std::to_string(index)
                     + ") is not registered"};
    event_data out;
    out.type = names_[index]->first;
    out.schema = names_[index]->second;
    try {
      if constexpr (detail::is_variant_v<Event>)
        out.payload = std::visit([](const auto& x) { return to_msgpack(x); }, e);
      else
        out.payload = to_msgpack(e);
    } catch (const std::exception& ex) {
      return error{errc::invalid_input, "encoding '" + out.type + "' failed: " + ex.what()};
    }
    return out;
  }

  /// Decodes a stored event into today's type, upcasting old schemas and names.
  /// Fails as the three-argument overload.
  [[nodiscard]] expected<Event> decode(const recorded_event& e) const {
    return decode(e.type, e.schema, e.payload);
  }

  /// Decodes `payload`, stored as (type, schema), into today's type.
  /// Cost: one lookup, the upcasters on the path, one msgpack parse.
  /// Never throws.
  /// Fails with: unknown_event_type (unknown type, schema newer than registered, or no
  ///   upcaster path), corrupted (the payload or an upcaster's output does not decode,
  ///   or an upcaster threw).
  [[nodiscard]] expected<Event> decode(std::string_view type, uint32_t schema,
                                       std::string_view payload) const {
    std::string buffer;
    auto l = core_.lift(type, schema, payload, buffer);
    if (!l)
      return std::move(l).err();
    auto d = decoders_.find(l->type);
    if (d == decoders_.end()) // registered via the core only; cannot happen via add
      return error{errc::unknown_event_type,
                   "event type '" + std::string{l->type} + "' has no C++ type"};
    auto result = d->second(l->payload);
    if (!result) {
      std::string where = "event '" + std::string{type} + "' schema " + std::to_string(schema);
      if (l->steps > 0)
        where += " (upcast to '" + std::string{l->type} + "' schema "
                 + std::to_string(l->schema) + ")";
      return error{errc::corrupted, where + ": " + result.err().message};
    }
    return result;
  }

private:
  using decoder = expected<Event> (*)(std::string_view);

  template <class T>
  static expected<Event> decode_as(std::string_view bytes) {
    auto x = from_msgpack<T>(bytes);
    if (!x)
      return std::move(x).err();
    if constexpr (detail::is_variant_v<Event>)
      return Event{std::in_place_type<T>, std::move(*x)};
    else
      return std::move(*x);
  }

  template <class Old, class New>
  static transform typed(std::function<New(const Old&)> fn) {
    if (!fn)
      return {};
    return [fn = std::move(fn)](std::string_view bytes) {
      auto old = from_msgpack<Old>(bytes);
      if (!old)
        throw std::runtime_error(old.err().message);
      return to_msgpack(fn(*old));
    };
  }

  static void check(const status& st) {
    if (st)
      throw std::invalid_argument("type_registry: " + st.message);
  }

  schema_registry core_;
  /// Name and schema per alternative of Event.
  std::array<std::optional<std::pair<std::string, uint32_t>>, alternatives::size> names_;
  std::map<std::string, decoder, std::less<>> decoders_;
};

} // namespace evident
