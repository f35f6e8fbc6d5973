// Operators in control, as an operator sees it: jobctl against two running
// jobctl serve processes on one database. Pause stops new runs cluster-wide,
// cancel stops the command on whichever server runs it, run-now during a
// run gives exactly one more run right after it, removed and drifted jobs
// are flagged, back-off is counted in the store, on_failure runs once per
// failed run, and the operator basics (--version, serve --check, --help).
// On SQLite or PostgreSQL (JOBREPO_TEST_BACKEND, see ../scheduler/backend.hpp).
#include "cli_support.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <csignal>
#include <fstream>
#include <thread>

using namespace std::chrono_literals;
using jobrepo::test::Cli;
using jobrepo::test::micros_of;
using jobrepo::test::run_processes;
using jobrepo::test::runs_of;
using jobrepo::test::slurp;
using jobrepo::test::wait_until;
using jobrepo::test::write_config;
using nlohmann::json;

namespace {

// The job as `jobctl jobs --json` shows it; an empty object when there is
// none (yet: the servers create their jobs when they start).
json job_of(Cli& cli, const std::string& name) {
  const auto listed = cli({"jobs", "--json"});
  if (listed.status == 0) {
    for (const auto& job : listed.parsed()) {
      if (job["name"] == name) return job;
    }
  }
  return json::object();
}

long long now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Stops a serve with SIGTERM and expects a clean stop.
void stop(std::unique_ptr<jobrepo::test::Process>& serve) {
  kill(serve->pid, SIGTERM);
  const auto result = serve->wait_at_most(20s);
  INFO(result.err);
  CHECK(result.status == 0);
}

}  // namespace

TEST_CASE("control: pause stops new runs on every server within a claim interval; resume lets them run") {
  Cli cli;
  const auto config = write_config(cli.dir.path, R"([
    {"name": "p", "command": ["sh", "-c", "sleep 0.05"], "every": "100ms"}
  ])");
  auto a = cli.serve(config, "a");
  auto b = cli.serve(config, "b");
  REQUIRE(wait_until([&] { return runs_of(cli, "p").size() >= 4; }, 20s));
  const auto paused = cli({"job", "pause", "p", "--json"});
  REQUIRE(paused.status == 0);
  CHECK(paused.parsed()["paused"] == true);
  const auto paused_at = now_us();
  std::this_thread::sleep_for(1500ms);
  const auto runs = runs_of(cli, "p");
  // A run claimed just before the pause may start up to one claim interval
  // (200 ms) later in the log, never in the database.
  for (const auto& run : runs) CHECK(micros_of(run["create_time"]) <= paused_at);
  CHECK(job_of(cli, "p")["paused"] == true);
  const auto human = cli({"jobs"});
  CHECK(human.out.find("paused") != std::string::npos);
  // Paused stays paused: both servers still serve it.
  CHECK(job_of(cli, "p")["unserved"] == false);
  REQUIRE(cli({"job", "resume", "p"}).status == 0);
  CHECK(wait_until([&] { return runs_of(cli, "p").size() >= runs.size() + 2; }, 5s));
  CHECK(job_of(cli, "p")["paused"] == false);
  stop(a);
  stop(b);
  CHECK(cli({"audit"}).status == 0);
}

