#!/bin/bash
# A/B of a program's start through the `usr` view (the mount benchmark's python figure), builds
# alternating in the same minutes on a fresh mount per run.
#
#   benchmarks/mount-py-ab.sh ROUNDS SPEC...
#
# SPEC: `plain` (the bench tree, bwrapped the same way), or a worktree with a built miq,
# optionally with environment for its mount: WT@MIQ_MOUNT_THREADS=1, and node flags after a #:
# WT#--always-sparkplug. DROP=1 drops the page cache
# after the mount starts (what the benchmark's "cold" does; without it the store's packs and index
# stay cached and only the mount is new). WARM=1 also times a second start on the same mount.
# Prints per run: wall seconds, the serving process's CPU (user+sys) during the start, its busiest
# threads, the load average and the request counts (MIQ_DEBUG_COUNTS). STORE: a copy of the bench
# store (cp -a) so other runs of the benchmark are not disturbed.
set -u
# RECALL=1: before each timed start of a miq spec, one untimed start on a mount of its own, whose
# stop writes the mount's recall list (fs/recall.ts): the timed start then replays the files that
# start read. Without it the list is removed before every mount: a start with no history.
# RT=1: the server and python under SCHED_FIFO (chrt -f 10), as mount-walk-ab.sh's RT: at load
# 8 a start's wall was bimodal (0.25 or 0.5 s) from others' CPU alone.
PRI=''; [ "${RT:-0}" = 1 ] && PRI='chrt -f 10'
R=$1; shift
B=${BENCH:-/var/cache/miq-mount-bench}
S=${STORE:-$B/store}
M=$(mktemp -d /tmp/miq-pyab.XXXXXX); OUT=$M.out; ERR=$M.err
TCK=$(getconf CLK_TCK)
cpu() { awk -v t="$TCK" '{print ($14+$15)/t}' "/proc/$1/stat"; }
# main: the serving (JS) thread; other: every other thread of the server (decode pool, libuv,
# V8's compiler and GC helpers, the FUSE loop, the pusher)
main() { awk -v t="$TCK" '{print ($14+$15)/t}' "/proc/$1/task/$1/stat"; }
py() { # USRDIR: one start, timed
  local s e
  s=$(date +%s.%N)
  $PRI bwrap --ro-bind "$1" /usr --symlink usr/lib /lib --symlink usr/lib64 /lib64 --symlink usr/bin /bin --symlink usr/sbin /sbin --ro-bind /etc /etc --proc /proc --dev /dev --tmpfs /tmp /usr/bin/python3 -c 'import json, sqlite3, ssl'
  e=$(date +%s.%N)
  echo "$e - $s" | bc
}
# A run cut short (timeout, ^C): the server is stopped and its mount let go even when the server
# died first (mountpoint -q fails on a dead connection; /proc/mounts still lists it).
pid=''
stop() { [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; for d in "$M/usr" "$M"; do grep -q " $d fuse" /proc/mounts && umount -l "$d"; done; rm -f "$OUT" "$ERR"; rmdir "$M" 2>/dev/null; }
trap stop EXIT
trap 'exit 130' INT TERM
for r in $(seq 1 "$R"); do
  for spec in "$@"; do
    if [ "$spec" = plain ]; then
      [ "${DROP:-0}" = 1 ] && { sync; echo 3 > /proc/sys/vm/drop_caches; }
      printf '%-16s %-30s %6.3f s load %s\n' plain '' "$(py "$B/tree")" "$(cut -d' ' -f1 /proc/loadavg)"
      continue
    fi
    flags=''; case $spec in *'#'*) flags=$(echo "${spec#*#}" | tr ',' ' '); spec=${spec%%#*};; esac
    wt=${spec%%@*}; envs=''; [ "$spec" != "$wt" ] && envs=$(echo "${spec#*@}" | tr ',' ' ')
    rm -f "$S"/run/mount-recall.*
    if [ "${RECALL:-0}" = 1 ]; then
      # shellcheck disable=SC2086
      env $envs $PRI node $flags "$wt/bin/miq" --store "$S" mount "$M" --json > "$OUT" 2> "$ERR" & pid=$!
      for _ in $(seq 1 150); do grep -q mounted "$OUT" && break; sleep 0.2; done
      py "$M/usr" > /dev/null || { echo "recording start failed: $(tail -c 600 "$ERR")"; cat "$OUT"; }
      kill -TERM $pid; wait $pid; pid=''
    fi
    # shellcheck disable=SC2086
    env $envs MIQ_DEBUG_COUNTS=1 $PRI node $flags "$wt/bin/miq" --store "$S" mount "$M" --json > "$OUT" 2> "$ERR" & pid=$!
    for _ in $(seq 1 150); do grep -q mounted "$OUT" && break; sleep 0.2; done
    [ "${DROP:-0}" = 1 ] && { sync; echo 3 > /proc/sys/vm/drop_caches; }
    c0=$(cpu $pid); m0=$(main $pid); t=$(py "$M/usr"); c1=$(cpu $pid); m1=$(main $pid)
    w=''; [ "${WARM:-0}" = 1 ] && w="warm $(py "$M/usr") s"
    kill -TERM $pid; wait $pid; pid=''
    printf '%-16s %-30s %6.3f s %s cpu %5.2f s (main %5.2f) load %s %s\n' "$(basename "$wt")" "$envs$flags" "$t" "$w" \
      "$(echo "$c1 - $c0" | bc)" "$(echo "$m1 - $m0" | bc)" "$(cut -d' ' -f1 /proc/loadavg)" "$(grep -o 'requests .*' "$ERR" | head -c "${COUNTS:-600}")"
    [ -n "${LOG:-}" ] && grep -E "$LOG" "$ERR"
  done
done
