#pragma once
// CSV text (RFC 4180 quoting) and number formatting shared by every output.

#include <string>
#include <string_view>
#include <vector>

namespace sqbench {

/// A number as text: %.{digits}g, with "inf" / "-inf" for infinities (never "nan": callers do not produce
/// NaN).
std::string format_number(double v, int digits = 10);

/// One CSV field: quoted when it holds a comma, quote, CR or LF.
std::string csv_field(std::string_view s);

/// A header and rows joined as CSV text with a trailing newline.
std::string csv_text(const std::vector<std::string>& header,
                     const std::vector<std::vector<std::string>>& rows);

}  // namespace sqbench
