// A request's head as jobctl serve --http reads it (tools/jobctl/http_server.cpp),
// in any bytes: parse_head never reads past the head limit, never accepts a
// body, a method other than GET and HEAD or a control byte in the target,
// and a complete head's size is within the buffer.
#include "http_server.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  // The first byte picks the head limit, so that both sides of it are met.
  const std::size_t limit = 16 + static_cast<std::size_t>(data[0]) * 8;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  const auto head = jobctl::http::parse_head(text, limit);
  using State = jobctl::http::Head::State;
  if (head.state == State::complete) {
    const auto& r = head.request;
    if (head.size == 0 || head.size > text.size() || head.size > limit + 64) std::abort();
    if (r.method != "GET" && r.method != "HEAD") std::abort();
    if (r.path.empty() || r.path.front() != '/') std::abort();
    for (const char c : r.target) {
      const auto u = static_cast<unsigned char>(c);
      if (u <= 0x20 || u >= 0x7f) std::abort();
    }
    if (r.minor_version != 0 && r.minor_version != 1) std::abort();
    if (r.minor_version == 1 && r.host.empty()) std::abort();
    if (!r.host.empty() && jobctl::http::host_of(r.host) != r.host) std::abort();
  } else if (head.state == State::refused) {
    if (head.status < 400 || head.status > 505 || head.reason.empty()) std::abort();
  } else if (text.size() > limit + 128) {
    std::abort();  // a head past the limit is refused, never awaited
  }
  // The Host check never throws and never accepts an empty name.
  if (jobctl::http::host_allowed("", "127.0.0.1", {})) std::abort();
  return 0;
}
