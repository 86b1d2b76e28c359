#!/usr/bin/env bash
# run.sh SECONDS [TARGET...]: builds every libFuzzer target (test/fuzz/fuzz_*.c, clang with
# ASan+UBSan, linked against all of src/ but main.c) and runs each for SECONDS on a scratch copy
# of its seed corpus (test/fuzz/corpus/<name>/), so the committed seeds never change. A crash,
# leak or sanitizer report fails the run and leaves the reproducer in build/fuzz/artifacts/.
set -euo pipefail
secs=${1:-60}
shift || true
root=$(cd "$(dirname "$0")/../.." && pwd)
out=$root/build/fuzz
mkdir -p "$out/obj" "$out/artifacts"
cflags=(-std=c11 -D_GNU_SOURCE -I"$root/include" -O1 -g -fno-omit-frame-pointer
        -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
        -Wall -Wextra -Werror -Wno-unused-parameter)
libs=(-levent_openssl -levent -lcjson -ljwt -lhiredis -lwslay -lhttp_parser -lmsgpackc -luring -lssl -lcrypto -lcrypt -lm)

objs=()
for src in "$root"/src/*.c; do
  name=$(basename "$src" .c)
  [ "$name" = main ] && continue
  obj=$out/obj/$name.o
  if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ -n "$(find "$root/include" "$root/src" -newer "$obj" -name '*.h' | head -1)" ]; then
    clang "${cflags[@]}" -c "$src" -o "$obj"
  fi
  objs+=("$obj")
done

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in "$root"/test/fuzz/fuzz_*.c; do targets+=("$(basename "$f" .c)"); done
fi
failed=0
for t in "${targets[@]}"; do
  bin=$out/$t
  # A target that includes a module's .c (to reach its statics) names it: "fuzz-excludes: name".
  excl=$(grep -o 'fuzz-excludes: [a-z_ ]*' "$root/test/fuzz/$t.c" | sed 's/fuzz-excludes: //' || true)
  use=()
  for o in "${objs[@]}"; do
    skip=0
    for x in $excl; do [ "$(basename "$o" .o)" = "$x" ] && skip=1; done
    [ $skip = 0 ] && use+=("$o")
  done
  clang "${cflags[@]}" -Wno-unused-function -fsanitize=fuzzer "$root/test/fuzz/$t.c" "${use[@]}" "${libs[@]}" -o "$bin"
  corpus_name=${t#fuzz_}
  work=$out/corpus/$corpus_name
  rm -rf "$work"; mkdir -p "$work"
  [ -d "$root/test/fuzz/corpus/$corpus_name" ] && cp -r "$root/test/fuzz/corpus/$corpus_name/." "$work/"
  log=$out/$t.log
  if (cd "$out" && "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$out/artifacts/$t-" -print_final_stats=1 "$work" >"$log" 2>&1); then
    runs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
    echo "fuzz $t: ${runs:-?} runs in ${secs}s, no findings"
  else
    echo "fuzz $t: FAILED (see $log)"; tail -30 "$log"; failed=1
  fi
done
exit $failed
