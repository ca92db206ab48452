/**
 * What the kernel has mounted where (/proc/self/mountinfo), and clearing what a killed server
 * left behind. All I/O here is asynchronous: the serving process must never block its own event
 * loop on a path that its own FUSE handlers would have to answer.
 */
import { spawn } from 'node:child_process';
import { readdir, readFile, stat } from 'node:fs/promises';
import { MiqError } from '../store/errors.js';

export interface MountEntry {
  mountpoint: string;
  fstype: string;
  source: string;
  /** major:minor of the file system (a bind shows its source's). */
  device: string;
}

const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

export async function mounts(): Promise<MountEntry[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const [left, right] = line.split(' - ');
    const f = left!.split(' ');
    const r = (right ?? '').split(' ');
    out.push({ mountpoint: unescape(f[4]!), fstype: r[0] ?? '', source: unescape(r[1] ?? ''), device: f[2] ?? '' });
  }
  return out;
}

/** Mounts at `dir` or below it, deepest first (the order to unmount them in). */
export async function mountsUnder(dir: string): Promise<MountEntry[]> {
  const all = await mounts();
  return all.filter((m) => m.mountpoint === dir || m.mountpoint.startsWith(`${dir}/`)).sort((a, b) => b.mountpoint.length - a.mountpoint.length);
}

/** The device of the FUSE mount at `mountpoint` (the last one mounted there), if any. */
export async function fuseDeviceAt(mountpoint: string): Promise<string | undefined> {
  return (await mounts()).filter((m) => m.mountpoint === mountpoint && m.fstype.startsWith('fuse')).pop()?.device;
}

/** Every FUSE mountpoint showing one of these devices (the mounts and any bind of them, also
 * binds made by others), deepest first. */
export async function fuseMountsOf(devices: readonly string[]): Promise<string[]> {
  return (await mounts()).filter((m) => devices.includes(m.device) && m.fstype.startsWith('fuse')).map((m) => m.mountpoint).sort((a, b) => b.length - a.length);
}

export function run(cmd: string, args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    c.stderr.on('data', (d) => (stderr += d));
    c.on('error', (e) => resolve({ code: 127, stderr: e.message }));
    c.on('close', (code) => resolve({ code: code ?? 1, stderr }));
  });
}

/** Lazy unmount: detaches now, frees when the last user lets go. */
export async function lazyUnmount(mountpoint: string): Promise<void> {
  const r = await run('umount', ['-l', mountpoint]);
  if (r.code !== 0) {
    const f = await run('fusermount', ['-uz', mountpoint]);
    if (f.code !== 0) throw new MiqError('MIQ_IO', `cannot unmount ${mountpoint}: ${r.stderr.trim() || f.stderr.trim()}`);
  }
}

export type Liveness = 'alive' | 'stale' | 'hung';

/** A stat with a deadline: a dead FUSE server answers ENOTCONN at once; a frozen one never. */
export async function probe(path: string, ms = 2000): Promise<Liveness> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<Liveness>((r) => (timer = setTimeout(() => r('hung'), ms)));
  const s = stat(path).then(() => 'alive' as const, (e: NodeJS.ErrnoException) => (e.code === 'ENOTCONN' || e.code === 'ECONNABORTED' ? 'stale' as const : 'alive' as const));
  try {
    return await Promise.race([s, t]);
  } finally {
    clearTimeout(timer);
  }
}

export interface PrepareResult {
  /** Mounts cleared because their server was gone. */
  cleared: string[];
}

/**
 * Makes `dir` ready to mount on: clears stale FUSE mounts a killed server left (at `dir` and
 * below), and refuses a mountpoint that is live, not a directory, or not empty.
 */
export async function prepareMountpoint(dir: string): Promise<PrepareResult> {
  const cleared: string[] = [];
  const here = await mountsUnder(dir);
  if (here.length > 0) {
    const top = here.find((m) => m.mountpoint === dir);
    const state = top ? await probe(dir) : 'alive';
    if (top && state === 'stale') {
      for (const m of here) {
        await lazyUnmount(m.mountpoint);
        cleared.push(m.mountpoint);
      }
    } else {
      const what = top ? `${top.fstype} (${top.source})` : `${here[0]!.fstype} at ${here[0]!.mountpoint}`;
      throw new MiqError('MIQ_BAD_INPUT', `${dir} is busy: ${what} is mounted there${state === 'hung' ? ' and not answering' : ''}; unmount it first (\`umount ${top ? dir : here[0]!.mountpoint}\`) or pick another directory`, { details: { dir, mounted: here.map((m) => m.mountpoint) } });
    }
  }
  let s;
  try {
    s = await stat(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new MiqError('MIQ_NOT_FOUND', `mountpoint ${dir} does not exist; create it with \`mkdir -p ${dir}\``, { details: { dir } });
    throw new MiqError('MIQ_IO', `cannot use ${dir} as a mountpoint: ${(e as Error).message}`, { cause: e });
  }
  if (!s.isDirectory()) throw new MiqError('MIQ_BAD_INPUT', `mountpoint ${dir} is not a directory`, { details: { dir } });
  const names = await readdir(dir);
  if (names.length > 0) throw new MiqError('MIQ_BAD_INPUT', `mountpoint ${dir} is not empty (${names.slice(0, 3).join(', ')}${names.length > 3 ? ', …' : ''}); mount on an empty directory`, { details: { dir, entries: names.length } });
  return { cleared };
}
