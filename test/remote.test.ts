/**
 * Remote stores: push to a directory, serve it with a real nginx, read it back lazily and
 * verified; keys, trust and rollback; the read-through cache's bound.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isMiqError } from '../store/errors.js';
import type { Id } from '../store/ids.js';
import type { FileRecord, StorePathRecord, Tree } from '../store/objects.js';
import { checkCache, generateKey, ingestToMemory, loadSigningKey, localSink, mergeTrees, openRemote, parseTrustedKey, prefetch, push, type RemoteReader, type SigningKey } from '../store/remote/index.js';
import { MemoryStore } from '../store/memory.js';
import { BUNDLE_FILE_MAX, bundleParts, bundlePath, chunkPath, decodeChunk, encodeChunk, encodeHints, hintsPath, objectPath, treePackPath, type BundlePart } from '../store/remote/layout.js';
import { idOf } from '../store/ids.js';
import { startNginx, type Nginx } from './helpers/nginx.js';

export async function makeFixture(root: string): Promise<{ lib: string; app: string }> {
  const lib = join(root, 'libfoo');
  const app = join(root, 'hello');
  await mkdir(join(lib, 'lib'), { recursive: true });
  await mkdir(join(app, 'bin'), { recursive: true });
  await mkdir(join(app, 'share', 'doc'), { recursive: true });
  await writeFile(join(lib, 'lib', 'libfoo.so'), randomBytes(300 * 1024 + 17));
  await writeFile(join(lib, 'lib', 'text.txt'), 'abcdefgh'.repeat(40000));
  await writeFile(join(lib, 'lib', 'empty'), '');
  await writeFile(join(app, 'bin', 'hello'), '#!/bin/sh\necho hello\n', { mode: 0o755 });
  await writeFile(join(app, 'share', 'doc', 'README'), 'read me\n');
  await symlink('../share/doc/README', join(app, 'bin', 'readme-link'));
  return { lib, app };
}

/** `diff -r` through the reader: every entry of `tree` against the directory on disk. */
export async function diffTree(r: RemoteReader, tree: Id, dir: string): Promise<number> {
  const t = await r.getTree(tree);
  assert.ok(t, `tree ${tree}`);
  const names = (await readdir(dir)).sort();
  assert.deepEqual(t.entries.map((e) => e.name.toString()).sort(), names, `entries of ${dir}`);
  let files = 0;
  for (const e of t.entries) {
    const p = join(dir, e.name.toString());
    if (e.kind === 'dir') files += await diffTree(r, e.id!, p);
    else if (e.kind === 'symlink') assert.equal(e.target!.toString(), await readlink(p));
    else {
      const rec = await r.getFile(e.id!);
      assert.ok(rec);
      const want = await readFile(p);
      assert.ok((await r.readFile(rec, 0, rec.size + 10)).equals(want), `content of ${p}`);
      assert.equal(e.kind === 'exe', ((await stat(p)).mode & 0o111) !== 0);
      files++;
    }
  }
  return files;
}

async function listAll(dir: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const walk = async (d: string): Promise<void> => {
    for (const n of await readdir(d, { withFileTypes: true })) {
      const f = join(d, n.name);
      if (n.isDirectory()) await walk(f);
      else out.set(f, (await stat(f)).mtimeMs);
    }
  };
  await walk(dir);
  return out;
}

