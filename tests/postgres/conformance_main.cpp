// The conformance suite against the PostgreSQL backend. Each executable run
// gets a database of its own; each case a schema of its own in it.
#include "test_server.hpp"

#include <jobrepo/conformance.hpp>
#include <jobrepo/jobrepo.hpp>

#include <cstring>
#include <iostream>
#include <memory>

namespace {

class PostgresHarness : public jobrepo::conformance::Harness {
 public:
  std::string name() const override { return "postgres"; }

  std::string unavailable_reason() override { return jobrepo::test::postgres_unavailable_reason(); }

  jobrepo::conformance::Capabilities capabilities() const override { return {.pushes_wakeups = true}; }

  jobrepo::conformance::Database make_database() override {
    if (!database_) database_ = std::make_unique<jobrepo::test::TestDatabase>();
    const std::string schema = "case_" + std::to_string(++cases_);
    jobrepo::test::postgres_exec(database_->url(), "CREATE SCHEMA " + schema);
    const std::string url = jobrepo::test::with_parameter(database_->url(), "options=-csearch_path%3D" + schema);
    return {jobrepo::open_store(url), url};
  }

  std::unique_ptr<jobrepo::Store> open(const std::string& url) override { return jobrepo::open_store(url); }

  bool force_schema_version(const std::string& url, int version) override {
    jobrepo::test::postgres_exec(
        url, "INSERT INTO jobrepo_schema_version (version, name) VALUES (" + std::to_string(version) + ", 'future')");
    return true;
  }

 private:
  std::unique_ptr<jobrepo::test::TestDatabase> database_;
  int cases_ = 0;
};

}  // namespace

int main(int argc, char* argv[]) {
  PostgresHarness harness;
  const bool worker = argc > 1 && std::strncmp(argv[1], "--jobrepo-", 10) == 0;
  if (!worker && jobrepo::test::postgres_required()) {
    if (const auto why = harness.unavailable_reason(); !why.empty()) {
      std::cout << "jobrepo conformance [postgres]: FAILED: PostgreSQL is required here but " << why << std::endl;
      return 1;
    }
  }
  return jobrepo::conformance::run(harness, argc, argv);
}
