// The conformance suite on the in-memory backend: the harness a backend
// author writes (docs/backends.md, "Running the conformance suite").
#include "memory_store.hpp"

#include <jobrepo/conformance.hpp>
#include <jobrepo/error.hpp>

#include <atomic>
#include <string>

#include <unistd.h>

namespace {

constexpr std::string_view scheme = "memory:";

// "memory:NAME" -> "NAME".
std::string name_of(const std::string& url) {
  if (url.rfind(scheme, 0) != 0) {
    throw jobrepo::Error(jobrepo::ErrorCode::invalid_parameter, "open: not a memory URL: " + url);
  }
  return url.substr(scheme.size());
}

struct MemoryHarness : jobrepo::conformance::Harness {
  std::atomic<int> made{0};

  std::string name() const override { return "memory"; }

  // Shared within this process only; the suite skips (and names) the cases
  // that need another process on the same database.
  jobrepo::conformance::Capabilities capabilities() const override {
    return {.shares_across_processes = false,
            .shares_in_process = true,
            .forces_schema_version = true,
            .pushes_wakeups = true};
  }

  jobrepo::conformance::Database make_database() override {
    // Unique in this process (the pid keeps names apart in logs).
    const std::string name = "conformance-" + std::to_string(::getpid()) + "-" + std::to_string(++made);
    auto store = memory_backend::open_memory_store(name);
    // No url for another process; this process reopens it by local_url.
    return {.store = std::move(store), .url = "", .local_url = std::string(scheme) + name};
  }

  std::unique_ptr<jobrepo::Store> open(const std::string& url) override {
    jobrepo::StoreOptions options;
    options.create_if_missing = false;  // never an empty stand-in for a database made elsewhere
    return memory_backend::open_memory_store(name_of(url), options);
  }

  bool force_schema_version(const std::string& url, int version) override {
    return memory_backend::set_memory_schema_version(name_of(url), version);
  }

  // Per-case teardown: the case's data goes with it.
  void drop_database(jobrepo::conformance::Database& db) noexcept override {
    if (!db.local_url.empty()) memory_backend::drop_memory_database(db.local_url.substr(scheme.size()));
  }
};

}  // namespace

int main(int argc, char* argv[]) {
  MemoryHarness harness;
  return jobrepo::conformance::run(harness, argc, argv);
}
