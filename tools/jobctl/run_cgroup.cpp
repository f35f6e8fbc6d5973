#include "run_cgroup.hpp"

#include "duration.hpp"
#include "log.hpp"
#include "shown.hpp"

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <set>
#include <stdexcept>
#include <string_view>
#include <utility>

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace jobctl {

namespace {

using Steady = std::chrono::steady_clock;

// The text of a small file (a cgroup's interface file), or empty when it
// cannot be read (errno says why).
std::optional<std::string> read_text(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string text;
  char buffer[4096];
  ssize_t got = 0;
  while ((got = ::read(fd, buffer, sizeof buffer)) > 0) text.append(buffer, static_cast<std::size_t>(got));
  const int error = errno;
  ::close(fd);
  if (got < 0) {
    errno = error;
    return std::nullopt;
  }
  return text;
}

// Writes `text` to a file that exists; 0, or the errno.
int write_text(const std::string& path, std::string_view text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  const auto wrote = ::write(fd, text.data(), text.size());
  const int error = wrote == static_cast<ssize_t>(text.size()) ? 0 : (wrote < 0 ? errno : EIO);
  ::close(fd);
  return error;
}

// Whether a live process is in `cgroup` or below it; false when it is gone.
bool populated(const std::string& cgroup) {
  const auto events = read_text(cgroup + "/cgroup.events");
  return events && events->find("populated 1") != std::string::npos;
}

// The cgroups right below `cgroup`, by name.
std::vector<std::string> children(const std::string& cgroup) {
  std::vector<std::string> names;
  if (DIR* dir = ::opendir(cgroup.c_str())) {
    while (const dirent* entry = ::readdir(dir)) {
      const std::string_view name = entry->d_name;
      if (entry->d_type == DT_DIR && name != "." && name != "..") names.emplace_back(name);
    }
    ::closedir(dir);
  }
  return names;
}

// The processes in `cgroup` and below it.
int count_processes(const std::string& cgroup) {
  int count = 0;
  if (const auto procs = read_text(cgroup + "/cgroup.procs")) {
    for (const char c : *procs) count += c == '\n' ? 1 : 0;
  }
  for (const auto& child : children(cgroup)) count += count_processes(cgroup + "/" + child);
  return count;
}

// Waits up to `wait` until nothing lives in `cgroup`; true when nothing does.
bool wait_empty(const std::string& cgroup, std::chrono::milliseconds wait) {
  const auto deadline = Steady::now() + wait;
  while (populated(cgroup)) {
    if (Steady::now() >= deadline) return false;
    ::usleep(5000);
  }
  return true;
}

// Removes `cgroup` and the cgroups below it (all empty); false when one stays.
bool remove_tree(const std::string& cgroup) {
  for (const auto& child : children(cgroup)) remove_tree(cgroup + "/" + child);
  return ::rmdir(cgroup.c_str()) == 0 || errno == ENOENT;
}

// "a/b/c" -> "a/b".
std::string parent_of(const std::string& path) { return path.substr(0, path.rfind('/')); }

// The run id and the supervisor of a run cgroup named "RUN_ID.PID".
Orphans orphans_of(const std::string& name, int processes) {
  const auto dot = name.rfind('.');
  if (dot == std::string::npos) return {name, 0, processes};
  return {name.substr(0, dot), static_cast<pid_t>(std::atol(name.c_str() + dot + 1)), processes};
}

// A field of /proc/self/mountinfo, its octal escapes ("\040" for a space) undone.
std::string unescape(std::string_view field) {
  std::string out;
  for (std::size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size()) {
      out += static_cast<char>(std::strtol(std::string(field.substr(i + 1, 3)).c_str(), nullptr, 8));
      i += 3;
    } else {
      out += field[i];
    }
  }
  return out;
}

std::mutex base_mutex;
std::string current_base;  // run_cgroup_base()

}  // namespace

