#include <jobrepo/backend.hpp>
#include <jobrepo/error.hpp>
#include <jobrepo/text.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <map>
#include <mutex>

#include <sys/random.h>

namespace jobrepo {

namespace {

struct Registry {
  std::mutex mutex;
  std::map<std::string, StoreFactory, std::less<>> factories;
  std::map<std::string, UrlRedactor, std::less<>> redactors;
};

Registry& registry() {
  static Registry instance;
  return instance;
}

bool valid_scheme(std::string_view scheme) {
  return !scheme.empty() && std::all_of(scheme.begin(), scheme.end(), [](unsigned char c) {
    return std::isalnum(c) != 0 || c == '+' || c == '-' || c == '.';
  });
}

}  // namespace

std::string_view url_scheme(std::string_view url) noexcept {
  const auto colon = url.find(':');
  if (colon == std::string_view::npos) return {};
  const auto scheme = url.substr(0, colon);
  return valid_scheme(scheme) ? scheme : std::string_view{};
}

void register_backend(const std::string& scheme, StoreFactory factory, UrlRedactor redactor) {
  if (!valid_scheme(scheme)) {
    throw Error(ErrorCode::invalid_parameter, "register_backend: invalid scheme \"" + scheme + "\"");
  }
  if (!factory) {
    throw Error(ErrorCode::invalid_parameter, "register_backend: empty factory for scheme \"" + scheme + "\"");
  }
  auto& r = registry();
  const std::lock_guard lock(r.mutex);
  r.factories[scheme] = std::move(factory);
  r.redactors[scheme] = std::move(redactor);
}

std::string redact_registered_url(const std::string& url) {
  const auto scheme = url_scheme(url);
  if (scheme.empty()) return "***";
  UrlRedactor redactor;
  {
    auto& r = registry();
    const std::lock_guard lock(r.mutex);
    if (const auto it = r.redactors.find(scheme); it != r.redactors.end()) redactor = it->second;
  }
  return redactor ? redactor(url) : std::string(scheme) + ":***";
}

std::vector<std::string> registered_backends() {
  auto& r = registry();
  const std::lock_guard lock(r.mutex);
  std::vector<std::string> schemes;
  for (const auto& entry : r.factories) schemes.push_back(entry.first);
  return schemes;
}

std::string store_options_problem(const StoreOptions& options) {
  if (options.pool_size < 0) return "pool_size " + std::to_string(options.pool_size) + " is negative";
  if (options.busy_timeout.count() < 0) {
    return "busy_timeout " + std::to_string(options.busy_timeout.count()) + "ms is negative";
  }
  return {};
}

std::unique_ptr<Store> open_registered_store(const std::string& url, const StoreOptions& options) {
  if (const auto problem = store_options_problem(options); !problem.empty()) {
    throw Error(ErrorCode::invalid_parameter, "open_store: " + problem);
  }
  if (url.find('\0') != std::string::npos) {
    // A C API (a file name, libpq) would read the URL cut at the NUL byte:
    // a database other than the one named. Never echoed (a password).
    throw Error(ErrorCode::invalid_parameter, "open_store: the URL contains a NUL byte");
  }
  const auto scheme = url_scheme(url);
  if (scheme.empty()) {
    // The URL may hold a password: never echo it.
    throw Error(ErrorCode::invalid_parameter,
                "open_store: the URL has no scheme (expected sqlite:PATH, sqlite::memory:, postgresql://... or "
                "mariadb://...)");
  }
  StoreFactory factory;
  {
    auto& r = registry();
    const std::lock_guard lock(r.mutex);
    auto it = r.factories.find(scheme);
    if (it == r.factories.end()) {
      std::string linked;
      for (const auto& entry : r.factories) linked += (linked.empty() ? "" : ", ") + entry.first;
      throw Error(ErrorCode::invalid_parameter, "open_store: no backend for scheme " + quote_text(scheme) +
                                                    " is linked (linked: " + (linked.empty() ? "none" : linked) + ")");
    }
    factory = it->second;
  }
  return factory(url, options);
}

int latest_schema_version(std::span<const Migration> migrations) noexcept {
  return migrations.empty() ? 0 : migrations.back().version;
}

void check_schema_version(std::string_view operation, int found, std::span<const Migration> migrations) {
  const int latest = latest_schema_version(migrations);
  if (found == latest) return;
  std::string message(operation);
  if (found > latest) {
    message += ": the database has schema version " + std::to_string(found) + ", newer than the " +
               std::to_string(latest) + " this jobrepo knows: upgrade jobrepo";
  } else if (found <= 0) {
    message += ": the database is not migrated (schema version 0, this jobrepo needs " + std::to_string(latest) +
               "): run migrate() (jobctl migrate)";
  } else {
    message += ": the database has schema version " + std::to_string(found) + ", older than the " +
               std::to_string(latest) + " this jobrepo needs: run migrate() (jobctl migrate)";
  }
  throw Error(ErrorCode::schema_mismatch, message);
}

void apply_migrations(int found, std::span<const Migration> migrations,
                      const std::function<void(const Migration&)>& apply) {
  if (found > latest_schema_version(migrations)) check_schema_version("migrate", found, migrations);
  for (const auto& migration : migrations) {
    if (migration.version > found) apply(migration);
  }
}

Error database_error(ErrorCode code, std::string_view operation, std::string_view subject,
                     std::string_view driver_message, std::string native_code) {
  std::string message(operation);
  if (!subject.empty()) message.append(": ").append(subject);
  message.append(": ");
  switch (code) {
    // A table or column the driver misses: most likely never migrated (a
    // newer database is refused by check_schema_version() before this).
    case ErrorCode::schema_mismatch:
      message.append("the database schema does not match this jobrepo (not migrated? run migrate(), jobctl migrate): ");
      break;
    case ErrorCode::busy: message.append("lock conflicts outlasted the retries: "); break;
    case ErrorCode::unavailable: message.append("the database is unavailable: "); break;
    case ErrorCode::not_unique: message.append("already exists: "); break;
    default: break;
  }
  message.append(driver_message);
  return Error(code, message, std::move(native_code));
}

std::string generate_run_id() {
  std::array<unsigned char, 16> bytes{};
  std::size_t filled = 0;
  while (filled < bytes.size()) {
    const auto got = getrandom(bytes.data() + filled, bytes.size() - filled, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      throw Error(ErrorCode::internal, "generate_run_id: the system random generator failed");
    }
    filled += static_cast<std::size_t>(got);
  }
  static constexpr std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  // 128 bits in 6-bit groups: 22 characters, base64url without padding.
  std::string id;
  id.reserve(22);
  unsigned bits = 0;
  unsigned value = 0;
  for (const unsigned char byte : bytes) {
    value = (value << 8U) | byte;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      id.push_back(alphabet[(value >> bits) & 0x3FU]);
    }
  }
  if (bits > 0) id.push_back(alphabet[(value << (6 - bits)) & 0x3FU]);
  // Never a leading '-': on a command line (jobctl run cancel ID) an id
  // that starts with "--" would read as an option. '_' stands in for it (the
  // first character's 6 bits lose 1/64 of a bit).
  if (id.front() == '-') id.front() = '_';
  return id;
}

}  // namespace jobrepo

