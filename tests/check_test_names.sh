#!/usr/bin/env bash
# ctest runs exactly the Catch2 test cases that sqb_tests declares: two checks that make a test case unable to
# vanish from the suite while ctest stays green.
#
#   names       every test case name (hidden ones too) is one that catch_discover_tests passes through unchanged:
#               CatchAddTests.cmake escapes only ',', '[' and ']' in the test spec it gives each ctest entry, and
#               CMake splits a list at ';', so any other character with a meaning to Catch2's test-spec parser
#               ('\' escapes; a leading '~', '"', '*' or "exclude:" and a trailing '*' change what is matched;
#               --list-test-names-only quotes a leading '#'), leading or trailing blanks (trimmed), the bracket
#               argument terminator ']==]', or two names equal but for case (Catch2 matches names ignoring
#               case, so one entry would run both) yields an entry that runs another test case or none.
#   registered  the names `sqb_tests --list-test-names-only` prints equal the ctest entries labelled sqb_tests
#               (`ctest -N -L`), one for one; every difference is named.
#
# Each entry also runs with `-w NoTests` and fails on "No test cases matched" (tests/CMakeLists.txt), so an entry
# whose spec matches nothing is red, not a silent pass.
#
# usage: check_test_names.sh names SQB_TESTS
#        check_test_names.sh registered SQB_TESTS CTEST TESTS_BINARY_DIR
set -euo pipefail
usage() {
  printf 'usage: check_test_names.sh names SQB_TESTS\n       check_test_names.sh registered SQB_TESTS CTEST TESTS_BINARY_DIR\n' >&2
  exit 2
}
[ $# -ge 2 ] || usage
mode=$1
exe=$2
case $mode in names | registered) ;; *) echo "check_test_names.sh: unknown mode '$mode' (names|registered)" >&2; usage ;; esac
[ "$mode" = names ] || [ $# -ge 4 ] || usage
tmp=$(mktemp -d /tmp/sqbench-names-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# --list-test-names-only exits with the number of names listed, so its status is not an error code.
list_names() { "$exe" --list-test-names-only "$@" > "$tmp/out" || true; cat "$tmp/out"; }

case $mode in
names)
  list_names '*' > "$tmp/all" # '*' also lists the hidden ([.tag]) test cases
  [ -s "$tmp/all" ] || { echo "check_test_names.sh: $exe listed no test cases" >&2; exit 1; }
  bad=0
  while IFS= read -r name; do
    why=
    case $name in
      *';'*) why="';' (CMake splits the name into two ctest entries)" ;;
      *'\'*) why="'\\' (Catch2's test spec reads it as an escape)" ;;
      *']==]'*) why="']==]' (ends the bracket argument CatchAddTests.cmake writes)" ;;
      '~'* | '"'* | '*'* | '#'* | [eE][xX][cC][lL][uU][dD][eE]:*) why="its first character(s) (a Catch2 test-spec operator)" ;;
      *'*') why="a trailing '*' (a Catch2 wildcard)" ;;
      [[:space:]]* | *[[:space:]]) why="a leading or trailing blank (trimmed by the test spec)" ;;
    esac
    if [ -n "$why" ]; then
      echo "test case name with $why: \"$name\"" >&2
      bad=1
    fi
  done < "$tmp/all"
  LC_ALL=C sort "$tmp/all" | uniq -d > "$tmp/dup"
  sort -f "$tmp/all" | uniq -di | grep -vxFf "$tmp/dup" > "$tmp/dupcase" || true
  while IFS= read -r name; do
    echo "two test case names differ only in case (Catch2 matches names ignoring case): \"$name\"" >&2
    bad=1
  done < "$tmp/dupcase"
  if [ "$bad" -ne 0 ]; then
    echo "check_test_names.sh: rename these test cases so that ctest discovery runs each exactly once" >&2
    exit 1
  fi
  echo "$(wc -l < "$tmp/all") test case names, each one ctest discovery passes through unchanged"
  ;;
registered)
  ctest=$3
  dir=$4
  list_names | LC_ALL=C sort > "$tmp/listed"
  [ -s "$tmp/listed" ] || { echo "check_test_names.sh: $exe listed no test cases" >&2; exit 1; }
  (cd "$dir" && "$ctest" -N -L '^sqb_tests$') > "$tmp/ctest"
  sed -n 's/^ *Test *#[0-9]*: //p' "$tmp/ctest" | LC_ALL=C sort > "$tmp/registered"
  LC_ALL=C comm -23 "$tmp/listed" "$tmp/registered" > "$tmp/missing"
  LC_ALL=C comm -13 "$tmp/listed" "$tmp/registered" > "$tmp/extra"
  LC_ALL=C uniq -d "$tmp/registered" > "$tmp/twice"
  sed 's/^/  declared by sqb_tests but no ctest entry runs it: /' "$tmp/missing" >&2
  sed 's/^/  a ctest entry that is no test case of sqb_tests: /' "$tmp/extra" >&2
  sed 's/^/  registered twice: /' "$tmp/twice" >&2
  if [ -s "$tmp/missing" ] || [ -s "$tmp/extra" ] || [ -s "$tmp/twice" ]; then
    echo "check_test_names.sh: ctest (in $dir) does not run exactly the $(wc -l < "$tmp/listed") test cases" \
      "sqb_tests lists; rebuild sqb_tests (its POST_BUILD step rediscovers them) or rename the test cases" >&2
    exit 1
  fi
  echo "ctest runs each of the $(wc -l < "$tmp/listed") test cases sqb_tests lists, once, and nothing else"
  ;;
*)
  echo "usage: check_test_names.sh names|registered SQB_TESTS [CTEST DIR]" >&2
  exit 2
  ;;
esac
