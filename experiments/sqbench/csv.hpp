#pragma once
// CSV text (RFC 4180 quoting), number formatting, and a small in-memory table read from CSV files.

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sqbench {

/// A number as text: %.{digits}g, with "inf" / "-inf" for infinities (never "nan": callers do not produce
/// NaN).
std::string format_number(double v, int digits = 10);

/// One CSV field: quoted when it holds a comma, quote, CR or LF.
std::string csv_field(std::string_view s);

/// One CSV record (fields joined, with a trailing newline).
std::string csv_line(const std::vector<std::string>& fields);

/// A header and rows joined as CSV text.
std::string csv_text(const std::vector<std::string>& header,
                     const std::vector<std::vector<std::string>>& rows);

/// A CSV file in memory: a header and rows of the same width.
struct CsvTable {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  /// True when the text ended inside or right after an incomplete last record, which was dropped (a write
  /// interrupted by a kill). Only set by parse_csv with allow_torn_tail.
  bool dropped_torn_tail = false;
  /// The file's line of each row (1 = the header), for messages.
  std::vector<std::size_t> row_lines;
  /// With drop_bad_width: the records dropped because their width differs from the header's, as
  /// "LINE: N fields, the header has M".
  std::vector<std::string> dropped;

  /// Index of column `name`, or std::nullopt.
  std::optional<std::size_t> column(std::string_view name) const;
};

/// Parses CSV text. Throws sqb::Error naming `what` (the file) and the line of a malformed record or a record
/// whose width differs from the header. With allow_torn_tail, a last record that is not newline-terminated or
/// has the wrong width is dropped instead (and reported through dropped_torn_tail).
/// With drop_bad_width, a record of the wrong width anywhere is dropped and listed in `dropped`.
CsvTable parse_csv(std::string_view text, const std::string& what, bool allow_torn_tail = false,
                   bool drop_bad_width = false);

/// Reads and parses a CSV file (errors name the file).
CsvTable read_csv(const std::filesystem::path& path, bool allow_torn_tail = false,
                  bool drop_bad_width = false);

/// Parses a CSV number field ("inf", "-inf" included). std::nullopt for an empty or non-numeric field.
std::optional<double> parse_field_number(std::string_view s);

}  // namespace sqbench