TEST_CASE("control: run cancel stops the command on the server that runs it; the job keeps its schedule") {
  Cli cli;
  const auto config = write_config(cli.dir.path, R"([
    {"name": "long", "command": ["sh", "-c", "sleep 30"], "every": "1h"}
  ])");
  auto a = cli.serve(config, "a");
  auto b = cli.serve(config, "b");
  json running;
  REQUIRE(wait_until(
      [&] {
        running = job_of(cli, "long")["running"];
        return !running.is_null() && !run_processes(cli.dir.path).empty();
      },
      20s));
  const std::string id = running["run_id"];
  const std::string server = running["server_id"];
  const auto asked = std::chrono::steady_clock::now();
  const auto cancelled = cli({"run", "cancel", id, "--json"});
  INFO(cancelled.err);
  REQUIRE(cancelled.status == 0);
  const auto run = cancelled.parsed();
  CHECK(run["status"] == "interrupted");
  CHECK(run["message"] == "cancelled by operator");
  CHECK(run["server_id"] == server);
  // Stopped by its server within a monitor interval (250 ms) and the grace
  // (250 ms to SIGKILL; sh and sleep die at SIGTERM).
  CHECK(std::chrono::steady_clock::now() - asked < 3s);
  CHECK(wait_until([&] { return run_processes(cli.dir.path).empty(); }, 2s));
  // No rerun: the job keeps its hour.
  std::this_thread::sleep_for(1s);
  const auto job = job_of(cli, "long");
  CHECK(runs_of(cli, "long").size() == 1);
  CHECK(job["running"].is_null());
  CHECK(job["last_status"] == "interrupted");
  CHECK(job["last_message"] == "cancelled by operator");
  CHECK(micros_of(job["next_scheduled_run"]) > now_us() + 50LL * 60 * 1000000);
  // The server says so in its log.
  stop(a);
  stop(b);
  const auto log = slurp(server == "a" ? a->err : b->err);
  CHECK(log.find("cancelled by operator") != std::string::npos);
  // A final run cannot be cancelled; an unknown one is not found.
  const auto again = cli({"run", "cancel", id});
  CHECK(again.status == 1);
  CHECK(again.err.find("is already interrupted (invalid_job_run_state)") != std::string::npos);
  CHECK(cli({"run", "cancel", "AAAAAAAAAAAAAAAAAAAAAA"}).err.find("(record_not_found)") != std::string::npos);
}

TEST_CASE("control: run-now during a run gives exactly one more run right after it, on any server") {
  Cli cli;
  const auto config = write_config(cli.dir.path, R"([
    {"name": "r", "command": ["sh", "-c", "sleep 1"], "every": "1h"}
  ])");
  auto a = cli.serve(config, "a");
  auto b = cli.serve(config, "b");
  REQUIRE(wait_until([&] { return !job_of(cli, "r")["running"].is_null(); }, 20s));
  const auto requested = cli({"job", "run-now", "r", "--json"});
  REQUIRE(requested.status == 0);
  CHECK(requested.parsed()["run_requested"] == true);
  CHECK(cli({"job", "show", "r"}).out.find("as soon as its running run ends") != std::string::npos);
  REQUIRE(wait_until([&] { return runs_of(cli, "r").size() >= 2; }, 5s));
  std::this_thread::sleep_for(3s);  // the second run ends; nothing more is due
  const auto runs = runs_of(cli, "r");
  std::string seen;
  for (const auto& run : runs) seen += run.dump() + "\n";
  INFO("runs:\n" << seen);
  REQUIRE(runs.size() == 2);
  CHECK(runs[0]["status"] == "completed");
  // Right after the first ended: within the claim interval (200 ms) and some.
  CHECK(micros_of(runs[1]["create_time"]) - micros_of(runs[0]["end_time"]) < 1000000);
  CHECK(job_of(cli, "r")["run_requested"] == false);
  // An idle job: due now, no request kept.
  const auto idle = cli({"job", "run-now", "r", "--json"});
  CHECK(idle.parsed()["run_requested"] == false);
  REQUIRE(wait_until([&] { return runs_of(cli, "r").size() == 3; }, 5s));
  stop(a);
  stop(b);
  CHECK(cli({"audit"}).status == 0);
}

