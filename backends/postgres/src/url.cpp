#include "url.hpp"

#include <jobrepo/backend.hpp>

#include <algorithm>
#include <cctype>
#include <utility>
#include <vector>

namespace jobrepo::postgres_backend {

namespace {

// The reasons a URL is unclear. They quote nothing of it: it may hold a password.
constexpr const char* bad_percent =
    "a '%' is not followed by two hexadecimal digits, or encodes %00 (write a '%' as %25)";
constexpr const char* unclear_user_info =
    "the user info is unclear: an '@' does not end it, or a '/' or '?' comes before its '@' (write '@' as %40, '/' as "
    "%2F and '?' as %3F in user names and passwords)";
constexpr const char* nested_connection_string =
    "the database name is itself a connection string; give its parameters directly";

constexpr std::string_view uri_prefixes[] = {"postgresql://", "postgres://"};

std::size_t uri_prefix_length(std::string_view text) {
  for (const auto prefix : uri_prefixes) {
    if (text.substr(0, prefix.size()) == prefix) return prefix.size();
  }
  return 0;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// libpq's percent-decoding; false where libpq fails (a bad token, %00).
bool decode(std::string_view text, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out.push_back(text[i]);
      continue;
    }
    const int high = i + 1 < text.size() ? hex_value(text[i + 1]) : -1;
    const int low = i + 2 < text.size() ? hex_value(text[i + 2]) : -1;
    if (high < 0 || low < 0 || high * 16 + low == 0) return false;
    out.push_back(static_cast<char>(high * 16 + low));
    i += 2;
  }
  return true;
}

// password, sslpassword, and any spelling of them libpq would refuse
// (PASSWORD): their values are never shown.
bool is_secret_key(std::string_view key) {
  std::string lower(key);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return lower.find("password") != std::string::npos;
}

// What libpq's connection functions with expand_dbname would read as a
// connection string; PQconnectdb takes it as a database name.
bool is_connection_string(std::string_view value) {
  return uri_prefix_length(value) > 0 || value.find('=') != std::string_view::npos;
}

bool is_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

// The URL with its secrets, given as [begin, end) spans, replaced by "***".
class Redaction {
 public:
  explicit Redaction(std::string_view url) : url_(url) {}
  void hide(std::size_t begin, std::size_t end) { spans_.emplace_back(begin, end); }
  ReadUrl clear() const {
    std::string shown;
    std::size_t at = 0;
    for (const auto& [begin, end] : spans_) {
      shown.append(url_.substr(at, begin - at)).append("***");
      at = end;
    }
    shown.append(url_.substr(at));
    return {shown, ""};
  }

