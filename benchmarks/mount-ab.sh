#!/bin/bash
# A/B of the mount's cold reads, builds alternating in the same minutes (a loaded machine moves
# wall time a lot; alternation, the serving process's CPU and request counts move less).
#
#   benchmarks/mount-ab.sh read|large|warm ROUNDS SPEC...
#
# SPEC: `plain` (the bench tree on ext4), or a worktree with a built miq (dist/ and the addon),
# optionally with environment for its mount: WT@MIQ_MOUNT_THREADS=1,MIQ_MOUNT_NOTIFY=0.
# read: `xargs -0 cat` of every file in $LIST (default: the bench's files.list) through the store
# view (VIEW=usr, or VIEW=usr in a SPEC's environment: through the usr view); large: `dd bs=1M` of $BIG; warm: the read of $LIST once
# (not timed), then again, timed: the benchmark's warm re-read, with the FUSE requests the kernel
# sent on this mount's connection during it (perf's fuse:fuse_request_send tracepoint; `-` without
# perf) and `DROPPED` when someone wrote drop_caches since the first read began (/proc/vmstat drop_pagecache: that
# run is a cold read, not a warm one; on a shared machine other sessions' cold benchmarks do). Before each: the mount restarted and the page cache
# dropped (NODROP=1: not dropped; the store's packs and index stay cached, the mount is still new).
#
# RT=1 runs the mount and the read under SCHED_FIFO (chrt -f 10): on a machine loaded by others
# their CPU then barely moves the figures (a cold dd of the bench's 117 MB file: 0.27-0.35 s at
# load 9, under CFS 0.6-1.7 s). It is not the quiet figure either: the vCPUs never idle, so the
# wake-ups of halted vCPUs a quiet machine pays (guest_halt_poll_ns=0 here) are not measured.
# Prints per run: wall seconds, the serving process's CPU (user+sys) during the read, the CPU of
# its busiest threads, the load average, and the request counts (MIQ_DEBUG_COUNTS).
#
# Needs root and the tree benchmarks/mount.ts prepares (/var/cache/miq-mount-bench). STORE
# (default: that bench store) should be a COPY (cp -a) when old builds take part: a miq since
# format 3 raises the store's version when it mounts it, and older builds then refuse it.
set -u
MODE=$1; R=$2; shift 2
B=${BENCH:-/var/cache/miq-mount-bench}
S=${STORE:-$B/store}; P=$(cat "$B/store.path"); L=${LIST:-$B/files.list}
BIG=${BIG:-lib/x86_64-linux-gnu/libLLVM-15.so.1}
M=$(mktemp -d /tmp/miq-ab.XXXXXX); OUT=$M.out; ERR=$M.err
TCK=$(getconf CLK_TCK)
cpu() { awk -v t="$TCK" '{print ($14+$15)/t}' "/proc/$1/stat"; }
threads() { for t in /proc/$1/task/*; do awk -v t="$TCK" '{printf "%.2f\n", ($14+$15)/t}' "$t/stat"; done | sort -rn | head -4 | tr '\n' ' '; }
drops() { awk '/^drop_pagecache/ {print $2}' /proc/vmstat; }
conn() { awk -v m="$1" '$5 == m {print $3}' /proc/self/mountinfo | head -1 | cut -d: -f2; }
run() { # DIR: the read, timed
  local s e
  [ "$MODE" = warm ] && (cd "$1" && xargs -0 cat < "$L" > /dev/null)
  s=$(date +%s.%N)
  if [ "$MODE" = large ]; then dd if="$1/$BIG" of=/dev/null bs=1M status=none; else (cd "$1" && xargs -0 cat < "$L" > /dev/null); fi
  e=$(date +%s.%N)
  echo "$e - $s" | bc
}
RTCMD=''; [ "${RT:-0}" = 1 ] && RTCMD='chrt -f 10'
trap 'mountpoint -q "$M" && umount -l "$M"; rm -f "$OUT" "$ERR" "$M.perf"; rmdir "$M" 2>/dev/null' EXIT
for r in $(seq 1 "$R"); do
  for spec in "$@"; do
    if [ "$spec" = plain ]; then
      [ "${NODROP:-0}" = 1 ] || { sync; echo 3 > /proc/sys/vm/drop_caches; }
      printf '%-16s %-34s %6.3f s load %s\n' plain '' "$($RTCMD bash -c "$(declare -f run); MODE=$MODE BIG='$BIG' L='$L' run '$B/tree'")" "$(cut -d' ' -f1 /proc/loadavg)"
      continue
    fi
    wt=${spec%%@*}; envs=''; [ "$spec" != "$wt" ] && envs=$(echo "${spec#*@}" | tr ',' ' ')
    # No recall list (fs/recall.ts): the last mount's stop wrote one, and replaying it would warm this one.
    rm -f "$S"/run/mount-recall.*
    # Emptied first: the server truncates it only once it runs, and the wait below must not see the last run's "mounted".
    : > "$OUT"
    # shellcheck disable=SC2086
    env $envs MIQ_DEBUG_COUNTS=1 $RTCMD node "$wt/bin/miq" --store "$S" mount "$M" --json > "$OUT" 2> "$ERR" & pid=$!
    for _ in $(seq 1 150); do grep -q mounted "$OUT" && break; sleep 0.2; done
    [ "${NODROP:-0}" = 1 ] || { sync; echo 3 > /proc/sys/vm/drop_caches; }
    D="$M/store/$P"; case "${VIEW:-store} $envs " in usr*|*" VIEW=usr "*) D="$M/usr" ;; esac
    extra=''
    if [ "$MODE" = warm ]; then
      k0=$(drops)
      (cd "$D" && xargs -0 cat < "$L" > /dev/null)
      c0=$(cpu $pid); n=$(conn "$M")
      if command -v perf > /dev/null && [ -n "$n" ]; then
        # shellcheck disable=SC2016
        t=$(perf stat -x, -o "$M.perf" -e fuse:fuse_request_send --filter "connection == $n" -a -- bash -c 's=$(date +%s.%N); cd "$1" && xargs -0 cat < "$2" > /dev/null; e=$(date +%s.%N); echo "$e - $s" | bc' _ "$D" "$L")
        extra="fuse requests $(grep fuse_request_send "$M.perf" | cut -d, -f1)"
      else
        s0=$(date +%s.%N); (cd "$D" && xargs -0 cat < "$L" > /dev/null); t=$(echo "$(date +%s.%N) - $s0" | bc); extra='fuse requests -'
      fi
      c1=$(cpu $pid)
      [ "$(drops)" != "$k0" ] && extra="$extra DROPPED"
    else
      c0=$(cpu $pid); t=$($RTCMD bash -c "$(declare -f run); MODE=$MODE BIG='$BIG' L='$L' run '$D'"); c1=$(cpu $pid)
    fi
    th=$(threads $pid)
    kill -TERM $pid; wait $pid
    printf '%-16s %-34s %6.3f s cpu %5.3f s (threads %s) load %s %s %s\n' "$(basename "$wt")@$(git -C "$wt" rev-parse --short HEAD 2>/dev/null)" "$envs" "$t" \
      "$(echo "$c1 - $c0" | bc)" "$th" "$(cut -d' ' -f1 /proc/loadavg)" "$extra" "$(grep -o 'requests .*' "$ERR" | head -c 400)"
  done
done