TEST_CASE("control: run-now --arg reaches that run's command as JOBREPO_RUN_ARG, byte for byte; other runs have none") {
  Cli cli;
  // Each run leaves a file: arg-RUN_ID with JOBREPO_RUN_ARG exactly, or none-RUN_ID when it is unset.
  const auto config = write_config(cli.dir.path, R"([
    {"name": "args", "every": "1h", "environment": {"JOBREPO_RUN_ARG": "from the config"},
     "command": ["sh", "-c", "if [ -n \"${JOBREPO_RUN_ARG+set}\" ]; then printf '%s' \"$JOBREPO_RUN_ARG\" > \"$JOBREPO_TEST_DIR/arg-$JOBREPO_RUN_ID\"; else : > \"$JOBREPO_TEST_DIR/none-$JOBREPO_RUN_ID\"; fi"]}
  ])");
  // serve's own environment has one too: neither passes for the run's arguments.
  auto serve = std::make_unique<jobrepo::test::Process>(
      std::vector<std::string>{"--db", cli.url, "serve", "--config", config.string(), "--server-id", "a"}, cli.dir.path,
      "serve-a", std::vector<std::string>{"JOBREPO_RUN_ARG=from serve"});
  const auto ended = [&](std::size_t count) {
    const auto runs = runs_of(cli, "args");
    return runs.size() == count && runs.back()["status"] == "completed";
  };
  REQUIRE(wait_until([&] { return ended(1); }, 20s));  // due at once: a run by schedule
  // Spaces, a line break, quotes, a backslash, '$' and non-ASCII: nothing is lost to a shell or a parse.
  const std::string payload = "{\"cmd\": \"a b; $HOME `x`\",\n \"q\": \"\\\"\\\\\", \"u\": \"\xc3\xa9\xe2\x82\xac\"}";
  REQUIRE(cli({"job", "run-now", "args", "--arg", payload}).status == 0);
  REQUIRE(wait_until([&] { return ended(2); }, 10s));
  REQUIRE(cli({"job", "run-now", "args"}).status == 0);  // without --arg: none
  REQUIRE(wait_until([&] { return ended(3); }, 10s));
  stop(serve);
  const auto runs = runs_of(cli, "args");
  REQUIRE(runs.size() == 3);
  const auto file = [&](const char* kind, const json& run) {
    return cli.dir.path / (kind + run["private_id"].get<std::string>());
  };
  CHECK(std::filesystem::exists(file("none-", runs[0])));
  CHECK(runs[0]["payload"].is_null());
  REQUIRE(std::filesystem::exists(file("arg-", runs[1])));
  CHECK(slurp(file("arg-", runs[1])) == payload);
  CHECK(runs[1]["payload"] == payload);
  CHECK(std::filesystem::exists(file("none-", runs[2])));
  CHECK(runs[2]["payload"].is_null());
}

TEST_CASE("control: jobs flags a job no live server serves and one whose servers disagree; delete needs --force") {
  Cli cli;
  const auto config_a = write_config(cli.dir.path, R"([
    {"name": "x", "command": ["true"], "every": "5s"},
    {"name": "gone", "command": ["true"], "every": "1h"}
  ])",
                                     R"("claim_interval": "200ms", "monitor_interval": "250ms",
    "interrupt_threshold": "2s", "grace": "250ms",)",
                                     "a.json");
  const auto config_b = write_config(cli.dir.path, R"([
    {"name": "x", "command": ["true"], "every": "20s"}
  ])",
                                     R"("claim_interval": "200ms", "monitor_interval": "250ms",
    "interrupt_threshold": "2s", "grace": "250ms",)",
                                     "b.json");
  auto a = cli.serve(config_a, "a");
  auto b = cli.serve(config_b, "b");
  REQUIRE(
      wait_until([&] { return job_of(cli, "x")["servers"].size() == 2 && job_of(cli, "x")["drifted"] == true; }, 20s));
  const auto x = job_of(cli, "x");
  CHECK(x["unserved"] == false);
  CHECK(x["servers"][0]["fingerprint"] != x["servers"][1]["fingerprint"]);
  CHECK(job_of(cli, "gone")["unserved"] == false);
  CHECK(cli({"jobs"}).out.find("DEFINITIONS DIFFER") != std::string::npos);
  // Each server warns once (the one that registered last at least).
  REQUIRE(wait_until([&] { return (a->errors() + b->errors()).find("define this job otherwise") != std::string::npos; },
                     5s));

  // "gone" leaves a's config: a reload tells the cluster.
  write_config(cli.dir.path, R"([{"name": "x", "command": ["true"], "every": "5s"}])",
               R"("claim_interval": "200ms", "monitor_interval": "250ms", "interrupt_threshold": "2s",
    "grace": "250ms",)",
               "a.json");
  kill(a->pid, SIGHUP);
  REQUIRE(wait_until([&] { return job_of(cli, "gone")["unserved"] == true; }, 5s));
  CHECK(job_of(cli, "gone")["servers"].empty());
  CHECK(cli({"jobs"}).out.find("NONE LIVE") != std::string::npos);

  // Deleting a job that servers serve is refused without --force.
  const auto refused = cli({"job", "delete", "x"});
  CHECK(refused.status == 1);
  CHECK(refused.err.find("is served by \"a\", \"b\"") != std::string::npos);
  CHECK(cli({"job", "delete", "gone"}).status == 0);
  CHECK(cli({"job", "delete", "x", "--force"}).status == 0);

  stop(a);
  stop(b);
  CHECK(cli({"jobs", "--json"}).parsed().empty());
}

