#!/usr/bin/env bash
# check-layers.sh: the dependency picture of src/ and include/roomcast/, checked.
#
# Every source file belongs to one module, and every module to one layer (the table below, lowest
# first; docs/architecture.md draws it). A file may include the headers of its own layer or of a
# lower one, never of a higher one: a lower layer reaches up only through callbacks it was given.
# Modules must not include each other in a circle, whatever their layers. The script prints the
# picture (which module includes which, by layer) with -v, and exits 1 on any upward include, any
# circle, or any file whose module is not in the table.
#
# A module is a file's name without its extension, matched against the table's names first and
# then its globs (sio_codec is its own module; sio_broadcast belongs to sio through sio_*).
set -euo pipefail
cd "$(dirname "$0")/.."

LAYERS='
0  base       common log hmap frame deadline metrics errors message
1  transport  server server_*
2  http       http
3  ws         ws
4  eio        eio_codec eio_cors eio
5  sio        sio_codec auth rooms sio sio_*
6  rules      template rules rules_* recovery_config
7  backplane  keys backplane backplane_* redis_* socketio socketio_* adapter_peer
8  services   presence presence_* jobs jobs_* admin admin_*
9  config     config config_*
10 root       node node_* main
'

verbose=0
[ "${1:-}" = "-v" ] && verbose=1

# One line per include: "<file> <included header>", for the project's own headers only.
includes() {
  for f in src/*.c src/*.h include/roomcast/*.h; do
    sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f" |
      while read -r h; do printf '%s %s\n' "$f" "$h"; done
    printf '%s -\n' "$f"   # every file appears, even one that includes nothing of ours
  done
}

includes | awk -v layers="$LAYERS" -v verbose="$verbose" '
function stem(path,   s) { s = path; sub(/.*\//, "", s); sub(/\.[ch]$/, "", s); return s }
function module_of(s,   i, p) {
  for (i = 1; i <= npat; i++) if (!glob[i] && pat[i] == s) return grp[i]
  for (i = 1; i <= npat; i++) if (glob[i]) { p = substr(pat[i], 1, length(pat[i]) - 1); if (index(s, p) == 1) return grp[i] }
  return ""
}
function visit(m,   k, n, parts, i) {
  state[m] = 1; path[++depth] = m
  n = split(out[m], parts, " ")
  for (i = 1; i <= n; i++) {
    k = parts[i]; if (k == "") continue
    if (state[k] == 1) {
      msg = ""; for (j = 1; j <= depth; j++) if (path[j] == k || msg != "") msg = msg path[j] " -> "
      printf "circle: %s%s\n", msg, k; bad = 1
    } else if (state[k] == 0) visit(k)
  }
  depth--; state[m] = 2
}
BEGIN {
  nl = split(layers, lines, "\n")
  for (i = 1; i <= nl; i++) {
    n = split(lines[i], w, " "); if (n < 3) continue
    lname[w[1]] = w[2]; if (w[1] + 0 > maxl) maxl = w[1] + 0
    for (k = 3; k <= n; k++) {
      pat[++npat] = w[k]; glob[npat] = (w[k] ~ /\*$/)
      grp[npat] = w[k]; sub(/_\*$/, "", grp[npat]); layer_of[grp[npat]] = w[1] + 0
    }
  }
}
{
  file = $1; m = module_of(stem(file))
  if (m == "") { if (!(file in unknown)) printf "no layer for %s: add its module to test/check-layers.sh\n", file; unknown[file] = 1; bad = 1; next }
  if ($2 == "-") next
  h = module_of(stem($2))
  if (h == "") next   # a header of another project
  if (layer_of[h] > layer_of[m]) {
    printf "upward include: %s (%s, layer %d %s) includes %s (%s, layer %d %s)\n", file, m, layer_of[m], lname[layer_of[m]], $2, h, layer_of[h], lname[layer_of[h]]
    bad = 1
  }
  if (h != m && !((m SUBSEP h) in edge)) { edge[m, h] = 1; out[m] = out[m] " " h; mods[m] = 1; mods[h] = 1 }
}
END {
  for (m in mods) state[m] = 0
  for (m in mods) if (state[m] == 0) visit(m)
  if (verbose) {
    for (l = 0; l <= maxl; l++) {
      line = ""
      for (m in mods) if (layer_of[m] == l) line = line sprintf("  %s ->%s\n", m, out[m] == "" ? " (nothing)" : out[m])
      if (line != "") printf "layer %d %s\n%s", l, lname[l], line
    }
  }
  if (bad) { print "check-layers: FAILED"; exit 1 }
  print "check-layers: every include points down or sideways, no circle"
}'
