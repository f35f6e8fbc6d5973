// jobctl's command line parser (tools/jobctl/args.cpp) on any arguments
// (the input split at NUL bytes): it fills an invocation or throws
// UsageError, nothing else, and a filled one names a known command.
#include "args.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::string> words = {"jobctl"};
  std::string word;
  for (std::size_t i = 0; i < size && words.size() < 32; ++i) {
    if (data[i] == 0) {
      words.push_back(word);
      word.clear();
    } else {
      word.push_back(static_cast<char>(data[i]));
    }
  }
  words.push_back(word);
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  jobctl::Invocation in;
  try {
    jobctl::parse(static_cast<int>(words.size()), argv.data(), in);
  } catch (const jobctl::UsageError&) {
    return 0;
  }
  if (!in.help && !in.version && in.command == nullptr) std::abort();
  if (!in.help && in.command != nullptr && in.args.size() < in.command->positional.size()) std::abort();
  return 0;
}
