/** Profiles and generations on a real store: merging, conflicts, priorities, rollback, GC roots. */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gcStore } from '../store/gc.js';
import { isMiqError } from '../store/errors.js';
import type { Store } from '../store/api.js';
import { openStore } from '../store/open.js';
import * as P from '../store/profiles.js';
import { miq, json } from './helpers/cli.js';

let base: string;
let store: Store;
const paths: Record<string, string> = {};

async function pkg(name: string, files: Record<string, string>, links: Record<string, string> = {}): Promise<string> {
  const d = join(base, 'src', name);
  for (const [f, c] of Object.entries(files)) {
    await mkdir(join(d, f, '..'), { recursive: true });
    await writeFile(join(d, f), c);
  }
  for (const [f, t] of Object.entries(links)) {
    await mkdir(join(d, f, '..'), { recursive: true });
    await symlink(t, join(d, f));
  }
  const r = await store.ingest(d, { name, pin: false });
  return r.path;
}

async function flatten(tree: string, prefix = ''): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const t = await store.getTree(tree as never);
  for (const e of t!.entries) {
    const p = `${prefix}/${e.name.toString()}`;
    if (e.kind === 'dir') Object.assign(out, await flatten(e.id!, p));
    else out[p] = e.kind === 'symlink' ? `-> ${e.target!.toString()}` : e.id!;
  }
  return out;
}

