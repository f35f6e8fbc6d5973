// jobrepo: checking a run history for the one promise that matters.
#pragma once

#include <jobrepo/types.hpp>

#include <vector>

namespace jobrepo {

// Two runs of one job whose lifetimes overlap: `first` started no later than
// `second` and had not ended when `second` started (a running run has not ended).
struct Overlap {
  Run first;
  Run second;
};

// The overlapping pairs among `runs` (any order, any jobs), comparing
// consecutive runs of each job. Timestamps have the store's resolution (a
// millisecond on SQLite): runs that start within the same tick are ordered by
// their end, so back-to-back runs inside one tick are not reported.
std::vector<Overlap> find_overlaps(std::vector<Run> runs);

}  // namespace jobrepo
