/**
 * Small helpers the benchmark modules share: running shell commands with a timer, sizing
 * directories, medians and human-readable figures. No printing here: callers pass a logger.
 */
import { spawn } from 'node:child_process';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

export type Log = (line: string) => void;
export const quiet: Log = () => {};

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  seconds: number;
}

/** Run `cmd` under bash; wall time is measured around the whole child, start to exit. */
export function sh(
  cmd: string,
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; check?: boolean; input?: string } = {},
): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn('bash', ['-o', 'pipefail', '-c', cmd], {
      env: { ...process.env, ...opts.env },
      cwd: opts.cwd,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => {
      // Keep the tail only: some tools print a line per file.
      err.push(b);
      if (err.length > 200) err.splice(0, err.length - 200);
    });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    child.on('error', reject);
    child.on('close', (code) => {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const r: RunResult = {
        code: code ?? -1,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        seconds,
      };
      if (opts.check !== false && r.code !== 0) {
        reject(new Error(`command failed (${r.code}): ${cmd}\n${r.stderr.slice(-2000)}`));
      } else resolvePromise(r);
    });
  });
}

/** Quote one word for bash. */
export function q(s: string): string {
  return /^[A-Za-z0-9_./=:@%+,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

export async function which(cmd: string): Promise<boolean> {
  const r = await sh(`command -v ${q(cmd)}`, { check: false });
  return r.code === 0;
}

export interface TreeStats {
  files: number;
  dirs: number;
  symlinks: number;
  /** Sum of regular file sizes, every name counted (what a store that ignores hard links reads). */
  bytes: number;
  /** The same with each hard-linked inode counted once (what `du` shows). */
  inodeBytes: number;
}

/** Walk without following symlinks; a hard-linked inode is counted once, as every store keeps it. */
export async function treeStats(root: string): Promise<TreeStats> {
  const s: TreeStats = { files: 0, dirs: 0, symlinks: 0, bytes: 0, inodeBytes: 0 };
  const seen = new Set<string>();
  const stack = [root];
  while (stack.length) {
    const dir = stack.pop()!;
    s.dirs++;
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) stack.push(p);
      else if (e.isSymbolicLink()) s.symlinks++;
      else if (e.isFile()) {
        const st = await lstat(p, { bigint: true });
        const key = `${st.dev}:${st.ino}`;
        s.files++;
        s.bytes += Number(st.size);
        if (st.nlink > 1n) {
          if (seen.has(key)) continue;
          seen.add(key);
        }
        s.inodeBytes += Number(st.size);
      }
    }
  }
  return s;
}

/** Stored bytes of a repository or image: apparent sizes of everything under `path`. */
export async function storedBytes(path: string): Promise<number> {
  const st = await lstat(path);
  if (!st.isDirectory()) return st.size;
  // A miq store's full-disk reserve (<store>/reserve, 8 MiB) is held-back free space, not data.
  const reserve = await lstat(join(path, 'reserve')).then((r) => (r.isFile() ? r.size : 0), () => 0);
  return (await treeStats(path)).inodeBytes - reserve;
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function fmtBytes(n: number): string {
  if (!Number.isFinite(n)) return 'n/a';
  const a = Math.abs(n);
  if (a >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (a >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (a >= 1e3) return `${(n / 1e3).toFixed(1)} kB`;
  return `${n} B`;
}

export function fmtSec(s: number): string {
  if (!Number.isFinite(s)) return 'n/a';
  return s >= 10 ? `${s.toFixed(1)} s` : `${s.toFixed(2)} s`;
}

export function fmtRatio(x: number): string {
  if (!Number.isFinite(x)) return 'n/a';
  return x >= 10 ? `${x.toFixed(1)}×` : `${x.toFixed(2)}×`;
}
