// evident-downloads: download licensing on an embedded evident::runtime. Runs a short
// scripted scenario against one account and prints each answer, then the account's view.
//
//   evident-downloads [--data DIR]     (default ./downloads-data)
//
// Every command carries a command id, so running again on the same data dir retries the
// script: committed steps get their original answers; refused steps persisted nothing
// and are decided again against today's state.
// Exit codes: 0 done and stopped cleanly, 1 a command or the stop failed, 2 bad options
// or start failure.

#include "account_downloads.hpp"
#include "license.hpp"

#include "evident/runtime/runtime.hpp"

#include <cstdio>
#include <exception>
#include <iostream>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

namespace {

constexpr std::string_view usage = "usage: evident-downloads [--data DIR]\n";

std::string describe(const downloads::license_command& c) {
  using namespace downloads;
  return std::visit(
      [](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, open>)
          return "open with limit " + std::to_string(x.limit);
        else if constexpr (std::is_same_v<T, set_limit>)
          return "set limit " + std::to_string(x.limit);
        else if constexpr (std::is_same_v<T, start_download>)
          return "start " + x.download_id + " (" + x.title + ") on " + x.device;
        else if constexpr (std::is_same_v<T, finish_download>)
          return "finish " + x.download_id;
        else
          return "revoke device " + x.device;
      },
      c);
}

} // namespace

int main(int argc, char** argv) {
  std::string data = "./downloads-data";
  std::vector<std::string_view> args(argv + 1, argv + argc);
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--help" || args[i] == "-h") {
      std::cout << usage;
      return 0;
    }
    if (args[i] == "--data" && i + 1 < args.size()) {
      data = args[++i];
      continue;
    }
    std::cerr << "evident-downloads: unexpected argument '" << args[i] << "'\n" << usage;
    return 2;
  }

  evident::runtime_config cfg;
  cfg.storage.data_dir = data;
  auto rt = evident::runtime::start(cfg);
  if (!rt) {
    std::cerr << "evident-downloads: " << evident::to_string(rt.err()) << "\n";
    return 2;
  }
  try {
    (*rt)->register_aggregate<downloads::license_aggregate>();
    (*rt)->register_view<downloads::account_downloads_view>();
  } catch (const std::exception& ex) {
    std::cerr << "evident-downloads: " << ex.what() << "\n";
    return 2;
  }

  using namespace downloads;
  const std::string account = "acme";
  const std::vector<license_command> script = {
      open{3},
      start_download{"laptop", "d1", "Film A"},
      start_download{"phone", "d2", "Album B"},
      start_download{"laptop", "d3", "Series C"},
      start_download{"tablet", "d4", "Book D"}, // refused: 3 of 3 active
      finish_download{"d2"},                    // frees a slot
      start_download{"tablet", "d4", "Book D"}, // now accepted
      revoke_device{"laptop"},                  // ends d1 and d3
      start_download{"laptop", "d5", "Film E"}, // refused: the laptop is revoked
      start_download{"phone", "d5", "Film E"},
  };
  std::printf("account %s, data %s\n", account.c_str(), data.c_str());
  int failed = 0;
  for (size_t i = 0; i < script.size(); ++i) {
    auto command_id = "script-" + std::to_string(i + 1);
    auto r = (*rt)->ask<license_aggregate>(account, script[i], command_id);
    std::printf("  %-34s -> ", describe(script[i]).c_str());
    if (!r) {
      std::printf("error: %s\n", evident::to_string(r.err()).c_str());
      ++failed;
    } else if (!r->ok()) {
      std::printf("refused: %s (active %u of %u)\n", std::string{to_string(r->refused)}.c_str(),
                  r->active, r->limit);
    } else {
      std::printf("ok (active %u of %u)\n", r->active, r->limit);
    }
  }

  // Read your writes: wait until the view has applied everything written so far.
  auto head = (*rt)->journal()->last_position();
  auto view
      = (*rt)->query<account_downloads_view>(account_downloads_query{account}, head ? *head : 0);
  if (!view) {
    std::printf("view: error: %s\n", evident::to_string(view.err()).c_str());
    ++failed;
  } else {
    std::printf("view of %s: limit %u, active %llu, finished %llu, revoked %llu\n", account.c_str(),
                view->limit, static_cast<unsigned long long>(view->active),
                static_cast<unsigned long long>(view->finished),
                static_cast<unsigned long long>(view->revoked));
    for (const auto& d : view->devices) {
      std::printf("  %-8s%s", d.device.c_str(), d.revoked ? " (revoked)" : "");
      for (const auto& [id, title] : d.active)
        std::printf(" %s:%s", id.c_str(), title.c_str());
      std::printf("\n");
    }
    std::printf("all accounts: %llu, active downloads: %llu\n",
                static_cast<unsigned long long>(view->all_accounts),
                static_cast<unsigned long long>(view->all_active));
  }

  if (auto err = (*rt)->stop()) {
    std::cerr << "evident-downloads: stopped with " << evident::to_string(err) << "\n";
    return 1;
  }
  std::printf("stopped\n");
  return failed == 0 ? 0 : 1;
}
