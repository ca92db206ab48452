/**
 * Helpers for tests that mount for real. Everything that touches a mounted path runs in a child
 * process or through async fs: the test process serves the mount itself, so a synchronous call
 * on the mount would deadlock it.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, writeFile, mkdir, symlink, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lazyUnmount, mountsUnder } from '../../mount/mountinfo.js';
import { spawnMiq } from './cli.js';

/**
 * Whether the kernel lets a FUSE server take requests over io_uring (MIQ_MOUNT_URING=1):
 * kernel 6.14+ with /sys/module/fuse/parameters/enable_uring Y (N by default; a root,
 * system-wide setting miq never makes). A file on sysfs, not on a mount: read synchronously.
 */
export function uringAllowed(): boolean {
  try {
    return readFileSync('/sys/module/fuse/parameters/enable_uring', 'utf8').trim() === 'Y';
  } catch {
    return false;
  }
}

export interface Sh { code: number; stdout: string; stderr: string }

/** Runs a shell command asynchronously; never throws. */
export function sh(cmd: string, opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Sh> {
  return new Promise((resolve) => {
    execFile('/bin/bash', ['-c', cmd], { env: { ...process.env, ...opts.env }, maxBuffer: 1 << 28, timeout: opts.timeoutMs ?? 120_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0, stdout, stderr });
    });
  });
}

export async function tmp(prefix = 'miq-fuse-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** Unmounts whatever is left at or below `dir` (deepest first), then removes it. */
export async function cleanup(dir: string): Promise<void> {
  for (const m of await mountsUnder(dir)) await lazyUnmount(m.mountpoint).catch(() => {});
  // rm(1): Node's recursive removal is slow on big folders (see removeTree in helpers/cli.ts).
  await new Promise<void>((res) => execFile('rm', ['-rf', '--one-file-system', dir], () => res()));
}

/** A small tree with the awkward cases: exe, symlinks, empty file, empty dir, nested dirs,
 * a multi-chunk file, a non-ASCII name. */
export async function fixtureTree(root: string, seed = 1): Promise<void> {
  await mkdir(join(root, 'bin'), { recursive: true });
  await mkdir(join(root, 'share/doc/deep/er'), { recursive: true });
  await mkdir(join(root, 'empty'), { recursive: true });
  await writeFile(join(root, 'bin/hello'), `#!/bin/sh\necho hello ${seed}\n`);
  await chmod(join(root, 'bin/hello'), 0o755);
  await writeFile(join(root, 'share/doc/README'), `readme ${seed}\n`);
  await writeFile(join(root, 'share/doc/empty'), '');
  await writeFile(join(root, 'share/doc/deep/er/bl\u00e5b\u00e6r'), 'berries\n');
  let x = seed * 2654435761;
  const big = Buffer.alloc(3 * 1024 * 1024 + 12345);
  for (let i = 0; i < big.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    big[i] = x >>> 24;
  }
  await writeFile(join(root, 'share/big.bin'), big);
  await symlink('../share/doc/README', join(root, 'bin/readme-link'));
  await symlink('/etc/hostname', join(root, 'abs-link'));
}

export function waitExit(c: ReturnType<typeof spawn>): Promise<number | null> {
  return new Promise((r) => {
    if (c.exitCode !== null || c.signalCode !== null) return r(c.exitCode);
    c.once('exit', (code) => r(code));
  });
}

/** A `miq mount … --json` child that has started serving. */
export interface MiqMount {
  child: ChildProcess;
  /** Its status line (`mounted`, `dir`, `cleared`, …). */
  status: Record<string, unknown>;
  stderr: () => string;
  /** SIGTERM (SIGKILL after 10 s), then its exit code. */
  stop(): Promise<number | null>;
}

/**
 * Runs `miq ARGS` (a `mount … --json`, in the foreground) and resolves once its status line
 * (`"mounted":…`) is printed (the mount serves then), or rejects with its stderr if it exits first.
 */
export async function startMiqMount(args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): Promise<MiqMount> {
  const child = spawnMiq(args, opts);
  let out = '', err = '';
  child.stderr!.on('data', (d) => (err += d));
  const status = await new Promise<Record<string, unknown>>((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      out += d;
      // The status line says `mounted`; a lazy mount may print other lines before it.
      for (const line of out.split('\n').slice(0, -1)) {
        if (line.includes('"mounted"')) return resolve(JSON.parse(line) as Record<string, unknown>);
      }
    });
    child.once('exit', (code) => reject(new Error(`miq ${args.join(' ')} exited ${code}: ${err}`)));
  });
  return {
    child, status, stderr: () => err,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      // Never wait forever on a server that does not end (a test's `after` would hang the suite).
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      try { return await waitExit(child); } finally { clearTimeout(t); }
    },
  };
}

/** A `miq mount DIR …` child of a test (see startMiqMount) and its directory. */
export interface MountedDir {
  child: ChildProcess;
  dir: string;
  stderr: () => string;
  /** Ends the server (SIGTERM, SIGKILL after 10 s) and lazily unmounts what it may have left (DIR/usr, DIR). */
  stop(): Promise<void>;
}

/** Starts `miq mount DIR ARGS…` (ARGS must include `--json`) and resolves once it serves. */
export async function mountDir(dir: string, args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): Promise<MountedDir> {
  const mm = await startMiqMount(['mount', dir, ...args], opts);
  return {
    child: mm.child, dir, stderr: mm.stderr,
    async stop() {
      await mm.stop();
      for (const d of [join(dir, 'usr'), dir]) await sh(`mountpoint -q ${d} && umount -l ${d}`);
    },
  };
}
