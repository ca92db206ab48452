/**
 * Round trips and dedup on real third-party trees, through the real CLI.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readdirSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { debianPackage, npmRelease } from './helpers/corpus.js';
import { ClassicLevel } from 'classic-level';
import { decodeFileRecord } from '../store/objects.js';
import { exited, isCleanError, json, miq, spawnMiq, tempDir } from './helpers/cli.js';

const tmp = tempDir();
after(() => tmp.cleanup());
const store = (n: string): string[] => ['--store', join(tmp.dir, n)];

/** Every entry's type, exec bit, size and link target, by relative path. */
function shape(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string): void => {
    for (const n of readdirSync(join(root, rel), { encoding: 'buffer' })) {
      const r = rel ? `${rel}/${n.toString('latin1')}` : n.toString('latin1');
      const p = Buffer.from(join(root, r), 'latin1');
      const st = lstatSync(p);
      if (st.isSymbolicLink()) out.set(r, `link ${readlinkSync(p, { encoding: 'buffer' }).toString('hex')}`);
      else if (st.isDirectory()) { out.set(r, 'dir'); walk(r); }
      else out.set(r, `file ${st.size} ${(st.mode & 0o111) !== 0 ? 'exe' : 'plain'}`);
    }
  };
  walk('');
  return out;
}

let debs: string[] = [];
before(() => {
  debs = ['coreutils', 'bash', 'libc6', 'perl-base', 'python3.11-minimal'].map(debianPackage);
});

