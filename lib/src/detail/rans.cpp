// Static-frequency rANS with a 32-bit state and byte-wise renormalisation (the stream format is in
// sqb/coding.hpp). Encoding runs from the last symbol to the first so that decoding runs forward; the encoder
// collects its output bytes in emission order and the payload stores them reversed.
//
// Why the state never overflows, even when decoding garbage: between symbols x is in [L, 256 L) = [2^23,
// 2^31). The encoder first shifts bytes out until x < x_max(s) = 2^(31-M) f[s], so x' = (x / f) 2^M + x mod f
// + c[s] < 2^31. The decoder's x' = f[s] (x >> M) + (slot - c[s]) < f[s] ((x >> M) + 1) <= 2^M 2^(31-M), and
// renormalisation only shifts while x < 2^23. So uint32 arithmetic is exact for every input the decoder
// accepts (the initial state is checked to be < 2^31).

#include <algorithm>
#include <cmath>
#include <limits>
#include <queue>
#include <stdexcept>
#include <string>

#include "sqb/coding.hpp"
#include "sqb/error.hpp"

namespace sqb {

namespace {

[[noreturn]] void bad_stream(const std::string& what) {
  throw Error("rANS stream: " + what);
}

void put_varint(std::vector<std::uint8_t>& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<std::uint8_t>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<std::uint8_t>(v));
}

class StreamReader {
 public:
  explicit StreamReader(std::span<const std::uint8_t> b) : b_(b) {}

  std::uint64_t varint(const char* what) {
    std::uint64_t v = 0;
    const std::size_t start = pos_;
    for (unsigned shift = 0;; shift += 7) {
      if (pos_ >= b_.size())
        bad_stream(std::string("truncated inside ") + what + " (at byte " + std::to_string(start) + ")");
      const std::uint8_t byte = b_[pos_++];
      // The tenth byte holds bit 63 only.
      if (shift == 63 && byte > 1)
        bad_stream(std::string(what) + " overflows 64 bits (at byte " + std::to_string(start) + ")");
      v |= static_cast<std::uint64_t>(byte & 0x7F) << shift;
      if ((byte & 0x80) == 0) {
        if (byte == 0 && shift > 0)
          bad_stream(std::string(what) + " is a non-canonical varint (at byte " + std::to_string(start) +
                     ")");
        return v;
      }
    }
  }

  std::uint8_t byte(const char* what) {
    if (pos_ >= b_.size()) bad_stream(std::string("truncated before ") + what);
    return b_[pos_++];
  }

  std::size_t pos() const { return pos_; }
  std::size_t size() const { return b_.size(); }
  const std::uint8_t* data() const { return b_.data(); }
  void skip(std::size_t n) { pos_ += n; }

 private:
  std::span<const std::uint8_t> b_;
  std::size_t pos_ = 0;
};

// The frequency table's runs (format in sqb/coding.hpp) appended to `out`.
void put_table(std::vector<std::uint8_t>& out, std::span<const std::uint32_t> freq) {
  const std::size_t alphabet = freq.size();
  for (std::size_t s = 0; s < alphabet;) {
    std::size_t z = s;
    while (z < alphabet && freq[z] == 0)
      ++z;
    if (z == alphabet) break;
    std::size_t p = z;
    while (p < alphabet && freq[p] != 0)
      ++p;
    put_varint(out, z - s);
    put_varint(out, p - z);
    for (std::size_t k = z; k < p; ++k)
      put_varint(out, freq[k] - 1);
    s = p;
  }
}

std::size_t varint_bytes(std::uint64_t v) {
  std::size_t b = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++b;
  }
  return b;
}

// The present symbols of a histogram, compacted: all the work on frequencies is O(present), not O(alphabet).
struct Present {
  std::vector<std::uint64_t> counts;  // > 0 each
  std::vector<std::size_t> symbols;   // increasing
  std::uint64_t n = 0;

