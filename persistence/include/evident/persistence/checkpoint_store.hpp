#pragma once

#include "evident/persistence/errc.hpp"
#include "evident/persistence/options.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace evident {

class environment;
class txn;

/// The positions views and sagas have processed, in the `checkpoints` DB of a journal's
/// LMDB environment: key = subscriber name, value = global position (u64 big-endian).
///
/// A view that keeps its rows in the same environment (a DB from
/// `environment::open_db`) stores rows and checkpoint in ONE transaction with the
/// `txn&` overloads, so after a crash both or neither are there:
///
///   auto rows = env->open_db("view.balances");
///   env->write([&](txn& t) -> status {
///     if (auto err = t.put(*rows, key, value)) return err;
///     return checkpoints.save(t, "view.balances", position);
///   });
///
/// Names: not empty, at most `max_id_bytes` bytes, no control characters.
///
/// Thread: any thread. The overloads without a txn open their own; the `txn&` ones run
/// on the caller's thread inside the caller's transaction.
class checkpoint_store {
public:
  explicit checkpoint_store(std::shared_ptr<environment> env);

  /// The stored position of `name`; nullopt when it has none.
  /// Fails with: invalid_input, too_large (bad name), corrupted (the value is not 8
  ///   bytes), io_error.
  [[nodiscard]] expected<std::optional<uint64_t>> load(const std::string& name);

  /// Same, inside the caller's (read or write) transaction, so it sees that
  /// transaction's own uncommitted writes.
  [[nodiscard]] expected<std::optional<uint64_t>> load(txn& t, const std::string& name);

  /// Stores `position` for `name` in a write transaction of its own (replacing any
  /// earlier position; it may move backwards, e.g. when a view rebuilds).
  /// Cost: one commit, i.e. two flushes under the default durability, one with
  /// commit_sync::deferred (a machine crash may then undo the save: right for
  /// at-least-once subscribers, which get the events since the older position again).
  /// Fails with: invalid_input, too_large (bad name), storage_full, io_error.
  [[nodiscard]] status save(const std::string& name, uint64_t position,
                            commit_sync how = commit_sync::durable);

  /// Stores `position` for `name` in the caller's write transaction: it is committed
  /// or rolled back with the caller's other writes.
  /// Fails with: invalid_input (bad name, or `write_txn` is read-only), too_large,
  ///   storage_full (the caller's `environment::write` grows the map and retries),
  ///   io_error.
  [[nodiscard]] status save(txn& write_txn, const std::string& name, uint64_t position);

  /// Removes the position of `name`; removing an absent one is no error.
  [[nodiscard]] status remove(const std::string& name);

  /// Same, in the caller's write transaction.
  [[nodiscard]] status remove(txn& write_txn, const std::string& name);

  /// Every stored (name, position), in byte order of the names.
  /// Fails with: corrupted, io_error.
  [[nodiscard]] expected<std::vector<std::pair<std::string, uint64_t>>> list();

  const std::shared_ptr<environment>& env() const noexcept {
    return env_;
  }

private:
  status check_name(const std::string& name) const;

  std::shared_ptr<environment> env_;
};

} // namespace evident
