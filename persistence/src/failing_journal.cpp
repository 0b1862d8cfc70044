#include "evident/persistence/failing_journal.hpp"

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

namespace evident {

failing_journal::failing_journal(std::shared_ptr<journal> inner) : inner_(std::move(inner)) {
  if (!inner_)
    throw std::invalid_argument("failing_journal: the wrapped journal is null");
}

failing_journal::~failing_journal() {
  // nop
}

// -- rules --------------------------------------------------------------------------

failing_journal& failing_journal::fail_nth_append(uint64_t n, errc code, failure_point at) {
  std::lock_guard guard{mtx_};
  faults_[n] = fault{code, false, at};
  return *this;
}

failing_journal& failing_journal::reject_nth_append(uint64_t n, errc code) {
  std::lock_guard guard{mtx_};
  faults_[n] = fault{code, true, failure_point::before_write};
  return *this;
}

failing_journal& failing_journal::delay_nth_append(uint64_t n, std::chrono::milliseconds d) {
  std::lock_guard guard{mtx_};
  delays_[n] = d;
  return *this;
}

void failing_journal::clear_rules() {
  std::lock_guard guard{mtx_};
  faults_.clear();
  delays_.clear();
}

// -- hold / release -----------------------------------------------------------------

void failing_journal::hold() {
  std::lock_guard guard{mtx_};
  holding_ = true;
}

void failing_journal::release() {
  std::lock_guard guard{mtx_};
  holding_ = false;
  ++generation_;
  cv_.notify_all();
}

void failing_journal::hold_timeout(std::chrono::milliseconds d) {
  std::lock_guard guard{mtx_};
  hold_timeout_ = d;
}

std::chrono::milliseconds failing_journal::hold_timeout() const {
  std::lock_guard guard{mtx_};
  return hold_timeout_;
}

size_t failing_journal::held() const {
  std::lock_guard guard{mtx_};
  return held_;
}

bool failing_journal::wait_held(size_t n, std::chrono::milliseconds timeout) {
  std::unique_lock guard{mtx_};
  return cv_.wait_for(guard, timeout, [&] { return held_ >= n; });
}

bool failing_journal::wait_appends(uint64_t n, std::chrono::milliseconds timeout) {
  std::unique_lock guard{mtx_};
  return cv_.wait_for(guard, timeout, [&] { return appends_ >= n; });
}

// -- counters -----------------------------------------------------------------------

uint64_t failing_journal::appends() const {
  std::lock_guard guard{mtx_};
  return appends_;
}

uint64_t failing_journal::append_calls() const {
  std::lock_guard guard{mtx_};
  return append_calls_;
}

uint64_t failing_journal::batch_calls() const {
  std::lock_guard guard{mtx_};
  return batch_calls_;
}

uint64_t failing_journal::injected_failures() const {
  std::lock_guard guard{mtx_};
  return injected_;
}

uint64_t failing_journal::expired_holds() const {
  std::lock_guard guard{mtx_};
  return expired_holds_;
}

// -- the append path ----------------------------------------------------------------

std::vector<failing_journal::plan> failing_journal::enter(size_t count, bool batch,
                                                          std::chrono::milliseconds& delay) {
  std::unique_lock guard{mtx_};
  // Numbers are given on entry, so "the Nth append" means the Nth to arrive, whatever
  // order held calls leave in.
  std::vector<plan> plans(count);
  for (auto& p : plans)
    p.number = ++appends_;
  if (batch)
    ++batch_calls_;
  else
    ++append_calls_;
  cv_.notify_all(); // wait_appends
  if (holding_) {
    ++held_;
    cv_.notify_all(); // wait_held
    auto gen = generation_;
    if (!cv_.wait_for(guard, hold_timeout_, [&] { return generation_ != gen; }))
      ++expired_holds_;
    --held_;
  }
  // Rules are taken after the hold, so a test may arm them while the call waits.
  delay = std::chrono::milliseconds{0};
  for (auto& p : plans) {
    if (auto i = faults_.find(p.number); i != faults_.end()) {
      p.f = i->second;
      faults_.erase(i);
      ++injected_;
    }
    if (auto i = delays_.find(p.number); i != delays_.end()) {
      delay = std::max(delay, i->second);
      delays_.erase(i);
    }
  }
  return plans;
}

error failing_journal::injected(const plan& p) const {
  std::string msg = "failing_journal: append #" + std::to_string(p.number);
  if (p.f->reject)
    msg += " rejected (injected)";
  else if (p.f->at == failure_point::after_write)
    msg += " failed after it was written (injected lost acknowledgement)";
  else
    msg += " failed, nothing written (injected)";
  return error{p.f->code, std::move(msg)};
}

expected<append_result> failing_journal::append(const append_request& req) {
  std::chrono::milliseconds delay{0};
  auto plans = enter(1, false, delay);
  if (delay.count() > 0)
    std::this_thread::sleep_for(delay);
  const auto& p = plans.front();
  if (!p.f)
    return inner_->append(req);
  if (!p.f->reject && p.f->at == failure_point::after_write) {
    // What the wrapped journal said no longer matters: the caller never hears it.
    auto res = inner_->append(req);
    if (!res)
      ignore(res.err(), "an injected lost acknowledgement hides the real outcome");
  }
  return injected(p);
}

std::vector<expected<append_result>>
failing_journal::append_batch(std::span<const append_request> reqs) {
  std::chrono::milliseconds delay{0};
  auto plans = enter(reqs.size(), true, delay);
  if (delay.count() > 0)
    std::this_thread::sleep_for(delay);
  // Pass on every request that is to be written, in order, as one batch; the rest get
  // their injected error. `slot[i]` is request i's index in the forwarded batch.
  std::vector<append_request> forward;
  std::vector<size_t> slot(reqs.size(), SIZE_MAX);
  bool all = true;
  for (size_t i = 0; i < reqs.size(); ++i) {
    const auto& p = plans[i];
    bool written = !p.f || (!p.f->reject && p.f->at == failure_point::after_write);
    if (written)
      slot[i] = i; // provisional; fixed below when something is left out
    else
      all = false;
  }
  std::vector<expected<append_result>> inner_results;
  if (all) {
    inner_results = inner_->append_batch(reqs);
  } else {
    for (size_t i = 0; i < reqs.size(); ++i)
      if (slot[i] != SIZE_MAX) {
        slot[i] = forward.size();
        forward.push_back(reqs[i]);
      }
    if (!forward.empty())
      inner_results = inner_->append_batch(forward);
  }
  std::vector<expected<append_result>> result;
  result.reserve(reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    const auto& p = plans[i];
    if (p.f) {
      result.emplace_back(injected(p));
    } else if (slot[i] < inner_results.size()) {
      result.push_back(std::move(inner_results[slot[i]]));
    } else {
      // The wrapped journal broke its contract (wrong number of results).
      result.emplace_back(error{errc::io_error, "failing_journal: the wrapped journal "
                                                "returned too few results; outcome unknown"});
    }
  }
  return result;
}

// -- pass-through -------------------------------------------------------------------

status failing_journal::read_stream(const std::string& stream, const read_options& opts,
                                    const event_visitor& f) {
  return inner_->read_stream(stream, opts, f);
}

status failing_journal::read_all(uint64_t from_position, uint64_t max_count,
                                 const event_visitor& f) {
  return inner_->read_all(from_position, max_count, f);
}

expected<stream_head> failing_journal::head(const std::string& stream) {
  return inner_->head(stream);
}

expected<std::vector<stream_head>> failing_journal::streams() {
  return inner_->streams();
}

expected<uint64_t> failing_journal::last_position() {
  return inner_->last_position();
}

expected<std::optional<append_result>>
failing_journal::find_command(const std::string& stream, const std::string& command_id) {
  return inner_->find_command(stream, command_id);
}

status failing_journal::delete_to(const std::string& stream, uint64_t n) {
  return inner_->delete_to(stream, n);
}

status failing_journal::truncate_before(const std::string& stream, uint64_t n) {
  return inner_->truncate_before(stream, n);
}

status failing_journal::soft_delete(const std::string& stream) {
  return inner_->soft_delete(stream);
}

status failing_journal::tombstone(const std::string& stream) {
  return inner_->tombstone(stream);
}

} // namespace evident