TEST_CASE("control: back-off is counted in the store; after max_attempts the job waits for its regular time") {
  Cli cli;
  const auto config = write_config(cli.dir.path, R"([
    {"name": "f", "command": ["sh", "-c", "exit 3"], "every": "1h",
     "backoff": {"initial": "300ms", "max": "300ms", "multiplier": 1, "max_attempts": 3}}
  ])");
  auto a = cli.serve(config, "a");
  auto b = cli.serve(config, "b");
  REQUIRE(wait_until([&] { return runs_of(cli, "f").size() >= 3; }, 20s));
  std::this_thread::sleep_for(2s);
  const auto runs = runs_of(cli, "f");
  REQUIRE(runs.size() == 3);
  for (std::size_t i = 0; i < runs.size(); ++i) {
    CHECK(runs[i]["status"] == "failed");
    CHECK(runs[i]["message"] == "exit 3");
    CHECK(runs[i]["attempt"] == i + 1);
  }
  const auto job = job_of(cli, "f");
  CHECK(job["consecutive_failures"] == 3);
  CHECK(job["last_message"] == "exit 3");
  CHECK(micros_of(job["next_scheduled_run"]) > now_us() + 50LL * 60 * 1000000);
  stop(a);
  stop(b);
}

TEST_CASE("control: an on-demand job runs only when asked; a job with give_up stops after max_attempts until asked") {
  Cli cli;
  const auto config = write_config(cli.dir.path, R"([
    {"name": "asked", "command": ["true"], "on_demand": true},
    {"name": "quitter", "command": ["sh", "-c", "exit 3"], "every": "200ms",
     "backoff": {"initial": "200ms", "max": "200ms", "multiplier": 1, "max_attempts": 2, "give_up": true}}
  ])");
  const auto check = cli.bare({"serve", "--check", "--config", config.string()});
  CHECK(check.out.find("  asked: on demand\n") != std::string::npos);
  auto a = cli.serve(config, "a");
  auto b = cli.serve(config, "b");
  REQUIRE(wait_until([&] { return runs_of(cli, "quitter").size() >= 2; }, 20s));
  std::this_thread::sleep_for(1500ms);  // 7 more of its every and back-off
  CHECK(runs_of(cli, "quitter").size() == 2);
  CHECK(runs_of(cli, "asked").empty());
  auto quitter = job_of(cli, "quitter");
  CHECK(quitter["due_state"] == "gave_up");
  CHECK(quitter["next_scheduled_run"].is_null());
  CHECK(quitter["consecutive_failures"] == 2);
  auto asked = job_of(cli, "asked");
  CHECK(asked["due_state"] == "on_demand");
  CHECK(asked["schedule"] == "on demand");
  const auto table = cli({"jobs"}).out;
  INFO(table);
  CHECK(table.find("gave up (2 failures)") != std::string::npos);
  CHECK(table.find("on demand") != std::string::npos);
  const auto log = a->errors() + b->errors();
  CHECK(log.find("with exit 3; attempt 2 of 2; gave up (run-now retries it)\n") != std::string::npos);

  // Asked, each runs: the on-demand job once, the other a new round of two attempts.
  REQUIRE(cli({"job", "run-now", "asked"}).status == 0);
  REQUIRE(cli({"job", "run-now", "quitter"}).status == 0);
  CHECK(wait_until([&] { return runs_of(cli, "asked").size() == 1 && runs_of(cli, "quitter").size() == 4; }, 10s));
  std::this_thread::sleep_for(1s);
  CHECK(runs_of(cli, "asked").size() == 1);
  CHECK(runs_of(cli, "asked").at(0)["status"] == "completed");
  CHECK(runs_of(cli, "quitter").size() == 4);
  CHECK(job_of(cli, "asked")["due_state"] == "on_demand");
  quitter = job_of(cli, "quitter");
  CHECK(quitter["due_state"] == "gave_up");
  CHECK(quitter["consecutive_failures"] == 4);
  stop(a);
  stop(b);
}

