#include "supervisor.hpp"

#include "output.hpp"
#include "process_tree.hpp"
#include "run_cgroup.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <thread>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

namespace jobctl {

namespace {

using std::chrono::microseconds;
using Steady = std::chrono::steady_clock;

// The supervisor's descriptors, placed by run_supervised().
constexpr int control_fd = 3;  // serve -> supervisor: "grace US", "lease NS", "cgroup BASE", "start", "term"
constexpr int report_fd = 4;  // supervisor -> serve: "pid P", "fenced", "end HOW CODE LEFTOVERS [fenced]", "failed WHY"
constexpr int lock_fd = 5;    // held, never used

long long to_ns(Steady::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}
Steady::time_point from_ns(long long ns) {
  return Steady::time_point(std::chrono::duration_cast<Steady::duration>(std::chrono::nanoseconds(ns)));
}

// Writes all of `text`; false when the reader is gone.
bool write_all(int fd, std::string_view text) {
  while (!text.empty()) {
    const auto wrote = ::write(fd, text.data(), text.size());
    if (wrote < 0 && errno == EINTR) continue;
    if (wrote <= 0) return false;
    text.remove_prefix(static_cast<std::size_t>(wrote));
  }
  return true;
}

// Supervisors alive (started by this process and not yet waited for). A
// supervisor is added under the mutex in the same breath as it is spawned,
// so sweep_orphans() never takes a new one for an orphan.
std::mutex supervisors_mutex;
std::set<pid_t> supervisors;

// After a supervisor died without ending its tree: its orphans came to this
// process (a subreaper). Ends them and everything below them, and waits for them.
void sweep_orphans() {
  const std::lock_guard lock(supervisors_mutex);
  for (int round = 0; round < 100; ++round) {
    std::vector<pid_t> orphans;
    for (const pid_t child : children_of(::getpid())) {
      if (supervisors.count(child) == 0) orphans.push_back(child);
    }
    if (orphans.empty()) return;
    for (const pid_t orphan : orphans) {
      signal_descendants(orphan, SIGKILL);
      ::kill(orphan, SIGKILL);
    }
    for (const pid_t orphan : orphans) ::waitpid(orphan, nullptr, 0);
  }
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "was killed by signal " + std::to_string(WTERMSIG(status));
  return "ended";
}

[[noreturn]] void supervisor_usage() {
  std::fputs("jobrepo-run: the supervisor of a run of jobctl serve; it is not started by hand\n", stderr);
  std::exit(2);
}

}  // namespace

// --- the supervisor process -------------------------------------------------

int supervisor_main(int argc, char* argv[]) {
  // jobrepo-run RUN_ID JOB_NAME -- COMMAND...
  if (argc < 5 || std::strcmp(argv[3], "--") != 0) supervisor_usage();
  for (const int fd : {control_fd, report_fd}) {
    if (::fcntl(fd, F_GETFD) < 0) supervisor_usage();
  }
  ::prctl(PR_SET_NAME, "jobrepo-run");
  // Orphans of the command's processes come here, not to init.
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
    std::perror("jobrepo-run: PR_SET_CHILD_SUBREAPER");
    return 2;
  }
  // None of the supervisor's own descriptors reach the command.
  for (const int fd : {control_fd, report_fd, lock_fd}) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  ::close_range(lock_fd + 1, ~0U, 0);
  // A closed report pipe must not kill the supervisor before its work is done.
  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGHUP, SIG_IGN);
  std::signal(SIGINT, SIG_IGN);
  sigset_t handled;
  sigemptyset(&handled);
  sigaddset(&handled, SIGCHLD);
  sigaddset(&handled, SIGTERM);
  ::sigprocmask(SIG_BLOCK, &handled, nullptr);
  const int signals = ::signalfd(-1, &handled, SFD_CLOEXEC | SFD_NONBLOCK);
  if (signals < 0) {
    std::perror("jobrepo-run: signalfd");
    return 2;
  }

  // The control lines, whenever they come (one read may hold several: serve
  // writes "grace", "lease" and "start" at once, and "term" may follow
  // before the supervisor reads any of them): each one is acted on.
  microseconds grace{0};
  Steady::time_point lease = Steady::time_point::max();
  std::string cgroup_base;  // empty: no cgroups
  bool start = false, term = false, serve_gone = false;
  std::string control;
  const auto read_control = [&] {
    char buffer[512];
    const auto got = ::read(control_fd, buffer, sizeof buffer);
    if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN)) serve_gone = true;
    if (got <= 0) return;
    control.append(buffer, static_cast<std::size_t>(got));
    for (auto newline = control.find('\n'); newline != std::string::npos; newline = control.find('\n')) {
      const std::string_view line = std::string_view(control).substr(0, newline);
      if (line.rfind("grace ", 0) == 0) grace = microseconds(std::atoll(std::string(line.substr(6)).c_str()));
      if (line.rfind("lease ", 0) == 0) lease = from_ns(std::atoll(std::string(line.substr(6)).c_str()));
      if (line.rfind("cgroup ", 0) == 0) cgroup_base = line.substr(7);
      start = start || line == "start";
      term = term || line == "term";
      control.erase(0, newline + 1);
    }
  };
  while (!start && !term) {
    read_control();
    if (serve_gone) return 0;  // serve died before the command started
  }
  // Cancelled before it started: the command is not started at all.
  if (term) {
    write_all(report_fd, "end cancelled 0 0\n");
    return 0;
  }
  ::fcntl(control_fd, F_SETFL, O_NONBLOCK);
  const pid_t supervisor = ::getpid();
  // The run's cgroups (run_cgroup.hpp); left and removed when this ends.
  std::optional<RunCgroup> cgroup;
  if (!cgroup_base.empty()) {
    try {
      cgroup.emplace(run_cgroup_path(cgroup_base, argv[1], supervisor));
    } catch (const std::exception& e) {
      write_all(report_fd, std::string("failed ") + e.what() + "\n");
      return 0;
    }
  }

  // The command. Its exec error, if any, comes back through a pipe that exec
  // closes (negated: it could not enter its cgroup).
  int exec_error[2];
  if (::pipe2(exec_error, O_CLOEXEC) != 0) return 2;
  const pid_t command = ::fork();
  if (command < 0) {
    write_all(report_fd, "end not-started " + std::to_string(errno) + " 0\n");
    return 0;
  }
  if (command == 0) {
    // Into the command's cgroup before anything else: all it starts is there.
    if (cgroup && ::write(cgroup->command_procs(), "0", 1) != 1) {
      const int error = -errno;
      (void)!::write(exec_error[1], &error, sizeof error);
      ::_exit(126);
    }
    ::setpgid(0, 0);
    // The command itself dies with its supervisor, whatever killed it.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != supervisor) ::_exit(125);
    for (int s = 1; s < NSIG; ++s) {
      if (s != SIGKILL && s != SIGSTOP) std::signal(s, SIG_DFL);
    }
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execvp(argv[4], argv + 4);
    const int error = errno;
    (void)!::write(exec_error[1], &error, sizeof error);
    ::_exit(127);
  }
  ::close(exec_error[1]);
  // Only the command's processes hold its output pipe: serve reads it to the
  // end when they are all gone.
  if (const int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC); null >= 0) {
    ::dup2(null, STDOUT_FILENO);
    ::dup2(null, STDERR_FILENO);
    ::close(null);
  }
  int exec_errno = 0;
  if (::read(exec_error[0], &exec_errno, sizeof exec_errno) != static_cast<ssize_t>(sizeof exec_errno)) exec_errno = 0;
  ::close(exec_error[0]);
  if (exec_errno < 0) {
    ::waitpid(command, nullptr, 0);
    write_all(report_fd, "failed cannot move the command into its cgroup " + cgroup->command_dir() + ": " +
                             std::strerror(-exec_errno) + "\n");
    return 0;
  }
  write_all(report_fd, "pid " + std::to_string(command) + "\n");

  std::optional<int> status;  // of the command
  int leftovers = -1;         // counted when the command ended
  bool terminating = false, fenced = false;
  bool asked = false;  // the command ended after the supervisor was asked to end it
  Steady::time_point kill_at = Steady::time_point::max();
  const auto terminate = [&](microseconds after) {
    if (!terminating) signal_descendants(supervisor, SIGTERM);
    terminating = true;
    kill_at = std::min(kill_at, Steady::now() + after);
  };
  for (;;) {
    // Reap: the command, its orphans, anything below.
    bool children_left = true;
    for (;;) {
      int child_status = 0;
      const pid_t reaped = ::waitpid(-1, &child_status, WNOHANG);
      if (reaped == command) {
        status = child_status;
        asked = terminating;
      }
      if (reaped > 0) continue;
      children_left = !(reaped < 0 && errno == ECHILD);
      break;
    }
    if (status && leftovers < 0) {
      // The command ended; what it left behind ends too.
      leftovers = static_cast<int>(descendants_of(supervisor).size());
      if (leftovers > 0) terminate(grace);
    }
    // Nothing is left below the supervisor, nor in the command's cgroup.
    const bool in_cgroup = cgroup && cgroup->command_populated();
    if (status && !children_left && !in_cgroup) break;
    if (status && !children_left) terminate(grace);  // in its cgroup but not below the supervisor

    const auto now = Steady::now();
    if (!terminating && now >= lease) {
      fenced = true;
      write_all(report_fd, "fenced\n");
      terminate(grace);
    }
    if (terminating && now >= kill_at) {
      signal_descendants(supervisor, SIGKILL);
      if (cgroup) cgroup->kill_command();
    }

    // Sleep until a signal, a control line, or the next deadline.
    auto next = terminating ? kill_at : lease;
    if (terminating && now >= kill_at) next = now + std::chrono::milliseconds(10);
    const auto wait_ms =
        std::clamp<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count() + 1, 1, 1000);
    pollfd fds[2] = {{signals, POLLIN, 0}, {serve_gone ? -1 : control_fd, POLLIN, 0}};
    if (::poll(fds, 2, static_cast<int>(wait_ms)) <= 0) continue;
    if (fds[0].revents != 0) {
      signalfd_siginfo info{};
      while (::read(signals, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
        if (info.ssi_signo == SIGTERM) terminate(grace);
      }
    }
    if (fds[1].revents != 0) {
      read_control();
      if (term) terminate(grace);
      // serve is gone (even kill -9): nothing of the run may outlive it.
      if (serve_gone) terminate(microseconds(0));
    }
  }

  if (cgroup) cgroup->leave();
  if (serve_gone) return 0;
  std::string how = "exit " + std::to_string(WIFEXITED(*status) ? WEXITSTATUS(*status) : 0);
  if (exec_errno != 0) {
    how = "not-started " + std::to_string(exec_errno);
  } else if (WIFSIGNALED(*status)) {
    how = "signal " + std::to_string(WTERMSIG(*status));
  }
  write_all(report_fd, "end " + how + " " + std::to_string(std::max(leftovers, 0)) + (fenced ? " fenced" : "") +
                           (asked ? " asked" : "") + "\n");
  return 0;
}

