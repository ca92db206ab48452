/**
 * Following a build log while it is written (`miq build -L`, `miq log -f`). The file is read
 * through one open descriptor: a build removes its work directory right after its script ends,
 * and an open descriptor still reads the whole file after that, so the last lines are never lost.
 */
import { closeSync, openSync, readSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const POLL_MS = 200;

export interface Follower {
  /** Reads what is left and stops. */
  stop(): void;
}

export function followFile(file: string, write: (b: Buffer) => void): Follower {
  const fd = openSync(file, 'r');
  let pos = 0;
  const buf = Buffer.alloc(64 * 1024);
  const drain = (): void => {
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, pos);
      if (n <= 0) return;
      pos += n;
      write(Buffer.from(buf.subarray(0, n)));
    }
  };
  drain();
  const timer = setInterval(drain, POLL_MS);
  let stopped = false;
  return {
    stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      drain();
      closeSync(fd);
    },
  };
}

/**
 * The log of a build of `spec` (NAME-HASH, NAME, or the recipe name without its version) running now from this store: builds keep their
 * work under <store>/tmp/build-PID/miq-build-*\/NAME-HASH-*\/log. Newest first when several match.
 */
export function runningBuildLog(storeDir: string, spec: string): { file: string; path: string; pid: number } | undefined {
  const tmp = join(storeDir, 'tmp');
  const found: { file: string; path: string; pid: number; mtime: number }[] = [];
  const ls = (d: string): string[] => { try { return readdirSync(d); } catch { return []; } };
  for (const b of ls(tmp)) {
    const pid = /^build-(\d+)$/.exec(b)?.[1];
    if (!pid) continue;
    for (const root of ls(join(tmp, b)).filter((r) => r.startsWith('miq-build-'))) {
      for (const w of ls(join(tmp, b, root))) {
        const m = /^(.+-[0-9a-f]{32})-[^-]+$/.exec(w);
        if (!m || !(m[1] === spec || m[1]!.startsWith(`${spec}-`))) continue; // NAME-HASH, NAME (with its version) or NAME without the version
        const file = join(tmp, b, root, w, 'log');
        try {
          found.push({ file, path: m[1]!, pid: Number(pid), mtime: statSync(file).mtimeMs });
        } catch { /* not started yet, or just finished */ }
      }
    }
  }
  found.sort((a, b) => b.mtime - a.mtime);
  return found[0];
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Follows `file` until it is gone (the build removed its work directory) or `pid` has exited. */
export async function followUntilGone(file: string, pid: number, write: (b: Buffer) => void): Promise<void> {
  const f = followFile(file, write);
  await new Promise<void>((res) => {
    const t = setInterval(() => {
      let gone = !alive(pid);
      try { statSync(file); } catch { gone = true; }
      if (gone) {
        clearInterval(t);
        res();
      }
    }, POLL_MS);
  });
  f.stop();
}
