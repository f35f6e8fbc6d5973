#include "instance.hpp"

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace jobrepo::scheduling {

namespace {

// The text of a small file (/proc), or empty.
std::string read_small_file(const char* path) {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  char buffer[1024];
  const auto got = ::read(fd, buffer, sizeof buffer - 1);
  ::close(fd);
  if (got <= 0) return {};
  std::string text(buffer, static_cast<std::size_t>(got));
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

// Field 22 of /proc/PID/stat (the process's start, in clock ticks since
// boot): with the pid, it names one process for the machine's uptime. The
// command name (field 2) may hold spaces and parentheses: the fields after
// the last ')' are counted. Empty when the process is gone or a zombie.
std::string process_start(pid_t pid) {
  const std::string stat = read_small_file(("/proc/" + std::to_string(pid) + "/stat").c_str());
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return {};
  std::vector<std::string> fields;  // from field 3 (the state) on
  std::size_t at = close + 2;
  while (at < stat.size() && fields.size() < 20) {
    const auto space = stat.find(' ', at);
    fields.push_back(stat.substr(at, space == std::string::npos ? std::string::npos : space - at));
    if (space == std::string::npos) break;
    at = space + 1;
  }
  if (fields.size() < 20 || fields[0] == "Z" || fields[0] == "X") return {};
  return fields[19];
}

// The machine and pid namespace this process runs in: a pid means the same
// process only where both are equal. "?" parts when /proc cannot tell.
std::string machine_part() {
  std::string boot = read_small_file("/proc/sys/kernel/random/boot_id");
  char link[64] = {};
  const auto length = ::readlink("/proc/self/ns/pid", link, sizeof link - 1);
  if (boot.empty() || boot.find(':') != std::string::npos) boot = "?";
  std::string ns = "?";
  if (length > 0) {
    // "pid:[4026531836]": the number alone.
    const std::string text(link, static_cast<std::size_t>(length));
    const auto open = text.find('['), close = text.find(']');
    if (open != std::string::npos && close != std::string::npos && close > open + 1) {
      ns = text.substr(open + 1, close - open - 1);
    }
  }
  return boot + ":" + ns;
}

}  // namespace

std::pair<std::string, std::string> new_instance() {
  const pid_t pid = ::getpid();
  std::string start = process_start(pid);
  if (start.empty()) start = "?";
  std::random_device device;
  char random[17];
  std::snprintf(random, sizeof random, "%08x%08x", device(), device());
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') std::snprintf(host, sizeof host, "unknown-host");
  return {machine_part() + ":" + std::to_string(pid) + ":" + start + ":" + random,
          std::string(host) + " pid " + std::to_string(pid)};
}

bool instance_gone(const std::string& token) {
  std::vector<std::string> parts;
  for (std::size_t at = 0;;) {
    const auto colon = token.find(':', at);
    parts.push_back(token.substr(at, colon == std::string::npos ? std::string::npos : colon - at));
    if (colon == std::string::npos) break;
    at = colon + 1;
  }
  if (parts.size() != 5 || parts[0] == "?" || parts[1] == "?" || parts[3] == "?") return false;
  if (parts[0] + ":" + parts[1] != machine_part()) return false;
  char* end = nullptr;
  const long pid = std::strtol(parts[2].c_str(), &end, 10);
  if (end == parts[2].c_str() || *end != '\0' || pid <= 0) return false;
  return process_start(static_cast<pid_t>(pid)) != parts[3];
}

}  // namespace jobrepo::scheduling
