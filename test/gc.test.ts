/** GC from roots, reference closures, repack; `ingest --watch`; the store lock. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { npmRelease } from './helpers/corpus.js';
import { isCleanError, json, miq, spawnMiq, tempDir } from './helpers/cli.js';

const tmp = tempDir();
after(() => tmp.cleanup());

const packBytes = (storeDir: string): number => readdirSync(join(storeDir, 'packs')).reduce((a, p) => a + statSync(join(storeDir, 'packs', p)).size, 0);

test('gc frees what no root reaches, keeps what a root references, repacks, and --dry-run changes nothing', () => {
  const storeDir = join(tmp.dir, 'gc');
  const s = ['--store', storeDir];
  // A: a real tree plus a small file; B: that small file plus its own. After A goes, A's pack is
  // mostly dead (its live share is low) and gets repacked.
  const asrc = join(tmp.dir, 'a');
  execFileSync('cp', ['-r', npmRelease('typescript', '5.8.2'), asrc]);
  writeFileSync(join(asrc, 'shared.txt'), 'shared between A and B\n'.repeat(100));
  const bsrc = join(tmp.dir, 'b');
  mkdirSync(join(bsrc, 'bin'), { recursive: true });
  writeFileSync(join(bsrc, 'shared.txt'), 'shared between A and B\n'.repeat(100));
  writeFileSync(join(bsrc, 'bin', 'tsc'), '#!/bin/sh\necho tsc\n');
  const a = json<{ path: string }>(miq([...s, 'ingest', asrc, '--name', 'ts-a', '--json']));
  const b = json<{ path: string }>(miq([...s, 'ingest', bsrc, '--name', 'ts-b', '--json']));
  // C refers to B by its store path in its bytes, as a built program would.
  const csrc = join(tmp.dir, 'c');
  mkdirSync(join(csrc, 'bin'), { recursive: true });
  writeFileSync(join(csrc, 'bin', 'tsc-wrapper'), `#!/bin/sh\nexec /miq/store/${b.path}/bin/tsc "$@"\n`);
  const c = json<{ path: string; references: string[] }>(miq([...s, 'ingest', csrc, '--name', 'wrapper', '--json']));
  assert.deepEqual(c.references, [b.path], 'reference found by scanning the bytes');

  assert.equal(miq([...s, 'unpin', a.path]).code, 0);
  assert.equal(miq([...s, 'unpin', b.path]).code, 0);
  const before = packBytes(storeDir);
  const dry = json<{ deadPaths: string[]; freedBytes: number; dryRun: boolean }>(miq([...s, 'gc', '--dry-run', '--json']));
  assert.deepEqual(dry.deadPaths, [a.path]);
  assert.ok(dry.freedBytes > 0);
  assert.equal(packBytes(storeDir), before, 'dry run changes nothing');
  assert.equal(json<unknown[]>(miq([...s, 'paths', '--json'])).length, 3);

  const g = miq([...s, 'gc', '--json']);
  assert.equal(g.code, 0, g.stderr);
  const rep = json<{ deadPaths: string[]; deadChunks: number; repackedPacks: number; removedPacks: number; freedBytes: number }>(g);
  assert.deepEqual(rep.deadPaths, [a.path]);
  assert.ok(rep.deadChunks > 0);
  assert.ok(rep.repackedPacks >= 1, 'the mostly dead pack was repacked');
  assert.ok(before - packBytes(storeDir) >= rep.freedBytes * 0.99, 'freed what it reported');
  assert.ok(packBytes(storeDir) < before, 'bytes on disk went down');
  assert.deepEqual(json<{ path: string }[]>(miq([...s, 'paths', '--json'])).map((p) => p.path).sort(), [b.path, c.path].sort());
  assert.equal(miq([...s, 'verify']).code, 0, 'what is kept is intact after repack');
  const dest = join(tmp.dir, 'b-out');
  assert.equal(miq([...s, 'export', b.path, dest]).code, 0);
  execFileSync('diff', ['-r', bsrc, dest]);

  // Drop the last root: everything goes.
  assert.equal(miq([...s, 'unpin', c.path]).code, 0);
  const all = json<{ deadPaths: string[] }>(miq([...s, 'gc', '--json']));
  assert.deepEqual(all.deadPaths.sort(), [b.path, c.path].sort());
  assert.equal(packBytes(storeDir), 0);
  const st = json<{ uniqueChunks: number; storePaths: number }>(miq([...s, 'stats', '--json']));
  assert.equal(st.uniqueChunks, 0);
  assert.equal(st.storePaths, 0);
});

test('ingest --watch re-reads only changed files and points its name at the newest result; the store lock gives a clear error', async () => {
  const storeDir = join(tmp.dir, 'watch');
  const s = ['--store', storeDir];
  const src = join(tmp.dir, 'wsrc');
  mkdirSync(src);
  for (let i = 0; i < 50; i++) writeFileSync(join(src, `f${i}`), `file ${i}`);
  const child = spawnMiq([...s, 'ingest', src, '--watch', '--json', '--name', 'build']);
  const results: { path: string; scanned: number; files: number; alias: string }[] = [];
  let buf = '';
  let waiter: (() => void) | undefined;
  child.stdout!.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      results.push(JSON.parse(buf.slice(0, i)));
      buf = buf.slice(i + 1);
      waiter?.();
    }
  });
  const next = async (n: number): Promise<void> => {
    const deadline = Date.now() + 30_000;
    while (results.length < n) {
      if (Date.now() > deadline) throw new Error(`watch produced ${results.length} results, expected ${n}`);
      await new Promise<void>((r) => { waiter = r; setTimeout(r, 200); });
    }
  };
  try {
    await next(1);
    assert.equal(results[0]!.scanned, 50);
    // While watch holds the store, another command gets a clear lock error.
    const locked = miq([...s, 'paths']);
    assert.ok(isCleanError(locked));
    assert.equal(locked.code, 4);
    assert.match(locked.stderr, /in use by another miq process/);
    await new Promise((r) => setTimeout(r, 500));
    writeFileSync(join(src, 'f7'), 'changed');
    await next(2);
    assert.equal(results[1]!.scanned, 1, 'only the changed file was read again');
    assert.notEqual(results[1]!.path, results[0]!.path);
    writeFileSync(join(src, 'new'), 'added');
    await next(3);
    assert.equal(results[2]!.files, 51);
  } finally {
    child.kill('SIGINT');
    await new Promise((r) => child.on('close', r));
  }
  const roots = json<{ root: string; path: string }[]>(miq([...s, 'roots', '--json']));
  assert.deepEqual(roots, [{ root: 'alias:build', path: results[2]!.path }]);
  const g = json<{ deadPaths: string[] }>(miq([...s, 'gc', '--json']));
  assert.deepEqual(g.deadPaths.sort(), [results[0]!.path, results[1]!.path].sort(), 'older watch results are collectable');
});

test('verify reports indexed chunks that no store path uses (not as damage), and gc reclaims them', async () => {
  const storeDir = join(tmp.dir, 'orphans');
  const s = ['--store', storeDir];
  const src = join(tmp.dir, 'orphan-src');
  mkdirSync(src, { recursive: true });
  writeFileSync(join(src, 'kept.txt'), 'a file a store path uses\n');
  assert.equal(miq([...s, 'ingest', src, '--name', 'kept']).code, 0);
  const clean = json<{ ok: boolean; unreferenced: { chunks: number } }>(miq([...s, 'verify', '--json']));
  assert.deepEqual([clean.ok, clean.unreferenced.chunks], [true, 0]);
  // What a killed ingest leaves: chunks in the index that no file record names.
  const { openStore } = await import('../store/open.js');
  const { idOf } = await import('../store/ids.js');
  const store = await openStore(storeDir);
  for (const text of ['orphan one', 'orphan two']) {
    const b = Buffer.from(text.repeat(1000));
    await store.writer!.writeObjects({ chunks: [{ id: idOf(b), plain: b }] });
  }
  await store.close();
  const v = json<{ ok: boolean; damaged: unknown[]; unreferenced: { chunks: number; storedBytes: number } }>(miq([...s, 'verify', '--json']));
  assert.equal(v.ok, true);
  assert.deepEqual(v.damaged, []);
  assert.equal(v.unreferenced.chunks, 2);
  assert.ok(v.unreferenced.storedBytes > 0);
  const text = miq([...s, 'verify']);
  assert.equal(text.code, 0);
  assert.match(text.stdout, /unreferenced: 2 chunks .*miq gc/);
  assert.equal(miq([...s, 'gc']).code, 0);
  assert.equal(json<{ unreferenced: { chunks: number } }>(miq([...s, 'verify', '--json'])).unreferenced.chunks, 0);
});
