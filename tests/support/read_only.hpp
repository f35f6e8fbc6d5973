// Test helpers that make a file or a directory read-only for root too, for
// whom file modes deny nothing: the immutable attribute (chattr +i) and a
// read-only bind mount. Each undoes itself when destroyed, also when the test
// fails. `problem` says why the mechanism is not available here (not Linux
// ext4/xfs/btrfs, no CAP_LINUX_IMMUTABLE or CAP_SYS_ADMIN); empty when it
// took effect.
#pragma once

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <unistd.h>

namespace jobrepo::test {

// The immutable attribute on a file or directory: no process may write it,
// rename it or (a directory) create or remove names in it.
class Immutable {
 public:
  explicit Immutable(std::filesystem::path path) : path_(std::move(path)) { problem = set(true); }
  Immutable(const Immutable&) = delete;
  Immutable& operator=(const Immutable&) = delete;
  ~Immutable() { release(); }
  // Makes it writable again now.
  void release() {
    if (problem.empty() && !released_) set(false);
    released_ = true;
  }
  std::string problem;

 private:
  std::string set(bool on) {
    const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return "open " + path_.string() + ": " + std::strerror(errno);
    int flags = 0;
    std::string failed;
    if (::ioctl(fd, FS_IOC_GETFLAGS, &flags) != 0) {
      failed = "FS_IOC_GETFLAGS " + path_.string() + ": " + std::strerror(errno);
    } else {
      flags = on ? (flags | FS_IMMUTABLE_FL) : (flags & ~FS_IMMUTABLE_FL);
      if (::ioctl(fd, FS_IOC_SETFLAGS, &flags) != 0) {
        failed = "FS_IOC_SETFLAGS " + path_.string() + ": " + std::strerror(errno);
      }
    }
    ::close(fd);
    return failed;
  }
  std::filesystem::path path_;
  bool released_ = false;
};

// `source` bind-mounted at `target` (created), read-only unless told
// otherwise; unmounted when destroyed.
class BindMount {
 public:
  BindMount(const std::filesystem::path& source, std::filesystem::path target, bool read_only = true)
      : target_(std::move(target)) {
    std::filesystem::create_directories(target_);
    if (::mount(source.c_str(), target_.c_str(), nullptr, MS_BIND, nullptr) != 0) {
      problem = "bind mount " + target_.string() + ": " + std::strerror(errno);
      return;
    }
    mounted_ = true;
    if (read_only && !set_read_only(true)) {
      problem = "remount read-only " + target_.string() + ": " + std::strerror(errno);
    }
  }
  BindMount(const BindMount&) = delete;
  BindMount& operator=(const BindMount&) = delete;
  ~BindMount() {
    if (mounted_) ::umount2(target_.c_str(), MNT_DETACH);
  }
  // Remounts it read-only or writable; false when that failed.
  bool set_read_only(bool read_only) {
    unsigned long flags = MS_REMOUNT | MS_BIND;
    if (read_only) flags |= MS_RDONLY;
    return ::mount(nullptr, target_.c_str(), nullptr, flags, nullptr) == 0;
  }
  std::string problem;

 private:
  std::filesystem::path target_;
  bool mounted_ = false;
};

}  // namespace jobrepo::test
