#pragma once

#include <chrono>
#include <cstddef>

/// Default values of the runtime's own options, in one place. The journal's live in
/// evident/persistence/defaults.hpp, the writer's and the aggregates' in
/// evident/actors/defaults.hpp; runtime_config takes those from there.
namespace evident::defaults::runtime {

/// CAF scheduler workers: 2. The reference machine has 2 cores; more workers than cores
/// only add work stealing (caf-0.17-guide.md §5: ping-pong was faster with 2 workers
/// than with CAF's default of max(cores, 4)). The journal writer runs on its own thread
/// on top of these.
inline constexpr size_t scheduler_threads = 2;

/// Messages a CAF worker handles for one actor before it turns to the next: 50. CAF
/// 0.17's default is unlimited, so a busy actor (the router, a hot aggregate) keeps its
/// worker as long as its mailbox is not empty while thousands of others wait. In
/// aggregate_bench (1,000 clients, 10,000 aggregates) a bound of 50 took p99 from
/// 40-65 ms to 19-40 ms in the same windows, at no loss of throughput.
inline constexpr size_t scheduler_max_throughput = 50;

/// How long `runtime::append` and a command ask wait for their answer: 5 s. Finite on
/// purpose: CAF 0.17 has no broken-promise detection, so a lost reply is only noticed
/// by this timeout. Longer than the aggregates' append timeout would be pointless for
/// commands, shorter than one slow fsync would be noise.
inline constexpr std::chrono::milliseconds ask_timeout{5'000};

/// How long a graceful stop waits for the commands and appends in flight to be
/// answered, and then for the journal writer to commit what it holds: 10 s (each step
/// gets this bound). Past it the writer is killed; appends it still held have an
/// unknown outcome (their callers time out), nothing committed is lost.
inline constexpr std::chrono::milliseconds drain_timeout{10'000};

/// LMDB reader slots (threads or actors with a read transaction open at the same time,
/// across processes): 512, as journal_options.
inline constexpr unsigned max_readers = 512;

} // namespace evident::defaults::runtime
