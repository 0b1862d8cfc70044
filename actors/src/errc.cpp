#include "evident/actors/errc.hpp"

#include <caf/message.hpp>
#include <caf/sec.hpp>

#include <string>

namespace evident {

caf::error to_caf_error(const error& x) {
  // The layout of the context is part of the protocol (see errc.hpp): only builtin
  // element types, so that the error also survives a trip to another node.
  switch (x.code) {
    case errc::wrong_expected_version:
      if (x.actual)
        return caf::make_error(x.code, x.message, x.expected, *x.actual);
      return caf::make_error(x.code, x.message, x.expected);
    case errc::corrupted:
      if (x.position)
        return caf::make_error(x.code, x.message, *x.position);
      return caf::make_error(x.code, x.message);
    default:
      return caf::make_error(x.code, x.message);
  }
}

error from_caf_error(const caf::error& x) {
  if (!x)
    return {};
  if (x.category() == errc_category) {
    error result;
    result.code = static_cast<errc>(x.code());
    const auto& ctx = x.context();
    if (ctx.size() >= 1 && ctx.match_element<std::string>(0))
      result.message = ctx.get_as<std::string>(0);
    if (result.code == errc::wrong_expected_version) {
      if (ctx.size() >= 2 && ctx.match_element<std::string>(1))
        result.expected = ctx.get_as<std::string>(1);
      if (ctx.size() >= 3 && ctx.match_element<uint64_t>(2))
        result.actual = ctx.get_as<uint64_t>(2);
    } else if (result.code == errc::corrupted) {
      if (ctx.size() >= 2 && ctx.match_element<uint64_t>(1))
        result.position = ctx.get_as<uint64_t>(1);
    }
    return result;
  }
  if (x == caf::sec::request_timeout)
    return {errc::timeout, "request timed out; its outcome is unknown"};
  // request_receiver_down, runtime_error (a handler threw) and the rest: the target is
  // gone or broken, so a caller must assume the worst and re-read.
  return {errc::io_error, caf::to_string(x)};
}

void add_error_category(caf::actor_system_config& cfg) {
  cfg.add_error_category(errc_category,
                         [](uint8_t code, caf::atom_value, const caf::message& ctx) {
                           auto x = from_caf_error(caf::error{code, errc_category, ctx});
                           std::string result = "evident::";
                           result += to_string(x.code);
                           if (!x.message.empty()) {
                             result += ": ";
                             result += x.message;
                           }
                           if (x.code == errc::wrong_expected_version) {
                             result += " (expected ";
                             result += x.expected;
                             result += ", actual ";
                             result += x.actual ? std::to_string(*x.actual) : "?";
                             result += ')';
                           } else if (x.position) {
                             result += " (position ";
                             result += std::to_string(*x.position);
                             result += ')';
                           }
                           return result;
                         });
}

} // namespace evident
