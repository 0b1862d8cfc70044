// The smallest daemon on an installed evident: one aggregate, one durable command, a
// temporal query, a graceful stop. Exits 0 when every answer is what it must be.
//
//   consumer <data_dir>

#include <evident/runtime/runtime.hpp>

#include <msgpack.hpp>

#include <iostream>
#include <string_view>

namespace {

struct deposited {
  int64_t amount = 0;
  MSGPACK_DEFINE(amount)
};
struct account {
  int64_t balance = 0;
  MSGPACK_DEFINE(balance)
};
struct deposit {
  int64_t amount = 0;
};
struct balance_reply {
  int64_t balance = 0;
  MSGPACK_DEFINE(balance)
};

struct account_aggregate {
  using state = account;
  using command = deposit;
  using event = deposited;
  using reply = balance_reply;
  static constexpr std::string_view name = "account";
  static void register_events(evident::type_registry<event>& r) {
    r.add<deposited>("consumer.deposited");
  }
  static evident::effect<state, event, reply> decide(const state&, const command& c) {
    return evident::persist(deposited{c.amount}).then_reply([](const account& now) {
      return balance_reply{now.balance};
    });
  }
  static state apply(state s, const event& e) {
    s.balance += e.amount;
    return s;
  }
};

} // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: consumer <data_dir>\n";
    return 2;
  }
  evident::runtime_config cfg;
  cfg.storage.data_dir = argv[1];
  cfg.storage.sync = evident::durability::no_sync;
  auto rt = evident::runtime::start(cfg);
  if (!rt) {
    std::cerr << evident::to_string(rt.err()) << "\n";
    return 1;
  }
  (*rt)->register_aggregate<account_aggregate>();
  auto first = (*rt)->ask<account_aggregate>("a-1", deposit{40}, "cmd-1");
  auto second = (*rt)->ask<account_aggregate>("a-1", deposit{2}, "cmd-2");
  auto retry = (*rt)->ask<account_aggregate>("a-1", deposit{2}, "cmd-2");
  auto then = (*rt)->state_of<account_aggregate>("a-1", evident::state_query::at_version(1));
  if (!first || !second || !retry || !then) {
    std::cerr << "a request failed\n";
    return 1;
  }
  std::cout << "balance " << second->balance << ", retry " << retry->balance << ", at v1 "
            << then->state.balance << "\n";
  if (auto err = (*rt)->stop()) {
    std::cerr << evident::to_string(err) << "\n";
    return 1;
  }
  return second->balance == 42 && retry->balance == 42 && then->state.balance == 40 ? 0 : 1;
}
