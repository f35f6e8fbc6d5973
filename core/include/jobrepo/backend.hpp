// jobrepo: what a backend author needs beyond store.hpp.
//
// A backend registers a factory for its URL scheme with register_backend();
// open_store() (jobrepo.hpp) then accepts that scheme. Built-in backends
// register through the umbrella header; a third-party backend calls
// register_backend() itself before the first open_store(). Thread-safe.
#pragma once

#include <jobrepo/error.hpp>
#include <jobrepo/store.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace jobrepo {

// Opens a store from a URL whose scheme the factory was registered for.
using StoreFactory = std::function<std::unique_ptr<Store>(const std::string& url, const StoreOptions& options)>;

// A URL as messages and logs may show it: without any password or other
// secret. Must not throw; when in doubt it shows less (e.g. only the scheme).
using UrlRedactor = std::function<std::string(const std::string& url)>;

// Registers (or replaces) the factory for URLs "scheme:...", and how such URLs
// are shown in messages (without a redactor: "scheme:***"). REQUIRES: scheme
// is non-empty, letters, digits, '+', '-' or '.'; else throws invalid_parameter.
void register_backend(const std::string& scheme, StoreFactory factory, UrlRedactor redactor = {});

// The registered schemes, sorted.
std::vector<std::string> registered_backends();

// `url` as messages may show it: by the redactor registered for its scheme;
// "scheme:***" when there is none; "***" when the URL has no scheme.
std::string redact_registered_url(const std::string& url);

// Opens `url` with the factory registered for its scheme.
// Throws invalid_parameter when the URL holds a NUL byte, has no scheme, no
// backend for it is registered, or the options have a problem
// (store_options_problem).
std::unique_ptr<Store> open_registered_store(const std::string& url, const StoreOptions& options = {});

// Why `options` cannot open a store, in one line naming the option and its
// value ("pool_size -1 is negative"), or empty: a negative pool_size or
// busy_timeout. open_registered_store() and the built-in backends' own open
// functions throw it as invalid_parameter ("open_store: ...").
std::string store_options_problem(const StoreOptions& options);

// A new run id: 22 URL-safe characters (A-Z a-z 0-9 - _) carrying 128 random
// bits from the operating system's generator. Thread-safe.
std::string generate_run_id();

// An Error for a failed database call, worded alike by every backend:
// "<operation>: <subject>: <what the code means>: <driver message>", with the
// driver's own code kept in native_code. `subject` may be empty.
Error database_error(ErrorCode code, std::string_view operation, std::string_view subject,
                     std::string_view driver_message, std::string native_code);

// The scheme of a URL ("sqlite" for "sqlite::memory:"), or empty.
std::string_view url_scheme(std::string_view url) noexcept;

}  // namespace jobrepo

namespace jobrepo {

// One schema migration: the SQL of schema/<backend>/NNNN_name.sql, embedded in
// the backend library at build time (cmake/EmbedSql.cmake). Versions count up
// from 1 without gaps; a database records the highest version it applied.
struct Migration {
  int version;
  std::string_view name;
  std::string_view sql;
};

// The schema version rules, written once for every backend (the built-in
// ones call these; so should yours).

// The version `migrations` bring a database to: the last one's, 0 when none.
int latest_schema_version(std::span<const Migration> migrations) noexcept;

// Throws schema_mismatch unless a database at schema version `found` is
// the one these migrations make, in one wording for every backend:
//   "OPERATION: the database is not migrated (schema version 0, this
//    jobrepo needs 4): run migrate() (jobctl migrate)"
//   "OPERATION: the database has schema version 2, older than the 4 this
//    jobrepo needs: run migrate() (jobctl migrate)"
//   "OPERATION: the database has schema version 9999, newer than the 4
//    this jobrepo knows: upgrade jobrepo"
void check_schema_version(std::string_view operation, int found, std::span<const Migration> migrations);

// The body of Store::migrate(), inside the backend's transaction: throws
// schema_mismatch ("migrate: ... newer than ...") when `found` is newer than
// the migrations know; otherwise calls apply() for each migration newer than
// `found`, in order (apply runs its SQL and records its version).
void apply_migrations(int found, std::span<const Migration> migrations,
                      const std::function<void(const Migration&)>& apply);

}  // namespace jobrepo

namespace jobrepo {

// The in-process side of Store::subscribe_due: keeps the subscribers and
// calls those of a plugin. A backend calls notify() after committing a change
// that may make jobs due (and notify_all() when news may have been lost).
// Callbacks run on the notifying thread, one at a time; destroying a
// subscription waits for a call in progress. Thread-safe.
class DueNotifier {
 public:
  DueNotifier();
  std::unique_ptr<DueSubscription> subscribe(std::string plugin_id, std::function<void()> on_due);
  void notify(std::string_view plugin_id) const;
  void notify_all() const;
  bool empty() const;

 private:
  struct Subscriber {
    std::string plugin_id;
    std::function<void()> on_due;
  };
  struct Shared {
    mutable std::mutex mutex;
    std::map<std::uint64_t, Subscriber> subscribers;
    std::uint64_t next_id = 0;
  };
  class Subscription;
  std::shared_ptr<Shared> shared_;
};

}  // namespace jobrepo