describe('remote store over nginx', () => {
  let tmp: string;
  let src: MemoryStore;
  let libRec: StorePathRecord;
  let appRec: StorePathRecord;
  let remoteDir: string;
  let key: SigningKey;
  let pub: string;
  let nginx: Nginx;
  let fixture: { lib: string; app: string };
  let merged: Id;

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'miq-remote-'));
    fixture = await makeFixture(join(tmp, 'src'));
    src = new MemoryStore();
    libRec = await ingestToMemory(src, fixture.lib, 'libfoo');
    appRec = await ingestToMemory(src, fixture.app, 'hello', { references: [libRec.path] });
    merged = await mergeTrees(src, [libRec.tree, appRec.tree]);
    const k = await generateKey(join(tmp, 'keys'), 'test-1');
    key = loadSigningKey(k.secretFile);
    pub = k.publicText;
    remoteDir = join(tmp, 'remote');
    nginx = await startNginx(remoteDir);
  });
  after(async () => {
    await nginx?.stop();
    await rm(tmp, { recursive: true, force: true });
  });

  it('pushes a closure with its profile, and a second push writes nothing', async () => {
    const first = await push(src, `file://${remoteDir}`, { paths: [appRec.path], profile: { name: 'system', generation: 1, paths: [appRec.path, libRec.path], tree: merged }, key });
    assert.equal(first.closure, 2);
    assert.deepEqual(first.pathsWritten, [libRec.path, appRec.path], 'references go first');
    assert.ok(first.chunksWritten >= 8);
    assert.equal(first.pointer?.sequence, 1);
    const before1 = await listAll(remoteDir);
    const second = await push(src, remoteDir, { paths: [appRec.path], profile: { name: 'system', generation: 1, paths: [appRec.path, libRec.path], tree: merged }, key });
    assert.deepEqual(second.pathsWritten, []);
    assert.equal(second.chunksWritten + second.objectsWritten + second.bytesWritten, 0);
    assert.equal(second.pointer?.written, false);
    assert.deepEqual(await listAll(remoteDir), before1, 'no file rewritten');
    assert.ok([...before1.keys()].every((f) => !f.includes('.tmp-')), 'no temp files left');
  });

  it('reads everything back through nginx, verified, and diff -r passes', async () => {
    const r = await openRemote(nginx.url, { cacheDir: join(tmp, 'cache1'), cacheSize: 64 << 20, trustedKeys: [pub] });
    try {
      const ptr = await r.getProfile('system');
      assert.ok(ptr);
      assert.equal(ptr.tree, merged);
      assert.equal(ptr.sequence, 1);
      const app = await r.getStorePath(appRec.path);
      assert.deepEqual(app?.references, [libRec.path]);
      assert.ok(app!.signatures.some((s) => s.keyName === 'test-1'), 'record carries its own signature');
      assert.equal(await diffTree(r, appRec.tree, fixture.app), 2);
      assert.equal(await diffTree(r, libRec.tree, fixture.lib), 3);
      assert.deepEqual((await r.listStorePaths()).map((p) => p.path).sort(), [appRec.path, libRec.path].sort());
      assert.equal(await r.getStorePath(`nothere-${'0'.repeat(32)}`), undefined);
    } finally {
      await r.close();
    }
  });

  it('a partial read fetches only the chunks covering it; a second read comes from the cache', async () => {
    await nginx.clearLog();
    const cacheDir = join(tmp, 'cache2');
    // Whole-file background fetch off: this is about what a read itself needs.
    const r = await openRemote(nginx.url, { cacheDir, cacheSize: 64 << 20, trustedKeys: [pub], wholeFileMax: 0 });
    try {
      await r.getStorePath(libRec.path);
      const t = await r.getTree(libRec.tree);
      const lib = await r.getTree(t!.entries.find((e) => e.name.toString() === 'lib')!.id!);
      const so = lib!.entries.find((e) => e.name.toString() === 'libfoo.so')!;
      const rec = await r.getFile(so.id!);
      assert.equal(rec!.chunks.length, 5);
      const part = await r.readFile(rec!, 70000, 1000);
      const want = (await readFile(join(fixture.lib, 'lib', 'libfoo.so'))).subarray(70000, 71000);
      assert.ok(part.equals(want));
      const chunkGets = (await nginx.log()).filter((l) => l.uri.startsWith('/chunks/'));
      assert.equal(chunkGets.length, 1, 'one chunk fetched for a 1000-byte read');
      assert.equal(chunkGets[0]!.uri, `/chunks/${rec!.chunks[1]!.id.slice(0, 2)}/${rec!.chunks[1]!.id}`);
      await r.close();
      const r2 = await openRemote(nginx.url, { cacheDir, cacheSize: 64 << 20, trustedKeys: [pub] });
      await nginx.clearLog();
      await r2.getStorePath(libRec.path);
      const again = await r2.readFile(rec!, 70000, 1000);
      assert.ok(again.equals(want));
      assert.equal((await nginx.log()).filter((l) => l.uri.startsWith('/chunks/')).length, 0, 'served from the disk cache');
      await r2.close();
    } finally {
      await r.close();
    }
  });

  it('miq fetch pulls the whole profile closure, equal to the source', async () => {
    const r = await openRemote(nginx.url, { cacheDir: join(tmp, 'cache3'), trustedKeys: [pub] });
    const sink = new MemoryStore();
    try {
      const to = localSink(sink);
      const res = await prefetch(r, { profile: 'system' }, to);
      await to.flush();
      assert.deepEqual(res.paths.sort(), [appRec.path, libRec.path].sort());
      assert.deepEqual([...sink.chunkMap.keys()].sort(), [...src.chunkMap.keys()].sort());
      assert.deepEqual([...sink.treeMap.keys()].sort(), [...src.treeMap.keys()].sort());
      assert.equal(sink.fileMap.size, src.fileMap.size);
      assert.deepEqual(sink.pathMap.get(appRec.path)?.tree, appRec.tree);
    } finally {
      await r.close();
    }
  });

  it('refuses records signed by a key it does not trust', async () => {
    const other = await generateKey(join(tmp, 'keys'), 'other');
    const r = await openRemote(nginx.url, { cacheDir: join(tmp, 'cache4'), trustedKeys: [other.publicText] });
    try {
      await assert.rejects(r.getStorePath(appRec.path), (e) => isMiqError(e, 'MIQ_UNTRUSTED') && /signed only by "test-1"/.test(e.message));
      await assert.rejects(r.getProfile('system'), (e) => isMiqError(e, 'MIQ_UNTRUSTED'));
      // Same name, different key: a forged signature.
      const forged = parseTrustedKey(`test-1:${other.publicText.split(':')[1]}`);
      const r2 = await openRemote(nginx.url, { cacheDir: join(tmp, 'cache4b'), trustedKeys: [forged] });
      await assert.rejects(r2.getStorePath(appRec.path), (e) => isMiqError(e, 'MIQ_UNTRUSTED') && /does not verify/.test(e.message));
      await r2.close();
      assert.equal((await readdir(join(tmp, 'cache4b')).catch(() => [] as string[])).includes('paths'), false, 'nothing cached');
    } finally {
      await r.close();
    }
  });

  it('follows a newer pointer and refuses to go back to an older one', async () => {
    const seenFile = join(tmp, 'seen.json');
    const r = await openRemote(nginx.url, { cacheDir: join(tmp, 'cache5'), seenFile, trustedKeys: [pub] });
    try {
      const oldPtr = await readFile(join(remoteDir, 'profiles', 'system'));
      assert.equal((await r.getProfile('system'))?.sequence, 1);
      const res = await push(src, remoteDir, { profile: { name: 'system', generation: 2, paths: [libRec.path], tree: libRec.tree }, key });
      assert.equal(res.pointer?.sequence, 2);
      const p2 = await r.getProfile('system');
      assert.equal(p2?.sequence, 2);
      assert.equal(p2?.tree, libRec.tree);
      await writeFile(join(remoteDir, 'profiles', 'system'), oldPtr); // a replayed old, validly signed pointer
      await assert.rejects(r.getProfile('system'), (e) => isMiqError(e, 'MIQ_UNTRUSTED') && /from sequence 2 to 1/.test(e.message));
      // A new process remembers too.
      const r2 = await openRemote(nginx.url, { cacheDir: join(tmp, 'cache5b'), seenFile, trustedKeys: [pub] });
      await assert.rejects(r2.getProfile('system'), (e) => isMiqError(e, 'MIQ_UNTRUSTED'));
      await r2.close();
    } finally {
      await r.close();
    }
  });

  it('keeps the disk cache within its bound by evicting least recently used entries', async () => {
    const cacheDir = join(tmp, 'cache6');
    const bound = 200 * 1024;
    const r = await openRemote(nginx.url, { cacheDir, cacheSize: bound, trustedKeys: [pub], memoryBytes: 0 });
    try {
      await prefetch(r, { paths: [appRec.path] });
      const s = r.stats().cache!;
      assert.ok(s.used <= bound, `used ${s.used} <= ${bound}`);
      assert.ok(s.evictions > 0);
      let onDisk = 0;
      for (const f of (await listAll(cacheDir)).keys()) if (!f.endsWith('seen.json')) onDisk += (await stat(f)).size;
      assert.equal(onDisk, s.used);
    } finally {
      await r.close();
    }
  });

  it('drops a cached chunk whose bytes were flipped on disk and fetches it again', async () => {
    const cacheDir = join(tmp, 'cache7');
    const r = await openRemote(nginx.url, { cacheDir, trustedKeys: [pub], memoryBytes: 0 });
    await r.getStorePath(libRec.path);
    const so = src.fileMap.get([...src.fileMap.values()].find((f) => f.chunks.length === 5)!.id)!;
    const c = so.chunks[0]!;
    assert.ok(await r.chunks.getSized(c.id, c.length));
    await r.close();
    const f = join(cacheDir, 'chunks', c.id.slice(0, 2), c.id);
    const b = await readFile(f);
    b[b.length - 1] ^= 1;
    await writeFile(f, b);
    await writeFile(join(cacheDir, 'chunks', c.id.slice(0, 2), `.${c.id}.tmp-4194999-abcd`), b.subarray(0, 10)); // a killed download (a pid above pid_max: gone)
    const r2 = await openRemote(nginx.url, { cacheDir, trustedKeys: [pub], memoryBytes: 0 });
    try {
      assert.ok((await readdir(join(cacheDir, 'chunks', c.id.slice(0, 2)))).every((n) => !n.includes('.tmp-')), 'temp files removed at open');
      await nginx.clearLog();
      const got = await r2.chunks.getSized(c.id, c.length);
      assert.equal(idOf(got!), c.id);
      assert.equal((await nginx.log()).length, 1, 'fetched again');
      assert.equal(idOf(await readFile(f)), idOf(encodeChunk(got!)), 'cache holds good bytes now');
    } finally {
      await r2.close();
    }
  });
});

