#include <jobrepo/audit.hpp>

#include <algorithm>
#include <tuple>

namespace jobrepo {

namespace {

// When a run's work was over: its end, or the end of its owner's work when
// that came later; a running run has not ended.
Timestamp end_of(const Run& run) {
  if (!run.end_time) return Timestamp::max();
  return run.work_end_time ? std::max(*run.end_time, *run.work_end_time) : *run.end_time;
}

}  // namespace

std::vector<Overlap> find_overlaps(std::vector<Run> runs) {
  std::sort(runs.begin(), runs.end(), [&](const Run& a, const Run& b) {
    return std::tie(a.job_plugin_id, a.job_name, a.create_time) <
               std::tie(b.job_plugin_id, b.job_name, b.create_time) ||
           (std::tie(a.job_plugin_id, a.job_name, a.create_time) ==
                std::tie(b.job_plugin_id, b.job_name, b.create_time) &&
            end_of(a) < end_of(b));
  });
  std::vector<Overlap> overlaps;
  for (std::size_t i = 0; i + 1 < runs.size(); ++i) {
    const Run& a = runs[i];
    const Run& b = runs[i + 1];
    if (a.job_plugin_id == b.job_plugin_id && a.job_name == b.job_name && end_of(a) > b.create_time) {
      overlaps.push_back({a, b});
    }
  }
  return overlaps;
}

std::vector<Run> find_ended_while_working(std::vector<Run> runs) {
  std::erase_if(
      runs, [](const Run& run) { return !run.end_time || !run.work_end_time || *run.work_end_time <= *run.end_time; });
  std::sort(runs.begin(), runs.end(), [](const Run& a, const Run& b) {
    return std::tie(a.job_plugin_id, a.job_name, a.create_time) < std::tie(b.job_plugin_id, b.job_name, b.create_time);
  });
  return runs;
}

}  // namespace jobrepo
