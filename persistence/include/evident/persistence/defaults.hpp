#pragma once

#include <cstddef>
#include <cstdint>

/// Default values of every persistence option, in one place (see docs/configuration.md).
namespace evident::defaults {

/// Initial LMDB map size: 64 MiB. The map doubles on MDB_MAP_FULL up to the cap.
inline constexpr size_t map_size = size_t{64} << 20;
/// Largest the map may grow to: 64 GiB. At the cap appends fail with storage_full.
inline constexpr size_t map_size_cap = size_t{64} << 30;
/// Zero-filled bytes kept past the last used page of data.mdb: 8 MiB. A commit that
/// writes into them changes no file size and allocates no block, so its flush is one
/// device write and flush; one that grows the file also waits for the filesystem's own
/// journal (measured on ext4: 0.25 ms against 0.16 ms per flush idle, 0.87 against
/// 0.56 ms under CPU load). Refilled when less than a quarter is left.
inline constexpr size_t file_headroom = size_t{8} << 20;
/// Largest encoded event (envelope, payload and metadata): 4 MiB.
inline constexpr size_t max_event_bytes = size_t{4} << 20;
/// Most events in one append.
inline constexpr size_t max_append_events = 10'000;
/// Largest total encoded size of one append: 64 MiB.
inline constexpr size_t max_append_bytes = size_t{64} << 20;
/// Longest stream id in bytes. Index keys are stream + 0x00 + command id (or version),
/// and LMDB keys hold at most 511 bytes, so stream and id limits together must stay
/// below that (checked when a journal opens).
inline constexpr size_t max_stream_id_bytes = 250;
/// Longest command id, correlation id, causation id or type name in bytes.
inline constexpr size_t max_id_bytes = 250;
/// Events the per-stream index may lag behind the log before the writer indexes them
/// in bulk. An index pass dirties about one B-tree page per active stream whatever its
/// size, so its cost per event falls with the lag: measured with 10,000 streams, a lag
/// of 100,000 cut durable appends to a third, 1,000,000 costs a few percent. The price:
/// memory (about 10 bytes per unindexed event) and open time (the unindexed tail is
/// re-read from the log when a journal opens: about 0.2 s per million events).
inline constexpr uint64_t index_lag_events = 1'000'000;
/// Largest snapshot: 256 MiB.
inline constexpr size_t max_snapshot_bytes = size_t{256} << 20;

} // namespace evident::defaults
