#include "evident/persistence/checkpoint_store.hpp"

#include "evident/persistence/environment.hpp"

#include <algorithm>

namespace evident {

namespace {

constexpr size_t value_bytes = 8;

std::string encode_position(uint64_t x) {
  std::string out(value_bytes, '\0');
  for (size_t i = 0; i < value_bytes; ++i)
    out[i] = static_cast<char>((x >> (8 * (value_bytes - 1 - i))) & 0xff);
  return out;
}

expected<uint64_t> decode_position(std::string_view name, std::string_view value) {
  // Big-endian u64 today. A cluster keeps per-node positions later; that will be a new,
  // longer layout, so any other size is a record we cannot read.
  if (value.size() != value_bytes)
    return error{errc::corrupted, "checkpoint '" + std::string{name} + "' has "
                                    + std::to_string(value.size())
                                    + " bytes, expected 8"};
  uint64_t x = 0;
  for (auto c : value)
    x = (x << 8) | static_cast<unsigned char>(c);
  return x;
}

} // namespace

checkpoint_store::checkpoint_store(std::shared_ptr<environment> env) : env_(std::move(env)) {
  // nop
}

status checkpoint_store::check_name(const std::string& name) const {
  if (name.empty())
    return {errc::invalid_input, "checkpoint name is empty"};
  auto limit = env_->options().max_id_bytes;
  if (name.size() > limit)
    return {errc::too_large,
            "checkpoint name is longer than " + std::to_string(limit) + " bytes"};
  // Names are printed by `evident checkpoints` and end up in logs and JSON.
  auto bad = std::find_if(name.begin(), name.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
  if (bad != name.end())
    return {errc::invalid_input, "checkpoint name contains a control character"};
  return {};
}

expected<std::optional<uint64_t>> checkpoint_store::load(const std::string& name) {
  if (auto err = check_name(name))
    return err;
  auto t = env_->begin_read();
  if (!t)
    return std::move(t).err();
  return load(*t, name);
}

expected<std::optional<uint64_t>> checkpoint_store::load(txn& t, const std::string& name) {
  if (auto err = check_name(name))
    return err;
  auto value = t.get(t.dbs().checkpoints, name);
  if (!value)
    return std::move(value).err();
  if (!*value)
    return std::optional<uint64_t>{};
  auto pos = decode_position(name, **value);
  if (!pos)
    return std::move(pos).err();
  return std::optional<uint64_t>{*pos};
}

status checkpoint_store::save(const std::string& name, uint64_t position, commit_sync how) {
  if (auto err = check_name(name))
    return err;
  return env_->write([&](txn& t) { return save(t, name, position); }, how);
}

status checkpoint_store::save(txn& write_txn, const std::string& name, uint64_t position) {
  if (auto err = check_name(name))
    return err;
  if (!write_txn.writable())
    return {errc::invalid_input, "saving checkpoint '" + name + "' needs a write transaction"};
  return write_txn.put(write_txn.dbs().checkpoints, name, encode_position(position));
}

status checkpoint_store::remove(const std::string& name) {
  if (auto err = check_name(name))
    return err;
  return env_->write([&](txn& t) { return remove(t, name); });
}

status checkpoint_store::remove(txn& write_txn, const std::string& name) {
  if (auto err = check_name(name))
    return err;
  if (!write_txn.writable())
    return {errc::invalid_input,
            "removing checkpoint '" + name + "' needs a write transaction"};
  return write_txn.del(write_txn.dbs().checkpoints, name);
}

expected<std::vector<std::pair<std::string, uint64_t>>> checkpoint_store::list() {
  auto t = env_->begin_read();
  if (!t)
    return std::move(t).err();
  cursor cur{*t, t->dbs().checkpoints};
  std::vector<std::pair<std::string, uint64_t>> out;
  for (auto e = cur.first();; e = cur.next()) {
    if (!e)
      return std::move(e).err();
    if (!*e)
      break;
    auto pos = decode_position((*e)->key, (*e)->value);
    if (!pos)
      return std::move(pos).err();
    out.emplace_back(std::string{(*e)->key}, *pos);
  }
  return out;
}

} // namespace evident