// --- jobctl serve's side ----------------------------------------------------

void become_subreaper() { ::prctl(PR_SET_CHILD_SUBREAPER, 1); }

namespace {

// A pipe whose ends close with it.
struct Pipe {
  int read = -1, write = -1;
  Pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
    read = fds[0];
    write = fds[1];
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  ~Pipe() {
    close_read();
    close_write();
  }
  void close_read() {
    if (read >= 0) ::close(read);
    read = -1;
  }
  void close_write() {
    if (write >= 0) ::close(write);
    write = -1;
  }
};

// A copy of `fd` numbered 10 or more (close-on-exec), so that placing the
// child's descriptors at 1, 3, 4 and 5 cannot overwrite one another.
struct HighFd {
  int fd = -1;
  explicit HighFd(int source) : fd(source < 0 ? -1 : ::fcntl(source, F_DUPFD_CLOEXEC, 10)) {
    if (source >= 0 && fd < 0) throw std::runtime_error(std::string("fcntl: ") + std::strerror(errno));
  }
  HighFd(const HighFd&) = delete;
  HighFd& operator=(const HighFd&) = delete;
  ~HighFd() {
    if (fd >= 0) ::close(fd);
  }
};

pid_t spawn_supervisor(const SupervisedCommand& command, int out, int err, int control, int report) {
  const HighFd child_out(out), child_err(err), child_control(control), child_report(report),
      child_lock(command.lock_fd);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, child_out.fd, STDOUT_FILENO);
  if (child_err.fd >= 0) posix_spawn_file_actions_adddup2(&actions, child_err.fd, STDERR_FILENO);
  posix_spawn_file_actions_adddup2(&actions, child_control.fd, control_fd);
  posix_spawn_file_actions_adddup2(&actions, child_report.fd, report_fd);
  if (child_lock.fd >= 0) posix_spawn_file_actions_adddup2(&actions, child_lock.fd, lock_fd);
  if (!command.working_directory.empty()) {
    posix_spawn_file_actions_addchdir_np(&actions, command.working_directory.c_str());
  }
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  sigdelset(&all, SIGKILL);
  sigdelset(&all, SIGSTOP);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setsigdefault(&attributes, &all);
  posix_spawnattr_setpgroup(&attributes, 0);  // its own group: a terminal's ^C reaches serve only
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);

  std::vector<std::string> args = {std::string(supervisor_name), command.run_id, command.job_name, "--"};
  args.insert(args.end(), command.argv.begin(), command.argv.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env = command.environment;
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  pid_t pid = 0;
  int error = 0;
  {
    const std::lock_guard lock(supervisors_mutex);
    error = posix_spawn(&pid, "/proc/self/exe", &actions, &attributes, argv.data(), envp.data());
    if (error == 0) supervisors.insert(pid);
  }
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (error != 0) {
    if (!command.working_directory.empty() && (error == ENOENT || error == EACCES || error == ENOTDIR)) {
      throw std::runtime_error("cannot enter working_directory \"" + command.working_directory +
                               "\": " + std::strerror(error));
    }
    throw std::runtime_error(std::string("cannot start its supervisor: ") + std::strerror(error));
  }
  return pid;
}

}  // namespace

