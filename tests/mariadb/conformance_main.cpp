// The conformance suite against the MariaDB backend. Each case gets a
// database of its own, dropped when the executable ends.
#include "test_server.hpp"

#include <jobrepo/conformance.hpp>
#include <jobrepo/jobrepo.hpp>

#include <cstring>
#include <iostream>
#include <memory>

namespace {

class MariadbHarness : public jobrepo::conformance::Harness {
 public:
  std::string name() const override { return "mariadb"; }

  std::string unavailable_reason() override { return jobrepo::test::mariadb_unavailable_reason(); }

  jobrepo::conformance::Capabilities capabilities() const override { return {.pushes_wakeups = true}; }

  jobrepo::conformance::Database make_database() override {
    if (!databases_) databases_ = std::make_unique<jobrepo::test::MariadbDatabases>();
    const std::string url = databases_->create();
    return {jobrepo::open_store(url), url};
  }

  std::unique_ptr<jobrepo::Store> open(const std::string& url) override { return jobrepo::open_store(url); }

  bool force_schema_version(const std::string& url, int version) override {
    jobrepo::test::mariadb_exec(
        url, "INSERT INTO jobrepo_schema_version (version, name) VALUES (" + std::to_string(version) + ", 'future')");
    return true;
  }

 private:
  std::unique_ptr<jobrepo::test::MariadbDatabases> databases_;
};

}  // namespace

int main(int argc, char* argv[]) {
  MariadbHarness harness;
  const bool worker = argc > 1 && std::strncmp(argv[1], "--jobrepo-", 10) == 0;
  if (!worker && jobrepo::test::mariadb_required()) {
    if (const auto why = harness.unavailable_reason(); !why.empty()) {
      std::cout << "jobrepo conformance [mariadb]: FAILED: MariaDB is required here but " << why << std::endl;
      return 1;
    }
  }
  return jobrepo::conformance::run(harness, argc, argv);
}
