/**
 * Container images of a profile generation, checked by Debian's own tools: `skopeo inspect`
 * reads the OCI layout, `umoci unpack` turns it into a bundle whose rootfs must equal the
 * generation's tree as `miq export` writes it (types, exec bits, symlink targets, bytes), and the
 * root filesystem tarball is unpacked by GNU tar to the same tree. Same generation, same digests,
 * also from a second store that ingested the same inputs.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { debianPackage } from './helpers/corpus.js';
import { isCleanError, json, miq, tempDir } from './helpers/cli.js';

let t: ReturnType<typeof tempDir>;

/** path → "dir" | "l:<target>" | "f<x?>:<sha256>" for every entry below `root`. */
function snapshot(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string): void => {
    for (const n of readdirSync(join(root, rel), { encoding: 'buffer' })) {
      const r = rel ? `${rel}/${n.toString('latin1')}` : n.toString('latin1');
      const p = join(root, rel, n.toString('latin1'));
      const st = lstatSync(Buffer.from(p, 'latin1'));
      if (st.isDirectory()) { out.set(r, 'dir'); walk(r); }
      else if (st.isSymbolicLink()) out.set(r, `l:${readlinkSync(Buffer.from(p, 'latin1'), { encoding: 'buffer' }).toString('latin1')}`);
      else out.set(r, `f${st.mode & 0o100 ? 'x' : ''}:${createHash('sha256').update(readFileSync(Buffer.from(p, 'latin1'))).digest('hex')}`);
    }
  };
  walk('');
  return out;
}

function assertSameTree(a: Map<string, string>, b: Map<string, string>, what: string): void {
  const missing = [...a.keys()].filter((k) => !b.has(k));
  const extra = [...b.keys()].filter((k) => !a.has(k));
  const differ = [...a.keys()].filter((k) => b.has(k) && a.get(k) !== b.get(k));
  assert.deepEqual({ missing: missing.slice(0, 5), extra: extra.slice(0, 5), differ: differ.slice(0, 5) }, { missing: [], extra: [], differ: [] }, what);
  assert.equal(a.size, b.size);
}

function fixture(dir: string): void {
  // Names ustar cannot hold (long, non-ASCII, not UTF-8), a long symlink target, exec bits, an
  // empty file and a file of a few chunks.
  const long = join(dir, 'd'.repeat(120), 'e'.repeat(120));
  mkdirSync(long, { recursive: true });
  writeFileSync(join(long, 'f'.repeat(90)), 'deep\n');
  mkdirSync(join(dir, 'usr', 'bin'), { recursive: true });
  writeFileSync(join(dir, 'usr', 'bin', 'hello'), '#!/bin/sh\necho hello from the image\n');
  chmodSync(join(dir, 'usr', 'bin', 'hello'), 0o755);
  writeFileSync(join(dir, 'ünïcode'), 'u\n');
  writeFileSync(Buffer.from(`${dir}/latin1-\xe9`, 'latin1'), 'not utf-8\n');
  writeFileSync(join(dir, 'empty'), '');
  const big = Buffer.alloc(600_000);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7919) % 251;
  writeFileSync(join(dir, 'big.bin'), big);
  symlinkSync(`${'x/'.repeat(70)}target`, join(dir, 'longlink'));
}

describe('OCI image and rootfs tarball export', () => {
  before(() => { t = tempDir('miq-image-'); });
  after(() => t.cleanup());

  it('skopeo inspects it, umoci unpacks it to the generation tree, tar too; digests are stable', { timeout: 600_000 }, async (tc) => {
    const src = join(t.dir, 'src');
    mkdirSync(src);
    fixture(src);
    const bash = debianPackage('bash');
    const stores = [join(t.dir, 'store1'), join(t.dir, 'store2')];
    const manifests: string[] = [];
    for (const [i, store] of stores.entries()) {
      const a = json<{ path: string }>(miq(['--store', store, 'ingest', src, '--name', 'fixture', '--json']));
      const b = json<{ path: string }>(miq(['--store', store, 'ingest', bash, '--name', 'bash', '--json']));
      const sw = miq(['--store', store, 'profile', 'switch', 'system', a.path, b.path, '--json']);
      assert.equal(sw.code, 0, sw.stderr);
      const oci = join(t.dir, `oci${i}`);
      const r = miq(['--store', store, 'export', '--profile', 'system', '--oci', oci, '--json']);
      assert.equal(r.code, 0, r.stderr);
      const o = json<{ manifest: string; layer: string; size: number; files: number }>(r);
      manifests.push(o.manifest);
      if (i > 0) continue;

      // Same generation, same store, again: the same bytes.
      const again = json<{ manifest: string; layer: string }>(miq(['--store', store, 'export', '--profile', 'system', '--oci', join(t.dir, 'oci-again'), '--json']));
      assert.equal(again.manifest, o.manifest);
      assert.equal(again.layer, o.layer);

      const insp = JSON.parse(execFileSync('skopeo', ['inspect', `oci:${oci}:latest`], { encoding: 'utf8' })) as { Digest: string; Layers: string[]; Os: string };
      assert.equal(insp.Digest, o.manifest);
      assert.deepEqual(insp.Layers, [o.layer]);
      assert.equal(insp.Os, 'linux');

      const bundle = join(t.dir, 'bundle');
      execFileSync('umoci', ['unpack', '--image', `${oci}:latest`, bundle], { stdio: 'pipe' });
      const env = JSON.parse(sw.stdout.trim().split('\n').pop()!) as { env: string };
      const ref = join(t.dir, 'ref');
      const ex = miq(['--store', store, 'export', env.env, ref]);
      assert.equal(ex.code, 0, ex.stderr);
      const want = snapshot(ref);
      assert.ok(want.size > 100, `the reference tree has ${want.size} entries`);
      assertSameTree(want, snapshot(join(bundle, 'rootfs')), 'umoci rootfs vs miq export');

      const tarFile = join(t.dir, 'root.tar');
      const tr = json<{ sha256: string }>(miq(['--store', store, 'export', '--profile', 'system', '--generation', '1', '--tar', tarFile, '--json']));
      assert.equal(`sha256:${tr.sha256}`, o.layer, 'the tarball is the layer');
      const untar = join(t.dir, 'untar');
      mkdirSync(untar);
      execFileSync('tar', ['-xf', tarFile, '-C', untar]);
      assertSameTree(want, snapshot(untar), 'tar -x vs miq export');
      tc.diagnostic(`layer ${o.layer.slice(0, 19)}… ${o.size} bytes, ${o.files} files; manifest ${o.manifest.slice(0, 19)}…`);

      // Mistakes are one line: a non-empty destination, an existing tarball, no generation.
      assert.ok(isCleanError(miq(['--store', store, 'export', '--profile', 'system', '--oci', oci])));
      assert.ok(isCleanError(miq(['--store', store, 'export', '--profile', 'system', '--tar', tarFile])));
      assert.ok(isCleanError(miq(['--store', store, 'export', '--profile', 'system', '--generation', '9', '--tar', join(t.dir, 'x.tar')])));
      assert.ok(isCleanError(miq(['--store', store, 'export', '--profile', 'nosuch', '--oci', join(t.dir, 'x')])));
    }
    assert.equal(manifests[1], manifests[0], 'a second store with the same inputs gives the same image');
  });
});