  std::vector<std::uint32_t> scatter(const std::vector<std::uint32_t>& f, std::size_t alphabet) const {
    std::vector<std::uint32_t> out(alphabet, 0);
    for (std::size_t i = 0; i < f.size(); ++i)
      out[symbols[i]] = f[i];
    return out;
  }
  // Table bytes other than the frequencies: the (absent, present) run headers, the same for every M.
  std::size_t run_header_bytes() const {
    std::size_t bytes = 0, next = 0;  // next: the first symbol after the previous run
    for (std::size_t i = 0; i < symbols.size();) {
      std::size_t j = i + 1;
      while (j < symbols.size() && symbols[j] == symbols[j - 1] + 1)
        ++j;
      bytes += varint_bytes(symbols[i] - next) + varint_bytes(j - i);
      next = symbols[j - 1] + 1;
      i = j;
    }
    return bytes;
  }
};

Present present_of(std::span<const std::uint64_t> counts, const char* who) {
  Present p;
  for (std::size_t s = 0; s < counts.size(); ++s) {
    if (counts[s] == 0) continue;
    if (__builtin_add_overflow(p.n, counts[s], &p.n))
      throw Error(std::string(who) + ": the counts overflow uint64");
    p.counts.push_back(counts[s]);
    p.symbols.push_back(s);
  }
  if (p.n == 0) throw Error(std::string(who) + ": all counts are 0");
  return p;
}

unsigned min_scale_bits(std::size_t present) {
  unsigned lg = 0;
  while (lg < 63 && (std::size_t{1} << lg) < present)
    ++lg;
  return std::max(lg, kRansMinScaleBits);
}

std::vector<std::uint32_t> quantize_present(std::span<const std::uint64_t> counts, std::uint64_t n,
                                            unsigned scale_bits);

// rans_choose_scale_bits, also returning the chosen frequencies (over the whole alphabet).
unsigned choose_scale_bits(std::span<const std::uint64_t> counts, std::vector<std::uint32_t>& best_freq) {
  const Present p = present_of(counts, "rans_choose_scale_bits");
  const unsigned lo = min_scale_bits(p.counts.size());
  if (lo > kRansAutoMaxScaleBits) {
    throw Error("rans_choose_scale_bits: " + std::to_string(p.counts.size()) +
                " present symbols need more than 2^" + std::to_string(kRansAutoMaxScaleBits) +
                " frequency slots");
  }
  const double run_bits = 8.0 * static_cast<double>(p.run_header_bytes());
  double best = std::numeric_limits<double>::infinity();
  unsigned best_m = lo;
  std::vector<std::uint32_t> best_f;
  for (unsigned m = lo; m <= kRansAutoMaxScaleBits; ++m) {
    std::vector<std::uint32_t> f = quantize_present(p.counts, p.n, m);
    double bits = run_bits;
    for (std::size_t i = 0; i < f.size(); ++i) {
      bits += static_cast<double>(p.counts[i]) * (m - std::log2(static_cast<double>(f[i])));
      bits += 8.0 * static_cast<double>(varint_bytes(f[i] - 1));
    }
    if (bits < best) {
      best = bits;
      best_m = m;
      best_f = std::move(f);
    }
  }
  best_freq = p.scatter(best_f, counts.size());
  return best_m;
}

