#include "http_server.hpp"

#include <jobrepo/text.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <list>
#include <stdexcept>
#include <thread>
#include <unordered_map>

namespace jobctl::http {

namespace {

using Steady = std::chrono::steady_clock;

bool is_token_char(char c) {
  if (c >= 'a' && c <= 'z') return true;
  if (c >= 'A' && c <= 'Z') return true;
  if (c >= '0' && c <= '9') return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), is_token_char); }

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Whether a comma-separated header value (Connection) lists `token`.
bool lists(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    const auto comma = value.find(',');
    if (lower(trim(value.substr(0, comma))) == token) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

Head refuse(int status, std::string reason) {
  Head head;
  head.state = Head::State::refused;
  head.status = status;
  head.reason = std::move(reason);
  return head;
}

bool is_ipv4(std::string_view s) {
  in_addr a{};
  return inet_pton(AF_INET, std::string(s).c_str(), &a) == 1;
}

bool is_bracketed_ipv6(std::string_view s) {
  if (s.size() < 3 || s.front() != '[' || s.back() != ']') return false;
  in6_addr a{};
  return inet_pton(AF_INET6, std::string(s.substr(1, s.size() - 2)).c_str(), &a) == 1;
}

bool is_loopback(std::string_view host) {
  if (host == "localhost" || host == "::1" || host == "[::1]") return true;
  in_addr a{};
  return inet_pton(AF_INET, std::string(host).c_str(), &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

bool is_wildcard(std::string_view host) { return host == "0.0.0.0" || host == "::" || host == "[::]"; }

const char* reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 421: return "Misdirected Request";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

}  // namespace

std::string host_of(std::string_view header) {
  std::string_view h = trim(header);
  if (h.empty() || h.size() > 255) return {};
  std::string_view name = h;
  if (h.front() == '[') {
    const auto close = h.find(']');
    if (close == std::string_view::npos) return {};
    name = h.substr(0, close + 1);
    const auto rest = h.substr(close + 1);
    if (!rest.empty() && (rest.front() != ':' || rest.find_first_not_of("0123456789", 1) != std::string_view::npos)) {
      return {};
    }
  } else {
    const auto colon = h.find(':');
    if (colon != std::string_view::npos) {
      name = h.substr(0, colon);
      if (h.find_first_not_of("0123456789", colon + 1) != std::string_view::npos) return {};
    }
    if (name.empty()) return {};
    for (const char c : name) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                      c == '.' || c == '_';
      if (!ok) return {};
    }
    // One trailing dot (a fully qualified name) is the name; an empty label
    // anywhere else makes no name.
    if (name.size() > 1 && name.back() == '.') name.remove_suffix(1);
    if (name.front() == '.' || name.back() == '.' || name.find("..") != std::string_view::npos) return {};
  }
  return lower(name);
}

bool host_allowed(std::string_view host, std::string_view bound_host, const std::vector<std::string>& names) {
  if (host.empty()) return false;
  const std::string bound = lower(bound_host);
  const bool bound_v6 = bound.find(':') != std::string::npos;
  if (host == bound || (bound_v6 && host == "[" + bound + "]")) return true;
  if ((is_loopback(bound) || is_wildcard(bound)) && is_loopback(host)) return true;
  if (is_wildcard(bound) && (is_ipv4(host) || is_bracketed_ipv6(host))) return true;
  return std::any_of(names.begin(), names.end(), [&](const std::string& n) { return lower(n) == host; });
}

Head parse_head(std::string_view buffer, std::size_t max_head_bytes) {
  // Empty lines before a request line are ignored (RFC 9112, 2.2).
  std::size_t start = 0;
  while (start < buffer.size() && (buffer[start] == '\r' || buffer[start] == '\n') && start < 64) ++start;
  const std::string_view rest = buffer.substr(start);
  // The end of the head: a blank line (CRLF CRLF, or bare LFs).
  std::size_t end = std::string_view::npos, end_size = 0;
  for (std::size_t i = 0; i < rest.size() && i <= max_head_bytes; ++i) {
    if (rest[i] != '\n') continue;
    if (i + 1 < rest.size() && rest[i + 1] == '\n') {
      end = i, end_size = 2;
      break;
    }
    if (i + 2 < rest.size() && rest[i + 1] == '\r' && rest[i + 2] == '\n') {
      end = i, end_size = 3;
      break;
    }
  }
  const auto first_line_end = rest.find('\n');
  if (end == std::string_view::npos) {
    const std::size_t limit = max_head_bytes;
    if ((first_line_end == std::string_view::npos || first_line_end > limit) && rest.size() > limit) {
      return refuse(414, "the request line is longer than " + std::to_string(limit) + " bytes");
    }
    if (start + rest.size() > limit + 64) {
      return refuse(431, "the request's head is longer than " + std::to_string(limit) + " bytes");
    }
    return {};
  }
  if (first_line_end > max_head_bytes) {
    return refuse(414, "the request line is longer than " + std::to_string(max_head_bytes) + " bytes");
  }
  if (end + end_size > max_head_bytes) {
    return refuse(431, "the request's head is longer than " + std::to_string(max_head_bytes) + " bytes");
  }
  Head head;
  head.size = start + end + end_size;
  // Lines of the head, without their CR.
  std::vector<std::string_view> lines;
  {
    std::string_view text = rest.substr(0, end + 1);
    while (!text.empty()) {
      const auto nl = text.find('\n');
      std::string_view line = text.substr(0, nl);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      lines.push_back(line);
      text.remove_prefix(nl + 1);
    }
  }
  if (lines.size() > 101) return refuse(431, "the request has more than 100 header lines");
  // The request line: METHOD SP TARGET SP HTTP/1.x
  const std::string_view line = lines.front();
  const auto sp1 = line.find(' ');
  const auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp1 == std::string_view::npos || sp2 == std::string_view::npos ||
      line.find(' ', sp2 + 1) != std::string_view::npos) {
    return refuse(400, "the request line is not METHOD TARGET HTTP/1.1");
  }
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' || version[5] < '0' ||
      version[5] > '9' || version[7] < '0' || version[7] > '9') {
    return refuse(400, "the request line is not METHOD TARGET HTTP/1.1");
  }
  if (version[5] != '1' || (version[7] != '0' && version[7] != '1')) {
    return refuse(505, "only HTTP/1.0 and HTTP/1.1 are served");
  }
  head.request.minor_version = version[7] - '0';
  if (!is_token(method)) return refuse(400, "the request's method is not a token");
  if (method != "GET" && method != "HEAD") return refuse(405, "this server answers GET and HEAD only");
  if (target.empty() || std::any_of(target.begin(), target.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u <= 0x20 || u >= 0x7f;
      })) {
    return refuse(400, "the request's target has a character that is not allowed there");
  }
  head.request.method = std::string(method);
  head.request.target = std::string(target);
  std::string_view path = target;
  std::string absolute_host;
  if (lower(target.substr(0, 7)) == "http://") {
    // The absolute form (RFC 9112, 3.2.2): its authority is the host.
    const auto rest_of = target.substr(7);
    const auto slash = rest_of.find('/');
    absolute_host = host_of(rest_of.substr(0, slash));
    if (absolute_host.empty()) return refuse(400, "the request's target has no valid host");
    path = slash == std::string_view::npos ? std::string_view("/") : rest_of.substr(slash);
  } else if (target.front() != '/') {
    return refuse(400, "the request's target is not a path");
  }
  const auto question = path.find('?');
  head.request.path = std::string(path.substr(0, question));
  if (question != std::string_view::npos) head.request.query = std::string(path.substr(question + 1));
  // Headers.
  int hosts = 0;
  std::string host_header;
  std::optional<std::string> content_length;
  bool transfer_encoding = false, connection_close = false, connection_keep_alive = false;
  for (std::size_t i = 1; i < lines.size(); ++i) {
    const std::string_view h = lines[i];
    if (h.empty()) continue;  // the blank line's own
    if (h.front() == ' ' || h.front() == '\t') return refuse(400, "a header line is folded (obsolete line folding)");
    const auto colon = h.find(':');
    if (colon == std::string_view::npos || !is_token(h.substr(0, colon))) {
      return refuse(400, "a header line is not NAME: VALUE");
    }
    const std::string name = lower(h.substr(0, colon));
    const std::string_view value = trim(h.substr(colon + 1));
    if (std::any_of(value.begin(), value.end(), [](char c) {
          const auto u = static_cast<unsigned char>(c);
          return (u < 0x20 && u != '\t') || u == 0x7f;
        })) {
      return refuse(400, "a header's value has a control character");
    }
    if (name == "host") {
      ++hosts;
      host_header = std::string(value);
    } else if (name == "content-length") {
      if (value.empty() || value.find_first_not_of("0123456789") != std::string_view::npos ||
          (content_length && *content_length != value)) {
        return refuse(400, "the request's Content-Length is not one number");
      }
      content_length = std::string(value);
    } else if (name == "transfer-encoding") {
      transfer_encoding = true;
    } else if (name == "connection") {
      connection_close = connection_close || lists(value, "close");
      connection_keep_alive = connection_keep_alive || lists(value, "keep-alive");
    }
  }
  const bool has_body = transfer_encoding || (content_length && content_length->find_first_not_of('0') !=
                                                                    std::string::npos);  // not all zeros
  if (has_body) return refuse(413, "a GET or HEAD request takes no body");
  if (hosts > 1) return refuse(400, "the request has more than one Host header");
  if (hosts == 0 && head.request.minor_version == 1 && absolute_host.empty()) {
    return refuse(400, "an HTTP/1.1 request needs a Host header");
  }
  if (!absolute_host.empty()) {
    head.request.host = absolute_host;
  } else if (hosts == 1) {
    head.request.host = host_of(host_header);
    if (head.request.host.empty()) return refuse(400, "the request's Host header is not HOST[:PORT]");
  }
  head.request.keep_alive =
      head.request.minor_version == 1 ? !connection_close : (connection_keep_alive && !connection_close);
  head.state = Head::State::complete;
  return head;
}

