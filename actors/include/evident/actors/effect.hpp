#pragma once

// What `decide(state, command)` returns: the events to persist (atomically, zero or
// more) and the reply, computed from the state after those events (Akka's Effect).
//
//   return evident::persist(withdrawn{amt}).then_reply([](const account& now) {
//     return account_reply{now.balance};
//   });
//   return evident::reply(account_reply{refused{"insufficient funds"}}); // persists nothing
//
// A domain refusal is a normal reply: it persists nothing and is not an error.

#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace evident {

template <class State, class Event, class Reply>
struct effect {
  /// Persisted atomically, in order, before the reply is computed and sent.
  std::vector<Event> events;
  /// Computes the reply from the state after `events` are applied.
  std::function<Reply(const State&)> reply;
};

/// Events to persist, waiting for `then_reply`.
template <class... Es>
class persist_builder {
public:
  explicit persist_builder(Es... xs) : events_(std::move(xs)...) {
    // nop
  }

  /// `f(const State&)` computes the reply from the state after the events.
  template <class F>
  auto then_reply(F f) && {
    return persist_then_reply<F>{std::move(events_), std::move(f)};
  }

  /// Persist and reply with a fixed value.
  template <class R>
  auto then_reply_value(R r) && {
    return std::move(*this).then_reply([r = std::move(r)](const auto&) { return r; });
  }

  template <class F>
  struct persist_then_reply {
    std::tuple<Es...> events;
    F f;

    template <class State, class Event, class Reply>
    operator effect<State, Event, Reply>() && {
      effect<State, Event, Reply> result;
      result.events.reserve(sizeof...(Es));
      std::apply([&](auto&... e) { (result.events.emplace_back(std::move(e)), ...); }, events);
      result.reply = [g = std::move(f)](const State& s) { return Reply{g(s)}; };
      return result;
    }
  };

private:
  std::tuple<Es...> events_;
};

/// Persists `xs` atomically; finish with `.then_reply(f)`.
template <class... Es>
persist_builder<Es...> persist(Es... xs) {
  return persist_builder<Es...>{std::move(xs)...};
}

/// `persist_all(...).then_reply(f)`, waiting for the conversion to an effect. (A class
/// at namespace scope: a local class may not have the member template it needs.)
template <class Event, class F>
struct persist_all_then_reply {
  std::vector<Event> events;
  F f;

  template <class State, class Ev, class Reply>
  operator effect<State, Ev, Reply>() && {
    effect<State, Ev, Reply> result;
    result.events.reserve(events.size());
    for (auto& e : events)
      result.events.emplace_back(std::move(e));
    result.reply = [g = std::move(f)](const State& s) { return Reply{g(s)}; };
    return result;
  }
};

/// Persists a vector of events (for a decision that makes a variable number).
template <class Event>
struct persist_all_builder {
  std::vector<Event> events;

  template <class F>
  auto then_reply(F f) && {
    return persist_all_then_reply<Event, F>{std::move(events), std::move(f)};
  }
};

template <class Event>
persist_all_builder<Event> persist_all(std::vector<Event> xs) {
  return {std::move(xs)};
}

/// Replies without persisting anything (a query, or a domain refusal).
template <class R>
struct reply_only {
  R value;

  template <class State, class Event, class Reply>
  operator effect<State, Event, Reply>() && {
    effect<State, Event, Reply> result;
    result.reply = [r = Reply{std::move(value)}](const State&) { return r; };
    return result;
  }
};

template <class R>
reply_only<R> reply(R r) {
  return {std::move(r)};
}

} // namespace evident
