#include "evident/actors/message_types.hpp"

#include "evident/actors/aggregate_router.hpp"
#include "evident/actors/committed_batch.hpp"
#include "evident/actors/errc.hpp"
#include "evident/actors/event_batch.hpp"
#include "evident/actors/event_bus.hpp"
#include "evident/actors/journal_writer.hpp"
#include "evident/actors/snapshot_writer.hpp"
#include "evident/actors/subscription.hpp"
#include "evident/actors/temporal.hpp"
#include "evident/actors/view.hpp"

namespace evident {

void add_message_types(caf::actor_system_config& cfg) {
  // add_message_type<T> also registers std::vector<T>.
  cfg.add_message_type<append_request>("evident.append_request");
  cfg.add_message_type<append_result>("evident.append_result");
  cfg.add_message_type<recorded_event>("evident.recorded_event");
  cfg.add_message_type<committed_batch>("evident.committed_batch");
  cfg.add_message_type<journal_writer_metrics>("evident.journal_writer_metrics");
  // Aggregates: the inspectable parts of their protocol. command_box, reply_box and
  // aggregate_state hold std::any and stay local (CAF_ALLOW_UNSAFE_MESSAGE_TYPE).
  cfg.add_message_type<state_query>("evident.state_query");
  cfg.add_message_type<router_metrics>("evident.router_metrics");
  cfg.add_message_type<snapshot>("evident.snapshot");
  cfg.add_message_type<snapshot_writer_metrics>("evident.snapshot_writer_metrics");
  // Subscriptions and views (view_query and view_result hold std::any: local only).
  cfg.add_message_type<event_batch>("evident.event_batch");
  cfg.add_message_type<event_bus_metrics>("evident.event_bus_metrics");
  cfg.add_message_type<subscription_metrics>("evident.subscription_metrics");
  cfg.add_message_type<view_metrics>("evident.view_metrics");
  add_error_category(cfg);
}

} // namespace evident
