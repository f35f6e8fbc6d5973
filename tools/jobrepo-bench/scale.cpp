// Scale: the claim cycle's latency with many jobs, few of them due, and with
// a long history of final runs.
#include "common.hpp"

namespace jobrepo_bench {

// `jobs` jobs, 1% of them due (the others due in a day), `history` final runs;
// one worker runs the claim cycle for `seconds`. The claims must find the due
// jobs through the due index and the running runs through the partial index,
// whatever the number of jobs and runs.
json scale_claims(const Target& t, const Options& o, int jobs, int history) {
  const auto seeding = Steady::now();
  reset(t, jobs, 100, history);
  const double seed_s = std::chrono::duration<double>(Steady::now() - seeding).count();
  const Measure m = run_ours(t, 1, o.seconds, 1);
  return json{{"workload", "scale"},
              {"backend", t.backend},
              {"jobs", jobs},
              {"due_jobs", (jobs + 99) / 100},
              {"history_runs", history},
              {"seconds", o.seconds},
              {"runs_per_second", m.rate()},
              {"claim_p50_ms", percentile(m.claim_ms, 0.5)},
              {"claim_p99_ms", percentile(m.claim_ms, 0.99)},
              {"complete_p50_ms", percentile(m.complete_ms, 0.5)},
              {"empty_claims", m.empty},
              {"errors", m.errors},
              {"seed_seconds", seed_s}};
}

}  // namespace jobrepo_bench
