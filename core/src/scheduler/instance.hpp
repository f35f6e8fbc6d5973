// Internal to core: who this process is, for a server id's lease
// (ServerRecord::instance), and whether the holder of a lease is a process of
// this machine that is gone.
#pragma once

#include <string>
#include <utility>

namespace jobrepo::scheduling {

// A new instance token, "BOOT_ID:PIDNS:PID:START:RANDOM" (unique per call),
// and where this process runs, for people ("web-1 pid 4242").
std::pair<std::string, std::string> new_instance();

// Whether the instance with this token was a process of this machine and pid
// namespace that is gone now (its pid free, or reused by a later process).
// False when it cannot tell (another machine, an unknown token).
bool instance_gone(const std::string& token);

}  // namespace jobrepo::scheduling