struct Server::Impl {
  std::string host;
  int port;
  std::vector<std::string> names;
  Limits limits;
  Handler handler;
  Reporter report;
  int listener = -1, wake = -1, epoll = -1, reserve = -1;
  std::thread thread;
  Steady::time_point last_host_warning{};

  enum class State { reading, writing, draining };
  struct Connection {
    int fd = -1;
    State state = State::reading;
    std::string in, out;
    std::size_t written = 0;
    Steady::time_point since{};  // when the current state began
    int served = 0;
    bool close_after = false;
    bool drain_after = false;
    std::size_t drained = 0;
  };
  std::unordered_map<int, Connection> connections;

  ~Impl() {
    for (auto& [fd, c] : connections) ::close(fd);
    for (const int fd : {listener, wake, epoll, reserve}) {
      if (fd >= 0) ::close(fd);
    }
  }

  void watch(int fd, std::uint32_t events, int op) const {
    epoll_event e{};
    e.events = events;
    e.data.fd = fd;
    epoll_ctl(epoll, op, fd, &e);
  }

  void close_connection(int fd) {
    epoll_ctl(epoll, EPOLL_CTL_DEL, fd, nullptr);
    ::close(fd);
    connections.erase(fd);
  }

  // The connection to give up for a new one: the one waiting longest for a
  // request's head (idle keep-alive, or slow), else none.
  int victim() const {
    int found = -1;
    Steady::time_point oldest = Steady::time_point::max();
    for (const auto& [fd, c] : connections) {
      if (c.state != State::writing && c.since < oldest) oldest = c.since, found = fd;
    }
    return found;
  }

