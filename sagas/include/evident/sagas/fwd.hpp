#pragma once

// Forward declarations of the saga floor (floor 3).

namespace evident {

class saga_clock;
class saga_model;
struct saga_env;
struct saga_metrics;
struct saga_options;
struct saga_record;
struct saga_summary;
struct saga_detail;

} // namespace evident