 private:
  std::string_view url_;
  std::vector<std::pair<std::size_t, std::size_t>> spans_;
};

ReadUrl unclear(std::string_view url, std::string problem) {
  const auto scheme = url_scheme(url);
  std::string shown = "***";
  if (!scheme.empty()) shown = std::string(scheme) + (url.substr(scheme.size(), 3) == "://" ? "://***" : ":***");
  return {shown, std::move(problem)};
}

// libpq's conninfo_uri_parse_options, stricter where a password could leak.
ReadUrl read_uri(std::string_view url, std::size_t start) {
  constexpr auto npos = std::string_view::npos;
  const auto end_of = [&](std::size_t found) { return found == npos ? url.size() : found; };
  Redaction redaction(url);
  std::string decoded;
  std::size_t p = start;
  // libpq: user info when an '@' comes before any '/'.
  const auto credentials_end = url.find_first_of("@/", start);
  if (credentials_end != npos && url[credentials_end] == '@') {
    const auto colon = url.find(':', start);
    const auto user_end = std::min(colon, credentials_end);
    const auto user = url.substr(start, user_end - start);
    if (user.find('?') != npos) return unclear(url, unclear_user_info);
    if (!decode(user, decoded)) return unclear(url, bad_percent);
    if (colon < credentials_end) {
      if (!decode(url.substr(colon + 1, credentials_end - colon - 1), decoded)) return unclear(url, bad_percent);
      redaction.hide(colon + 1, credentials_end);
    }
    p = credentials_end + 1;
  }
  if (url.find('@', p) != npos) return unclear(url, unclear_user_info);
  // host[:port], separated by commas; an IPv6 host in brackets.
  for (;;) {
    std::size_t host_end = 0;
    if (p < url.size() && url[p] == '[') {
      const auto close = url.find(']', p);
      if (close == npos) return unclear(url, "an IPv6 address has no closing ']'");
      if (close == p + 1) return unclear(url, "an IPv6 address is empty");
      if (!decode(url.substr(p + 1, close - p - 1), decoded)) return unclear(url, bad_percent);
      host_end = close + 1;
      if (host_end < url.size() && std::string_view(":/?,").find(url[host_end]) == npos) {
        return unclear(url, "an IPv6 address is followed by something else than ':', '/', '?' or ','");
      }
    } else {
      host_end = end_of(url.find_first_of(":/?,", p));
      if (!decode(url.substr(p, host_end - p), decoded)) return unclear(url, bad_percent);
    }
    p = host_end;
    if (p < url.size() && url[p] == ':') {
      const auto port_end = end_of(url.find_first_of("/?,", p + 1));
      if (!decode(url.substr(p + 1, port_end - p - 1), decoded) ||
          decoded.find_first_not_of("0123456789") != std::string::npos) {
        return unclear(url, "a port is not a number");
      }
      p = port_end;
    }
    if (p < url.size() && url[p] == ',') {
      ++p;
      continue;
    }
    break;
  }
  if (p < url.size() && url[p] == '/') {
    const auto dbname_end = end_of(url.find('?', p + 1));
    if (!decode(url.substr(p + 1, dbname_end - p - 1), decoded)) return unclear(url, bad_percent);
    if (is_connection_string(decoded)) return unclear(url, nested_connection_string);
    p = dbname_end;
  }
  if (p < url.size() && url[p] == '?') {
    for (++p; p < url.size();) {
      const auto end = end_of(url.find('&', p));
      const auto parameter = url.substr(p, end - p);
      const auto equals = parameter.find('=');
      if (equals == npos || parameter.find('=', equals + 1) != npos) {
        return unclear(url, "a query parameter is not one key=value pair");
      }
      std::string key;
      if (!decode(parameter.substr(0, equals), key) || !decode(parameter.substr(equals + 1), decoded)) {
        return unclear(url, bad_percent);
      }
      if (is_secret_key(key)) redaction.hide(p + equals + 1, end);
      if (key == "dbname" && is_connection_string(decoded)) return unclear(url, nested_connection_string);
      p = end == url.size() ? end : end + 1;
    }
  }
  return redaction.clear();
}

// libpq's conninfo_parse: key = value words, a value in single quotes or
// not, a backslash escaping the next character.
ReadUrl read_key_values(std::string_view text) {
  Redaction redaction(text);
  std::size_t p = 0;
  while (p < text.size()) {
    if (is_space(text[p])) {
      ++p;
      continue;
    }
    const auto key_start = p;
    while (p < text.size() && text[p] != '=' && !is_space(text[p])) ++p;
    const auto key = text.substr(key_start, p - key_start);
    while (p < text.size() && is_space(text[p])) ++p;
    if (p >= text.size() || text[p] != '=') {
      return unclear(text, "a word is not a key=value pair (put a value with spaces in single quotes)");
    }
    ++p;
    while (p < text.size() && is_space(text[p])) ++p;
    const auto value_start = p;
    std::string value;
    if (p < text.size() && text[p] == '\'') {
      for (++p;;) {
        if (p >= text.size()) return unclear(text, "a quoted value has no closing quote");
        if (text[p] == '\'') {
          ++p;
          break;
        }
        if (text[p] == '\\') ++p;
        if (p < text.size()) value.push_back(text[p++]);
      }
    } else {
      while (p < text.size() && !is_space(text[p])) {
        if (text[p] == '\\') ++p;
        if (p < text.size()) value.push_back(text[p++]);
      }
    }
    if (is_secret_key(key)) redaction.hide(value_start, p);
    if (key == "dbname" && is_connection_string(value)) return unclear(text, nested_connection_string);
  }
  return redaction.clear();
}

void replace_all(std::string& text, std::string_view from, std::string_view to) {
  if (from.empty()) return;
  for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
}

}  // namespace

ReadUrl read_url(std::string_view url) {
  const auto prefix = uri_prefix_length(url);
  return prefix > 0 ? read_uri(url, prefix) : read_key_values(url);
}

std::string scrub_message(std::string message, std::string_view url, std::string_view connection_string,
                          std::string_view shown) {
  replace_all(message, url, shown);
  replace_all(message, connection_string, shown);
  return message;
}

}  // namespace jobrepo::postgres_backend
