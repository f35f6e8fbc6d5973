// jobctl serve --http's HTTP/1.1 server: one thread, one epoll loop, every
// socket non-blocking, so that no client can hold a thread (docs/operations.md,
// "HTTP: what a hostile client meets"). Requests carry no body: GET and HEAD
// only, a body refused from its headers before a byte of it is read. Every
// connection has a deadline (its request's headers within header_timeout of
// the moment it may send one; its response written within write_timeout), a
// request's head is at most max_head_bytes, and at max_connections the
// connection idle for the longest is closed for a new one. Range is ignored
// (every answer is the whole page), the Host header must name this server,
// and the listening socket is this process's alone (no SO_REUSEPORT).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace jobctl::http {

struct Limits {
  std::size_t max_connections = 512;
  std::size_t max_head_bytes = 8192;  // request line and headers
  std::chrono::milliseconds header_timeout{5000};
  std::chrono::milliseconds write_timeout{5000};
  int max_requests_per_connection = 100;
};

struct Request {
  std::string method;  // GET or HEAD (others are answered before a handler)
  std::string target;  // as sent: path and query
  std::string path;    // the target up to '?'
  std::string query;   // after '?', without it
  std::string host;    // the Host header, lower case, without its port
  int minor_version = 1;
  bool keep_alive = true;
};

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers{};  // extra ones
};

// A request's head read from the start of `buffer`.
struct Head {
  enum class State { incomplete, complete, refused } state = State::incomplete;
  Request request{};
  std::size_t size = 0;  // bytes of the head, with its blank line (complete)
  int status = 0;        // refused: the answer (400, 405, 413, 414, 431, 501, 505)
  std::string reason{};  // refused: why, one line for the body
};

// Parses the head at the start of `buffer` (pure; tests/fuzz call it). A head
// that is not complete within `max_head_bytes` is refused with 431 (414 when
// its request line alone is longer). Refused too: a malformed request line
// or header line (400), a version other than HTTP/1.0 and 1.1 (505), a
// method other than GET and HEAD (405, or 501 when it is not a token), a
// request with a body (Content-Length other than 0, or any
// Transfer-Encoding: 413), an HTTP/1.1 request without exactly one Host (400).
Head parse_head(std::string_view buffer, std::size_t max_head_bytes);

// Whether `host` (lower case, no port) names a server bound to `bound_host`:
// the bound name or address itself; for a loopback or wildcard address
// "localhost" and loopback addresses; for a wildcard address any IP
// address; and `names`. A DNS name that resolves to the server (a DNS
// rebinding attack on a loopback-bound page) is none of these.
bool host_allowed(std::string_view host, std::string_view bound_host, const std::vector<std::string>& names);

// The "Host" header's value without its port, in lower case, without a
// trailing dot; brackets kept for IPv6 ("[::1]"). Empty when malformed.
std::string host_of(std::string_view header);

class Server {
 public:
  using Handler = std::function<Response(const Request&)>;
  // What the server has to say (a refused Host, at most once a minute; the
  // loop's end on an error): `error`, and one line.
  using Reporter = std::function<void(bool error, const std::string& line)>;

  // `names`: further Host names to answer (--http-host); `handler` answers
  // every request that passed the checks above, on the loop's thread; it and
  // `report` must not throw.
  Server(std::string host, int port, std::vector<std::string> names, Limits limits, Handler handler, Reporter report);
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  ~Server();

  // Binds and listens; throws std::runtime_error (one line) when the address
  // cannot be had (in use, by another process or another serve; not an
  // address of this machine).
  void bind();
  // Serves on a thread of its own until stop().
  void start();
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace jobctl::http
