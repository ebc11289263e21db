#!/usr/bin/env bash
# What storing thumbnails costs the worker per image (issue 14: within 5% of off).
# `facerec faces` runs the worker's encoder (the dlib pool: decode, thumbnail, detect,
# landmarks, encode) on face_recognition's seven sample images, with FACEREC_THUMBNAIL_PX
# 256 (the default) and 0 (off):
#   1. instructions, counted by callgrind (repeatable whatever else the machine does);
#   2. wall time, ROUNDS interleaved rounds of both, median per setting.
# Not run in CI. THUMB_IMAGES: another folder (callgrind runs dlib ~50x slower).
# Usage: benches/thumbnail_cost.sh [ROUNDS]   (needs the release binary:
# cargo build --release --features dlib; FACEREC_BIN to use another)
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
BIN=${FACEREC_BIN:-$REPO_ROOT/target/release/facerec}
ROUNDS=${1:-5}
[[ -x $BIN ]] || die "no binary at $BIN (cargo build --release --features dlib)"
command -v valgrind >/dev/null || apt_install valgrind
IMAGES_DIR=${THUMB_IMAGES:-$FACEREC_IMAGES}
mapfile -t images < <(find "$IMAGES_DIR" -maxdepth 1 -type f \( -name '*.jpg' -o -name '*.png' \) | sort)
(( ${#images[@]} > 0 )) || die "no sample images in $IMAGES_DIR (scripts/setup.sh)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

instructions() { # px
  FACEREC_THUMBNAIL_PX=$1 FACEREC_ENCODER_THREADS=1 valgrind --tool=callgrind --callgrind-out-file="$work/cg.$1" \
    "$BIN" faces "${images[@]}" >/dev/null 2>"$work/vg.$1"
  callgrind_annotate "$work/cg.$1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'
}
seconds() { # px
  local start end
  start=$(date +%s.%N)
  FACEREC_THUMBNAIL_PX=$1 "$BIN" faces "${images[@]}" >/dev/null
  end=$(date +%s.%N)
  echo "$end - $start" | bc -l
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

log "callgrind, ${#images[@]} images, thumbnails 256 px then off"
on=$(instructions 256)
off=$(instructions 0)
log "wall time, $ROUNDS interleaved rounds"
for _ in $(seq "$ROUNDS"); do
  seconds 256 >>"$work/on"
  seconds 0 >>"$work/off"
done
t_on=$(median <"$work/on")
t_off=$(median <"$work/off")
printf '| setting | instructions | wall s (median of %s) |\n|---|---|---|\n' "$ROUNDS"
printf '| thumbnails 256 px | %s | %.3f |\n| thumbnails off | %s | %.3f |\n' "$on" "$t_on" "$off" "$t_off"
printf '| on / off | %.4f | %.4f |\n' "$(echo "$on / $off" | bc -l)" "$(echo "$t_on / $t_off" | bc -l)"
