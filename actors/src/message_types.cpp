#include "evident/actors/message_types.hpp"

#include "evident/actors/committed_batch.hpp"
#include "evident/actors/errc.hpp"
#include "evident/actors/journal_writer.hpp"

namespace evident {

void add_message_types(caf::actor_system_config& cfg) {
  // add_message_type<T> also registers std::vector<T>.
  cfg.add_message_type<append_request>("evident.append_request");
  cfg.add_message_type<append_result>("evident.append_result");
  cfg.add_message_type<recorded_event>("evident.recorded_event");
  cfg.add_message_type<committed_batch>("evident.committed_batch");
  cfg.add_message_type<journal_writer_metrics>("evident.journal_writer_metrics");
  add_error_category(cfg);
}

} // namespace evident
