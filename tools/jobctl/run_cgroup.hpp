// Each run of jobctl serve in a cgroup v2 of its own, so that every process
// its command starts ends with the run even when serve and the run's
// supervisor are killed together (docs/cli.md, "One run, one set of
// processes"). The cgroups, under serve's own cgroup:
//
//   BASE = <cgroup2 mount><serve's cgroup>/jobrepo-runs   shared by the serves of that cgroup;
//          removed by a serve that stops when it is empty, made again when missing
//   BASE/RUN_ID.PID/              one run; PID is its supervisor's
//   BASE/RUN_ID.PID/supervisor    the supervisor, from before the command starts until it exits
//   BASE/RUN_ID.PID/command       the command and all it starts (entered after fork, before exec)
//
// No controller is enabled, so processes may live in serve's cgroup and in
// these alike. A run ends with "1" written to command/cgroup.kill; it is
// over when command/cgroup.events says "populated 0".
//
// Orphans: a supervisor enters supervisor/ before any process enters
// command/, and leaves it only by exiting, after command/ is empty, unless
// it was killed. So a run cgroup whose command/ is populated while its
// supervisor/ is empty (read in that order) lost its supervisor: what is in
// command/ is an orphan, and any serve of the cgroup kills it
// (sweep_run_cgroups). A supervisor holds an flock on its run's directory
// for its whole life: a run cgroup is removed only by whoever takes that
// lock, so a supervisor that just created its cgroups never loses them.
#pragma once

#include "config.hpp"

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace jobctl {

// BASE for the calling process (created when missing), or empty with `why_not`
// set ("no cgroup2 filesystem is mounted", "cannot create ...: Permission
// denied", "... has no cgroup.kill (Linux before 5.14)").
std::optional<std::string> prepare_run_cgroup_base(std::string* why_not);

// The cgroup directory of the run `run_id` whose supervisor is `supervisor`.
std::string run_cgroup_path(const std::string& base, const std::string& run_id, pid_t supervisor);

// The base that run_supervised() puts runs under: set by RunCgroups; empty:
// none (the process tree alone ends a run). Thread-safe.
std::string run_cgroup_base();

// --- the supervisor's side ---------------------------------------------------

// A run's cgroups as its supervisor holds them. Not thread-safe (the
// supervisor has one thread).
class RunCgroup {
 public:
  // Creates `dir`, its supervisor/ and command/ cgroups, takes the lock of
  // `dir` and moves the calling process into supervisor/. Throws
  // std::runtime_error naming the operation and the path.
  explicit RunCgroup(std::string dir);
  RunCgroup(const RunCgroup&) = delete;
  RunCgroup& operator=(const RunCgroup&) = delete;
  ~RunCgroup();

  // An open descriptor (close-on-exec) of command/cgroup.procs: a child of
  // the supervisor writes "0" to it to enter the command's cgroup.
  int command_procs() const { return command_procs_; }
  const std::string& command_dir() const { return command_; }
  // Whether a live process is in command/ or below it.
  bool command_populated() const;
  // Kills every process in command/ and below it (cgroup.kill).
  void kill_command() const noexcept;
  // For the end of the supervisor, when command/ is empty: moves the calling
  // process back to serve's cgroup and removes the run's cgroups. Best
  // effort: what it cannot remove, serve or a sweep removes later.
  void leave() noexcept;

 private:
  std::string dir_, command_;
  int lock_ = -1, command_procs_ = -1;
};

// --- serve's side -------------------------------------------------------------

// For serve after its supervisor exited: kills what is left in the run
// cgroup `dir` (the supervisor died), waits up to `wait` for it to end, and
// removes the run's cgroups. Returns how many processes it killed. Never
// throws; a run cgroup that is gone already is fine.
int end_run_cgroup(const std::string& dir, std::chrono::milliseconds wait) noexcept;

// The processes of run cgroups that lost their supervisor, by run cgroup.
struct Orphans {
  std::string run_id;
  pid_t supervisor = 0;  // dead
  int processes = 0;     // when found
};

// What a sweep did.
struct Sweep {
  std::vector<Orphans> killed;  // found and killed by this sweep
  int still_alive = 0;          // orphan processes (of anyone's sweep) alive when it gave up waiting
};

// One sweep of `base`: kills the orphans of every run cgroup that lost its
// supervisor, waits up to `wait` until no run cgroup holds orphans (also
// those another serve is killing), then removes the run cgroups that have no
// live supervisor and nothing in them. Throws std::runtime_error when `base`
// cannot be read.
Sweep sweep_run_cgroups(const std::string& base, std::chrono::milliseconds wait);

// jobctl serve's way to end the processes of its runs, chosen once at start
// by the config's "cgroups" and logged once (a warning when it is the process
// tree). With cgroups: run_cgroup_base() is set for the whole process; the
// orphans under BASE are ended before the constructor returns (it waits up
// to `wait` for them, logging it), and then every `interval` by a thread of
// its own until destruction, which removes BASE if it is empty. Throws
// ConfigError for "on" when cgroups cannot be used here.
class RunCgroups {
 public:
  RunCgroups(CgroupsSetting setting, std::chrono::microseconds interval, std::chrono::microseconds wait);
  RunCgroups(const RunCgroups&) = delete;
  RunCgroups& operator=(const RunCgroups&) = delete;
  ~RunCgroups();  // stops the sweeping thread

 private:
  void sweep_every(std::chrono::microseconds interval);

  std::string base_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread sweeper_;
};

}  // namespace jobctl
