#pragma once

// The bridge actor behind runtime::ask_async (ask_async.cpp), reachable on its own so
// that tests can put it in front of a stand-in router. Not part of the API: use
// runtime::ask_async.

#include "evident/actors/aggregate.hpp"
#include "evident/persistence/errc.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <chrono>
#include <functional>
#include <string>

namespace evident::detail {

/// Spawns one bridge (a cooperative actor) that sends to `router` (aggregate_router.hpp
/// protocol). It stops on an exit message; requests it still holds then get timeout.
caf::actor spawn_ask_bridge(caf::actor_system& sys, caf::actor router);

/// Sends a command through `bridge`: `done` gets the reply or the error exactly once, on
/// a CAF worker thread (invalid_input at once, on the calling thread, for a timeout <= 0).
/// A request_receiver_down answer is sent once more. Counted in no runtime.
void ask_through_bridge(const caf::actor& bridge, std::string type, std::string id,
                        std::string command_id, command_box cmd, std::chrono::milliseconds timeout,
                        std::function<void(expected<reply_box>)> done);

} // namespace evident::detail
