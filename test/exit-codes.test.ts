/**
 * The exit codes the README documents, each provoked for real through the CLI: 0 success,
 * 1 I/O or permission problem, 2 bad input or not found, 3 damaged store, 4 store in use,
 * 5 store format, 6 build failed, 7 remote. Every failure is one `miq: …` line.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, openSync, readdirSync, readFileSync, statSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ClassicLevel } from 'classic-level';
import { startBadServer, type BadServer } from './helpers/badserver.js';
import { MIQ, json, miq, miqAsync, ROOT, type RunResult, tempDir } from './helpers/cli.js';

const t = tempDir('miq-exit-');
chmodSync(t.dir, 0o755);
const user = `miqx${randomBytes(4).toString('hex')}`;
const A = join(t.dir, 'a');
let path = '';
let pub = '';
let srv: BadServer;
const remote = join(t.dir, 'remote');

before(async () => {
  execFileSync('useradd', ['-M', '-N', '-s', '/usr/sbin/nologin', user]);
  const src = join(t.dir, 'src');
  mkdirSync(join(src, 'sub'), { recursive: true });
  writeFileSync(join(src, 'sub', 'data'), randomBytes(200_000));
  writeFileSync(join(src, 'small'), 'small\n');
  const ing = miq(['--store', A, 'ingest', src, '--name', 'exits', '--json']);
  assert.equal(ing.code, 0, ing.stderr);
  path = json<{ path: string }>(ing).path;
  const k = miq(['key', 'generate', 'exit-1', '--dir', join(t.dir, 'keys'), '--json']);
  pub = json<{ publicText: string }>(k).publicText;
  assert.equal(miq(['--store', A, 'push', remote, path, '--sign-key', join(t.dir, 'keys', 'exit-1.key')]).code, 0);
  srv = await startBadServer(remote);
});
after(async () => {
  await srv?.close();
  try { execFileSync('userdel', [user]); } catch { /* gone */ }
  t.cleanup();
});