describe('chunk encoding', () => {
  it('round-trips raw and compressed, and rejects wrong bytes and bombs', () => {
    for (const plain of [randomBytes(1000), Buffer.alloc(100000, 3), Buffer.alloc(0)]) {
      const id = idOf(plain);
      const enc = encodeChunk(plain);
      assert.ok(enc.length <= plain.length + 1);
      assert.ok(decodeChunk(id, enc, plain.length, 1 << 20).equals(plain));
      assert.ok(decodeChunk(id, enc, undefined, 1 << 20).equals(plain));
    }
    const big = Buffer.alloc(4 << 20);
    const enc = encodeChunk(big);
    assert.throws(() => decodeChunk(idOf(big), enc, undefined, 1 << 20), (e) => isMiqError(e, 'MIQ_CORRUPT'));
    assert.throws(() => decodeChunk(idOf(big), enc, 1000, 1 << 20), (e) => isMiqError(e, 'MIQ_CORRUPT'));
    const flipped = Buffer.from(encodeChunk(randomBytes(100)));
    flipped[50] ^= 1;
    assert.throws(() => decodeChunk(idOf(Buffer.alloc(1)), flipped, 100, 1 << 20), (e) => isMiqError(e, 'MIQ_CORRUPT'));
  });
});

describe('bundles and whole-file fetches', () => {
  let tmp: string;
  let remoteDir: string;
  let nginx: Nginx;
  let pub: string;
  let rec: StorePathRecord;
  let modsTree: Id;
  let parts: BundlePart[];
  let small: { name: string; id: Id; bytes: Buffer }[];
  let big: { id: Id; bytes: Buffer };

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'miq-bundles-'));
    const pkg = join(tmp, 'pkg');
    await mkdir(join(pkg, 'lib', 'mods'), { recursive: true });
    small = [];
    for (let i = 0; i < 60; i++) {
      // Half random, half text: both a raw and a compressed chunk encoding end up in bundles.
      const n = 1000 + ((i * 7919) % 40000);
      const bytes = i % 2 ? randomBytes(n) : Buffer.from(`module ${i}\n`.repeat(n / 10));
      const name = `m${String(i).padStart(2, '0')}.pyc`;
      await writeFile(join(pkg, 'lib', 'mods', name), bytes);
      small.push({ name, id: idOf(bytes), bytes });
    }
    await writeFile(join(pkg, 'lib', 'mods', 'huge.dat'), randomBytes(200 * 1024));
    const bigBytes = randomBytes(600 * 1024);
    await writeFile(join(pkg, 'lib', 'big.bin'), bigBytes);
    big = { id: idOf(bigBytes), bytes: bigBytes };
    const src = new MemoryStore();
    rec = await ingestToMemory(src, pkg, 'mods');
    const lib = (await src.getTree(rec.tree))!.entries.find((e) => e.name.toString() === 'lib')!;
    modsTree = (await src.getTree(lib.id!))!.entries.find((e) => e.name.toString() === 'mods')!.id!;
    parts = bundleParts((await src.getTree(modsTree))!.entries);
    const k = await generateKey(join(tmp, 'keys'), 'bundle-1');
    pub = k.publicText;
    remoteDir = join(tmp, 'remote');
    const res = await push(src, remoteDir, { paths: [rec.path], key: loadSigningKey(k.secretFile) });
    assert.ok(parts.length >= 2, `${parts.length} parts`);
    assert.equal(res.bundlesWritten, parts.length, 'one bundle per part of lib/mods, none elsewhere');
    assert.equal(res.treePacksWritten, 1);
    assert.ok(parts.every((p) => !p.members.some((m) => m.size > BUNDLE_FILE_MAX)), 'the 200 KiB file is not bundled');
    nginx = await startNginx(remoteDir);
  });
  after(async () => {
    await nginx?.stop();
    await rm(tmp, { recursive: true, force: true });
  });

  const open = async (cache: string, o: { wholeFileMax?: number } = {}): Promise<{ r: RemoteReader; mods: Tree; big: FileRecord }> => {
    const r = await openRemote(nginx.url, { cacheDir: join(tmp, cache), trustedKeys: [pub], ...o });
    await r.getStorePath(rec.path);
    const lib = (await r.getTree((await r.getTree(rec.tree))!.entries.find((e) => e.name.toString() === 'lib')!.id!))!;
    const mods = (await r.getTree(modsTree))!;
    const b = (await r.getFile(lib.entries.find((e) => e.name.toString() === 'big.bin')!.id!))!;
    return { r, mods, big: b };
  };
  const readAll = async (r: RemoteReader): Promise<void> => {
    for (const s of small) {
      const f = (await r.getFile(s.id))!;
      assert.ok((await r.readFile(f, 0, f.size)).equals(s.bytes), `bytes of ${s.name}`);
    }
  };
  const uris = async (prefix: string): Promise<string[]> => (await nginx.log()).filter((l) => l.uri.startsWith(prefix)).map((l) => l.uri);

  it('the first small file read brings its directory part in one request, the others follow; no chunk is fetched alone', async () => {
    const { r } = await open('c1');
    try {
      await nginx.clearLog();
      const first = (await r.getFile(small[0]!.id))!;
      assert.ok((await r.readFile(first, 0, first.size)).equals(small[0]!.bytes));
      const atFirst = await uris('/bundles/');
      assert.ok(atFirst.includes(`/${bundlePath(modsTree, 0)}`), `part 0 fetched: ${atFirst}`);
      await readAll(r);
      const b = await uris('/bundles/');
      assert.deepEqual([...b].sort(), parts.map((p) => `/${bundlePath(modsTree, p.part)}`).sort(), 'each part fetched once');
      assert.deepEqual(await uris('/chunks/'), [], 'no small file fetched on its own');
      assert.equal(r.stats().prefetch.bundleChunks, small.length);
    } finally {
      await r.close();
    }
    // The members went to the disk cache: a new reader over it fetches nothing.
    const again = await open('c1');
    try {
      await nginx.clearLog();
      await readAll(again.r);
      assert.deepEqual((await nginx.log()).map((l) => l.uri), []);
    } finally {
      await again.r.close();
    }
  });

  it('reading 1000 bytes of a multi-chunk file fetches the rest of it in the background', async () => {
    const { r, big: f } = await open('c2');
    assert.equal(f.chunks.length, 10);
    await nginx.clearLog();
    try {
      assert.ok((await r.readFile(f, 70000, 1000)).equals(big.bytes.subarray(70000, 71000)));
    } finally {
      await r.close(); // settles the background fetches
    }
    const got = await uris('/chunks/');
    assert.deepEqual([...got].sort(), f.chunks.map((c) => `/${chunkPath(c.id)}`).sort(), 'every chunk once');
    const cached = await open('c2', { wholeFileMax: 0 });
    try {
      await nginx.clearLog();
      assert.ok((await cached.r.readFile(f, 0, f.size)).equals(big.bytes));
      assert.deepEqual(await nginx.log(), [], 'all from the disk cache');
    } finally {
      await cached.r.close();
    }
  });

  it('a tree pack brings every directory of a path in one request; a damaged tree in it is fetched on its own', async () => {
    const pack = join(remoteDir, treePackPath(rec.tree));
    const orig = await readFile(pack);
    const fresh = async (cache: string): Promise<RemoteReader> => {
      const r = await openRemote(nginx.url, { cacheDir: join(tmp, cache), trustedKeys: [pub] });
      await r.getStorePath(rec.path);
      return r;
    };
    const walk = async (r: RemoteReader): Promise<void> => {
      const root = (await r.getTree(rec.tree))!;
      const lib = (await r.getTree(root.entries.find((e) => e.name.toString() === 'lib')!.id!))!;
      const mods = (await r.getTree(lib.entries.find((e) => e.name.toString() === 'mods')!.id!))!;
      assert.equal(mods.entries.length, 61);
    };
    let r = await fresh('t1');
    try {
      await nginx.clearLog();
      assert.equal(await r.loadTreePack(rec.tree), 3, 'root, lib, lib/mods');
      await walk(r);
      assert.deepEqual((await nginx.log()).map((l) => l.uri), [`/${treePackPath(rec.tree)}`]);
    } finally {
      await r.close();
    }
    // The last tree in the pack (lib/mods, breadth first) with a flipped byte.
    const bad = Buffer.from(orig);
    bad[bad.length - 5] ^= 1;
    await writeFile(pack, bad);
    try {
      r = await fresh('t2');
      try {
        await nginx.clearLog();
        assert.equal(await r.loadTreePack(rec.tree), 2);
        await walk(r);
        assert.deepEqual((await nginx.log()).map((l) => l.uri), [`/${treePackPath(rec.tree)}`, `/${objectPath(modsTree)}`]);
      } finally {
        await r.close();
      }
    } finally {
      await writeFile(pack, orig);
    }
  });

  it('a recorded prefetch list is fetched in the background; a list of unknown ids stops after a few misses', async () => {
    const rec1 = await openRemote(nginx.url, { cacheDir: join(tmp, 'h1'), trustedKeys: [pub], recordHints: true });
    let ids: Id[];
    try {
      await rec1.getStorePath(rec.path);
      await rec1.getTree(rec.tree);
      for (const sm of [small[5]!, small[40]!]) {
        const f = (await rec1.getFile(sm.id))!;
        await rec1.readFile(f, 0, f.size);
      }
      ids = rec1.recordedHints();
    } finally {
      await rec1.close();
    }
    assert.deepEqual(ids, [small[5]!.id, small[40]!.id], 'first asked, first listed');
    const file = join(remoteDir, hintsPath(rec.tree));
    await mkdir(join(file, '..'), { recursive: true });
    await writeFile(file, encodeHints([...ids, big.id]));
    try {
      await nginx.clearLog();
      const r = await openRemote(nginx.url, { cacheDir: join(tmp, 'h2'), trustedKeys: [pub] });
      try {
        await r.getStorePath(rec.path);
        await r.loadTreePack(rec.tree);
        assert.equal(await r.startHints(rec.tree), 3);
      } finally {
        await r.close(); // waits for the background fetches
      }
      const got = (await nginx.log()).map((l) => l.uri);
      const part = (id: Id): string => `/${bundlePath(modsTree, parts.find((p) => p.members.some((m) => m.id === id))!.part)}`;
      for (const u of [part(ids[0]!), part(ids[1]!), `/${chunkPath(big.id)}`]) assert.ok(got.includes(u), `${u} fetched: ${got.join(' ')}`);
      // Made-up ids: every one a 404, and the list is given up on.
      await writeFile(file, encodeHints(Array.from({ length: 500 }, () => idOf(randomBytes(16)))));
      await nginx.clearLog();
      const r2 = await openRemote(nginx.url, { cacheDir: join(tmp, 'h3'), trustedKeys: [pub] });
      try {
        assert.equal(await r2.startHints(rec.tree), 500);
        // (Closing stops a list: wait until the requests settle first.)
        for (let n = -1, i = 0; i < 100; i++) {
          await new Promise((res) => setTimeout(res, 200));
          const now = (await nginx.log()).length;
          if (now === n) break;
          n = now;
        }
      } finally {
        await r2.close();
      }
      const misses = (await nginx.log()).filter((l) => l.uri.startsWith('/chunks/')).length;
      assert.ok(misses >= 32 && misses <= 48, `${misses} requests for unknown chunks`);
    } finally {
      await rm(file, { force: true });
    }
  });

  it('a bundle with a flipped byte or a missing bundle costs single-chunk fetches, never wrong bytes', async () => {
    const b0 = join(remoteDir, bundlePath(modsTree, 0));
    const b1 = join(remoteDir, bundlePath(modsTree, 1));
    const orig0 = await readFile(b0);
    const orig1 = await readFile(b1);
    // The last member of part 0: flip the last byte of its stored body.
    const bad = Buffer.from(orig0);
    bad[bad.length - 1] ^= 0x40;
    await writeFile(b0, bad);
    await rm(b1);
    try {
      const { r } = await open('c3');
      try {
        await nginx.clearLog();
        await readAll(r);
        const single = (await uris('/chunks/')).sort();
        const lastOf0 = parts[0]!.members[parts[0]!.members.length - 1]!.id;
        const want = [lastOf0, ...parts[1]!.members.map((m) => m.id)].map((id) => `/${chunkPath(id)}`).sort();
        assert.deepEqual(single, want, 'the damaged member and part 1 came one by one');
        const log = await nginx.log();
        assert.equal(log.filter((l) => l.uri === `/${bundlePath(modsTree, 1)}`).length, 1, 'a missing bundle is asked for once');
        assert.ok(r.stats().prefetch.bundleFailures >= 2);
      } finally {
        await r.close();
      }
      const c = await checkCache(join(tmp, 'c3'));
      assert.deepEqual(c.bad, [], 'nothing wrong cached');
    } finally {
      await writeFile(b0, orig0);
      await writeFile(b1, orig1);
    }
  });
});
