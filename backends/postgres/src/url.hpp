// PostgreSQL URLs read the way libpq reads them, so that messages can show
// them without their passwords.
#pragma once

#include <string>
#include <string_view>

namespace jobrepo::postgres_backend {

struct ReadUrl {
  // The URL for messages: the value of every key naming a password
  // (password, sslpassword, in any case, percent-encoded or not) and the
  // password of the user info replaced by "***". When the URL is unclear
  // (problem is not empty), only its scheme: "postgresql://***", or "***".
  std::string shown;
  // Why the URL is unclear, in words that quote none of it; empty when clear.
  std::string problem;
};

// Reads a "postgresql://" or "postgres://" URI, else libpq's key=value form.
// Unclear (fail closed): anything libpq refuses while quoting the text (a bad
// percent-encoding, %00, a query parameter that is not one key=value pair,
// a key=value word without '=', an unterminated quote, an unclosed IPv6
// bracket), and anything whose password libpq may read otherwise than its
// author meant: an '@' that does not end the user info (an unencoded '@' or
// '/' in a password puts part of it in the host, port or database name), a
// user name with a '?', a port that is not a number, a dbname that is itself
// a connection string (libpq would not expand it and the server would quote
// it).
ReadUrl read_url(std::string_view url);

// A libpq message about `url` with the URL itself, and `connection_string`
// (the form handed to libpq), replaced by `shown`. libpq quotes only parts of
// a URL that read_url() found clear; this guards the rest.
std::string scrub_message(std::string message, std::string_view url, std::string_view connection_string,
                          std::string_view shown);

}  // namespace jobrepo::postgres_backend
