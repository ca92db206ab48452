/**
 * miq and the anchors, each as the exact shell commands the report records. A command sees
 * `$DIR` (the tree to add), `$REPO` (its repository or image folder, fresh for every run),
 * `$I` (the step number) and, for miq, `$MIQ` (the CLI). Stored bytes are measured the same way
 * for every tool: apparent bytes of everything under `$REPO` (caches and config live beside it).
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sh, which, type Log } from './util.js';

export interface Tool {
  /** Key used in tables and charts. */
  name: string;
  /** What it is, one line for the report. */
  about: string;
  /** Commands that must be on PATH. */
  requires: string[];
  /** Run once on a fresh `$REPO`, not timed. */
  init?: string;
  /** Run for each step; timed. */
  step: string;
  env?: Record<string, string>;
  /** Does not keep anything (b3sum): time only. */
  timeOnly?: boolean;
  /** Run after each step, not timed, before its stored bytes are measured. */
  settle?: string;
  /** Each step writes a self-contained artifact: no dedup across steps exists in the tool. */
  noCrossStepDedup?: boolean;
  /** Run after the last step, not timed; its stdout (JSON) is kept with the results. */
  probe?: string;
}

const here = dirname(fileURLToPath(import.meta.url));
/** dist/benchmarks → repo root. */
export const repoRoot = resolve(here, '..', '..');
export const miqBin = process.env.MIQ_BIN || join(repoRoot, 'bin', 'miq');
/** Shown as `dist/benchmarks/filelevel.js` in the report (the env column hides the absolute path). */
const fileLevelJs = join(here, 'filelevel.js');

export function miqTool(chunk?: string): Tool {
  const t: Tool = {
    name: chunk ? `miq ${chunk}` : 'miq',
    about: chunk ? `miq with MIQ_CHUNK=${chunk} (min/avg/max bytes)` : 'miq ingest (default chunking)',
    requires: [],
    step: '"$MIQ" ingest "$DIR" --name "s$I" --json --store "$REPO"',
    probe: '"$MIQ" stats --json --store "$REPO"',
    // LevelDB keeps an ingest's index writes in its log until the next open turns the log into
    // a (snappy-compressed, smaller) table. Without this a build that leaves its log for the next
    // step (0b75eee) reported release N 0.5 MB too big and N+1 0.5 MB too small on the small
    // corpus (N+1 "added 1.09x" while its packs grew less than before). Bytes at rest: after one open.
    settle: '"$MIQ" paths --store "$REPO" > /dev/null',
    env: { MIQ: miqBin },
  };
  if (chunk) t.env!.MIQ_CHUNK = chunk;
  return t;
}

export const ANCHORS: Tool[] = [
  {
    name: 'casync',
    about: 'casync make, zstd, default chunk sizes 16/64/256 KiB',
    requires: ['casync'],
    init: 'mkdir -p "$REPO/store"',
    step: 'casync make --compression=zstd --store="$REPO/store" "$REPO/s$I.caidx" "$DIR"',
  },
  {
    name: 'restic',
    about: 'restic backup, repository v2 (zstd auto), cache beside the repository',
    requires: ['restic'],
    env: { RESTIC_PASSWORD: 'miq-bench' },
    init: 'restic -q -r "$REPO" init --repository-version 2',
    step: 'restic -q -r "$REPO" --cache-dir "$REPO.cache" backup "$DIR"',
  },
  {
    name: 'borg',
    about: 'borg create, zstd level 3, unencrypted, default chunker (buzhash, ~2 MiB)',
    requires: ['borg'],
    env: { BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes', BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes' },
    init: 'rmdir "$REPO" && BORG_BASE_DIR="$REPO.base" borg init --encryption=none "$REPO"',
    step: 'BORG_BASE_DIR="$REPO.base" borg create --compression zstd,3 "$REPO::s$I" "$DIR"',
  },
  {
    name: 'ostree-archive',
    about: 'ostree commit into an archive-mode repo (one zlib object per unique file)',
    requires: ['ostree'],
    init: 'ostree --repo="$REPO" init --mode=archive',
    step: 'ostree --repo="$REPO" commit --branch="s$I" --tree=dir="$DIR"',
  },
  {
    name: 'ostree-bare-user',
    about: 'ostree commit into a bare-user repo (one raw object per unique file)',
    requires: ['ostree'],
    init: 'ostree --repo="$REPO" init --mode=bare-user',
    step: 'ostree --repo="$REPO" commit --branch="s$I" --tree=dir="$DIR"',
  },
  {
    name: 'squashfs',
    about: 'mksquashfs, zstd level 3, appending each step to one image (dedups whole files against it)',
    requires: ['mksquashfs'],
    step: 'mksquashfs "$DIR" "$REPO/img.sqfs" -comp zstd -Xcompression-level 3 -keep-as-directory -no-progress -quiet',
  },
  {
    name: 'erofs',
    about: 'mkfs.erofs, lz4hc, one image per step (erofs-utils 1.5 has no cross-image dedup)',
    requires: ['mkfs.erofs'],
    step: 'mkfs.erofs --quiet -zlz4hc "$REPO/s$I.erofs" "$DIR"',
    noCrossStepDedup: true,
  },
  {
    name: 'tar+zstd',
    about: 'tar of the tree piped to zstd -3 on two threads, one archive per step',
    requires: ['tar', 'zstd'],
    step: 'tar cf - -C "$DIR" . | zstd -3 -T2 -q -o "$REPO/s$I.tar.zst"',
    noCrossStepDedup: true,
  },
  {
    name: 'file-level',
    about: 'unique file contents, each zstd -3 on its own (what hard-link dedup can reach)',
    requires: ['node'],
    step: 'node "$FILELEVEL" "$DIR" "$REPO"',
    env: { FILELEVEL: fileLevelJs },
  },
  {
    name: 'b3sum',
    about: 'b3sum of every file: reading and hashing only, a floor for wall time',
    requires: ['b3sum'],
    step: 'find "$DIR" -type f -print0 | xargs -0 -r b3sum > /dev/null',
    timeOnly: true,
  },
];

export function anchor(name: string): Tool {
  const t = ANCHORS.find((a) => a.name === name);
  if (!t) throw new Error(`no anchor ${name}`);
  return t;
}

/** Which of `tools` can run here: miq needs its CLI, anchors their commands. */
export async function available(t: Tool): Promise<boolean> {
  if (t.env?.MIQ) return (await which(t.env.MIQ)) || false;
  for (const c of t.requires) if (!(await which(c))) return false;
  return true;
}

/** The Debian packages that provide the anchors (installed by `ensureAnchors`). */
export const ANCHOR_PACKAGES = ['casync', 'restic', 'borgbackup', 'ostree', 'squashfs-tools', 'erofs-utils', 'b3sum', 'zstd'];

/** Installs the anchors' Debian packages when some command is missing. */
export async function ensureAnchors(log: Log): Promise<void> {
  const missing: string[] = [];
  for (const c of ['casync', 'restic', 'borg', 'ostree', 'mksquashfs', 'mkfs.erofs', 'b3sum', 'zstd']) {
    if (!(await which(c))) missing.push(c);
  }
  if (!missing.length) return;
  log(`installing anchors (missing: ${missing.join(' ')})`);
  await sh('apt-get update -qq', { check: false });
  await sh(`DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${ANCHOR_PACKAGES.join(' ')}`, { check: false });
}

