// A run's supervisor: the small process between jobctl serve and the
// command of one run. jobctl starts itself again as it (argv[0]
// "jobrepo-run", so `ps` shows "jobrepo-run RUN_ID JOB -- COMMAND..." above
// the command's processes).
//
// It is a child subreaper: whatever the command does (pipelines, setsid,
// double fork, background jobs), every process it starts stays below the
// supervisor, which ends them all, SIGTERM first and SIGKILL after grace:
//   - when serve asks (the run was cancelled: stop, timeout, interrupted);
//   - when the run's fence deadline passes without serve renewing it (serve
//     hangs or cannot reach the database), so that nothing of the run is
//     alive when a peer may take the job;
//   - when the command ends and leaves processes behind;
// and at once with SIGKILL when serve dies (its control pipe closes), even
// by kill -9. It reports how the command ended only when none is left, so a
// run's outcome is stored only after all of its processes are gone.
// Where serve gives runs cgroups (run_cgroup.hpp), the supervisor and the
// command are each in a cgroup of the run's own, the command's entered
// before it is executed, and its SIGKILL goes through cgroup.kill too: what
// is left when serve and the supervisor die together is found and killed by
// any serve of the same cgroup.
// See docs/cli.md for the guarantee and its limits.
#pragma once

#include <jobrepo/scheduler.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace jobctl {

// The argv[0] (and process name) of a supervisor.
inline constexpr std::string_view supervisor_name = "jobrepo-run";

// A supervisor process's main(); argv as run_supervised() builds it.
int supervisor_main(int argc, char* argv[]);

// What run_supervised() runs.
struct SupervisedCommand {
  std::string run_id;
  std::string job_name;
  std::vector<std::string> argv;         // run without a shell; argv[0] looked up in PATH
  std::vector<std::string> environment;  // "NAME=value", the whole environment
  std::string working_directory;         // empty: jobctl's own
  std::chrono::microseconds grace{0};    // SIGTERM to SIGKILL
  int lock_fd = -1;                      // held by the supervisor as long as it lives (-1: none)
};

// How a command ended.
struct CommandEnd {
  // cancelled: the context was cancelled before the supervisor started the
  // command, so it was not started at all (code 0).
  enum class How { exited, killed, not_started, cancelled };
  How how = How::exited;
  int code = 0;         // the exit status, the signal, or the errno of exec
  int leftovers = 0;    // processes it left behind, ended by the supervisor
  bool fenced = false;  // the supervisor ended it at the fence deadline
  // The command itself ended after the supervisor was asked to end the run
  // (a cancel, the fence): its exit status may be its answer to SIGTERM.
  // False when it ended on its own first, leftovers or not.
  bool asked = false;
};

// Runs the command under a new supervisor until the command and every
// process it started have ended. Each line of its stdout goes to `on_line`
// (read to the end, also after the command exited; a line over
// max_line_bytes (output.hpp) is cut and ends with "[... N bytes cut]"). Cancelling the
// context ends the command; cancelled before the supervisor started it, the
// command is not started at all (How::cancelled). The supervisor's fence deadline follows
// context.fence_deadline(). Throws std::runtime_error when the supervisor
// cannot start or dies before it reports (then whatever it left is killed).
// With `on_error_line`, the lines of its stderr go there the same way;
// without, its stderr is jobctl's.
CommandEnd run_supervised(const SupervisedCommand& command, jobrepo::JobContext& context,
                          const std::function<void(std::string_view line)>& on_line,
                          const std::function<void(std::string_view line)>& on_error_line = {});

// For jobctl serve, before it starts any run: orphans of a supervisor that
// was itself killed come to serve (a child subreaper), which ends them.
void become_subreaper();

}  // namespace jobctl
