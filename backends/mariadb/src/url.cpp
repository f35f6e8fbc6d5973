#include "url.hpp"

#include <jobrepo/text.hpp>

#include <cctype>
#include <charconv>
#include <optional>

namespace jobrepo::mariadb_backend {

namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decoded `text`, or nullopt for a bad or NUL escape.
std::optional<std::string> decode(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out.push_back(text[i]);
      continue;
    }
    if (i + 2 >= text.size()) return std::nullopt;
    const int high = hex_digit(text[i + 1]);
    const int low = hex_digit(text[i + 2]);
    if (high < 0 || low < 0 || (high == 0 && low == 0)) return std::nullopt;
    out.push_back(static_cast<char>(high * 16 + low));
    i += 2;
  }
  return out;
}

std::optional<unsigned> seconds(std::string_view text) {
  unsigned value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value == 0 || value > 86400) return std::nullopt;
  return value;
}

}  // namespace

ReadUrl read_url(std::string_view url) {
  ReadUrl read;
  const auto colon = url.find("://");
  const std::string scheme(url.substr(0, colon == std::string_view::npos ? 0 : colon));
  read.shown = (scheme.empty() ? std::string("mariadb") : scheme) + "://***";
  if (colon == std::string_view::npos || (scheme != "mariadb" && scheme != "mysql")) {
    read.problem = "not a mariadb:// or mysql:// URL";
    return read;
  }
  std::string_view rest = url.substr(colon + 3);
  std::string_view query;
  if (const auto q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  // The user info ends at the last '@' before the path: an '@' in a
  // password must be percent-encoded, and one left bare makes the URL unclear.
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  const std::string_view path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
  std::string_view userinfo;
  const auto at = authority.find('@');
  if (at != std::string_view::npos) {
    if (authority.find('@', at + 1) != std::string_view::npos) {
      read.problem = "an '@' in the user name or password must be percent-encoded (%40)";
      return read;
    }
    userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
  }
  if (path.find('/') != std::string_view::npos) {
    read.problem = "a '/' in the password or database name must be percent-encoded (%2F)";
    return read;
  }
  bool has_password = false;
  if (!userinfo.empty()) {
    const auto split = userinfo.find(':');
    const auto user = decode(userinfo.substr(0, split));
    if (!user) {
      read.problem = "bad percent-encoding in the user name";
      return read;
    }
    read.options.user = *user;
    if (split != std::string_view::npos) {
      has_password = true;
      const auto password = decode(userinfo.substr(split + 1));
      if (!password) {
        read.problem = "bad percent-encoding in the password";
        return read;
      }
      read.options.password = *password;
    }
  }
  // The URL without its password, for messages.
  std::string shown = scheme + "://";
  if (!userinfo.empty()) {
    shown.append(userinfo.substr(0, userinfo.find(':')));
    if (has_password) shown.append(":***");
    shown.append("@");
  }
  shown.append(authority);
  if (slash != std::string_view::npos) shown.append("/").append(path);
  if (!query.empty()) shown.append("?").append(query);
  // Host and port.
  std::string_view host = authority;
  std::string_view port;
  if (!host.empty() && host.front() == '[') {
    const auto close = host.find(']');
    if (close == std::string_view::npos) {
      read.problem = "an IPv6 address without its closing ']'";
      return read;
    }
    port = host.substr(close + 1);
    host = host.substr(1, close - 1);
    if (!port.empty()) {
      if (port.front() != ':') {
        read.problem = "text after the IPv6 address that is not a port";
        return read;
      }
      port = port.substr(1);
    }
  } else if (const auto p = host.find(':'); p != std::string_view::npos) {
    port = host.substr(p + 1);
    host = host.substr(0, p);
  }
  if (!host.empty()) read.options.host = std::string(host);
  if (!port.empty()) {
    unsigned value = 0;
    const auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (error != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535) {
      read.problem = "port " + quote_text(port) + " is not a number from 1 to 65535";
      return read;
    }
    read.options.port = value;
  }
  const auto database = decode(path);
  if (!database) {
    read.problem = "bad percent-encoding in the database name";
    return read;
  }
  read.options.database = *database;

  // Query parameters.
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    const auto eq = pair.find('=');
    const std::string_view key = pair.substr(0, eq);
    const auto value = decode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1));
    if (eq == std::string_view::npos || !value) {
      read.problem = "parameter " + quote_text(key) + " needs a value (key=value, percent-encoded)";
      return read;
    }
    if (key == "socket") {
      read.options.socket = *value;
    } else if (key == "connect_timeout" || key == "read_timeout" || key == "write_timeout") {
      const auto parsed = seconds(*value);
      if (!parsed) {
        read.problem = std::string(key) + " " + quote_text(*value) + " is not a number of seconds from 1 to 86400";
        return read;
      }
      (key == "connect_timeout" ? read.options.connect_timeout
       : key == "read_timeout"  ? read.options.read_timeout
                                : read.options.write_timeout) = *parsed;
    } else if (key == "ssl_mode") {
      if (*value != "required" && *value != "verify") {
        read.problem = "ssl_mode " + quote_text(*value) + " is not required or verify";
        return read;
      }
      read.options.ssl_mode = *value;
    } else if (key == "wakeup_poll_ms") {
      unsigned ms = 0;
      const auto [end, error] = std::from_chars(value->data(), value->data() + value->size(), ms);
      if (error != std::errc() || end != value->data() + value->size() || ms < 10 || ms > 60000) {
        read.problem = "wakeup_poll_ms " + quote_text(*value) + " is not a number of milliseconds from 10 to 60000";
        return read;
      }
      read.options.wakeup_poll_ms = ms;
    } else if (key == "ssl_ca") {
      read.options.ssl_ca = *value;
    } else {
      read.problem = "unknown parameter " + quote_text(key) +
                     " (known: socket, connect_timeout, read_timeout, write_timeout, ssl_mode, ssl_ca, wakeup_poll_ms)";
      return read;
    }
  }
  read.shown = shown;
  return read;
}

}  // namespace jobrepo::mariadb_backend
