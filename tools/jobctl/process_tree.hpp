// The processes below a process, as the kernel reports them in /proc, and
// signals to all of them. Used by a run's supervisor (and by jobctl serve)
// to end every process a command started, however it detached itself
// (new process group, setsid, double fork, background).
#pragma once

#include <sys/types.h>

#include <vector>

namespace jobctl {

// The processes whose chain of parents leads to `root`, from /proc. A
// snapshot: processes may start or end meanwhile.
std::vector<pid_t> descendants_of(pid_t root);

// The direct children of `root`, from /proc.
std::vector<pid_t> children_of(pid_t root);

// Sends `signal` to every process below `root` (and not to `root`) and
// returns how many it reached. Each is checked to still be below `root`
// through a pidfd before it is signalled, so a pid reused meanwhile by an
// unrelated process is never hit.
int signal_descendants(pid_t root, int signal);

}  // namespace jobctl
