#include "evident/actors/aggregate.hpp"

#include <exception>
#include <string>

namespace evident {

namespace detail {

std::string describe_current_exception() {
  try {
    throw;
  } catch (const std::exception& ex) {
    return ex.what();
  } catch (...) {
    return "an exception that is not a std::exception";
  }
}

} // namespace detail

aggregate_model::~aggregate_model() {
  // nop
}

std::string aggregate_model::stream_of(std::string_view id) const {
  std::string result;
  auto n = name();
  result.reserve(n.size() + 1 + id.size());
  result.append(n);
  result.push_back('-');
  result.append(id);
  return result;
}

} // namespace evident
