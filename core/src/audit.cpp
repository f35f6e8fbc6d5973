#include <jobrepo/audit.hpp>

#include <algorithm>
#include <tuple>

namespace jobrepo {

std::vector<Overlap> find_overlaps(std::vector<Run> runs) {
  const auto end_of = [](const Run& run) { return run.end_time.value_or(Timestamp::max()); };
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

}  // namespace jobrepo