test('real Debian packages round-trip: ingest, export, diff -r, modes and symlinks identical', () => {
  for (const src of debs) {
    const r = miq([...store('rt'), 'ingest', src, '--name', 'deb', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const res = json<{ path: string; files: number; bytes: number; newBytes: number }>(r);
    assert.match(res.path, /^deb-[0-9a-f]{32}$/);
    assert.ok(res.files > 0 && res.bytes > 0);
    const dest = join(tmp.dir, `export-${res.path}`);
    const e = miq([...store('rt'), 'export', res.path, dest]);
    assert.equal(e.code, 0, e.stderr);
    execFileSync('diff', ['-r', '--no-dereference', src, dest]); // throws on any difference
    assert.deepEqual(shape(dest), shape(src));
  }
  const v = miq([...store('rt'), 'verify', '--json']);
  assert.equal(v.code, 0, v.stdout);
  assert.equal(json<{ ok: boolean }>(v).ok, true);
});

test('plain output ends with the store path; ls and cat read it back', () => {
  const src = debs[0]!;
  const r = miq([...store('plain'), 'ingest', src, '--name', 'coreutils']);
  assert.equal(r.code, 0, r.stderr);
  const path = r.stdout.trim().split('\n').pop()!;
  assert.match(path, /^coreutils-[0-9a-f]{32}$/);
  const ls = miq([...store('plain'), 'ls', `${path}/bin`, '--json']);
  const names = json<{ name: string; kind: string }[]>(ls).map((e) => e.name);
  assert.ok(names.includes('ls') && names.includes('cat'));
  const cat = miq([...store('plain'), 'cat', `/miq/store/${path}/usr/share/doc/coreutils/copyright`]);
  assert.equal(cat.code, 0, cat.stderr);
  assert.equal(cat.stdout, execFileSync('cat', [join(src, 'usr/share/doc/coreutils/copyright')], { encoding: 'utf8' }));
  const b3 = execFileSync('b3sum', ['--no-names', join(src, 'bin/ls')], { encoding: 'utf8' }).trim();
  const entry = json<{ name: string; id: string }[]>(miq([...store('plain'), 'ls', `${path}/bin/ls`, '--json']))[0]!;
  assert.equal(entry.id, b3, 'a file id is the BLAKE3 (b3sum) of its content');
  assert.deepEqual(json<{ path: string }[]>(miq([...store('plain'), 'paths', '--json'])).map((p) => p.path), [path]);
});

test('dedup: release N+1 after release N adds a small fraction; stats agree with the disk', () => {
  const vs = ['5.8.2', '5.8.3'];
  const res = vs.map((v) => json<{ path: string; bytes: number; newBytes: number }>(miq([...store('dedup'), 'ingest', npmRelease('typescript', v), '--name', `typescript-${v}`, '--json'])));
  for (let i = 1; i < res.length; i++) {
    // The first ingest compresses ~4.5x; each release after it must add far less than that.
    assert.ok(res[i]!.newBytes < res[i]!.bytes * 0.1, `release ${vs[i]} added ${res[i]!.newBytes} of ${res[i]!.bytes}`);
    assert.ok(res[i]!.newBytes < res[0]!.newBytes * 0.5, `release ${vs[i]} added ${res[i]!.newBytes}, first added ${res[0]!.newBytes}`);
  }
  // Opening LevelDB turns its write-ahead log into a table: the first open after an ingest
  // changes the files, so compare the steady state (a second stats run) with the disk.
  miq([...store('dedup'), 'stats', '--json']);
  const s = json<{ storePaths: number; logicalBytes: number; storedBytes: number; uniqueChunks: number; dedupRatio: number; paths: { path: string; sharedBytes: number; uniqueBytes: number }[] }>(miq([...store('dedup'), 'stats', '--json']));
  assert.equal(s.storePaths, 2);
  assert.equal(s.logicalBytes, res.reduce((a, r) => a + r.bytes, 0));
  const du = Number(execFileSync('du', ['-sb', '--apparent-size', join(tmp.dir, 'dedup')], { encoding: 'utf8' }).split('\t')[0]);
  const dirs = Number(execFileSync('find', [join(tmp.dir, 'dedup'), '-type', 'd'], { encoding: 'utf8' }).trim().split('\n').length);
  // du counts directory entries' own sizes too; stats counts file bytes.
  let fileBytes = 0;
  // The full-disk reserve (store/open-index.ts) is free space held back, not stored bytes.
  execFileSync('find', [join(tmp.dir, 'dedup'), '-type', 'f', '!', '-name', 'reserve', '-printf', '%s\n'], { encoding: 'utf8' }).trim().split('\n').forEach((l) => (fileBytes += Number(l)));
  // LevelDB appends a line to its text LOG at every open: allow that much.
  assert.ok(Math.abs(s.storedBytes - fileBytes) <= 4096, `stats ${s.storedBytes} vs files on disk ${fileBytes} (du ${du}, ${dirs} dirs)`);
  assert.ok(s.dedupRatio > 3);
  for (const p of s.paths) assert.ok(p.sharedBytes > p.uniqueBytes, `${p.path} shares ${p.sharedBytes}, owns ${p.uniqueBytes}`);
});

test('re-ingesting the same tree adds nothing and gives the same path', () => {
  const src = npmRelease('typescript', '5.8.2');
  const a = json<{ path: string; newBytes: number }>(miq([...store('again'), 'ingest', src, '--name', 'ts', '--json']));
  const b = json<{ path: string; newBytes: number; newChunks: number }>(miq([...store('again'), 'ingest', src, '--name', 'ts', '--json']));
  assert.equal(a.path, b.path);
  assert.equal(b.newChunks, 0);
  assert.ok(b.newBytes < 200, `second ingest added ${b.newBytes} bytes`);
});

test('user mistakes: one readable line and a non-zero exit', () => {
  const s = store('mistakes');
  const cases: [string[], RegExp][] = [
    [['ingest', join(tmp.dir, 'nope')], /does not exist/],
    [['ingest', '/etc/hostname'], /not a directory/],
    [['ingest', debs[0]!, '--name', '.bad name'], /not allowed/],
    [['cat', 'nothing-00000000000000000000000000000000/x'], /no store path/],
    [['ls', ''], /names no store path/],
    [['export', 'nothing', join(tmp.dir, 'x')], /no store path/],
    [['unpin', 'nothing'], /no GC root/],
  ];
  for (const [args, re] of cases) {
    const r = miq([...s, ...args]);
    assert.ok(isCleanError(r), `${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
  const bad = miq(['--store', '/proc/miq-store', 'paths']);
  assert.ok(isCleanError(bad), bad.stderr);
  // A store written by a newer miq is refused with a clear error.
  assert.ok(statSync(join(tmp.dir, 'mistakes')).isDirectory());
});

test('into a new store the scan compresses each chunk once, even when many files share it: the same chunks as the separate compress step', () => {
  // Two npm releases side by side: most files appear twice, so workers race to claim chunks.
  const src = join(tmp.dir, 'twins');
  execFileSync('mkdir', ['-p', src]);
  execFileSync('cp', ['-r', npmRelease('typescript', '5.8.2'), join(src, 'a')]);
  execFileSync('cp', ['-r', npmRelease('typescript', '5.8.3'), join(src, 'b')]);
  execFileSync('cp', ['-r', npmRelease('typescript', '5.8.2'), join(src, 'c')]);
  type R = { path: string; tree: string; newBytes: number; newChunks: number; chunks: number };
  const viaScan = json<R>(miq(['--store', join(tmp.dir, 'twins-scan'), 'ingest', src, '--json']));
  const viaStep = json<R>(miq(['--store', join(tmp.dir, 'twins-step'), 'ingest', src, '--json'], { env: { MIQ_NO_SCAN_COMPRESS: '1' } }));
  assert.equal(viaScan.tree, viaStep.tree);
  assert.equal(viaScan.newChunks, viaStep.newChunks, 'no chunk stored twice');
  // Not byte-equal: the scan and the compress step group small files into shared frames
  // (codec.ts FLAG_FRAME) by task, and their tasks differ; a chunk stored twice would show above.
  assert.ok(Math.abs(viaScan.newBytes - viaStep.newBytes) <= viaStep.newBytes * 0.01, `${viaScan.newBytes} vs ${viaStep.newBytes}`);
  const s = json<{ uniqueChunks: number; storedBytes: number }>(miq(['--store', join(tmp.dir, 'twins-scan'), 'stats', '--json']));
  assert.equal(s.uniqueChunks, viaScan.newChunks);
  assert.equal(miq(['--store', join(tmp.dir, 'twins-scan'), 'verify']).code, 0);
  const out = join(tmp.dir, 'twins-out');
  assert.equal(miq(['--store', join(tmp.dir, 'twins-scan'), 'export', viaScan.path, out]).code, 0);
  execFileSync('diff', ['-r', '--no-dereference', src, out]);
  // Every claim collides (MIQ_CLAIM_COLLIDE): each chunk but the first is reported as held by
  // another claim that never brings it, so all of them take the fallback after the scans (read
  // and compressed again from their files): still every chunk once, all readable.
  const collide = join(tmp.dir, 'twins-collide');
  const viaFallback = json<R>(miq(['--store', collide, 'ingest', src, '--json'], { env: { MIQ_CLAIM_COLLIDE: '1' } }));
  assert.equal(viaFallback.tree, viaStep.tree);
  assert.equal(viaFallback.newChunks, viaStep.newChunks, 'no chunk stored twice or missed');
  assert.equal(json<{ uniqueChunks: number }>(miq(['--store', collide, 'stats', '--json'])).uniqueChunks, viaStep.newChunks);
  assert.equal(miq(['--store', collide, 'verify']).code, 0);
  const out2 = join(tmp.dir, 'twins-collide-out');
  assert.equal(miq(['--store', collide, 'export', viaFallback.path, out2]).code, 0);
  execFileSync('diff', ['-r', '--no-dereference', src, out2]);
});

test('file records written during the scan name only indexed chunks, also after a SIGKILL right after an index batch', async () => {
  // 6000 distinct small files (the first index batch comes at 4096 chunk entries, with the
  // records of the files whose chunks it holds) and one file big enough for a compress task (its
  // record waits for the commit), some content twice. Before 2026-12-02 every record waited for
  // the commit: a kill before it left no record, so this test failed (`orphaned` stayed 0).
  const src = join(tmp.dir, 'early-src');
  for (let d = 0; d < 30; d++) {
    mkdirSync(join(src, `d${d}`), { recursive: true });
    for (let i = 0; i < 200; i++) writeFileSync(join(src, `d${d}`, `f${i}`), `file ${d}/${i}\n`.repeat(50 + ((d * 200 + i) % 90)));
  }
  writeFileSync(join(src, 'twin'), `file 3/7\n`.repeat(50 + ((3 * 200 + 7) % 90)));
  writeFileSync(join(src, 'big'), Buffer.from(Array.from({ length: 300_000 }, (_, i) => `line ${i * 7919 % 100_003}\n`).join('')));
  const dir = join(tmp.dir, 'early-store');
  const db = join(dir, 'db');
  const check = async (): Promise<{ records: number; paths: number }> => {
    const l = new ClassicLevel<string, Buffer>(db, { keyEncoding: 'utf8', valueEncoding: 'buffer' });
    let records = 0, paths = 0;
    try {
      const files: [string, Buffer][] = [];
      for await (const e of l.iterator({ gte: 'f/', lt: 'f/\xff' })) files.push(e);
      for await (const _ of l.keys({ gte: 'p/', lt: 'p/\xff' })) paths++;
      const chunkIds = [...new Set(files.flatMap(([k, v]) => decodeFileRecord(v, k.slice(2) as never).chunks.map((c) => c.id)))];
      const got = await l.getMany(chunkIds.map((c) => `c/${c}`));
      chunkIds.forEach((c, i) => assert.notEqual(got[i], undefined, `a file record names chunk ${c}, which the index lacks`));
      records = files.length;
    } finally {
      await l.close();
    }
    return { records, paths };
  };
  let orphaned = 0;
  for (let t = 0; t < 5 && orphaned === 0; t++) {
    const before = existsSync(db) ? await check() : { records: 0, paths: 0 };
    const child = spawnMiq(['--store', dir, 'ingest', src, '--name', `t${t}`, '--json']);
    // The kill waits for a condition, not a time: LevelDB's log holding a whole batch (over
    // 200 kB and no longer growing: a batch cut short by the kill is dropped whole on reopen).
    const log = (): number => (existsSync(db) ? readdirSync(db).filter((f) => f.endsWith('.log')).reduce((a, f) => a + (statSync(join(db, f), { throwIfNoEntry: false })?.size ?? 0), 0) : 0);
    const start = log();
    for (let last = -1, still = 0; child.exitCode === null && still < 3;) {
      await new Promise((r) => setTimeout(r, 2));
      const n = log();
      still = n >= start + 200_000 && n === last ? still + 1 : 0;
      last = n;
    }
    child.kill('SIGKILL');
    await exited(child);
    const c = await check();
    if (c.paths === before.paths && c.records > before.records) orphaned++;
    miq(['--store', dir, 'gc', '--json']);
  }
  assert.ok(orphaned > 0, 'no kill landed between an index batch and the commit');
  const r = miq(['--store', dir, 'ingest', src, '--name', 'whole', '--json']);
  assert.equal(r.code, 0, r.stderr);
  await check();
  assert.equal(miq(['--store', dir, 'verify']).code, 0);
});