std::optional<std::string> prepare_run_cgroup_base(std::string* why_not) {
  const auto refuse = [&](const std::string& why) -> std::optional<std::string> {
    if (why_not) *why_not = why;
    return std::nullopt;
  };
  // This process's cgroup in the cgroup v2 hierarchy: the line "0::PATH".
  const auto groups = read_text("/proc/self/cgroup");
  if (!groups) return refuse(std::string("cannot read /proc/self/cgroup: ") + std::strerror(errno));
  std::optional<std::string> own;
  for (std::size_t at = 0; at < groups->size();) {
    const auto end = std::min(groups->find('\n', at), groups->size());
    const std::string_view line = std::string_view(*groups).substr(at, end - at);
    if (line.rfind("0::", 0) == 0) own = std::string(line.substr(3));
    at = end + 1;
  }
  if (!own || own->empty() || own->front() != '/') return refuse("this process is in no cgroup v2");
  // Where that cgroup is: a cgroup2 mount whose root holds it.
  const auto mounts = read_text("/proc/self/mountinfo");
  if (!mounts) return refuse(std::string("cannot read /proc/self/mountinfo: ") + std::strerror(errno));
  std::string cgroup;
  for (std::size_t at = 0; at < mounts->size() && cgroup.empty();) {
    const auto end = std::min(mounts->find('\n', at), mounts->size());
    // ID PARENT MAJOR:MINOR ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER_OPTIONS
    std::vector<std::string_view> fields;
    for (std::size_t f = at; f < end;) {
      const auto space = std::min(mounts->find(' ', f), end);
      fields.push_back(std::string_view(*mounts).substr(f, space - f));
      f = space + 1;
    }
    at = end + 1;
    std::size_t dash = 6;
    while (dash < fields.size() && fields[dash] != "-") ++dash;
    if (fields.size() < 5 || dash + 1 >= fields.size() || fields[dash + 1] != "cgroup2") continue;
    const std::string root = unescape(fields[3]), point = unescape(fields[4]);
    if (root == "/") {
      cgroup = point + (*own == "/" ? "" : *own);
    } else if (own->rfind(root, 0) == 0 && (own->size() == root.size() || (*own)[root.size()] == '/')) {
      cgroup = point + own->substr(root.size());
    }
  }
  if (cgroup.empty()) return refuse("no cgroup2 filesystem is mounted where this process's cgroup " + *own + " is");
  const std::string base = cgroup + "/jobrepo-runs";
  bool created = true;
  if (::mkdir(base.c_str(), 0755) != 0) {
    if (errno != EEXIST) return refuse("cannot create " + base + ": " + std::strerror(errno));
    created = false;
  }
  if (::access((base + "/cgroup.kill").c_str(), F_OK) != 0) {
    if (created) ::rmdir(base.c_str());
    return refuse(base + " has no cgroup.kill (Linux before 5.14)");
  }
  // A supervisor moves itself from serve's cgroup into one below the base.
  for (const auto& procs : {cgroup + "/cgroup.procs", base + "/cgroup.procs"}) {
    if (::access(procs.c_str(), W_OK) != 0) return refuse("cannot write " + procs + ": " + std::strerror(errno));
  }
  return base;
}

std::string run_cgroup_path(const std::string& base, const std::string& run_id, pid_t supervisor) {
  // Run ids are base64url; anything else would not name one directory.
  std::string name = run_id.empty() ? "run" : run_id;
  for (char& c : name) {
    if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '-' && c != '_') c = '_';
  }
  return base + "/" + name + "." + std::to_string(supervisor);
}

std::string run_cgroup_base() {
  const std::lock_guard lock(base_mutex);
  return current_base;
}

// --- the supervisor's side -------------------------------------------------------