namespace jobrepo {

class DueNotifier::Subscription final : public DueSubscription {
 public:
  Subscription(std::shared_ptr<Shared> shared, std::uint64_t id) : shared_(std::move(shared)), id_(id) {}
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;
  ~Subscription() override {
    const std::lock_guard lock(shared_->mutex);
    shared_->subscribers.erase(id_);
  }

 private:
  std::shared_ptr<Shared> shared_;
  std::uint64_t id_;
};

DueNotifier::DueNotifier() : shared_(std::make_shared<Shared>()) {}

std::unique_ptr<DueSubscription> DueNotifier::subscribe(std::string plugin_id, std::function<void()> on_due) {
  if (!on_due) throw Error(ErrorCode::invalid_parameter, "subscribe_due: missing callback");
  const std::lock_guard lock(shared_->mutex);
  const auto id = shared_->next_id++;
  shared_->subscribers.emplace(id, Subscriber{std::move(plugin_id), std::move(on_due)});
  return std::make_unique<Subscription>(shared_, id);
}

void DueNotifier::notify(std::string_view plugin_id) const {
  const std::lock_guard lock(shared_->mutex);
  for (const auto& [id, subscriber] : shared_->subscribers) {
    if (subscriber.plugin_id == plugin_id) subscriber.on_due();
  }
}

void DueNotifier::notify_all() const {
  const std::lock_guard lock(shared_->mutex);
  for (const auto& [id, subscriber] : shared_->subscribers) subscriber.on_due();
}

bool DueNotifier::empty() const {
  const std::lock_guard lock(shared_->mutex);
  return shared_->subscribers.empty();
}

}  // namespace jobrepo
