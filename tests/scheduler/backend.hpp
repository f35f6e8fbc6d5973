// The database a scheduler test runs on: SQLite on a file, or PostgreSQL
// (JOBREPO_TEST_BACKEND=postgres and the test server), a new one per call.
#pragma once

#include "test_server.hpp"

#include <jobrepo/jobrepo.hpp>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

namespace jobrepo::test {

inline bool scheduler_on_postgres() {
  const char* backend = std::getenv("JOBREPO_TEST_BACKEND");
  return backend && std::string(backend) == "postgres";
}

class Databases {
 public:
  ~Databases() {
    std::error_code ignored;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
  }

  // A URL of a new, empty database that other processes can open too.
  std::string make() {
    ++count_;
    if (scheduler_on_postgres()) {
      if (!database_) database_ = std::make_unique<TestDatabase>();
      const std::string schema = "case_" + std::to_string(count_);
      postgres_exec(database_->url(), "CREATE SCHEMA " + schema);
      return with_parameter(database_->url(), "options=-csearch_path%3D" + schema);
    }
    if (dir_.empty()) {
      std::string pattern = (std::filesystem::temp_directory_path() / "jobrepo-scheduler-XXXXXX").string();
      if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("cannot make a temporary directory");
      dir_ = pattern;
    }
    return "sqlite:" + (dir_ / ("case-" + std::to_string(count_) + ".db")).string();
  }

 private:
  std::unique_ptr<TestDatabase> database_;
  std::filesystem::path dir_;
  int count_ = 0;
};

}  // namespace jobrepo::test
