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
// consecutive runs of each job. A run ends at its end_time, or later when
// its owner recorded that its work went on after that (Run::work_end_time,
// the owner's reckoning of the store's clock, never later than the truth):
// a run recorded ended while its work ran overlaps the next run of its job
// when that one started before the work ended. Timestamps have the store's
// resolution (a millisecond on SQLite): runs that start within the same tick
// are ordered by their end, so back-to-back runs inside one tick are not
// reported.
std::vector<Overlap> find_overlaps(std::vector<Run> runs);

// The runs among `runs` that were recorded ended while their owner's work
// still ran: a work_end_time later than their end_time (a peer or an
// operator ended them; see Run::work_end_time). Ordered by job, then start.
std::vector<Run> find_ended_while_working(std::vector<Run> runs);

}  // namespace jobrepo