describe('profiles', () => {
  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'miq-profile-'));
    store = await openStore(join(base, 'store'));
    paths.a = await pkg('a', { 'bin/a': 'a\n', 'share/doc/a': 'doc a\n', 'share/common': 'same\n' });
    paths.b = await pkg('b', { 'bin/b': 'b\n', 'share/doc/b': 'doc b\n', 'share/common': 'same\n' });
    paths.c = await pkg('c', { 'bin/a': 'a from c\n' });
    paths.d = await pkg('d', { 'bin/d': 'd\n' }, { 'lib': 'usr/lib' });
    paths.e = await pkg('e', { 'lib/x': 'x\n' });
  });
  after(async () => {
    await store.close();
    await rm(base, { recursive: true, force: true });
  });

  it('merges members into one tree; identical files are no conflict; equal sets give equal ids', async () => {
    const r = await P.switchProfile(store, 'p1', [{ path: paths.a! }, { path: paths.b! }]);
    assert.equal(r.generation, 1);
    const flat = await flatten(r.tree);
    assert.deepEqual(Object.keys(flat).sort(), ['/bin/a', '/bin/b', '/share/common', '/share/doc/a', '/share/doc/b']);
    const again = await P.switchProfile(store, 'p2', [{ path: paths.b! }, { path: paths.a! }]);
    assert.equal(again.tree, r.tree, 'the merged tree is content-addressed');
    assert.equal(again.env, r.env);
    const env = await store.getStorePath(r.env);
    assert.deepEqual([...env!.references].sort(), [paths.a, paths.b].sort());
  });

  it('a conflict names both members and the path, unless a priority decides', async () => {
    await assert.rejects(P.switchProfile(store, 'p3', [{ path: paths.a! }, { path: paths.c! }]), (e: unknown) => {
      assert.ok(isMiqError(e, 'MIQ_CONFLICT'));
      assert.match(e.message, new RegExp(`${paths.a}.*${paths.c}|${paths.c}.*${paths.a}`));
      assert.match(e.message, /\/bin\/a/);
      return true;
    });
    assert.equal(await P.current(store, 'p3'), undefined, 'a failed switch makes no generation');
    const r = await P.switchProfile(store, 'p3', [{ path: paths.a! }, { path: paths.c!, priority: 1 }]);
    const flat = await flatten(r.tree);
    const cTree = await flatten((await store.getStorePath(paths.c!))!.tree);
    assert.equal(flat['/bin/a'], cTree['/bin/a']);
    const g = await P.current(store, 'p3');
    assert.deepEqual(g!.priorities, { [paths.c!]: 1 });
  });

  it('a symlink against a directory is a conflict too', async () => {
    await assert.rejects(P.switchProfile(store, 'p4', [{ path: paths.d! }, { path: paths.e! }]), (e: unknown) => isMiqError(e, 'MIQ_CONFLICT') && /\/lib/.test(e.message));
  });

  it('add, remove, rollback, numbers never reused, diff', async () => {
    const n = 'p5';
    await P.switchProfile(store, n, [{ path: paths.a! }]);
    const g2 = await P.addToProfile(store, n, [{ path: paths.b! }]);
    assert.deepEqual(g2.paths, [paths.a, paths.b].sort());
    const g3 = await P.removeFromProfile(store, n, [paths.a!]);
    assert.deepEqual(g3.paths, [paths.b]);
    await assert.rejects(P.removeFromProfile(store, n, [paths.c!]), (e: unknown) => isMiqError(e, 'MIQ_NOT_FOUND'));
    const rb = await P.rollback(store, n);
    assert.equal(rb.generation, 2);
    assert.equal((await P.current(store, n))!.generation, 2);
    const rb1 = await P.rollback(store, n, 1);
    assert.equal(rb1.generation, 1);
    await assert.rejects(P.rollback(store, n), (e: unknown) => isMiqError(e, 'MIQ_NOT_FOUND'));
    const d = await P.diffGenerations(store, n, 1, 3);
    assert.deepEqual(d.added, [paths.b]);
    assert.deepEqual(d.removed, [paths.a]);
    const del = await P.deleteGenerations(store, n, { keep: 1 });
    assert.deepEqual(del.deleted, [2], 'the current generation (1) survives --keep 1');
    assert.deepEqual(del.kept, [1, 3]);
    const g4 = await P.addToProfile(store, n, [{ path: paths.b! }]);
    assert.equal(g4.generation, 4, 'numbers are never reused');
    const old = await P.deleteGenerations(store, n, { olderThanDays: 1, now: Date.now() + 3 * 86_400_000 });
    assert.deepEqual(old.kept, [4]);
  });

  it('kept generations are GC roots; deleting them lets gc free the merged tree and members', async () => {
    const n = 'p6';
    const only = await pkg('only6', { 'x/y/z': 'only in p6\n' });
    const r1 = await P.switchProfile(store, n, [{ path: only }, { path: paths.b! }]);
    await P.switchProfile(store, n, [{ path: paths.b! }]);
    const rep = await gcStore(store.maintenance!, { dryRun: false });
    assert.ok(!rep.deadPaths.includes(only), 'member of a kept generation survives gc');
    assert.ok(await store.getTree(r1.tree), 'merged tree survives gc');
    await P.deleteGenerations(store, n, { keep: 1 });
    const rep2 = await gcStore(store.maintenance!, { dryRun: false });
    assert.ok(rep2.deadPaths.includes(only));
    assert.ok(rep2.deadPaths.includes(r1.env));
    assert.equal(await store.getTree(r1.tree), undefined);
  });

  it('CLI: profile commands with --json, clean errors', async () => {
    await store.close();
    try {
      const S = ['--store', join(base, 'store')];
      const sw = miq([...S, 'profile', 'switch', 'cli', paths.a!, '--json']);
      assert.equal(sw.code, 0, sw.stderr);
      assert.equal(json(sw).generation, 1);
      const add = json(miq([...S, 'profile', 'add', 'cli', paths.b!, '--json']));
      assert.equal(add.generation, 2);
      const bad = miq([...S, 'profile', 'add', 'cli', paths.c!]);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /^miq: .*both provide \/bin\/a/);
      assert.equal(json(miq([...S, 'profile', 'add', 'cli', paths.c!, '--priority', '1', '--json'])).generation, 3);
      const gens = json<{ current: number; generations: unknown[] }>(miq([...S, 'profile', 'generations', 'cli', '--json']));
      assert.equal(gens.current, 3);
      assert.equal(gens.generations.length, 3);
      // Rollback goes back, as in Nix (a second one does not undo the first): the text says so
      // and names the way forward; from the oldest, the refusal names --to.
      const rb = miq([...S, 'profile', 'rollback', 'cli']);
      assert.equal(rb.code, 0, rb.stderr);
      assert.match(rb.stdout, /now at generation 2 \(was 3\): 2 store paths/);
      assert.match(rb.stdout, /another rollback goes further back.*`miq profile rollback cli --to 3` returns to 3/);
      assert.equal(json(miq([...S, 'profile', 'rollback', 'cli', '--to', '1', '--json'])).generation, 1);
      const oldest = miq([...S, 'profile', 'rollback', 'cli']);
      assert.equal(oldest.code, 2);
      assert.match(oldest.stderr, /^miq: profile cli has no generation before 1 \(rollback moves back, not forward: `miq profile rollback cli --to N`/);
      const list = json<{ name: string; current: number }[]>(miq([...S, 'profile', 'list', '--json']));
      assert.equal(list.find((p) => p.name === 'cli')!.current, 1);
      const diff = json<{ added: string[] }>(miq([...S, 'profile', 'diff', 'cli', '1', '2', '--json']));
      assert.deepEqual(diff.added, [paths.b]);
      assert.deepEqual(json<{ deleted: number[] }>(miq([...S, 'profile', 'delete-generations', 'cli', '--keep', '1', '--json'])).deleted, [2], 'newest (3) and current (1) stay');
      const none = miq([...S, 'profile', 'generations', 'nosuch']);
      assert.equal(none.code, 2);
      assert.match(none.stderr, /^miq: profile nosuch has no generations/);
    } finally {
      store = await openStore(join(base, 'store'));
    }
  });
});
