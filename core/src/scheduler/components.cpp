// The Scheduler's small parts (state.hpp): each guards itself with its own
// mutex and waits through the Runtime.
#include "state.hpp"

#include <algorithm>

namespace jobrepo::scheduling {

// --- Signal ---------------------------------------------------------------

void Signal::raise() {
  {
    const std::lock_guard lock(mutex_);
    raised_ = true;
  }
  runtime_.notify_all(cv_);
}

void Signal::stop() {
  {
    const std::lock_guard lock(mutex_);
    stopped_ = true;
  }
  runtime_.notify_all(cv_);
}

void Signal::reset() {
  const std::lock_guard lock(mutex_);
  raised_ = stopped_ = false;
}

bool Signal::stopped() const {
  const std::lock_guard lock(mutex_);
  return stopped_;
}

bool Signal::wait(SteadyTime deadline) {
  std::unique_lock lock(mutex_);
  runtime_.wait_until(lock, cv_, deadline, [&] { return raised_ || stopped_; });
  raised_ = false;
  return stopped_;
}

// --- RunQueue -------------------------------------------------------------

void RunQueue::push(std::shared_ptr<LocalRun> run) {
  {
    const std::lock_guard lock(mutex_);
    waiting_.push_back(std::move(run));
  }
  runtime_.notify_all(ready_);
}

std::deque<std::shared_ptr<LocalRun>>::iterator RunQueue::runnable() {
  return std::find_if(waiting_.begin(), waiting_.end(),
                      [&](const std::shared_ptr<LocalRun>& run) { return running_.count(run->job_name()) == 0; });
}

std::shared_ptr<LocalRun> RunQueue::pop() {
  std::unique_lock lock(mutex_);
  runtime_.wait_until(lock, ready_, SteadyTime::max(), [&] { return closed_ || runnable() != waiting_.end(); });
  if (closed_) return nullptr;
  const auto next = runnable();
  auto run = std::move(*next);
  waiting_.erase(next);
  running_.insert(run->job_name());
  // The run starts under the queue's lock: no other worker takes a run of
  // its job between this pop and its start.
  run->start(runtime_.steady_now());
  return run;
}

void RunQueue::finished(const std::string& job) {
  {
    const std::lock_guard lock(mutex_);
    if (const auto found = running_.find(job); found != running_.end()) running_.erase(found);
  }
  runtime_.notify_all(ready_);
}

std::vector<std::shared_ptr<LocalRun>> RunQueue::take_all() {
  const std::lock_guard lock(mutex_);
  std::vector<std::shared_ptr<LocalRun>> all(std::make_move_iterator(waiting_.begin()),
                                             std::make_move_iterator(waiting_.end()));
  waiting_.clear();
  return all;
}

void RunQueue::close() {
  {
    const std::lock_guard lock(mutex_);
    closed_ = true;
  }
  runtime_.notify_all(ready_);
}

void RunQueue::reopen() {
  const std::lock_guard lock(mutex_);
  closed_ = false;
  waiting_.clear();
  running_.clear();
}

int RunQueue::taken() const {
  const std::lock_guard lock(mutex_);
  return static_cast<int>(waiting_.size() + running_.size());
}

// --- OutcomeQueue ---------------------------------------------------------

void OutcomeQueue::push(Outcome outcome) {
  {
    const std::lock_guard lock(mutex_);
    outcomes_.push_back(std::move(outcome));
  }
  runtime_.notify_all(ready_);
}

std::vector<Outcome> OutcomeQueue::take(SteadyTime deadline) {
  std::unique_lock lock(mutex_);
  runtime_.wait_until(lock, ready_, deadline, [&] { return closed_ || !outcomes_.empty(); });
  return std::exchange(outcomes_, {});
}

void OutcomeQueue::close() {
  {
    const std::lock_guard lock(mutex_);
    closed_ = true;
  }
  runtime_.notify_all(ready_);
}

void OutcomeQueue::reopen() {
  const std::lock_guard lock(mutex_);
  closed_ = false;
  outcomes_.clear();
}

bool OutcomeQueue::closed() const {
  const std::lock_guard lock(mutex_);
  return closed_;
}

// --- Executing ------------------------------------------------------------

void Executing::add(const std::shared_ptr<LocalRun>& run) {
  const std::lock_guard lock(mutex_);
  runs_.emplace(run->run_id(), run);
}

void Executing::remove(const std::string& run_id) { remove(std::vector<std::string>{run_id}); }

void Executing::remove(const std::vector<std::string>& run_ids) {
  {
    const std::lock_guard lock(mutex_);
    for (const auto& id : run_ids) runs_.erase(id);
  }
  runtime_.notify_all(changed_);
}

void Executing::returned(LocalRun& run) {
  {
    const std::lock_guard lock(mutex_);
    run.set_returned();
  }
  runtime_.notify_all(changed_);
}

std::vector<std::shared_ptr<LocalRun>> Executing::all() const {
  const std::lock_guard lock(mutex_);
  std::vector<std::shared_ptr<LocalRun>> out;
  for (const auto& entry : runs_) out.push_back(entry.second);
  return out;
}

std::vector<std::shared_ptr<LocalRun>> Executing::live() const {
  const std::lock_guard lock(mutex_);
  std::vector<std::shared_ptr<LocalRun>> out;
  for (const auto& entry : runs_) {
    if (!entry.second->returned()) out.push_back(entry.second);
  }
  return out;
}

std::size_t Executing::returned_count() const {
  const std::lock_guard lock(mutex_);
  return static_cast<std::size_t>(
      std::count_if(runs_.begin(), runs_.end(), [](const auto& entry) { return entry.second->returned(); }));
}

bool Executing::empty() const {
  const std::lock_guard lock(mutex_);
  return runs_.empty();
}

bool Executing::wait_handlers_returned(SteadyTime deadline) {
  std::unique_lock lock(mutex_);
  return runtime_.wait_until(lock, changed_, deadline, [&] {
    return std::all_of(runs_.begin(), runs_.end(), [](const auto& entry) { return entry.second->returned(); });
  });
}

bool Executing::wait_empty(SteadyTime deadline) {
  std::unique_lock lock(mutex_);
  return runtime_.wait_until(lock, changed_, deadline, [&] { return runs_.empty(); });
}

// --- DatabaseClock --------------------------------------------------------

void DatabaseClock::observe(Timestamp database, SteadyTime received) {
  const std::lock_guard lock(mutex_);
  if (!anchor_ || received >= anchor_->second) anchor_ = {database, received};
}

Timestamp DatabaseClock::now() const {
  const auto steady = runtime_.steady_now();
  const std::lock_guard lock(mutex_);
  if (!anchor_) return runtime_.wall_now();
  return anchor_->first + std::chrono::duration_cast<Clock::duration>(steady - anchor_->second);
}

// --- DueTimes -------------------------------------------------------------

std::uint64_t DueTimes::mark() {
  const std::lock_guard lock(mutex_);
  return added_;
}

void DueTimes::replace(std::vector<Timestamp> times, std::uint64_t mark) {
  const std::lock_guard lock(mutex_);
  std::erase_if(times_, [&](const auto& entry) { return entry.second <= mark; });
  for (const auto time : times) times_.emplace(time, 0);
}

void DueTimes::add(Timestamp due) {
  const std::lock_guard lock(mutex_);
  times_.emplace(due, ++added_);
}

std::optional<Timestamp> DueTimes::next(Timestamp now) {
  const std::lock_guard lock(mutex_);
  times_.erase(times_.begin(), times_.upper_bound(now));
  if (times_.empty()) return std::nullopt;
  return times_.begin()->first;
}

void DueTimes::clear() {
  const std::lock_guard lock(mutex_);
  times_.clear();
}

}  // namespace jobrepo::scheduling
