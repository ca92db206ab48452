/**
 * The stat cache (store/ingest-statcache.ts): an unchanged inode is not read again, a changed
 * one always is (even with its size and mtime put back), a file changed just before the ingest
 * gets no entry, and gc drops entries of files it removed.
 */
import assert from 'node:assert/strict';
import { link, mkdir, mkdtemp, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ClassicLevel } from 'classic-level';
import { gcStore } from '../store/gc.js';
import { RACY_MS } from '../store/ingest-statcache.js';
import { openStore } from '../store/open.js';
import { hashFilesAsync } from '../store/ingest-hash.js';
import { compressInC, scanInC } from '../store/ingest-c.js';
import { idOf } from '../store/ids.js';
import { destroyPool, poolStarted } from '../store/pool.js';

const tmp = await mkdtemp(join(tmpdir(), 'miq-statcache-'));
after(async () => {
  await destroyPool();
  await rm(tmp, { recursive: true, force: true });
});

test('unchanged inodes are skipped, changed ones re-read, racy ones never cached, gc prunes', async () => {
  const src = join(tmp, 'a');
  await mkdir(join(src, 'd'), { recursive: true });
  for (let i = 0; i < 20; i++) await writeFile(join(src, 'd', `f${i}`), `file ${i}\n`.repeat(i + 1));
  await writeFile(join(src, 'big'), Buffer.alloc(200_000, 7));
  // (Linking changes the inode's ctime: the link is made before the files are old enough.)
  const b = join(tmp, 'b');
  await mkdir(b);
  await link(join(src, 'd', 'f3'), join(b, 'f3'));
  // Entries are written only for files older than RACY_MS at the ingest's start.
  await new Promise((r) => setTimeout(r, RACY_MS + 200));

  const store = await openStore(join(tmp, 'store'));
  const fresh = await openStore(join(tmp, 'fresh'));
  try {
    const first = await store.ingest(src, { name: 'a' });
    assert.equal(first.scanned, 21);
    const again = await store.ingest(src, { name: 'a2' });
    assert.equal(again.scanned, 0, 'no unchanged file is read');
    assert.equal(again.tree, first.tree);

    // A hard link elsewhere is the same inode: not read either.
    assert.equal((await store.ingest(b, { name: 'b' })).scanned, 0);

    // Same size, mtime put back: ctime moved, so it is read and the new bytes are stored.
    const p = join(src, 'd', 'f5');
    const st = await stat(p);
    await writeFile(p, 'FILE 5\n'.repeat(6));
    await utimes(p, st.atime, st.mtime);
    const changed = await store.ingest(src, { name: 'a3' });
    assert.equal(changed.scanned, 1);
    assert.equal(changed.tree, (await fresh.ingest(src, { name: 'a3' })).tree);
    // f5 changed just now: it has no entry, so it is read each time until it is old enough.
    assert.equal((await store.ingest(src, { name: 'a4' })).scanned, 1);

    // gc removes every file (nothing is pinned): a later ingest reads them again instead of
    // trusting entries that name records no longer there.
    for (const r of await store.listRoots()) await store.unpin(r.root);
    const gc = await gcStore(store.maintenance!);
    assert.ok(gc.deadFiles > 0, JSON.stringify(gc));
    assert.equal((await store.ingest(src, { name: 'a5' })).scanned, 21);
  } finally {
    await store.close();
    await fresh.close();
  }
});

test('references are the same whichever way a known file is met: read, stat cache hit, or hashed at a new inode', async () => {
  const store = await openStore(join(tmp, 'refs-store'));
  try {
    const depDir = join(tmp, 'dep');
    await mkdir(depDir);
    await writeFile(join(depDir, 'lib'), 'a dependency\n');
    const dep = await store.ingest(depDir, { name: 'dep' });
    // A small file (scheduled with the small ones), one read whole by the hash pass, and one the
    // hash pass streams (over its 4 MiB read): each names the dependency, each in a tree of its own.
    const named = Buffer.from(`#!/miq/store/${dep.path}/bin/x\n`);
    const bodies: Record<string, Buffer> = {
      small: Buffer.concat([named, Buffer.from('small\n')]),
      mid: Buffer.concat([Buffer.alloc(150_000, 'z'), named, Buffer.alloc(50_000, 'y')]),
      big: Buffer.concat([Buffer.alloc(5 << 20, 'q'), named, Buffer.alloc(1000, 'w')]),
    };
    for (const [name, body] of Object.entries(bodies)) {
      await mkdir(join(tmp, `w-${name}`));
      await writeFile(join(tmp, `w-${name}`, 'f'), body);
      await writeFile(join(tmp, `w-${name}`, 'plain'), `no reference in ${name}\n`);
    }
    await new Promise((r) => setTimeout(r, RACY_MS + 200));
    for (const name of Object.keys(bodies)) {
      const dir = join(tmp, `w-${name}`);
      const first = await store.ingest(dir, { name: `w-${name}` });
      assert.deepEqual(first.references, [dep.path], `${name}: read`);
      const hit = await store.ingest(dir, { name: `w-${name}-again` });
      assert.equal(hit.scanned, 0, `${name}: stat cache hits`);
      assert.deepEqual(hit.references, [dep.path], `${name}: stat cache hit`);
      const copy = join(tmp, `w-${name}-copy`);
      await mkdir(copy);
      await writeFile(join(copy, 'f'), bodies[name]!);
      await writeFile(join(copy, 'plain'), `no reference in ${name}\n`);
      const hashed = await store.ingest(copy, { name: `w-${name}-copy` });
      assert.equal(hashed.scanned, 2, `${name}: read again at new inodes`);
      assert.equal(hashed.newChunks, 0, `${name}: known content`);
      assert.deepEqual(hashed.references, [dep.path], `${name}: hashed at a new inode`);
    }
  } finally {
    await store.close();
  }
});

