/**
 * One build in a bubblewrap sandbox. What the script sees:
 *   /miq/store/<own path>   $out, the only writable place that outlives the build
 *   /miq/store/<dep>        each declared dependency (and its run-time closure), read-only
 *   /miq/sources/<name>     the verified sources, read-only ($src is the first, $srcs all)
 *   /build                  the working directory, scratch, discarded
 *   /tmp, /dev, /proc       private
 *   /usr, /bin, /lib…       the host's, read-only, only when the recipe declares `toolchain`
 * and nothing else: the root is a tmpfs remounted read-only once the mounts are in place, all
 * namespaces are unshared (no network but a loopback of its own), all capabilities are dropped and
 * the script runs as uid 1000.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, lstatSync, openSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MiqError } from '../store/errors.js';

export const SANDBOX_STORE = '/miq/store';
export const SANDBOX_SOURCES = '/miq/sources';
export const SANDBOX_BUILD = '/build';
export const SANDBOX_UID = 1000;

export interface SandboxSpec {
  /** Host directory bound at /build. */
  buildDir: string;
  /** Host directory bound writable at /miq/store/<outPath>. */
  outDir: string;
  outPath: string;
  /** Dependencies: store path and the host directory holding its tree. */
  deps: readonly { path: string; dir: string }[];
  sources: readonly { name: string; file: string }[];
  /** Host file with the script, bound at /miq/script.sh. */
  scriptFile: string;
  /** Host files for /etc/passwd, /etc/group, /etc/hosts. */
  etcDir: string;
  toolchain: boolean;
  /** Which dependency provides /bin/sh when the host toolchain is not used. */
  shellFrom?: string;
  env: Readonly<Record<string, string>>;
}

/** The bwrap argument list for a spec. Pure, so tests can check it without running anything. */
export function bwrapArgs(spec: SandboxSpec): string[] {
  const a: string[] = [
    '--unshare-all',
    '--die-with-parent',
    '--new-session',
    '--cap-drop', 'ALL',
    '--uid', String(SANDBOX_UID),
    '--gid', String(SANDBOX_UID),
    '--hostname', 'miq-build',
    '--dev', '/dev',
    '--proc', '/proc',
    '--tmpfs', '/tmp',
  ];
  if (spec.toolchain) {
    a.push('--ro-bind', '/usr', '/usr');
    for (const d of ['bin', 'lib', 'lib32', 'lib64', 'libx32', 'sbin']) {
      // Merged-/usr hosts have these as symlinks into /usr; older ones as directories.
      if (existsSync(`/${d}`)) a.push(...(isSymlink(`/${d}`) ? ['--symlink', `usr/${d}`, `/${d}`] : ['--ro-bind', `/${d}`, `/${d}`]));
    }
    for (const f of ['/etc/alternatives', '/etc/ld.so.cache', '/etc/ld.so.conf', '/etc/ld.so.conf.d']) {
      if (existsSync(f)) a.push('--ro-bind', f, f);
    }
  } else if (spec.shellFrom) {
    a.push('--dir', '/bin', '--symlink', `${SANDBOX_STORE}/${spec.shellFrom}/bin/sh`, '/bin/sh');
  }
  for (const f of ['passwd', 'group', 'hosts']) a.push('--ro-bind', join(spec.etcDir, f), `/etc/${f}`);
  for (const d of spec.deps) a.push('--ro-bind', d.dir, `${SANDBOX_STORE}/${d.path}`);
  for (const s of spec.sources) a.push('--ro-bind', s.file, `${SANDBOX_SOURCES}/${s.name}`);
  a.push('--bind', spec.outDir, `${SANDBOX_STORE}/${spec.outPath}`);
  a.push('--bind', spec.buildDir, SANDBOX_BUILD);
  a.push('--ro-bind', spec.scriptFile, '/miq/script.sh');
  a.push('--remount-ro', '/');
  a.push('--chdir', SANDBOX_BUILD);
  a.push('--clearenv');
  for (const k of Object.keys(spec.env).sort()) a.push('--setenv', k, spec.env[k]!);
  a.push('/bin/sh', '-e', '/miq/script.sh');
  return a;
}

function isSymlink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

export async function writeEtc(dir: string): Promise<void> {
  await writeFile(join(dir, 'passwd'), `root:x:0:0:root:/build:/bin/sh\nmiq:x:${SANDBOX_UID}:${SANDBOX_UID}:miq build:/build:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n`);
  await writeFile(join(dir, 'group'), `root:x:0:\nmiq:x:${SANDBOX_UID}:\nnogroup:x:65534:\n`);
  await writeFile(join(dir, 'hosts'), '127.0.0.1 localhost miq-build\n::1 localhost\n');
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
}

/** Runs the sandbox with stdout and stderr interleaved into `logFile`. */
export function runSandbox(spec: SandboxSpec, logFile: string, opts: { timeoutMs?: number; bwrap?: string } = {}): Promise<RunResult> {
  const fd = openSync(logFile, 'a');
  return new Promise<RunResult>((resolve, reject) => {
    let timedOut = false;
    const child = spawn(opts.bwrap ?? 'bwrap', bwrapArgs(spec), { stdio: ['ignore', fd, fd], env: {} });
    const timer = opts.timeoutMs ? setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs) : undefined;
    child.on('error', (e) => {
      if (timer) clearTimeout(timer);
      closeSync(fd);
      const enoent = (e as NodeJS.ErrnoException).code === 'ENOENT';
      reject(new MiqError('MIQ_BUILD_FAILED', enoent ? 'bubblewrap (bwrap) is not installed: apt-get install bubblewrap' : `cannot start bwrap: ${e.message}`, { cause: e }));
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      closeSync(fd);
      resolve({ code, signal, timedOut });
    });
  });
}