TEST_CASE("control: on_failure runs once per failed or timed-out run with its status and message") {
  Cli cli;
  const auto config = write_config(cli.dir.path, R"([
    {"name": "bad", "command": ["sh", "-c", "exit 7"], "every": "1h",
     "backoff": {"max_attempts": 1}},
    {"name": "slow", "command": ["sleep", "5"], "every": "1h", "timeout": "300ms",
     "backoff": {"max_attempts": 1}},
    {"name": "good", "command": ["true"], "every": "1h"},
    {"name": "hook-fails", "command": ["false"], "every": "1h", "backoff": {"max_attempts": 1},
     "on_failure": ["sh", "-c", "exit 3"]}
  ])",
                                   R"("claim_interval": "200ms", "monitor_interval": "250ms",
    "interrupt_threshold": "2s", "grace": "250ms", "worker_threads": 6,
    "on_failure": ["sh", "-c", "echo \"$JOBREPO_JOB_NAME|$JOBREPO_RUN_ID|$JOBREPO_RUN_STATUS|$JOBREPO_RUN_MESSAGE\" >> \"$JOBREPO_TEST_DIR/hooks.txt\""],)");
  auto a = cli.serve(config, "a");
  auto b = cli.serve(config, "b");
  const auto hooks = cli.dir.path / "hooks.txt";
  const auto hook_lines = [&] {
    const auto text = slurp(hooks);
    return std::count(text.begin(), text.end(), '\n');
  };
  REQUIRE(wait_until([&] { return hook_lines() >= 2; }, 20s));
  REQUIRE(wait_until([&] { return (a->errors() + b->errors()).find("failed with exit 3") != std::string::npos; }, 5s));
  std::this_thread::sleep_for(1s);
  stop(a);
  stop(b);
  const auto lines = slurp(hooks);
  INFO(lines);
  CHECK(std::count(lines.begin(), lines.end(), '\n') == 2);
  const std::string bad = runs_of(cli, "bad").at(0)["private_id"];
  const std::string slow = runs_of(cli, "slow").at(0)["private_id"];
  CHECK(lines.find("bad|" + bad + "|failed|exit 7\n") != std::string::npos);
  CHECK(lines.find("slow|" + slow + "|failed|timed out after 300ms\n") != std::string::npos);
  CHECK(cli({"run", "show", slow}).out.find("message:      timed out after 300ms") != std::string::npos);
  CHECK(lines.find("good") == std::string::npos);
  const auto log = a->errors() + b->errors();
  CHECK(log.find("on_failure of hook-fails run") != std::string::npos);
  CHECK(log.find("(not retried)") != std::string::npos);
}

