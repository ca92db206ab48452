/**
 * Walks a directory into an in-memory skeleton (no file contents). Names are raw bytes; links
 * are recorded, never followed; special files are refused (or skipped with `lenient`).
 */
import { lstat, readdir, readlink } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { MiqError, ioError } from './errors.js';

export interface FileNode {
  readonly t: 'file';
  readonly name: Buffer;
  readonly path: Buffer;
  readonly size: number;
  readonly exe: boolean;
  readonly stat: Stats;
  id?: string;
  /** The id came from the stat cache (the file was not read). */
  statHit?: boolean;
}
export interface LinkNode {
  readonly t: 'link';
  readonly name: Buffer;
  readonly target: Buffer;
}
export interface DirNode {
  readonly t: 'dir';
  readonly name: Buffer;
  readonly path: Buffer;
  readonly children: Node[];
  id?: string;
  size?: number;
}
export type Node = FileNode | LinkNode | DirNode;

export interface WalkResult {
  root: DirNode;
  files: FileNode[];
  dirs: number;
  links: number;
  bytes: number;
  droppedModeBits: number;
  /** Files and directories other users could not read here (no o+r, or a directory without
   * o+rx): the store serves everything to every user, so ingest names them. */
  notWorldReadable: number;
  notWorldReadablePaths: string[];
  skipped: { path: string; why: string }[];
}

/** How many such paths are named; the count is always exact. */
export const NOT_WORLD_READABLE_NAMED = 100;

const SLASH = Buffer.from('/');
const LSTAT_PARALLEL = 64;

function kindOf(st: Stats): string {
  if (st.isFIFO()) return 'a fifo';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  return 'an unsupported file type';
}

/** `onFile` sees each regular file as soon as it is found, so reading can start during the walk. */
export async function walk(rootPath: string, lenient: boolean, onFile?: (f: FileNode) => void): Promise<WalkResult> {
  const root: DirNode = { t: 'dir', name: Buffer.alloc(0), path: Buffer.from(rootPath), children: [] };
  const res: WalkResult = { root, files: [], dirs: 1, links: 0, bytes: 0, droppedModeBits: 0, notWorldReadable: 0, notWorldReadablePaths: [], skipped: [] };
  const stack: DirNode[] = [root];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    let names: Buffer[];
    try {
      names = await readdir(dir.path, { encoding: 'buffer' });
    } catch (e) {
      throw ioError(e, 'cannot read directory', dir.path.toString());
    }
    for (let i = 0; i < names.length; i += LSTAT_PARALLEL) {
      const slice = names.slice(i, i + LSTAT_PARALLEL);
      const stats = await Promise.all(
        slice.map(async (name) => {
          const path = Buffer.concat([dir.path, SLASH, name]);
          try {
            return { name, path, st: await lstat(path) };
          } catch (e) {
            throw ioError(e, 'cannot stat', path.toString());
          }
        }),
      );
      for (const { name, path, st } of stats) {
        if (st.mode & 0o7000) res.droppedModeBits++;
        if ((st.isFile() && !(st.mode & 0o004)) || (st.isDirectory() && (st.mode & 0o005) !== 0o005)) {
          if (res.notWorldReadable++ < NOT_WORLD_READABLE_NAMED) res.notWorldReadablePaths.push(path.toString());
        }
        if (st.isFile()) {
          const f: FileNode = { t: 'file', name, path, size: st.size, exe: (st.mode & 0o111) !== 0, stat: st };
          dir.children.push(f);
          res.files.push(f);
          res.bytes += st.size;
          onFile?.(f);
        } else if (st.isDirectory()) {
          const d: DirNode = { t: 'dir', name, path, children: [] };
          dir.children.push(d);
          stack.push(d);
          res.dirs++;
        } else if (st.isSymbolicLink()) {
          let target: Buffer;
          try {
            target = await readlink(path, { encoding: 'buffer' });
          } catch (e) {
            throw ioError(e, 'cannot read symlink', path.toString());
          }
          dir.children.push({ t: 'link', name, target });
          res.links++;
        } else {
          const why = `${path.toString()} is ${kindOf(st)}`;
          if (!lenient) throw new MiqError('MIQ_BAD_INPUT', `${why}; miq stores only regular files, directories and symlinks (use --lenient to skip such entries)`, { details: { path: path.toString() } });
          res.skipped.push({ path: path.toString(), why: kindOf(st) });
        }
      }
    }
  }
  return res;
}