// The optimal frequencies (see rans_quantize_frequencies) for counts that are all > 0, summing to n, with
// 2^scale_bits >= counts.size().
std::vector<std::uint32_t> quantize_present(std::span<const std::uint64_t> counts, std::uint64_t n,
                                            unsigned scale_bits) {
  const std::uint64_t total_slots = std::uint64_t{1} << scale_bits;
  // Start from the continuous optimum rounded down, then move single units. The objective sum c_s log f_s is
  // separable and concave in each f_s, so a vector where no unit move from one symbol to another helps is the
  // optimum; the moves below go until none helps. The continuous optimum with f_s >= 1 is water-filling:
  // f_s = max(1, lambda c_s) with lambda such that the sum is 2^M; the symbols held at 1 are the rarest, so
  // lambda comes from one pass over the counts in increasing order. Starting there keeps the moves few.
  const std::size_t k = counts.size();
  std::vector<std::uint64_t> sorted(counts.begin(), counts.end());
  std::sort(sorted.begin(), sorted.end());
  double lambda = 0;
  {
    // With the j rarest at 1: lambda = (2^M - j) / (sum of the other counts); valid once lambda c_j >= 1.
    double rest = static_cast<double>(n);
    for (std::size_t j = 0; j < sorted.size(); ++j) {
      lambda = (static_cast<double>(total_slots) - static_cast<double>(j)) / rest;
      if (lambda * static_cast<double>(sorted[j]) >= 1) break;
      rest -= static_cast<double>(sorted[j]);
    }
  }
  std::vector<std::uint64_t> f(k, 0);
  std::uint64_t sum = 0;
  for (std::size_t s = 0; s < k; ++s) {
    const double share = std::floor(static_cast<double>(counts[s]) * lambda);
    f[s] = std::clamp<std::uint64_t>(static_cast<std::uint64_t>(share), 1, total_slots);
    sum += f[s];
  }
  // The gain of one more unit for s, and the loss of one unit less (in nats times the count).
  const auto gain = [&](std::size_t s) {
    return static_cast<double>(counts[s]) * std::log1p(1.0 / static_cast<double>(f[s]));
  };
  const auto loss = [&](std::size_t s) {
    return f[s] <= 1 ? std::numeric_limits<double>::infinity()
                     : -static_cast<double>(counts[s]) * std::log1p(-1.0 / static_cast<double>(f[s]));
  };
  struct Entry {
    double value;
    std::size_t s;
    std::uint64_t f_at;  // f[s] when pushed; stale entries are skipped
  };
  const auto less_value = [](const Entry& a, const Entry& b) { return a.value < b.value; };
  const auto more_value = [](const Entry& a, const Entry& b) { return a.value > b.value; };
  // Both heaps start from every present symbol's entry, heapified at once (O(k), no regrowth).
  std::vector<Entry> initial_gains, initial_losses;
  initial_gains.reserve(2 * k + 16);
  initial_losses.reserve(2 * k + 16);
  for (std::size_t s = 0; s < k; ++s) {
    initial_gains.push_back({gain(s), s, f[s]});
    if (f[s] > 1) initial_losses.push_back({loss(s), s, f[s]});
  }
  std::priority_queue<Entry, std::vector<Entry>, decltype(less_value)> gains(less_value,
                                                                             std::move(initial_gains));
  std::priority_queue<Entry, std::vector<Entry>, decltype(more_value)> losses(more_value,
                                                                              std::move(initial_losses));
  const auto push = [&](std::size_t s) {
    gains.push({gain(s), s, f[s]});
    if (f[s] > 1) losses.push({loss(s), s, f[s]});
  };
  const auto top_valid = [&](auto& heap) -> const Entry* {
    while (!heap.empty() && heap.top().f_at != f[heap.top().s])
      heap.pop();
    return heap.empty() ? nullptr : &heap.top();
  };
  while (sum > total_slots) {
    const Entry* e = top_valid(losses);
    if (e == nullptr) throw std::logic_error("rans_quantize_frequencies: nothing left to take from");
    const std::size_t s = e->s;
    losses.pop();
    --f[s];
    --sum;
    push(s);
  }
  while (sum < total_slots) {
    const std::size_t s = top_valid(gains)->s;
    gains.pop();
    ++f[s];
    ++sum;
    push(s);
  }
  while (true) {
    const Entry* g = top_valid(gains);
    const Entry* l = top_valid(losses);
    // A relative margin keeps rounding in the logs from cycling between equal-valued vectors.
    if (g == nullptr || l == nullptr || !(g->value > l->value * (1 + 1e-12))) break;
    const std::size_t up = g->s, down = l->s;  // different: a symbol's gain is always below its loss
    gains.pop();
    losses.pop();
    ++f[up];
    --f[down];
    push(up);
    push(down);
  }
  return std::vector<std::uint32_t>(f.begin(), f.end());
}

