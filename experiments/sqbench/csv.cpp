#include "csv.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>

#include "sqb/error.hpp"

namespace sqbench {

std::string format_number(double v, int digits) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (std::isnan(v)) return "nan";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

std::string csv_field(std::string_view s) {
  if (s.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(s);
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string csv_line(const std::vector<std::string>& fields) {
  std::string out;
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (i) out += ',';
    out += csv_field(fields[i]);
  }
  out += '\n';
  return out;
}

std::string csv_text(const std::vector<std::string>& header,
                     const std::vector<std::vector<std::string>>& rows) {
  std::string out = csv_line(header);
  for (const auto& r : rows)
    out += csv_line(r);
  return out;
}

std::optional<std::size_t> CsvTable::column(std::string_view name) const {
  for (std::size_t i = 0; i < header.size(); ++i) {
    if (header[i] == name) return i;
  }
  return std::nullopt;
}

CsvTable parse_csv(std::string_view text, const std::string& what, bool allow_torn_tail,
                   bool drop_bad_width) {
  CsvTable t;
  std::vector<std::vector<std::string>> records;
  std::vector<std::size_t> record_lines;
  std::vector<std::string> record;
  std::string field;
  bool in_quotes = false, field_started = false;
  std::size_t line = 1, record_line = 1;
  bool last_terminated = true;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    last_terminated = false;
    if (in_quotes) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          in_quotes = false;
        }
      } else {
        if (c == '\n') ++line;
        field += c;
      }
      continue;
    }
    if (c == '"' && !field_started) {
      in_quotes = field_started = true;
    } else if (c == ',') {
      record.push_back(std::move(field));
      field.clear();
      field_started = false;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      record.push_back(std::move(field));
      field.clear();
      field_started = false;
      records.push_back(std::move(record));
      record.clear();
      record_lines.push_back(record_line);
      record_line = ++line;
      last_terminated = true;
    } else {
      field += c;
      field_started = true;
    }
  }
  if (!last_terminated || in_quotes) {
    if (!allow_torn_tail) {
      throw sqb::Error(what + ":" + std::to_string(record_line) +
                       ": the last record is incomplete (no newline" +
                       std::string(in_quotes ? ", unterminated quote" : "") + ")");
    }
    t.dropped_torn_tail = true;
  }
  if (records.empty()) throw sqb::Error(what + ": empty CSV file (no header)");
  t.header = std::move(records[0]);
  for (std::size_t r = 1; r < records.size(); ++r) {
    if (records[r].size() != t.header.size()) {
      if (allow_torn_tail && r + 1 == records.size()) {
        t.dropped_torn_tail = true;
        break;
      }
      if (drop_bad_width) {
        t.dropped.push_back(std::to_string(record_lines[r]) + ": " + std::to_string(records[r].size()) +
                            " fields, the header has " + std::to_string(t.header.size()));
        continue;
      }
      throw sqb::Error(what + ":" + std::to_string(record_lines[r]) + ": " +
                       std::to_string(records[r].size()) + " fields, the header has " +
                       std::to_string(t.header.size()));
    }
    t.rows.push_back(std::move(records[r]));
    t.row_lines.push_back(record_lines[r]);
  }
  return t;
}

CsvTable read_csv(const std::filesystem::path& path, bool allow_torn_tail, bool drop_bad_width) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw sqb::Error(path.string() + ": is a directory, not a CSV file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw sqb::Error(path.string() + ": cannot read (missing or unreadable)");
  std::ostringstream buf;
  buf << in.rdbuf();
  return parse_csv(buf.str(), path.string(), allow_torn_tail, drop_bad_width);
}

std::optional<double> parse_field_number(std::string_view s) {
  if (s == "inf" || s == "+inf") return std::numeric_limits<double>::infinity();
  if (s == "-inf") return -std::numeric_limits<double>::infinity();
  if (s.empty() || s.size() > 64) return std::nullopt;
  const std::string str(s);
  char* end = nullptr;
  const double v = std::strtod(str.c_str(), &end);
  if (end != str.c_str() + str.size() || std::isnan(v)) return std::nullopt;
  return v;
}

}  // namespace sqbench