TEST_CASE(
    "control: on_failure with context: once attempts are exhausted, at recovery, not for an operator's cancel unless "
    "asked") {
  Cli cli;
  const auto config = write_config(cli.dir.path, R"([
    {"name": "flaky", "every": "1h", "on_failure_when": ["exhausted", "recovery"],
     "backoff": {"initial": "100ms", "max": "100ms", "max_attempts": 3},
     "command": ["sh", "-c", "n=$(cat \"$JOBREPO_TEST_DIR/flaky.n\" 2>/dev/null || echo 0); n=$((n+1)); echo $n > \"$JOBREPO_TEST_DIR/flaky.n\"; echo line $n; [ $n -ge 4 ]"]},
    {"name": "cancelled", "every": "1h", "command": ["sleep", "30"]},
    {"name": "counted", "every": "1h", "on_failure_cancels": true, "command": ["sleep", "30"]}
  ])",
                                   R"("claim_interval": "200ms", "monitor_interval": "250ms",
    "interrupt_threshold": "2s", "grace": "250ms", "worker_threads": 6,
    "on_failure": ["sh", "-c", "echo \"$JOBREPO_JOB_NAME|$JOBREPO_ON_FAILURE_WHEN|$JOBREPO_RUN_STATUS|$JOBREPO_ATTEMPT|$JOBREPO_MAX_ATTEMPTS|$JOBREPO_EXIT_CODE|$JOBREPO_SERVER_ID|$(tail -n 1 \"$JOBREPO_OUTPUT_FILE\")|$JOBREPO_DURATION_MS\" >> \"$JOBREPO_TEST_DIR/hooks.txt\""],)");
  auto a = cli.serve(config, "a");
  const auto hooks = [&] { return slurp(cli.dir.path / "hooks.txt"); };
  // Three failed attempts: one hook, when the third failed.
  REQUIRE(wait_until([&] { return hooks().find("flaky|exhausted|") != std::string::npos; }, 20s));
  CHECK(runs_of(cli, "flaky").size() == 3);
  CHECK(hooks().find("flaky|exhausted|failed|3|3|1|a|line 3|") != std::string::npos);
  // The first success after them: one hook more.
  REQUIRE(cli({"job", "run-now", "flaky"}).status == 0);
  REQUIRE(wait_until([&] { return hooks().find("flaky|recovery|") != std::string::npos; }, 20s));
  CHECK(hooks().find("flaky|recovery|completed|4|3|0|a|line 4|") != std::string::npos);
  // Two runs cancelled by an operator: a hook for the one that asks for it.
  std::vector<std::string> ids;
  for (const char* name : {"cancelled", "counted"}) {
    json running;
    REQUIRE(wait_until(
        [&] {
          running = job_of(cli, name)["running"];
          return !running.is_null();
        },
        20s));
    ids.push_back(running["run_id"]);
  }
  for (const auto& id : ids) REQUIRE(cli({"run", "cancel", id}).status == 0);
  REQUIRE(wait_until([&] { return hooks().find("counted|") != std::string::npos; }, 20s));
  CHECK(wait_until([&] { return job_of(cli, "cancelled")["running"].is_null(); }, 20s));
  std::this_thread::sleep_for(1s);
  stop(a);
  const auto lines = hooks();
  INFO(lines);
  CHECK(lines.find("counted|attempt|interrupted|1|0||a|") != std::string::npos);
  CHECK(lines.find("cancelled|") == std::string::npos);
  CHECK(std::count(lines.begin(), lines.end(), '\n') == 3);
  // The files of the outputs' tails are gone with their hooks.
  for (const char* name : {"flaky", "counted"}) {
    for (const auto& run : runs_of(cli, name)) {
      const std::string id = run["private_id"];
      CHECK(!std::filesystem::exists(std::filesystem::temp_directory_path() / ("jobrepo-on-failure-" + id + ".out")));
    }
  }
}

TEST_CASE("control: jitter delays each run's command by a random wait within it, and a default timeout applies") {
  Cli cli;
  const auto config = write_config(cli.dir.path, R"([
    {"name": "spread", "every": "100ms", "jitter": "1s", "timeout": "5s",
     "command": ["sh", "-c", "echo $JOBREPO_RUN_ID $(date +%s%N) >> \"$JOBREPO_TEST_DIR/starts.txt\""]},
    {"name": "slow", "every": "1h", "command": ["sleep", "30"], "backoff": {"max_attempts": 1}}
  ])",
                                   R"("claim_interval": "200ms", "monitor_interval": "250ms",
    "interrupt_threshold": "2s", "grace": "250ms", "worker_threads": 6, "timeout": "500ms",)");
  auto a = cli.serve(config, "a");
  const auto starts = [&] {
    const auto text = slurp(cli.dir.path / "starts.txt");
    return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
  };
  INFO(a->errors());
  REQUIRE(wait_until([&] { return starts() >= 5; }, 30s));
  // The default timeout ends the job that gives none.
  REQUIRE(wait_until([&] { return !runs_of(cli, "slow").empty() && runs_of(cli, "slow").at(0)["status"] == "failed"; },
                     20s));
  stop(a);
  CHECK(runs_of(cli, "slow").at(0)["message"] == "timed out after 500ms");
  std::map<std::string, long long> created;
  for (const auto& run : runs_of(cli, "spread")) created[run["private_id"]] = micros_of(run["create_time"]);
  std::istringstream lines(slurp(cli.dir.path / "starts.txt"));
  std::vector<long long> waits;
  for (std::string id, nanos; lines >> id >> nanos;) {
    REQUIRE(created.count(id) == 1);
    waits.push_back(std::stoll(nanos) / 1000 - created[id]);
  }
  INFO("waits (us): " << [&] {
    std::string out;
    for (const auto w : waits) out += std::to_string(w) + " ";
    return out;
  }());
  REQUIRE(waits.size() >= 5);
  // Every wait within the jitter (plus the claim's commit and the command's
  // start, up to 2 s on a loaded test machine), some of them long: five
  // waits all under 50 ms of a uniform second would be a 1-in-10^8 chance.
  CHECK(std::all_of(waits.begin(), waits.end(), [](long long w) { return w >= 0 && w < 3000000; }));
  CHECK(std::any_of(waits.begin(), waits.end(), [](long long w) { return w > 50000; }));
}

