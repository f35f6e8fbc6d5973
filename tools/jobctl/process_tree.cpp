#include "process_tree.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <string>

#include <dirent.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace jobctl {

namespace {

// The parent of `pid` from /proc/PID/stat, or empty when it is gone. The
// command name (field 2) may hold spaces and parentheses: the fields after
// the last ')' are "state ppid ...".
std::optional<pid_t> parent_of(pid_t pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/stat";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char buffer[1024];
  const auto got = ::read(fd, buffer, sizeof buffer - 1);
  ::close(fd);
  if (got <= 0) return std::nullopt;
  const std::string stat(buffer, static_cast<std::size_t>(got));
  const auto close = stat.rfind(')');
  if (close == std::string::npos || close + 4 >= stat.size()) return std::nullopt;
  return static_cast<pid_t>(std::strtol(stat.c_str() + close + 4, nullptr, 10));
}

int pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

int pidfd_send_signal(int pidfd, int signal) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, signal, nullptr, 0));
}

// Every process of the machine by its parent.
std::multimap<pid_t, pid_t> all_by_parent() {
  std::multimap<pid_t, pid_t> children;
  if (DIR* proc = ::opendir("/proc")) {
    while (const dirent* entry = ::readdir(proc)) {
      char* end = nullptr;
      const long pid = std::strtol(entry->d_name, &end, 10);
      if (pid <= 0 || *end != '\0') continue;
      if (const auto parent = parent_of(static_cast<pid_t>(pid))) children.emplace(*parent, static_cast<pid_t>(pid));
    }
    ::closedir(proc);
  }
  return children;
}

}  // namespace

std::vector<pid_t> children_of(pid_t root) {
  const auto children = all_by_parent();
  std::vector<pid_t> found;
  const auto [first, last] = children.equal_range(root);
  for (auto it = first; it != last; ++it) found.push_back(it->second);
  return found;
}

std::vector<pid_t> descendants_of(pid_t root) {
  const auto children = all_by_parent();
  std::vector<pid_t> found;
  std::vector<pid_t> pending{root};
  while (!pending.empty()) {
    const pid_t parent = pending.back();
    pending.pop_back();
    const auto [first, last] = children.equal_range(parent);
    for (auto it = first; it != last; ++it) {
      found.push_back(it->second);
      pending.push_back(it->second);
    }
  }
  return found;
}

int signal_descendants(pid_t root, int signal) {
  const auto found = descendants_of(root);
  std::set<pid_t> tree(found.begin(), found.end());
  tree.insert(root);
  int reached = 0;
  for (const pid_t pid : found) {
    const int pidfd = pidfd_open(pid);
    if (pidfd < 0) {
      // Gone already; or a kernel without pidfds (before 5.3), where the
      // plain kill() below is the best there is.
      if (errno == ENOSYS && ::kill(pid, signal) == 0) ++reached;
      continue;
    }
    // The pidfd pins the process: if it is still below root now, the signal
    // reaches that very process.
    if (const auto parent = parent_of(pid);
        parent && tree.count(*parent) != 0 && pidfd_send_signal(pidfd, signal) == 0) {
      ++reached;
    }
    ::close(pidfd);
  }
  return reached;
}

}  // namespace jobctl
