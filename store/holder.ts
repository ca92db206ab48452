/**
 * Who holds a store: LevelDB's lock says only that someone does. The process that takes it
 * records itself in <store>/run/holder.json (pid, command line, since), so the next process can
 * name it ("in use by pid 4242: miq ingest /data, since 02:10:05 UTC") instead of guessing.
 * Best effort: a read-only store records nothing, and a record whose pid is gone is ignored.
 */
import { readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { privateDir, runDirOf } from './private-dir.js';

export interface Holder { pid: number; command: string; cwd: string; since: string }

const fileOf = (dir: string): string => join(dir, 'run', 'holder.json');

export async function recordHolder(dir: string): Promise<void> {
  const h: Holder = { pid: process.pid, command: ['miq', ...process.argv.slice(2)].join(' '), cwd: process.cwd(), since: new Date().toISOString() };
  try {
    await privateDir(runDirOf(dir));
    const tmp = `${fileOf(dir)}.${process.pid}`;
    await writeFile(tmp, JSON.stringify(h), { flag: 'wx', mode: 0o600 });
    await rename(tmp, fileOf(dir));
  } catch {
    // A read-only store (or a run directory that is not ours, refused by privateDir): the lock
    // message then cannot name the holder.
  }
}

export async function readHolder(dir: string): Promise<Holder | undefined> {
  try {
    const h = JSON.parse(await readFile(fileOf(dir), 'utf8')) as Holder;
    try {
      process.kill(h.pid, 0);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EPERM') return undefined;
    }
    return h;
  } catch {
    return undefined;
  }
}

export async function releaseHolder(dir: string): Promise<void> {
  const h = await readHolder(dir);
  if (h?.pid === process.pid) await unlink(fileOf(dir)).catch(() => {});
}

/** "pid N (`miq …`, since HH:MM:SS UTC)" and how to stop it, or undefined when unknown. */
export async function describeHolder(dir: string): Promise<string | undefined> {
  const h = await readHolder(dir);
  if (!h) return undefined;
  const m = /^miq(?: --store \S+)? mount (\S+)/.exec(h.command);
  const stop = m ? `; stop it with \`miq umount ${m[1]!.startsWith('/') ? m[1] : join(h.cwd, m[1]!)}\`` : '; wait for it to finish, or stop it';
  return `pid ${h.pid} (\`${h.command}\`, since ${h.since.slice(11, 19)} UTC)${stop}`;
}
