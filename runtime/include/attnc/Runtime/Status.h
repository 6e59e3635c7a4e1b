//===- Status.h - Errors as values for the runtime --------------*- C++ -*-===//
//
// The runtime is linked into host programs and generated code that may not
// use exceptions, so no runtime call throws across its API or aborts on bad
// input: each fallible call returns a Status (ok, or a message that names
// what was wrong) or an Expected<T> (a T, or such a Status). Both are
// [[nodiscard]] so that an ignored error is a compiler warning.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_RUNTIME_STATUS_H
#define ATTNC_RUNTIME_STATUS_H

#include <cassert>
#include <optional>
#include <string>
#include <utility>

namespace attnc::runtime {

/// Success, or an error with a human-readable message.
class [[nodiscard]] Status {
public:
  /// Constructs success.
  Status() = default;

  /// Returns success.
  static Status success() { return Status(); }
  /// Returns an error; an empty message becomes "unknown error" so that an
  /// error can never be mistaken for success.
  static Status error(std::string message);

  /// True on success.
  bool ok() const { return !failed; }
  /// The error message; empty on success.
  const std::string &message() const { return text; }
  /// Returns this error with "prefix: " in front; success stays success.
  Status withContext(const std::string &prefix) const;

private:
  bool failed = false;
  std::string text;
};

/// A value of type T, or the Status that explains why there is none.
template <class T> class [[nodiscard]] Expected {
public:
  /// Holds a value.
  Expected(T value) : val(std::move(value)) {}
  /// Holds an error. An ok Status carries no value, so it is turned into an
  /// error rather than leaving the Expected empty.
  Expected(Status status)
      : st(status.ok() ? Status::error("internal error: Expected built from "
                                       "an ok Status")
                       : std::move(status)) {}

  /// True if a value is held.
  bool ok() const { return val.has_value(); }
  /// The error; success if a value is held.
  const Status &status() const { return st; }

  /// The value. Precondition: ok().
  T &value() & {
    assert(ok() && "Expected::value() on an error");
    return *val;
  }
  /// The value. Precondition: ok().
  const T &value() const & {
    assert(ok() && "Expected::value() on an error");
    return *val;
  }
  /// Moves the value out. Precondition: ok().
  T &&value() && {
    assert(ok() && "Expected::value() on an error");
    return std::move(*val);
  }
  /// The value. Precondition: ok().
  T &operator*() & { return value(); }
  /// The value. Precondition: ok().
  const T &operator*() const & { return value(); }
  /// Member access on the value. Precondition: ok().
  T *operator->() { return &value(); }
  /// Member access on the value. Precondition: ok().
  const T *operator->() const { return &value(); }

private:
  std::optional<T> val;
  Status st;
};

} // namespace attnc::runtime

#endif // ATTNC_RUNTIME_STATUS_H