CommandEnd run_supervised(const SupervisedCommand& command, jobrepo::JobContext& context,
                          const std::function<void(std::string_view line)>& on_line,
                          const std::function<void(std::string_view line)>& on_error_line) {
  Pipe out, err, control, report;
  if (!on_error_line) err.close_read(), err.close_write();  // stderr passes through
  const pid_t pid = spawn_supervisor(command, out.write, err.write, control.read, report.write);
  out.close_write();
  err.close_write();
  control.close_read();
  report.close_write();
  ::fcntl(out.read, F_SETFL, O_NONBLOCK);
  if (err.read >= 0) ::fcntl(err.read, F_SETFL, O_NONBLOCK);
  ::fcntl(report.read, F_SETFL, O_NONBLOCK);
  auto lease = context.fence_deadline();
  const std::string cgroup_base = run_cgroup_base();
  write_all(control.write, "grace " + std::to_string(command.grace.count()) + "\nlease " +
                               std::to_string(to_ns(lease)) + "\n" +
                               (cgroup_base.empty() ? "" : "cgroup " + cgroup_base + "\n") + "start\n");

  LineSplitter lines(on_line);
  LineSplitter error_lines(on_error_line ? on_error_line : on_line);
  std::string report_text, failure;
  std::optional<CommandEnd> end;
  pid_t command_pid = 0;
  bool fenced = false, term_sent = false, supervisor_killed = false;
  Steady::time_point term_at{}, ended_at{};
  for (;;) {
    const auto now = Steady::now();
    if (context.cancelled() && !term_sent) {
      write_all(control.write, "term\n");
      term_sent = true;
      term_at = now;
    }
    if (const auto renewed = context.fence_deadline(); renewed != lease) {
      lease = renewed;
      write_all(control.write, "lease " + std::to_string(to_ns(lease)) + "\n");
    }
    if (end && ((out.read < 0 && err.read < 0) || now - ended_at > std::chrono::seconds(1))) break;
    if (!end && report.read < 0) break;  // the supervisor died without a word
    if (term_sent && !end && !supervisor_killed && now - term_at > command.grace + std::chrono::seconds(5)) {
      // It does not end its command (stopped?): end it and all below it here.
      ::kill(pid, SIGKILL);
      supervisor_killed = true;
    }
    // poll() skips negative descriptors: a pipe read to its end, or no stderr pipe.
    pollfd fds[3] = {{out.read, POLLIN, 0}, {report.read, POLLIN, 0}, {err.read, POLLIN, 0}};
    if (::poll(fds, 3, 50) <= 0) continue;
    char buffer[65536];
    if (fds[0].revents != 0) {
      const auto got = ::read(out.read, buffer, sizeof buffer);
      if (got > 0) {
        lines.feed(std::string_view(buffer, static_cast<std::size_t>(got)));
      } else if (got == 0 || errno != EAGAIN) {
        out.close_read();
      }
    }
    if (fds[2].revents != 0) {
      const auto got = ::read(err.read, buffer, sizeof buffer);
      if (got > 0) {
        error_lines.feed(std::string_view(buffer, static_cast<std::size_t>(got)));
      } else if (got == 0 || errno != EAGAIN) {
        err.close_read();
      }
    }
    if (fds[1].revents != 0) {
      const auto got = ::read(report.read, buffer, sizeof buffer);
      if (got > 0) {
        report_text.append(buffer, static_cast<std::size_t>(got));
      } else if (got == 0 || errno != EAGAIN) {
        report.close_read();
      }
      for (auto newline = report_text.find('\n'); newline != std::string::npos; newline = report_text.find('\n')) {
        const std::string line = report_text.substr(0, newline);
        report_text.erase(0, newline + 1);
        char how[32] = {};
        int code = 0, leftovers = 0;
        if (line.rfind("pid ", 0) == 0) command_pid = std::atoi(line.c_str() + 4);
        if (line == "fenced") fenced = true;
        if (line.rfind("failed ", 0) == 0) failure = line.substr(7);
        if (std::sscanf(line.c_str(), "end %31s %d %d", how, &code, &leftovers) == 3) {
          const std::string h = how;
          end = CommandEnd{h == "signal"        ? CommandEnd::How::killed
                           : h == "not-started" ? CommandEnd::How::not_started
                           : h == "cancelled"   ? CommandEnd::How::cancelled
                                                : CommandEnd::How::exited,
                           code, leftovers, fenced};
          end->asked = line.size() >= 6 && line.compare(line.size() - 6, 6, " asked") == 0;
          ended_at = Steady::now();
        }
      }
    }
  }
  lines.finish();
  if (on_error_line) error_lines.finish();
  int status = 0;
  ::waitpid(pid, &status, 0);
  {
    const std::lock_guard lock(supervisors_mutex);
    supervisors.erase(pid);
  }
  // What the supervisor left in its cgroup (killed itself) ends now; the
  // cgroups go.
  if (!cgroup_base.empty()) end_run_cgroup(run_cgroup_path(cgroup_base, command.run_id, pid), std::chrono::seconds(5));
  if (!end) {
    // Killed itself: its command dies with it (PR_SET_PDEATHSIG); what the
    // command started came here, and ends now.
    if (command_pid > 0) ::kill(-command_pid, SIGKILL);
    sweep_orphans();
    if (!failure.empty()) throw std::runtime_error(failure);
    throw std::runtime_error("its supervisor (pid " + std::to_string(pid) + ") " + describe_status(status) +
                             " before the command ended; every process of the run was killed");
  }
  return *end;
}

}  // namespace jobctl