TEST_CASE("control: --version, serve --check, low-level commands marked, progress never reported shows -") {
  Cli cli;
  const auto version = cli.bare({"--version"});
  CHECK(version.status == 0);
  CHECK(version.out.rfind("jobctl ", 0) == 0);
  const auto config = write_config(cli.dir.path, R"([
    {"name": "nightly", "command": ["backup-tool", "--all"], "cron": "0 3 * * *", "time_zone": "Europe/Berlin",
     "timeout": "2h", "on_failure": ["true"]},
    {"name": "at-two", "command": ["true"], "cron": "30 2 * * *", "time_zone": "Europe/Berlin"},
    {"name": "through", "command": ["true"], "cron": "*/5 * * * *", "time_zone": "Europe/Berlin"}
  ])");
  // No database is touched: a URL nobody listens on does not matter.
  const auto check =
      cli.bare({"--db", "postgresql://127.0.0.1:1/none", "serve", "--check", "--config", config.string()});
  INFO(check.err);
  CHECK(check.status == 0);
  CHECK(check.out.find("ok, 3 jobs") != std::string::npos);
  CHECK(check.out.find("nightly: cron 0 3 * * * in Europe/Berlin, timeout 2h, on_failure set") != std::string::npos);
  // 02:30 in Berlin falls into the spring gap once a year (every year has
  // one within the 366 days ahead); 03:00 and a job through the day do not.
  CHECK(check.out.find("    warning: ") == check.out.find("    warning: 20"));
  CHECK(check.out.find(":30:00 does not exist in Europe/Berlin (the clock goes forward): it fires once at ") !=
        std::string::npos);
  const auto check_json = cli.bare({"--json", "serve", "--check", "--config", config.string()});
  REQUIRE(check_json.status == 0);
  const auto checked = check_json.parsed()["jobs"];
  CHECK(checked[0]["fingerprint"].get<std::string>().size() == 16);
  CHECK(checked[0]["warnings"].empty());
  CHECK(checked[1]["warnings"].size() == 1);
  CHECK(checked[2]["warnings"].empty());
  const auto bad = write_config(cli.dir.path, R"([{"name": "x", "command": ["true"], "every": "1h",
    "backoff": {"multiplier": 0.5}}])",
                                R"()", "bad.json");
  const auto refused = cli.bare({"serve", "--check", "--config", bad.string()});
  CHECK(refused.status == 2);
  CHECK(refused.err.find("jobs[0].backoff: multiplier 0.500000 is not between 1 and 1000") != std::string::npos);
  const auto help = cli.bare({"--help"});
  for (const char* low : {"claim --server", "run progress", "run complete", "run fail"}) {
    const auto line = help.out.substr(help.out.find(low), help.out.find('\n', help.out.find(low)) - help.out.find(low));
    CHECK(line.find("Low-level, fakes a server's work") != std::string::npos);
  }
  CHECK(help.out.find("job pause NAME") != std::string::npos);
  CHECK(help.out.find("run cancel ID") != std::string::npos);
  // A run that never reported progress shows "-", its message null.
  REQUIRE(cli({"migrate"}).status == 0);
  REQUIRE(cli({"job", "create", "j", "d"}).status == 0);
  const auto claimed = cli({"claim", "--server", "s", "--json"}).parsed();
  const std::string id = claimed[0]["private_id"];
  CHECK(cli({"run", "show", id}).out.find("progress:     -") != std::string::npos);
  CHECK(cli({"run", "show", id, "--json"}).parsed()["message"].is_null());
  const auto failed = cli({"run", "fail", id, "--message", "by hand", "--json"}).parsed();
  CHECK(failed["message"] == "by hand");
  CHECK(cli({"runs"}).out.find("by hand") != std::string::npos);
  // serve's own flags are checked before anything starts.
  for (const auto& [flag, value, message] :
       {std::tuple{"--http", "9100", "--http: \"9100\" is not ADDR:PORT"},
        std::tuple{"--http", ":99999", "--http: \":99999\" has no port number from 1 to 65535"},
        std::tuple{"--http-host", "status.example:80",
                   "--http-host: \"status.example:80\" is not a host name or IP address (without a port)"},
        std::tuple{"--http-host", "a,,b", "--http-host: \"\" is not a host name or IP address (without a port)"},
        std::tuple{"--http-host", "a b", "--http-host: \"a b\" is not a host name or IP address (without a port)"},
        std::tuple{"--log-format", "xml", "--log-format: \"xml\" is not text or json"},
        std::tuple{"--log-level", "loud", "--log-level: \"loud\" is not debug, info, warning or error"}}) {
    const auto refused_flag = cli.bare({"serve", "--config", config.string(), flag, value});
    CHECK(refused_flag.status == 2);
    CHECK(refused_flag.err.find(message) != std::string::npos);
  }
  // --limit 0 and other negatives are refused, as docs/cli.md says.
  CHECK(cli({"runs", "--limit", "0"}).status == 2);
  CHECK(cli({"runs", "--limit", "-5"}).status == 2);
}

