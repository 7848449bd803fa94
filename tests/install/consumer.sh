#!/usr/bin/env bash
# ctest: sqbench as a library from outside the source tree.
#  1. `cmake --install` of this build into a temporary prefix, then examples/quantize_vector configured with
#     find_package(sqb), built and run (a good spec prints its MSE; a bad one exits 2 naming the choices).
#  2. A project that add_subdirectory()s sqbench: configures with tests, benchmarks and the CLI off, and the
#     git SHA recorded in the library is sqbench's own, not the consumer's.
#  3. When the Python module is built (PYTHON given): the package sqbench (the extension sqbench._core and its
#     Python files) is installed where that python3 finds it under the prefix (lib/python3.X/site-packages),
#     and `sqbench` and `sqbench.torch` import from there.
# usage: consumer.sh SOURCE_DIR BUILD_DIR [PYTHON]
set -euo pipefail
src=$1
build=$2
python=${3:-}
tmp=$(mktemp -d /tmp/sqbench-install-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "consumer.sh: FAILED: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$tmp/prefix" > "$tmp/install.log"
test -f "$tmp/prefix/include/sqb/sqb.hpp" || fail "sqb/sqb.hpp was not installed"
test -f "$tmp/prefix/lib/cmake/sqb/sqbConfig.cmake" || fail "no CMake package installed"
test -f "$tmp/prefix/lib/cmake/sqb/sqbConfigVersion.cmake" || fail "no version file installed"
# A sanitized build's static library needs the sanitizer runtimes at the consumer's link (its one allowed flag).
private='-march|-fsanitize|-Wall|Boost::'
if grep -q '^SQB_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
  private='-march|-Wall|Boost::'
fi
if grep -rqE -- "$private" "$tmp/prefix/lib/cmake/sqb/"; then
  grep -rnE -- "$private" "$tmp/prefix/lib/cmake/sqb/" >&2
  fail "private flags or Boost leak into the installed package"
fi
if [ -n "$python" ]; then
  site=$("$python" -c "import sysconfig; print(sysconfig.get_path('platlib', 'posix_prefix', vars={'platbase': '$tmp/prefix', 'base': '$tmp/prefix'}))")
  ls "$site"/sqbench/_core*.so > /dev/null 2>&1 || fail "the Python extension is not installed in $site/sqbench"
  for f in __init__.py torch.py; do
    test -f "$site/sqbench/$f" || fail "sqbench/$f is not installed in $site"
  done
  PYTHONPATH="$site" "$python" -c "import sqbench, sqbench.torch, numpy, torch
r = sqbench.quantize(numpy.array([1, 2, 2, 3], dtype=numpy.float32), 'uniform', k=3)
assert r.metrics['mse'] == 0, r.metrics
assert sqbench.__file__.startswith('$site'), sqbench.__file__
lin = torch.nn.Linear(4, 2)
with torch.no_grad():
    lin.weight.copy_(torch.tensor([[1.0, 2, 2, 3], [0, 0, 1, 1]]))
rows = sqbench.torch.quantize_(lin, 'uniform', k=3)
assert [r['mse'] for r in rows] == [0.0], rows
print('installed Python package', sqbench.__version__, 'imports from', '$site')" || fail "installed package"
fi
cmake -S "$src/examples/quantize_vector" -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
  -DCMAKE_BUILD_TYPE=Release > "$tmp/configure.log" || { cat "$tmp/configure.log"; fail "consumer configure"; }
cmake --build "$tmp/consumer" > "$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; fail "consumer build"; }
out=$("$tmp/consumer/quantize_vector" "kmeans init=quantile" 4)
echo "$out"
[[ "$out" == "kmeans init=quantile at 4 bits: MSE "* ]] || fail "unexpected output: $out"
set +e
err=$("$tmp/consumer/quantize_vector" "kmean" 4 2>&1)
status=$?
set -e
[ "$status" -eq 2 ] || fail "a bad spec exited $status, not 2"
[[ "$err" == *"unknown quantizer 'kmean'; valid quantizers: "* ]] || fail "bad-spec message: $err"

mkdir -p "$tmp/outer"
cat > "$tmp/outer/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.25)
project(outer LANGUAGES CXX)
add_subdirectory("$src" sqbench)
add_executable(outer_app main.cpp)
target_link_libraries(outer_app PRIVATE sqb::sqb)
CMAKE
echo 'int main() {}' > "$tmp/outer/main.cpp"
git -C "$tmp/outer" init -q 2>/dev/null && git -C "$tmp/outer" -c user.email=t@t -c user.name=t commit -q --allow-empty -m outer
cmake -S "$tmp/outer" -B "$tmp/outer/build" > "$tmp/outer.log" 2>&1 || { cat "$tmp/outer.log"; fail "add_subdirectory configure"; }
targets=$(cmake --build "$tmp/outer/build" --target help)
for t in sqb_tests sqbench_micro sqbench; do
  if grep -qE "^\.\.\. $t\$" <<< "$targets"; then fail "target $t is built inside another project"; fi
done
grep -qE '^\.\.\. sqb$' <<< "$targets" || fail "no sqb target inside another project"
want=$(git -C "$src" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
outer=$(git -C "$tmp/outer" rev-parse --short=12 HEAD)
got=$(grep -o 'git_sha() { return "[^"]*"' "$tmp/outer/build/sqbench/lib/version.cpp" | sed 's/.*"\(.*\)"/\1/')
[ "$got" = "$want" ] || fail "recorded git SHA '$got', expected sqbench's '$want' (the outer project is $outer)"
echo "consumer.sh: installed package and add_subdirectory both work (SHA $got)"
