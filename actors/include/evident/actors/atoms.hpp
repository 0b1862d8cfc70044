#pragma once

#include <caf/atom.hpp>

/// The atoms of the actor floor's message protocols (CAF 0.17: 64-bit values of at most
/// 10 characters from [A-Za-z0-9_ ]; `x_atom::value` is what you send).
namespace evident {

/// (append_atom, append_request) -> append_result | caf::error; see journal_writer.hpp.
using append_atom = caf::atom_constant<caf::atom("append")>;

/// (metrics_atom) -> a component's metrics, e.g. journal_writer_metrics.
using metrics_atom = caf::atom_constant<caf::atom("metrics")>;

} // namespace evident
