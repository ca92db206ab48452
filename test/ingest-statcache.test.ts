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
import { gcStore } from '../store/gc.js';
import { RACY_MS } from '../store/ingest-statcache.js';
import { openStore } from '../store/open.js';
import { destroyPool } from '../store/pool.js';

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