test('an update whose files are all known hashes them without a worker; new content starts the pool; the trees are a new store\'s', async () => {
  const src = join(tmp, 'u');
  await mkdir(join(src, 'd'), { recursive: true });
  const bodies = new Map<string, Buffer>();
  for (let i = 0; i < 40; i++) bodies.set(`d/f${i}`, Buffer.from(`file ${i}\n`.repeat(i * 50 + 1)));
  bodies.set('mid', Buffer.alloc(300_000, 'm'));
  bodies.set('big', Buffer.concat([Buffer.alloc(5 << 20, 'b'), Buffer.from('tail')]));
  const copyTo = async (dir: string, change?: string): Promise<void> => {
    await mkdir(join(dir, 'd'), { recursive: true });
    for (const [n, b] of bodies) await writeFile(join(dir, n), n === change ? Buffer.concat([b, Buffer.from('changed')]) : b);
    if (change) await writeFile(join(dir, 'd', 'new'), 'a new file\n');
  };
  await copyTo(src);
  const store = await openStore(join(tmp, 'u-store'));
  const fresh = await openStore(join(tmp, 'u-fresh'));
  try {
    const first = await store.ingest(src, { name: 'u' });
    await destroyPool();
    // The same content at new inodes: every file is hashed, none scanned or stored.
    const copy = join(tmp, 'u-copy');
    await copyTo(copy);
    const again = await store.ingest(copy, { name: 'u-copy' });
    assert.equal(again.tree, first.tree);
    assert.equal(again.newChunks, 0);
    assert.equal(again.scanned, bodies.size, 'every file read again at its new inode');
    // With hashFilesAsync (the addon built with BLAKE3's C source, MIQ_JS_HASH unset) the walk
    // and the hash pass run without the pool; without it they run in the workers, as before.
    if (hashFilesAsync) assert.equal(poolStarted(), 0, 'no worker started for an update of known files');
    else assert.ok(poolStarted() > 0);
    // A changed file (a delta against its old version) and a new one: scanned and compressed in
    // C on libuv's threads when the addon can (ingest-c.ts), else in the workers.
    const changed = join(tmp, 'u-changed');
    await copyTo(changed, 'mid');
    const upd = await store.ingest(changed, { name: 'u-changed' });
    if (hashFilesAsync && scanInC() && compressInC()) assert.equal(poolStarted(), 0, 'no worker started for an update with new content');
    else assert.ok(poolStarted() > 0, 'the pool starts for what must be scanned');
    assert.ok(upd.newChunks > 0);
    const ref = await fresh.ingest(changed, { name: 'u-changed' });
    assert.equal(upd.tree, ref.tree, 'the same root tree as a new store\'s');
    for (const [n, b] of bodies) {
      const body = n === 'mid' ? Buffer.concat([b, Buffer.from('changed')]) : b;
      const rec = (await store.getFile(idOf(body)))!;
      assert.ok(rec.chunks.length > 0 && (await store.readFile(rec, 0, body.length)).equals(body), `${n} reads back`);
    }
  } finally {
    await store.close();
    await fresh.close();
  }
});

test('an update reads the stat cache for several batches of files at once and applies what it finds in the walk\'s order', async () => {
  const src = join(tmp, 'many');
  // 2 600 files: six batches of stat lookups (512 files each).
  for (let d = 0; d < 26; d++) {
    await mkdir(join(src, `d${d}`), { recursive: true });
    await Promise.all(Array.from({ length: 100 }, (_, i) => writeFile(join(src, `d${d}`, `f${i}`), `file ${d}.${i}\n`)));
  }
  await new Promise((r) => setTimeout(r, RACY_MS + 200));
  const store = await openStore(join(tmp, 'many-store'));
  const fresh = await openStore(join(tmp, 'many-fresh'));
  // Each read of stat entries answers 20 ms late: chained, one batch's reads waited for the one
  // before; now up to 4 run at once.
  const proto = ClassicLevel.prototype as unknown as { _getMany: (keys: unknown[], o: unknown) => Promise<unknown> };
  const getMany = proto._getMany;
  let now = 0, most = 0;
  proto._getMany = async function (this: unknown, keys: unknown[], o: unknown): Promise<unknown> {
    if (!String(keys[0]).startsWith('s/')) return getMany.call(this, keys, o);
    most = Math.max(most, ++now);
    try {
      await new Promise((r) => setTimeout(r, 20));
      return await getMany.call(this, keys, o);
    } finally {
      now--;
    }
  };
  try {
    const first = await store.ingest(src, { name: 'many' });
    assert.equal(first.scanned, 2600);
    const again = await store.ingest(src, { name: 'many2' });
    assert.equal(again.scanned, 0, 'every file a stat cache hit');
    assert.equal(again.tree, first.tree);
    assert.equal(most, 4, 'stat lookups under way at once');
    // Files changed in the first and the fifth batch: read, stored as a new store stores them.
    await writeFile(join(src, 'd0', 'f1'), 'changed 0\n');
    await writeFile(join(src, 'd20', 'f1'), 'changed 20\n');
    const changed = await store.ingest(src, { name: 'many3' });
    assert.equal(changed.scanned, 2);
    assert.equal(changed.tree, (await fresh.ingest(src, { name: 'many3' })).tree);
  } finally {
    proto._getMany = getMany;
    await store.close();
    await fresh.close();
  }
});