template <class Sym>
RansEncoded encode_any(std::span<const Sym> symbols, std::size_t alphabet, const RansOptions& options) {
  if (alphabet < 1 || alphabet > 65536) {
    throw Error("rans_encode: the alphabet size must be in [1, 65536], not " + std::to_string(alphabet));
  }
  // Per-symbol arrays cover [0, largest symbol] only: the table's runs end at the last present symbol anyway,
  // and a wide alphabet with few symbols in use then costs no more than a narrow one.
  std::size_t used = 0;
  for (std::size_t i = 0; i < symbols.size(); ++i) {
    const std::size_t s = symbols[i];
    if (s >= alphabet) {
      throw Error("rans_encode: symbol " + std::to_string(s) + " at index " + std::to_string(i) +
                  " is outside the alphabet [0, " + std::to_string(alphabet) + ")");
    }
    used = std::max(used, s + 1);
  }
  std::vector<std::uint64_t> counts(used, 0);
  for (const Sym s : symbols)
    ++counts[s];
  RansEncoded r;
  r.symbols = symbols.size();
  put_varint(r.bytes, symbols.size());
  put_varint(r.bytes, alphabet);
  if (symbols.empty()) {
    r.header_bytes = r.bytes.size();
    return r;
  }
  const auto present = static_cast<std::size_t>(
      std::count_if(counts.begin(), counts.end(), [](std::uint64_t c) { return c > 0; }));
  unsigned m = options.scale_bits;
  std::vector<std::uint32_t> freq;
  if (m == 0) {
    m = choose_scale_bits(counts, freq);
  } else if (m < kRansMinScaleBits || m > kRansMaxScaleBits) {
    throw Error("rans_encode: scale_bits must be 0 (automatic) or in [" + std::to_string(kRansMinScaleBits) +
                ", " + std::to_string(kRansMaxScaleBits) + "], not " + std::to_string(m));
  } else if (present > (std::size_t{1} << m)) {
    throw Error("rans_encode: " + std::to_string(present) + " distinct symbols do not fit in 2^" +
                std::to_string(m) + " frequency slots");
  }
  r.scale_bits = m;
  r.bytes.push_back(static_cast<std::uint8_t>(m));
  r.header_bytes = r.bytes.size();
  if (freq.empty()) freq = rans_quantize_frequencies(counts, m);
  std::vector<std::uint32_t> cum(used, 0);
  std::uint32_t c = 0;
  for (std::size_t s = 0; s < used; ++s) {
    cum[s] = c;
    c += freq[s];
  }
  put_table(r.bytes, freq);
  r.table_bytes = r.bytes.size() - r.header_bytes;

  // x_max(s) = 2^(31 - M) f[s]: at most 2^31, so it fits in uint32.
  std::vector<std::uint32_t> x_max(used);
  for (std::size_t s = 0; s < used; ++s)
    x_max[s] = ((kRansLow >> m) << 8) * freq[s];
  std::vector<std::uint8_t> emitted;
  emitted.reserve(symbols.size() / 2 + 16);
  std::uint32_t x = kRansLow;
  for (std::size_t i = symbols.size(); i-- > 0;) {
    const std::size_t s = symbols[i];
    const std::uint32_t f = freq[s];
    while (x >= x_max[s]) {
      emitted.push_back(static_cast<std::uint8_t>(x & 0xFF));
      x >>= 8;
    }
    x = ((x / f) << m) + (x % f) + cum[s];
  }
  for (int b = 0; b < 4; ++b)
    r.bytes.push_back(static_cast<std::uint8_t>(x >> (8 * b)));
  r.bytes.insert(r.bytes.end(), emitted.rbegin(), emitted.rend());
  r.payload_bytes = 4 + emitted.size();
  return r;
}

}  // namespace

