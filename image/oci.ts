/**
 * Container images of a stored tree: an OCI image layout (one uncompressed layer, its config,
 * manifest and index.json) and a plain root filesystem tarball. Nothing in them depends on the
 * clock or the caller (no "created" time, fixed owners and mtimes in the layer), so the same
 * generation gives the same layer, config and manifest digests on every export.
 *
 * The layer is left uncompressed: its digest is then also its diff_id, and gzip's output would
 * tie the digests to the zlib build.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ObjectReader } from '../store/api.js';
import { MiqError, ioError } from '../store/errors.js';
import type { Id } from '../store/ids.js';
import { writeTreeTar, type TarStats } from './tar.js';

export const MEDIA = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar',
} as const;

const FLUSH = 1 << 20;

/** Streams a tree's tar into `path` (a new file), returning its sha256 and stats. Writes go to a
 * temporary name first, so a failed export never leaves a plausible but short tarball behind. */
async function tarToFile(store: ObjectReader, tree: Id, path: string): Promise<TarStats & { sha256: string }> {
  const tmp = `${path}.miq-tmp-${process.pid}`;
  const fh = await open(tmp, 'wx', 0o644).catch((e) => { throw ioError(e, 'cannot create', tmp); });
  const hash = createHash('sha256');
  let buf: Buffer[] = [];
  let held = 0;
  const flush = async (): Promise<void> => {
    if (held === 0) return;
    const b = Buffer.concat(buf);
    buf = [];
    held = 0;
    await fh.write(b);
  };
  try {
    const st = await writeTreeTar(store, tree, async (b) => {
      hash.update(b);
      buf.push(b);
      held += b.length;
      if (held >= FLUSH) await flush();
    });
    await flush();
    await fh.sync();
    await fh.close();
    await rename(tmp, path);
    return { ...st, sha256: hash.digest('hex') };
  } catch (e) {
    await fh.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw e;
  }
}

async function mustBeNewOrEmptyDir(dir: string): Promise<void> {
  try {
    if ((await readdir(dir)).length > 0) throw new MiqError('MIQ_BAD_INPUT', `--oci destination ${dir} exists and is not empty; give a new or empty directory`);
  } catch (e) {
    if (e instanceof MiqError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR') throw new MiqError('MIQ_BAD_INPUT', `--oci destination ${dir} is a file; give a new or empty directory`);
    if (code !== 'ENOENT') throw ioError(e, 'cannot use --oci destination', dir);
  }
}

async function mustNotExist(file: string): Promise<void> {
  try {
    await stat(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw ioError(e, 'cannot use --tar destination', file);
  }
  throw new MiqError('MIQ_BAD_INPUT', `--tar destination ${file} already exists; give a new file name`);
}

export interface RootfsResult extends TarStats { file: string; sha256: string }

/** A root filesystem tarball of `tree` at `file` (which must not exist). */
export async function exportRootfsTar(store: ObjectReader, tree: Id, file: string): Promise<RootfsResult> {
  await mustNotExist(file);
  const r = await tarToFile(store, tree, file);
  return { file, ...r };
}

export interface OciOptions {
  /** The index's `org.opencontainers.image.ref.name` (default "latest"). */
  tag?: string;
  /** Recorded as labels in the image config. */
  labels?: Record<string, string>;
}

export interface OciResult extends TarStats {
  dir: string;
  tag: string;
  manifest: string;
  config: string;
  layer: string;
}

function goArch(): string {
  const m: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  return m[process.arch] ?? process.arch;
}

/** An OCI image layout of `tree` in `dir` (new or empty). */
export async function exportOci(store: ObjectReader, tree: Id, dir: string, opts: OciOptions = {}): Promise<OciResult> {
  const tag = opts.tag ?? 'latest';
  if (!/^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/.test(tag)) throw new MiqError('MIQ_BAD_INPUT', `image tag "${tag}" is not allowed: use letters, digits and . _ - (at most 128)`);
  await mustBeNewOrEmptyDir(dir);
  const blobs = join(dir, 'blobs', 'sha256');
  await mkdir(blobs, { recursive: true, mode: 0o755 }).catch((e) => { throw ioError(e, 'cannot create', blobs); });
  try {
    const staging = join(blobs, 'layer.tar');
    const layer = await tarToFile(store, tree, staging);
    await rename(staging, join(blobs, layer.sha256));
    const blob = async (json: unknown): Promise<{ digest: string; size: number }> => {
      const b = Buffer.from(JSON.stringify(json));
      const d = createHash('sha256').update(b).digest('hex');
      await writeFile(join(blobs, d), b, { mode: 0o644 });
      return { digest: `sha256:${d}`, size: b.length };
    };
    const config = await blob({
      architecture: goArch(),
      os: 'linux',
      config: {
        Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
        ...(opts.labels ? { Labels: opts.labels } : {}),
      },
      rootfs: { type: 'layers', diff_ids: [`sha256:${layer.sha256}`] },
      history: [{ created_by: `miq export --oci (tree ${tree})` }],
    });
    const manifest = await blob({
      schemaVersion: 2,
      mediaType: MEDIA.manifest,
      config: { mediaType: MEDIA.config, ...config },
      layers: [{ mediaType: MEDIA.layer, digest: `sha256:${layer.sha256}`, size: layer.size }],
    });
    await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }), { mode: 0o644 });
    await writeFile(join(dir, 'index.json'), JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA.index,
      manifests: [{ mediaType: MEDIA.manifest, ...manifest, annotations: { 'org.opencontainers.image.ref.name': tag } }],
    }), { mode: 0o644 });
    const { sha256: _s, ...stats } = layer;
    return { dir, tag, manifest: manifest.digest, config: config.digest, layer: `sha256:${layer.sha256}`, ...stats };
  } catch (e) {
    // A half-written layout must not look like an image: take back what we made.
    await rm(join(dir, 'blobs'), { recursive: true, force: true }).catch(() => {});
    await rm(join(dir, 'index.json'), { force: true }).catch(() => {});
    await rm(join(dir, 'oci-layout'), { force: true }).catch(() => {});
    if (e instanceof MiqError) throw e;
    throw ioError(e, 'cannot write the OCI image', dir);
  }
}
