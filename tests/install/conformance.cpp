// A backend author's view: the installed conformance suite against SQLite.
#include <jobrepo/conformance.hpp>
#include <jobrepo/jobrepo.hpp>

namespace {
struct MemoryHarness : jobrepo::conformance::Harness {
  std::string name() const override { return "installed-sqlite-memory"; }
  jobrepo::conformance::Capabilities capabilities() const override {
    return {.shares_across_processes = false, .shares_in_process = false, .forces_schema_version = false};
  }
  jobrepo::conformance::Database make_database() override { return {jobrepo::open_store("sqlite::memory:"), ""}; }
  std::unique_ptr<jobrepo::Store> open(const std::string& url) override { return jobrepo::open_store(url); }
};
}  // namespace

int main(int argc, char* argv[]) {
  MemoryHarness harness;
  return jobrepo::conformance::run(harness, argc, argv);
}
