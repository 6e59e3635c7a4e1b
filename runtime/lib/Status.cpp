//===- Status.cpp - Errors as values for the runtime ----------------------===//
//
// Out of line so that building an error message does not inline string
// concatenation into every caller.
//
//===----------------------------------------------------------------------===//
#include "attnc/Runtime/Status.h"

using namespace attnc::runtime;

Status Status::error(std::string message) {
  Status s;
  s.failed = true;
  s.text = message.empty() ? "unknown error" : std::move(message);
  return s;
}

Status Status::withContext(const std::string &prefix) const {
  if (ok())
    return *this;
  return error(prefix + ": " + text);
}