double RansEncoded::payload_bits_per_symbol() const {
  return symbols == 0 ? 0.0 : 8.0 * static_cast<double>(payload_bytes) / static_cast<double>(symbols);
}
double RansEncoded::table_bits_per_symbol() const {
  return symbols == 0 ? 0.0
                      : 8.0 * static_cast<double>(header_bytes + table_bytes) / static_cast<double>(symbols);
}

unsigned rans_choose_scale_bits(std::span<const std::uint64_t> counts) {
  std::vector<std::uint32_t> f;
  return choose_scale_bits(counts, f);
}

std::vector<std::uint32_t> rans_quantize_frequencies(std::span<const std::uint64_t> counts,
                                                     unsigned scale_bits) {
  if (scale_bits < 1 || scale_bits > 30) {
    throw Error("rans_quantize_frequencies: scale_bits must be in [1, 30], not " +
                std::to_string(scale_bits));
  }
  const Present p = present_of(counts, "rans_quantize_frequencies");
  if (p.counts.size() > (std::uint64_t{1} << scale_bits)) {
    throw Error("rans_quantize_frequencies: " + std::to_string(p.counts.size()) +
                " present symbols do not fit in 2^" + std::to_string(scale_bits) + " slots");
  }
  return p.scatter(quantize_present(p.counts, p.n, scale_bits), counts.size());
}

RansEncoded rans_encode(std::span<const std::uint16_t> symbols, std::size_t alphabet,
                        const RansOptions& options) {
  return encode_any(symbols, alphabet, options);
}
RansEncoded rans_encode(std::span<const std::uint8_t> symbols, std::size_t alphabet,
                        const RansOptions& options) {
  return encode_any(symbols, alphabet, options);
}

namespace {

// Decodes a stream, handing each symbol to emit(i, symbol) as it is decoded (emit returns false to stop
// early: the stream is then reported as not matching); start(n) is called once the count is known.
template <class Start, class Emit>
bool decode_stream(std::span<const std::uint8_t> bytes, std::size_t max_symbols, Start&& start, Emit&& emit) {
  StreamReader in(bytes);
  const std::uint64_t n = in.varint("the symbol count");
  if (n > max_symbols) {
    bad_stream("announces " + std::to_string(n) + " symbols, more than the " + std::to_string(max_symbols) +
               " expected");
  }
  const std::uint64_t alphabet = in.varint("the alphabet size");
  if (alphabet < 1 || alphabet > 65536)
    bad_stream("alphabet size " + std::to_string(alphabet) + " is outside [1, 65536]");
  start(static_cast<std::size_t>(n));
  if (n == 0) {
    if (in.pos() != in.size())
      bad_stream(std::to_string(in.size() - in.pos()) + " bytes after an empty stream's header");
    return true;
  }
  const unsigned m = in.byte("the scale byte M");
  if (m < kRansMinScaleBits || m > kRansMaxScaleBits) {
    bad_stream("scale M = " + std::to_string(m) + " is outside [" + std::to_string(kRansMinScaleBits) + ", " +
               std::to_string(kRansMaxScaleBits) + "]");
  }
  const std::uint32_t total = std::uint32_t{1} << m;
  // Sized to the last present symbol as the runs arrive, so a header's alphabet size alone allocates nothing.
  std::vector<std::uint32_t> freq, cum;
  std::uint64_t s = 0;
  std::uint32_t sum = 0;
  while (sum < total) {
    const std::uint64_t z = in.varint("a table run");
    if (z > alphabet - s) bad_stream("a frequency-table run skips past the alphabet's end");
    s += z;
    const std::uint64_t p = in.varint("a table run");
    if (p == 0) bad_stream("a frequency-table run of 0 present symbols");
    if (p > alphabet - s) bad_stream("a frequency-table run goes past the alphabet's end");
    freq.resize(static_cast<std::size_t>(s + p), 0);
    cum.resize(static_cast<std::size_t>(s + p), 0);
    for (std::uint64_t i = 0; i < p; ++i, ++s) {
      const std::uint64_t f = in.varint("a frequency");
      if (f >= total - sum) bad_stream("the frequencies add up to more than 2^" + std::to_string(m));
      freq[s] = static_cast<std::uint32_t>(f + 1);
      cum[s] = sum;
      sum += freq[s];
    }
  }
  if (in.size() - in.pos() < 4) bad_stream("truncated: no room for the 4-byte state");
  const std::uint8_t* p = in.data() + in.pos();
  std::uint32_t x = static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
                    static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
  in.skip(4);
  if (x < kRansLow || x >= (std::uint32_t{1} << 31)) {
    bad_stream("the initial state " + std::to_string(x) + " is outside [2^23, 2^31)");
  }
  // Slot -> symbol: a table of 2^M entries when there are enough symbols to pay for filling it, else a binary
  // search over the present symbols' cumulative frequencies.
  std::vector<std::uint16_t> by_slot;
  std::vector<std::uint32_t> starts;
  std::vector<std::uint16_t> start_symbol;
  const bool table = n >= total / 8;
  for (std::size_t k = 0; k < freq.size(); ++k) {
    if (freq[k] == 0) continue;
    if (table) {
      by_slot.insert(by_slot.end(), freq[k], static_cast<std::uint16_t>(k));
    } else {
      starts.push_back(cum[k]);
      start_symbol.push_back(static_cast<std::uint16_t>(k));
    }
  }
  const std::uint32_t mask = total - 1;
  const std::uint8_t* next = in.data() + in.pos();
  const std::uint8_t* const end = in.data() + in.size();
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint32_t slot = x & mask;
    std::uint16_t sym;
    if (table) {
      sym = by_slot[slot];
    } else {
      const auto it = std::upper_bound(starts.begin(), starts.end(), slot);
      sym = start_symbol[static_cast<std::size_t>(it - starts.begin()) - 1];
    }
    if (!emit(i, sym)) return false;
    x = freq[sym] * (x >> m) + slot - cum[sym];
    while (x < kRansLow) {
      if (next == end)
        bad_stream("truncated: the payload ends after " + std::to_string(i) + " of " + std::to_string(n) +
                   " symbols");
      x = (x << 8) | *next++;
    }
  }
  if (x != kRansLow) bad_stream("corrupt: the final state is " + std::to_string(x) + ", not 2^23");
  if (next != end) bad_stream(std::to_string(end - next) + " bytes after the payload's end");
  return true;
}

}  // namespace

