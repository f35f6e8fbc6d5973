// jobrepo: the rules for the text the API takes (job names, descriptions,
// server ids, plugin ids, run ids), written once. The Repository and the
// Scheduler check every such argument with them before any I/O; tools call
// them to check text before it reaches the library (jobctl serve's config).
//
// Every text must be well-formed: valid UTF-8 without a NUL byte (a NUL
// would cut the text short in PostgreSQL, so that "a\0b" acted on "a").
// Text that is stored must also fit the schema's limits: 1 to 127
// characters for job names and plugin ids, 1 to 1023 for descriptions, 1 to
// 255 for server ids, counted in code points after trimming leading and
// trailing spaces (as SQL's length(trim(x))). Run ids are URL-safe
// characters only (A-Z a-z 0-9 - _). A run's arguments (a payload) are
// strict JSON text of at most 64 KiB. docs/architecture.md, "Inputs: ranges
// and text rules", lists every rule with its error code. Thread-safe.
#pragma once

#include <jobrepo/error.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace jobrepo {

inline constexpr std::size_t max_name_length = 127;          // job names and plugin ids
inline constexpr std::size_t max_description_length = 1023;  // job descriptions
inline constexpr std::size_t max_server_id_length = 255;     // server ids
inline constexpr std::size_t max_message_length = 1023;      // Run::message
// A run's arguments (Run::payload, Job::requested_payload), in bytes: 64 KiB,
// small enough for an environment variable (jobctl serve's JOBREPO_RUN_ARG;
// Linux takes up to 128 KiB in one) and for every read of a run.
inline constexpr std::size_t max_payload_bytes = 65536;
// Arrays and objects nested in a payload, at most: deep enough for any
// arguments, shallow enough for every JSON parser a handler may use
// (recursive ones among them).
inline constexpr std::size_t max_payload_depth = 64;

// What a text is, for its rule.
enum class TextKind { job_name, description, server_id, plugin_id, run_id };

// Why a text is refused: the error code the API throws for it and a phrase
// that follows the field's name in a message, naming the value as
// quote_text() shows it: `is missing`, `"a\x00b" contains a NUL byte`,
// `"\xff" is not valid UTF-8`, `"  " is blank`,
// `"xx..." has 128 characters, more than 127`.
struct TextProblem {
  ErrorCode code;
  std::string message;
};

// The problem of `value` as a text of `kind` that is stored (created,
// claimed with, a Repository's plugin), or nothing when it is accepted:
//   invalid_parameter: empty; a NUL byte; not valid UTF-8; for a run id, a
//     character other than A-Z a-z 0-9 - _;
//   check_constraint: blank, or longer than the kind's limit (above).
std::optional<TextProblem> text_problem(TextKind kind, std::string_view value);

// The problem of a text that is only compared (a lookup's name, a filter),
// or nothing: a NUL byte or invalid UTF-8, both invalid_parameter. No length
// rule applies: a text too long to be stored is simply never found.
std::optional<TextProblem> encoding_problem(std::string_view value);

// The problem of `payload` as a run's arguments (Repository::run_now), or
// nothing when it is accepted. The code is always invalid_parameter; the
// message shows at most a short piece of the payload, where it goes wrong:
//   `is empty (leave it out for a run without arguments)`;
//   `has 65537 bytes, more than 65536`;
//   `is not valid JSON: at byte 7 ("tru}"): expected a value`.
// Valid JSON is RFC 8259's grammar, strictly: one value of any kind (`null`
// too) with optional whitespace around it, in UTF-8; no comments, trailing
// commas, single quotes, leading zeros, NaN or raw control characters in
// strings; an escaped UTF-16 surrogate (backslash, u, D800-DFFF) only in a
// high-low pair; at most max_payload_depth nested arrays and objects; and,
// for interoperability (RFC 8259, section 6), numbers that a double holds:
// not 1e400, nor a non-zero one that would read as 0 (1e-400). Keys may
// repeat (RFC 8259 allows it; most parsers keep the last).
std::optional<TextProblem> payload_problem(std::string_view payload);

// Code points of `text` after trimming leading and trailing spaces, as the
// schema counts them. REQUIRES: `text` is valid UTF-8 (encoding_problem()).
std::size_t trimmed_length(std::string_view text);

// `text` by the one visible rule, the way every text sink shows stored or
// given text (jobctl's tables and its serve's text log; quote_text below):
// a backslash becomes \\, a line feed \n, a carriage return \r, a tab \t;
// every other control character (U+0000-U+001F, DEL, U+0080-U+009F) and each
// byte that is not part of valid UTF-8 becomes \xHH, the byte in lower-case
// hex (a C1 control is two: \xc2\x85). Everything else is kept. The result
// is one line of valid UTF-8 without control characters, and reads back to
// `text` exactly (a literal "\n" in `text` shows as \\n), so a value cannot
// forge a line or an escape. docs/architecture.md, "Inputs: ranges and text
// rules".
std::string printable(std::string_view text);

// `text` as messages show it: in double quotes, escaped by printable()'s
// rule with a double quote as \", cut after 60 code points ("..." follows).
// The result is one line of valid UTF-8.
std::string quote_text(std::string_view text);

// `text` as messages echo a value that reads as itself: as it is when
// quote_text() would only add the quotes (1 to 60 code points, nothing to
// escape), else quote_text(text). So a value is never echoed longer than 60
// code points, whatever its size.
std::string shown_text(std::string_view text);

// `text` made fit to be a run's message (Run::message): bytes that are not
// valid UTF-8 and control characters other than tab become U+FFFD and a
// newline becomes a space, leading and trailing spaces go, and a text
// longer than max_message_length code points is cut to end in "...".
// Never refuses: a reason why a run ended is kept whatever its words.
std::string message_text(std::string_view text);

}  // namespace jobrepo