  void accept_all() {
    for (;;) {
      const int fd = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if ((errno == EMFILE || errno == ENFILE) && !connections.empty()) {
          if (const int v = victim(); v >= 0) {
            close_connection(v);
            continue;
          }
        }
        if ((errno == EMFILE || errno == ENFILE) && reserve >= 0) {
          // No descriptor to accept with, nothing to give up: take the
          // connection with the reserve's and close it, so that it does not
          // stay in the queue and wake the loop forever.
          ::close(reserve);
          const int dropped = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
          if (dropped >= 0) ::close(dropped);
          reserve = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
          continue;
        }
        return;  // EAGAIN: none left
      }
      if (connections.size() >= limits.max_connections) {
        const int v = victim();
        if (v < 0) {
          ::close(fd);
          continue;
        }
        close_connection(v);
      }
      Connection c;
      c.fd = fd;
      c.since = Steady::now();
      connections.emplace(fd, std::move(c));
      watch(fd, EPOLLIN | EPOLLRDHUP, EPOLL_CTL_ADD);
    }
  }

  void respond(Connection& c, const Request* request, Response response, bool close) {
    const bool head_only = request != nullptr && request->method == "HEAD";
    std::string out = "HTTP/1.1 " + std::to_string(response.status) + " " + reason_phrase(response.status) + "\r\n";
    out += "Content-Type: " + response.content_type + "\r\n";
    out += "Content-Length: " + std::to_string(response.body.size()) + "\r\n";
    out += "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n";
    for (const auto& [name, value] : response.headers) out += name + ": " + value + "\r\n";
    out += close ? "Connection: close\r\n\r\n" : "Connection: keep-alive\r\n\r\n";
    if (!head_only) out += response.body;
    c.out = std::move(out);
    c.written = 0;
    c.close_after = close;
    c.state = State::writing;
    c.since = Steady::now();
    // Not EPOLLRDHUP while writing: a client that closed its sending side
    // but still reads would report it on every wait (level-triggered) while
    // its socket buffer is full. EPOLLERR and EPOLLHUP come unasked.
    watch(c.fd, EPOLLOUT, EPOLL_CTL_MOD);
  }

  // Answers the head buffered on `c`, when it is whole.
  void serve_buffered(Connection& c) {
    const Head head = parse_head(c.in, limits.max_head_bytes);
    if (head.state == Head::State::incomplete) return;
    if (head.state == Head::State::refused) {
      Response r;
      r.status = head.status;
      r.body = head.reason + "\n";
      if (head.status == 405) r.headers.emplace_back("Allow", "GET, HEAD");
      c.in.clear();
      // A body that may follow is not read: the connection closes after the
      // answer, reading (and dropping) what the client still sends for a
      // moment so that the answer is not lost to a reset.
      c.drain_after = true;
      respond(c, nullptr, std::move(r), true);
      return;
    }
    c.in.erase(0, head.size);
    const Request& request = head.request;
    Response response;
    if (!request.host.empty() && !host_allowed(request.host, host, names)) {
      response.status = 421;
      response.body = "this server does not answer to the host " + jobrepo::quote_text(request.host.substr(0, 60)) +
                      "; jobctl serve --http-host NAME adds a name\n";
      const auto now = Steady::now();
      if (now - last_host_warning >= std::chrono::minutes(1)) {
        last_host_warning = now;
        report(false, "HTTP: refused a request for the host " + jobrepo::quote_text(request.host.substr(0, 60)) +
                          " (not this server's address; --http-host NAME adds a name); more such refusals "
                          "within a minute are not logged");
      }
    } else {
      try {
        response = handler(request);
      } catch (...) {
        response = Response{500, "text/plain; charset=utf-8", "internal error\n"};
      }
    }
    ++c.served;
    const bool close = !request.keep_alive || c.served >= limits.max_requests_per_connection;
    respond(c, &request, std::move(response), close);
  }

  void on_readable(Connection& c) {
    std::array<char, 4096> buffer{};
    if (c.state == State::draining) {
      for (;;) {
        const ssize_t n = ::read(c.fd, buffer.data(), buffer.size());
        if (n > 0) {
          c.drained += static_cast<std::size_t>(n);
          if (c.drained > 1024 * 1024) return close_connection(c.fd);
          continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        return close_connection(c.fd);
      }
    }
    if (c.state != State::reading) return;
    // Never more than a head's worth buffered.
    while (c.in.size() <= limits.max_head_bytes + 64) {
      const ssize_t n = ::read(c.fd, buffer.data(), buffer.size());
      if (n > 0) {
        c.in.append(buffer.data(), static_cast<std::size_t>(n));
        if (static_cast<std::size_t>(n) < buffer.size()) break;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) break;
      if (n < 0) return close_connection(c.fd);  // failed
      // The client closed its side: a whole request it sent first is
      // still answered, then the connection closes.
      serve_buffered(c);
      if (c.state != State::writing) return close_connection(c.fd);
      c.close_after = true;
      return;
    }
    serve_buffered(c);
  }

  void on_writable(Connection& c) {
    if (c.state != State::writing) return;
    while (c.written < c.out.size()) {
      const ssize_t n = ::send(c.fd, c.out.data() + c.written, c.out.size() - c.written, MSG_NOSIGNAL);
      if (n > 0) {
        c.written += static_cast<std::size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return;
      return close_connection(c.fd);
    }
    c.out.clear();
    c.written = 0;
    c.since = Steady::now();
    if (c.close_after) {
      if (!c.drain_after) return close_connection(c.fd);
      ::shutdown(c.fd, SHUT_WR);
      c.state = State::draining;
      watch(c.fd, EPOLLIN | EPOLLRDHUP, EPOLL_CTL_MOD);
      return;
    }
    c.state = State::reading;
    watch(c.fd, EPOLLIN | EPOLLRDHUP, EPOLL_CTL_MOD);
    // A pipelined request may already be buffered.
    if (!c.in.empty()) serve_buffered(c);
  }

  // Closes the connections past their deadline.
  void expire(Steady::time_point now) {
    std::vector<int> late;
    for (const auto& [fd, c] : connections) {
      const auto limit = c.state == State::reading   ? limits.header_timeout
                         : c.state == State::writing ? limits.write_timeout
                                                     : std::chrono::milliseconds(1000);
      if (now - c.since > limit) late.push_back(fd);
    }
    for (const int fd : late) close_connection(fd);
  }

  void loop() {
    std::array<epoll_event, 128> events{};
    auto next_expiry = Steady::now();
    for (;;) {
      const int n = epoll_wait(epoll, events.data(), static_cast<int>(events.size()), 100);
      if (n < 0 && errno != EINTR) {
        report(true, std::string("HTTP: the server stopped: epoll_wait: ") + std::strerror(errno));
        return;
      }
      for (int i = 0; i < n; ++i) {
        const int fd = events[i].data.fd;
        if (fd == wake) return;
        if (fd == listener) {
          accept_all();
          continue;
        }
        const auto found = connections.find(fd);
        if (found == connections.end()) continue;
        Connection& c = found->second;
        const auto e = events[i].events;
        // A reset while writing (EPOLLERR, EPOLLHUP without EPOLLOUT): the
        // next send fails and closes the connection.
        if ((e & EPOLLOUT) != 0U || (c.state == State::writing && (e & (EPOLLERR | EPOLLHUP)) != 0U)) {
          on_writable(c);
          continue;  // c may be gone
        }
        if ((e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0U) on_readable(c);
      }
      const auto now = Steady::now();
      if (now >= next_expiry) {
        expire(now);
        next_expiry = now + std::chrono::milliseconds(100);
      }
    }
  }
};

Server::Server(std::string host, int port, std::vector<std::string> names, Limits limits, Handler handler,
               Reporter report)
    : impl_(std::make_unique<Impl>()) {
  impl_->report = std::move(report);
  impl_->host = std::move(host);
  impl_->port = port;
  impl_->names = std::move(names);
  impl_->limits = limits;
  impl_->handler = std::move(handler);
}

Server::~Server() { stop(); }

void Server::bind() {
  auto& m = *impl_;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(m.port);
  if (const int rc = getaddrinfo(m.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    throw std::runtime_error(std::string("cannot listen there: ") + gai_strerror(rc));
  }
  int error = EADDRNOTAVAIL;
  for (const addrinfo* a = found; a != nullptr && m.listener < 0; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      error = errno;
      continue;
    }
    // SO_REUSEADDR (a restart binds while old connections linger in
    // TIME_WAIT) and never SO_REUSEPORT: a second server on the port fails.
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd, 511) != 0) {
      error = errno;
      ::close(fd);
      continue;
    }
    m.listener = fd;
  }
  freeaddrinfo(found);
  if (m.listener < 0) {
    throw std::runtime_error(std::string("cannot listen there: ") + std::strerror(error) +
                             (error == EADDRINUSE ? " (another process, or another jobctl serve, listens there)" : ""));
  }
  m.epoll = epoll_create1(EPOLL_CLOEXEC);
  m.wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  m.reserve = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (m.epoll < 0 || m.wake < 0) throw std::runtime_error(std::string("cannot start: ") + std::strerror(errno));
  m.watch(m.listener, EPOLLIN, EPOLL_CTL_ADD);
  m.watch(m.wake, EPOLLIN, EPOLL_CTL_ADD);
}

void Server::start() {
  if (impl_->listener < 0) bind();
  impl_->thread = std::thread([m = impl_.get()] {
    try {
      m->loop();
    } catch (const std::exception& e) {
      m->report(true, std::string("HTTP: the server stopped: ") + e.what());
    } catch (...) {
      m->report(true, "HTTP: the server stopped");
    }
  });
}

void Server::stop() {
  if (!impl_ || !impl_->thread.joinable()) return;
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto written = ::write(impl_->wake, &one, sizeof one);
  impl_->thread.join();
}

}  // namespace jobctl::http
