// PostgreSQL URLs as the backend reads them for messages
// (backends/postgres/src/url.cpp), on any text: never a crash; an unclear
// URL shows nothing but its scheme ("SCHEME://***" or "***"); a libpq
// message is scrubbed of the URL.
#include "postgres/src/url.hpp"

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string url(reinterpret_cast<const char*>(data), size);
  const auto read = jobrepo::postgres_backend::read_url(url);
  if (!read.problem.empty()) {
    const std::string_view shown = read.shown;
    if (shown.size() < 3 || shown.substr(shown.size() - 3) != "***") std::abort();
    const auto scheme = shown.substr(0, shown.size() - 3);
    if (url.compare(0, scheme.size(), scheme) != 0) std::abort();
    for (const char c : scheme) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && std::string_view("+.-:/").find(c) == std::string_view::npos) {
        std::abort();
      }
    }
  }
  const auto message =
      jobrepo::postgres_backend::scrub_message("could not connect to " + url + ": refused", url, url, read.shown);
  if (url.size() > 3 && read.shown.find(url) == std::string::npos && message.find(url) != std::string::npos) {
    std::abort();
  }
  return 0;
}