TEST_CASE("control: a command word alone lists its subcommands, and an option no command takes is unknown") {
  Cli cli;
  const auto job = cli.bare({"job"});
  CHECK(job.status == 2);
  CHECK(job.err.find("jobctl: job needs a subcommand: show, create, next-run, run-now, pause, resume, delete") == 0);
  const auto help = cli.bare({"job", "--help"});
  CHECK(help.status == 0);
  CHECK(help.out.find("jobctl job run-now NAME [--arg JSON]") != std::string::npos);
  CHECK(help.out.find("jobctl job delete NAME [--force]") != std::string::npos);
  CHECK(help.out.find("jobctl runs") == std::string::npos);
  CHECK(cli.bare({"run", "--help"}).out.find("jobctl run cancel ID") != std::string::npos);
  for (const std::vector<std::string>& args : {std::vector<std::string>{"jobs", "--bogus"},
                                               {"jobs", "--bogus", "x"},
                                               {"--bogus", "jobs"},
                                               {"jobs", "--bogus=1"}}) {
    const auto result = cli.bare(args);
    INFO(result.err);
    CHECK(result.status == 2);
    CHECK(result.err.find("unknown option --bogus") != std::string::npos);
  }
  // A known option without its value still says so.
  CHECK(cli.bare({"jobs", "--plugin"}).err.find("option --plugin needs a value") != std::string::npos);
}

TEST_CASE("control: bash completion completes commands, subcommands and options") {
  Cli cli;
  const auto script = std::filesystem::path(JOBREPO_SOURCE_DIR) / "tools" / "jobctl" / "completion" / "jobctl.bash";
  const auto complete = [&](const std::string& words, int word) {
    const auto out = cli.dir.path / "completion.txt";
    const std::string command = "bash -c 'source \"" + script.string() + "\"; COMP_WORDS=(" + words +
                                "); COMP_CWORD=" + std::to_string(word) + "; _jobctl; echo \"${COMPREPLY[*]}\"' > \"" +
                                out.string() + "\" 2>&1";
    REQUIRE(std::system(command.c_str()) == 0);
    auto text = slurp(out);
    while (!text.empty() && text.back() == '\n') text.pop_back();
    return text;
  };
  CHECK(complete("jobctl jo", 1) == "jobs job");
  CHECK(complete("jobctl job p", 2) == "pause");
  CHECK(complete("jobctl run c", 2) == "cancel complete");
  CHECK(complete("jobctl serve --c", 2) == "--config --check");
  CHECK(complete("jobctl runs --status f", 3) == "failed");
  CHECK(complete("jobctl prune --", 2) == "--older-than --job --keep");
  CHECK(complete("jobctl prune --keep 5 --o", 4) == "--older-than");
}