std::vector<std::uint16_t> rans_decode(std::span<const std::uint8_t> bytes, std::size_t max_symbols) {
  std::vector<std::uint16_t> out;
  decode_stream(
      bytes, max_symbols, [&](std::size_t n) { out.resize(n); },
      [&](std::size_t i, std::uint16_t sym) {
        out[i] = sym;
        return true;
      });
  return out;
}

namespace {

// Whether `bytes` decodes to exactly `codes`, compared symbol by symbol (no decoded copy of the codes).
template <class Sym>
bool decodes_to(std::span<const std::uint8_t> bytes, std::span<const Sym> codes) {
  bool same_count = false;
  return decode_stream(
             bytes, codes.size(), [&](std::size_t n) { same_count = n == codes.size(); },
             [&](std::size_t i, std::uint16_t sym) { return same_count && codes[i] == sym; }) &&
         same_count;
}

}  // namespace

namespace {

template <class Sym>
std::uint64_t coded_bits_any(std::span<const Sym> codes, std::size_t alphabet) {
  const RansEncoded e = encode_any(codes, alphabet, {});
  if (!decodes_to(std::span<const std::uint8_t>(e.bytes), codes))
    throw std::logic_error("rans_coded_bits: the decoded stream differs from the codes (a coder bug)");
  return e.total_bits();
}

}  // namespace

std::uint64_t rans_coded_bits(std::span<const std::uint16_t> codes, std::size_t alphabet) {
  return coded_bits_any(codes, alphabet);
}
std::uint64_t rans_coded_bits(std::span<const std::uint8_t> codes, std::size_t alphabet) {
  return coded_bits_any(codes, alphabet);
}

}  // namespace sqb
