/**
 * miq repair: a flipped byte in a pack (a failing disk) is found by hash and fetched again from a
 * remote served by a real nginx; what the remote lacks is reported, not papered over.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { flipChunkByte } from './helpers/packs.js';
import { startNginx, type Nginx } from './helpers/nginx.js';
import { isCleanError, json, miq, tempDir } from './helpers/cli.js';

describe('miq repair', () => {
  const t = tempDir('miq-repair-');
  const store = join(t.dir, 'store');
  const env = { MIQ_HOME: store };
  let nginx: Nginx;
  const ids: Record<string, string> = {};

  const ingest = (name: string, files: Record<string, Buffer>): string => {
    const d = join(t.dir, name);
    mkdirSync(d, { recursive: true });
    for (const [f, b] of Object.entries(files)) writeFileSync(join(d, f), b);
    const r = miq(['ingest', d, '--json'], { env });
    assert.equal(r.code, 0, r.stderr);
    const path = json<{ path: string }>(r).path;
    for (const e of json<{ name: string; id: string }[]>(miq(['ls', path, '--json'], { env }))) ids[`${name}/${e.name}`] = e.id;
    return path;
  };

  before(async () => {
    // Files under the 32 KiB minimum chunk are one chunk each, whose id is the file's.
    const pushed = ingest('pushed', { a: randomBytes(20_000), b: randomBytes(24_000), d: randomBytes(18_000), big: randomBytes(600_000) });
    ingest('local-only', { c: randomBytes(16_000) });
    assert.equal(miq(['key', 'generate', 'k'], { env }).code, 0);
    assert.equal(miq(['profile', 'switch', 'p', pushed], { env }).code, 0);
    const p = miq(['push', join(t.dir, 'remote'), '--profile', 'p', '--sign-key', 'k', '--json'], { env });
    assert.equal(p.code, 0, p.stderr);
    nginx = await startNginx(join(t.dir, 'remote'));
  });
  after(async () => {
    await nginx?.stop();
    t.cleanup();
  });

  it('refuses without a remote, in one line', () => {
    const r = miq(['repair'], { env });
    assert.ok(isCleanError(r), r.stderr);
    assert.match(r.stderr, /--remote/);
  });

  it('fetches damaged chunks again over HTTP; what the remote lacks stays reported', async () => {
    flipChunkByte(store, ids['pushed/a']!);
    flipChunkByte(store, ids['pushed/b']!);
    flipChunkByte(store, ids['local-only/c']!);
    const v = miq(['verify', '--json'], { env });
    assert.equal(v.code, 3);
    assert.deepEqual(json<{ damaged: { id: string }[] }>(v).damaged.map((d) => d.id).sort(), [ids['pushed/a'], ids['pushed/b'], ids['local-only/c']].sort());

    await nginx.clearLog();
    const r = miq(['repair', '--remote', nginx.url, '--trusted-key', 'k', '--json'], { env });
    assert.equal(r.code, 3, r.stderr);
    const rep = json<{ ok: boolean; damaged: number; repaired: { id: string }[]; notRepaired: { id: string; reason: string }[]; damagedAfter: number; bytes: number }>(r);
    assert.equal(rep.damaged, 3);
    assert.deepEqual(rep.repaired.map((x) => x.id).sort(), [ids['pushed/a'], ids['pushed/b']].sort());
    assert.deepEqual(rep.notRepaired.map((x) => x.id), [ids['local-only/c']]);
    assert.equal(rep.damagedAfter, 1);
    assert.equal(rep.bytes, 44_000);
    const got = (await nginx.log()).filter((l) => l.status === 200).map((l) => l.uri);
    for (const k of ['pushed/a', 'pushed/b']) assert.ok(got.some((u) => u.endsWith(ids[k]!)), `${k} fetched: ${got.join(' ')}`);

    // The repaired files read back whole; verify now names only the one the remote lacked.
    const cat = miq(['cat', `pushed/a`], { env });
    assert.equal(cat.code, 0, cat.stderr);
    const after = json<{ damaged: { id: string }[] }>(miq(['verify', '--json'], { env }));
    assert.deepEqual(after.damaged.map((d) => d.id), [ids['local-only/c']]);

    // Text output names what was not repaired.
    const txt = miq(['repair', '--remote', nginx.url], { env });
    assert.equal(txt.code, 3);
    assert.match(txt.stdout, new RegExp(`NOT REPAIRED chunk ${ids['local-only/c']}`));
  });

  it('without --remote, uses the remote this store remembered (profile pull --remote, mount --remote)', () => {
    const pull = miq(['profile', 'pull', 'p', '--remote', nginx.url, '--trusted-key', 'k'], { env });
    assert.equal(pull.code, 0, pull.stderr);
    flipChunkByte(store, ids['pushed/d']!);
    const r = miq(['repair', '--json'], { env });
    assert.equal(r.code, 3, 'the unpushed chunk stays damaged');
    const rep = json<{ remote: string; repaired: { id: string }[]; notRepaired: { id: string }[]; damagedAfter: number }>(r);
    assert.deepEqual([rep.remote, rep.repaired.map((x) => x.id), rep.notRepaired.map((x) => x.id), rep.damagedAfter], [nginx.url, [ids['pushed/d']], [ids['local-only/c']], 1]);
  });
});