/** A copy of store A to damage. */
let copies = 0;
const copyOfA = (): string => {
  const d = join(t.dir, `copy${++copies}`);
  cpSync(A, d, { recursive: true });
  return d;
};
const asUser = (args: string[]): RunResult => {
  try {
    const stdout = execFileSync('runuser', ['-u', user, '--', process.execPath, MIQ, ...args], { encoding: 'utf8', cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    return { code: 0, stdout, stderr: '' };
  } catch (e) {
    const x = e as { status: number; stdout: string; stderr: string };
    return { code: x.status, stdout: x.stdout, stderr: x.stderr };
  }
};
const fetchInto = (store: string): Promise<RunResult> => miqAsync(['--store', join(t.dir, store), 'fetch', path, '--remote', srv.url, '--trusted-key', pub]);
const chunkFiles = (): string[] => {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const n of readdirSync(join(remote, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${n.name}` : n.name;
      if (n.isDirectory()) walk(r);
      else if (!r.startsWith('paths/') && !r.startsWith('profiles/')) out.push(r);
    }
  };
  walk('');
  return out;
};

interface Row { what: string; code: number; stderr: RegExp; run(): Promise<RunResult> | RunResult }

const rows: Row[] = [
  { what: 'success', code: 0, stderr: /^$/, run: () => miq(['--store', A, 'paths']) },
  { what: 'bad input: a root name that is not a name', code: 2, stderr: /^miq: --as "\.\.\/x" is not allowed/, run: () => miq(['--store', A, 'pin', path, '--as', '../x']) },
  { what: 'bad input: a nonsense size', code: 2, stderr: /^miq: --cache-size "1Q"/, run: () => miq(['--store', A, 'mount', join(t.dir, 'nomnt'), '--cache-size', '1Q']) },
  { what: 'not found: a store path that is not there', code: 2, stderr: /^miq: .*no store path/, run: () => miq(['--store', A, 'cat', `nothing-${'0'.repeat(32)}/x`]) },
  {
    what: 'damaged store: a flipped byte in a pack', code: 3, stderr: /^miq: .*(corrupt|damaged|does not match)/i,
    run: () => {
      const d = copyOfA();
      const packs = readdirSync(join(d, 'packs')).filter((n) => statSync(join(d, 'packs', n)).size > 100_000);
      const f = join(d, 'packs', packs[0]!);
      const fd = openSync(f, 'r+');
      const at = Math.floor(statSync(f).size / 2);
      const b = readFileSync(f).subarray(at, at + 1);
      writeSync(fd, Buffer.from([b[0]! ^ 0xff]), 0, 1, at);
      closeSync(fd);
      return miq(['--store', d, 'cat', `${path}/sub/data`]);
    },
  },
  {
    what: 'damaged store: an index LevelDB calls corrupt', code: 3, stderr: /^miq: the store database at .* is damaged/,
    run: () => {
      const d = copyOfA();
      writeFileSync(join(d, 'db', 'CURRENT'), 'MANIFEST-999999');
      return miq(['--store', d, 'paths']);
    },
  },
  {
    what: 'store in use: another process holds the index', code: 4, stderr: /^miq: the store at .* is in use/,
    run: async () => {
      const db = new ClassicLevel(join(A, 'db'));
      await db.open();
      try {
        return await miqAsync(['--store', A, 'paths']);
      } finally {
        await db.close();
      }
    },
  },
  {
    what: 'store format: a header from a newer miq', code: 5, stderr: /^miq: the store at .* has format version 99/,
    run: async () => {
      const d = copyOfA();
      const db = new ClassicLevel<string, string>(join(d, 'db'));
      const h = JSON.parse(await db.get('F') as string) as { version: number };
      h.version = 99;
      await db.put('F', JSON.stringify(h));
      await db.close();
      return miq(['--store', d, 'paths']);
    },
  },
  { what: 'build failed', code: 6, stderr: /^miq: .*error: the thing is broken/s, run: () => miqAsync(['--store', join(t.dir, 'build'), 'build', join(ROOT, 'test/fixtures/recipes/fails.ts')]) },
  {
    what: 'remote: a path document that is not JSON', code: 7, stderr: /^miq: .*not valid JSON/,
    run: async () => {
      srv.rule(`paths/${path}`, { kind: 'body', bytes: Buffer.from('{"not json') });
      try { return await fetchInto('f1'); } finally { srv.rule(`paths/${path}`, undefined); }
    },
  },
  {
    what: 'remote: an oversized body', code: 7, stderr: /^miq: .*more than the expected/,
    run: async () => {
      srv.rule(`paths/${path}`, { kind: 'oversize', total: 8 << 20 });
      try { return await fetchInto('f2'); } finally { srv.rule(`paths/${path}`, undefined); }
    },
  },
  {
    what: 'remote: bytes that do not match their hash', code: 7, stderr: /^miq: .*(corrupt|does not match)/,
    run: async () => {
      const files = chunkFiles();
      for (const f of files) srv.rule(f, { kind: 'wrong' });
      try { return await fetchInto('f3'); } finally { for (const f of files) srv.rule(f, undefined); }
    },
  },
  { what: "permission: another user on root's store", code: 1, stderr: /^miq: permission denied: cannot open the store at .*belongs to uid 0/, run: () => asUser(['--store', A, 'paths']) },
  {
    what: 'permission: a mount by a user who may not mount', code: 1, stderr: /^miq: permission denied: cannot mount .* run miq mount as root/,
    run: () => {
      const d = join(t.dir, 'usermnt');
      mkdirSync(join(d, 'mnt'), { recursive: true });
      execFileSync('chown', ['-R', user, d]);
      return asUser(['--store', join(d, 'store'), 'mount', join(d, 'mnt')]);
    },
  },
];

for (const row of rows) {
  test(`exit ${row.code}: ${row.what}`, async () => {
    const r = await row.run();
    assert.equal(r.code, row.code, `${row.what}: exit ${r.code}\n${r.stderr}`);
    assert.match(r.stderr, row.stderr);
    if (row.code !== 0) {
      assert.doesNotMatch(r.stderr, /\n\s+at |internal error/, r.stderr);
      if (row.code !== 6) assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
  });
}

test('the README documents exactly these codes', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8').replace(/\s+/g, ' ');
  assert.match(readme, /1 I\/O or permission problem, 2 bad input or not found, 3 damaged store, 4 store in use, 5 store format, 6 build failed, 7 remote/);
});