RunCgroup::RunCgroup(std::string dir) : dir_(std::move(dir)), command_(dir_ + "/command") {
  const std::string supervisor = dir_ + "/supervisor";
  bool created = false;  // dir_, by this process
  const auto fail = [&](const std::string& operation, const std::string& path, int error) {
    if (created) {
      // Back to serve's cgroup (if it got in) and nothing of this run left.
      write_text(parent_of(parent_of(dir_)) + "/cgroup.procs", "0");
      remove_tree(dir_);
    }
    if (lock_ >= 0) ::close(lock_);
    lock_ = -1;
    throw std::runtime_error("cannot " + operation + " the run's cgroup " + path + ": " + std::strerror(error));
  };
  // A sweep removes a run cgroup whose lock it could take and that was empty:
  // one made but not locked yet, too. Then it is made again.
  for (int attempt = 1;; ++attempt) {
    const bool again = attempt < 5;
    if (::mkdir(dir_.c_str(), 0755) != 0) {
      // Left by a dead supervisor that had this pid: ended, then made anew.
      if (errno == EEXIST && again) {
        end_run_cgroup(dir_, std::chrono::seconds(1));
        continue;
      }
      // The base, removed by the last serve of its cgroup that stopped: made again.
      if (errno == ENOENT && again && (::mkdir(parent_of(dir_).c_str(), 0755) == 0 || errno == EEXIST)) continue;
      fail("create", dir_, errno);
    }
    created = true;
    lock_ = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (lock_ < 0 && errno == ENOENT && again) {  // removed by a sweep before it could be opened
      created = false;
      continue;
    }
    if (lock_ < 0) fail("open", dir_, errno);
    if (::flock(lock_, LOCK_EX) != 0) fail("lock", dir_, errno);
    int error = 0;
    const std::string* failed = nullptr;
    for (const std::string* path : {&supervisor, static_cast<const std::string*>(&command_)}) {
      if (::mkdir(path->c_str(), 0755) != 0) {
        error = errno;
        failed = path;
        break;
      }
    }
    const bool made = error == 0;
    if (made && (error = write_text(supervisor + "/cgroup.procs", "0")) == 0) break;
    if (error == ENOENT && again) {  // removed by a sweep before the lock was taken
      ::close(lock_);
      lock_ = -1;
      created = false;
      continue;
    }
    if (!made) fail("create", *failed, error);
    fail("enter", supervisor, error);
  }
  command_procs_ = ::open((command_ + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
  if (command_procs_ < 0) fail("open", command_ + "/cgroup.procs", errno);
}

RunCgroup::~RunCgroup() { leave(); }

bool RunCgroup::command_populated() const { return populated(command_); }

void RunCgroup::kill_command() const noexcept { write_text(command_ + "/cgroup.kill", "1"); }

void RunCgroup::leave() noexcept {
  if (lock_ < 0) return;
  ::close(command_procs_);
  command_procs_ = -1;
  // serve's cgroup is the base's parent.
  write_text(parent_of(parent_of(dir_)) + "/cgroup.procs", "0");
  remove_tree(dir_);
  ::close(lock_);
  lock_ = -1;
}

// --- serve's side ------------------------------------------------------------------

int end_run_cgroup(const std::string& dir, std::chrono::milliseconds wait) noexcept {
  const int lock = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (lock < 0) return 0;  // gone
  // Its supervisor is dead: only a sweep holds the lock, for a moment.
  ::flock(lock, LOCK_EX);
  const std::string command = dir + "/command";
  int killed = 0;
  if (populated(command)) {
    killed = count_processes(command);
    write_text(command + "/cgroup.kill", "1");
    wait_empty(command, wait);
  }
  remove_tree(dir);
  ::close(lock);
  return killed;
}

Sweep sweep_run_cgroups(const std::string& base, std::chrono::milliseconds wait) {
  Sweep sweep;
  if (::access(base.c_str(), R_OK | X_OK) != 0) {
    if (errno == ENOENT) return sweep;  // removed by a serve that stopped: nothing in it
    throw std::runtime_error("cannot read " + base + ": " + std::strerror(errno));
  }
  std::set<std::string> killed;
  const auto deadline = Steady::now() + wait;
  for (;;) {
    int alive = 0;
    for (const auto& name : children(base)) {
      const std::string dir = base + "/" + name;
      // command/ first, then supervisor/ (see run_cgroup.hpp): orphans for sure.
      if (!populated(dir + "/command") || populated(dir + "/supervisor")) continue;
      const int processes = count_processes(dir + "/command");
      write_text(dir + "/command/cgroup.kill", "1");
      alive += processes;
      if (killed.insert(name).second) sweep.killed.push_back(orphans_of(name, processes));
    }
    if (alive == 0 || Steady::now() >= deadline) {
      sweep.still_alive = alive;
      break;
    }
    ::usleep(10000);
  }
  // What has no live supervisor (its lock is free) and nothing in it goes.
  for (const auto& name : children(base)) {
    const std::string dir = base + "/" + name;
    const int lock = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (lock < 0) continue;
    if (::flock(lock, LOCK_EX | LOCK_NB) == 0 && !populated(dir + "/command") && !populated(dir + "/supervisor")) {
      remove_tree(dir);
    }
    ::close(lock);
  }
  return sweep;
}

namespace {

// "3 processes of run A (supervisor 12), 1 of run B (supervisor 14)".
std::string describe(const std::vector<Orphans>& orphans) {
  std::string out;
  for (const auto& o : orphans) {
    out += (out.empty() ? counted(o.processes, "process", "processes") : ", " + std::to_string(o.processes)) +
           " of run " + o.run_id + " (supervisor " + std::to_string(o.supervisor) + ")";
  }
  return out;
}

}  // namespace

RunCgroups::RunCgroups(CgroupsSetting setting, std::chrono::microseconds interval, std::chrono::microseconds wait) {
  const std::string limit =
      "processes a command started may outlive its run when serve and the run's supervisor are killed together "
      "(docs/cli.md, \"One run, one set of processes\")";
  if (setting == CgroupsSetting::off) {
    log(LogLevel::warning,
        "runs get no cgroups (\"cgroups\": \"off\"): their processes are ended through the process tree; " + limit);
    return;
  }
  std::string why_not;
  const auto base = prepare_run_cgroup_base(&why_not);
  if (!base) {
    if (setting == CgroupsSetting::on) {
      throw ConfigError("cgroups is \"on\", but runs cannot get cgroups here: " + why_not +
                        " (run serve as root or in a systemd unit with Delegate=yes, or set \"cgroups\" to \"auto\" "
                        "or \"off\")");
    }
    log(LogLevel::warning,
        "runs get no cgroups here (" + why_not + "): their processes are ended through the process tree; " + limit);
    return;
  }
  base_ = *base;
  log(LogLevel::info, "each run gets a cgroup of its own under " + base_);
  // Orphans of a serve killed with its supervisors (this one before a
  // restart, or another one in this cgroup) end before any run is claimed.
  const auto began = Steady::now();
  const auto waited = [&] {
    return format_duration(std::chrono::duration_cast<std::chrono::microseconds>(Steady::now() - began));
  };
  try {
    const auto found = sweep_run_cgroups(base_, std::chrono::milliseconds(0));
    if (found.still_alive > 0) {
      log(LogLevel::warning, "waiting for the processes left in the cgroups of runs whose supervisor died to end: " +
                                 describe(found.killed));
      const auto ended = sweep_run_cgroups(base_, std::chrono::duration_cast<std::chrono::milliseconds>(wait));
      if (ended.still_alive > 0) {
        log(LogLevel::error, std::to_string(ended.still_alive) + " of them are still alive after " + waited() +
                                 "; serving anyway, they are killed again every " + format_duration(interval));
      } else {
        log(LogLevel::info, "they ended after " + waited());
      }
    }
  } catch (const std::exception& e) {
    log(LogLevel::error, std::string("sweeping the run cgroups: ") + e.what());
  }
  {
    const std::lock_guard lock(base_mutex);
    current_base = base_;
  }
  sweeper_ = std::thread([this, interval] { sweep_every(interval); });
}

RunCgroups::~RunCgroups() {
  {
    const std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  if (sweeper_.joinable()) sweeper_.join();
  // Only an empty cgroup can be removed: while another serve of this cgroup
  // runs, it stays (or its next supervisor makes it again).
  if (!base_.empty()) ::rmdir(base_.c_str());
}

void RunCgroups::sweep_every(std::chrono::microseconds interval) {
  std::set<std::string> reported;  // runs whose orphans were logged
  std::string last_error;
  std::unique_lock lock(mutex_);
  while (!wake_.wait_for(lock, interval, [&] { return stop_; })) {
    lock.unlock();
    try {
      const auto sweep = sweep_run_cgroups(base_, std::chrono::seconds(1));
      for (const auto& orphans : sweep.killed) {
        if (!reported.insert(orphans.run_id + "." + std::to_string(orphans.supervisor)).second) continue;
        log(LogLevel::warning, "killed " + describe({orphans}) + ", left in its cgroup when its supervisor died",
            LogContext{.run = orphans.run_id});
      }
      last_error.clear();
    } catch (const std::exception& e) {
      // Said once, not at every sweep.
      if (e.what() != last_error) log(LogLevel::error, std::string("sweeping the run cgroups: ") + e.what());
      last_error = e.what();
    }
    lock.lock();
  }
}

}  // namespace jobctl
