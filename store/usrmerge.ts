/**
 * `miq ingest --usrmerge`: a Debian-style tree (`bin etc lib lib64 sbin usr var`) laid out as a
 * `/usr`, so a profile of such packages is bound at /usr and the root only needs the usr-merge
 * links /bin /lib /lib64 /sbin -> usr/… (Debian 12 packages are not usr-merged themselves).
 *
 * The staged copy is hard-linked where the source shares a filesystem with the store (no bytes
 * copied) and copied otherwise; it lives under the store and is removed on every exit path.
 */
import { spawn } from 'node:child_process';
import { lstat, mkdir, readdir, readlink, rename, rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { MiqError } from './errors.js';

/** Directories of the root that move into usr/ (their usr-merged places). */
export const MERGED_DIRS = ['bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32'];

function cp(args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn('cp', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    c.stderr.on('data', (d) => (stderr += d));
    c.on('error', (e) => resolve({ code: 127, stderr: e.message }));
    c.on('close', (code) => resolve({ code: code ?? 1, stderr }));
  });
}

/** Moves `from`'s entries into `to`, merging directories; equal symlinks collapse, other clashes fail. */
async function mergeInto(from: string, to: string, where: string): Promise<void> {
  await mkdir(to, { recursive: true });
  for (const name of await readdir(from)) {
    const a = join(from, name);
    const b = join(to, name);
    const sb = await lstat(b).catch(() => undefined);
    if (!sb) {
      await rename(a, b);
      continue;
    }
    const sa = await lstat(a);
    if (sa.isDirectory() && sb.isDirectory()) await mergeInto(a, b, `${where}/${name}`);
    else if (sa.isSymbolicLink() && sb.isSymbolicLink() && (await readlink(a)) === (await readlink(b))) await rm(a);
    else throw new MiqError('MIQ_CONFLICT', `--usrmerge: ${where}/${name} exists both at / and under /usr; the tree cannot be usr-merged as it is`);
  }
  await rmdir(from);
}

/**
 * Stages `src` usr-merged under `stageRoot` and returns the directory to ingest (the new /usr:
 * usr's entries, the root's bin/lib/… merged in, every other top-level entry such as etc/ and
 * var/ kept by name) and a cleanup that removes the stage.
 */
export async function stageUsrMerged(src: string, stageRoot: string): Promise<{ dir: string; cleanup(): Promise<void> }> {
  await mkdir(stageRoot, { recursive: true });
  const stage = join(stageRoot, `usrmerge-${process.pid}-${Date.now().toString(36)}`);
  const cleanup = (): Promise<void> => rm(stage, { recursive: true, force: true });
  try {
    // -l: hard links (same filesystem); else a real copy. --no-dereference keeps symlinks as links.
    let r = await cp(['-al', '--no-dereference', `${src}/.`, stage]);
    if (r.code !== 0) {
      await cleanup();
      r = await cp(['-a', '--no-dereference', `${src}/.`, stage]);
    }
    if (r.code !== 0) throw new MiqError('MIQ_IO', `--usrmerge: cannot stage ${src}: ${r.stderr.trim()}`);
    const usr = join(stage, 'usr');
    const su = await lstat(usr).catch(() => undefined);
    if (su && !su.isDirectory()) throw new MiqError('MIQ_BAD_INPUT', `--usrmerge: ${src}/usr is not a directory`);
    await mkdir(usr, { recursive: true });
    for (const name of await readdir(stage)) {
      if (name === 'usr') continue;
      const p = join(stage, name);
      const st = await lstat(p);
      // An already usr-merged root has bin -> usr/bin: the link is what the sandbox provides.
      if (MERGED_DIRS.includes(name) && st.isSymbolicLink()) await rm(p);
      else if (st.isDirectory()) await mergeInto(p, join(usr, name), `/${name}`);
      else throw new MiqError('MIQ_BAD_INPUT', `--usrmerge: ${src}/${name} is a top-level ${st.isSymbolicLink() ? 'symlink' : 'file'}; only directories can move under /usr`);
    }
    return { dir: usr, cleanup };
  } catch (e) {
    await cleanup();
    throw e;
  }
}
