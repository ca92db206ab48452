/**
 * Atomic switches through the mount (issue 3): readers loop over a file whose content differs
 * between two generations while the profile is switched back and forth; every completed read
 * must equal one of the two contents, and after each switch returns a fresh open must see the
 * new one, both at DIR/usr and through a bind mount of DIR/usr made before the switches.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connectControl } from '../mount/client.js';
import { startMount, type MountHandle } from '../mount/daemon.js';
import type { Store } from '../store/api.js';
import { openStore } from '../store/open.js';
import * as P from '../store/profiles.js';
import { cleanup, sh, tmp, waitExit } from './helpers/fuse.js';

const SWITCHES = Number(process.env.MIQ_SWITCHES ?? 240);
const SIZE = 300 * 1024 + 17; // several pages and more than one 128 KiB FUSE read

function content(tag: string): Buffer {
  const b = Buffer.alloc(SIZE);
  for (let i = 0; i < SIZE; i++) b[i] = (tag.charCodeAt(0) + i * 31) & 0xff;
  b.write(`generation ${tag}\n`, 0);
  return b;
}

const READER = `
import hashlib, os, sys, time, random
path, stop, a, b = sys.argv[1:5]
reads = torn = na = nb = 0
while not os.path.exists(stop):
    with open(path, 'rb', buffering=0) as f:
        parts = []
        while True:
            x = f.read(random.choice([4096, 65536, 131072]))
            if not x: break
            parts.append(x)
            if random.random() < 0.05: time.sleep(0.001)
    h = hashlib.sha256(b''.join(parts)).hexdigest()
    reads += 1
    if h == a: na += 1
    elif h == b: nb += 1
    else: torn += 1
print(reads, torn, na, nb)
`;

let base: string, mnt: string, bind: string;
let store: Store;
let h: MountHandle | undefined;

describe('profile switches under load', () => {
  before(async () => {
    base = await tmp('miq-switch-');
    store = await openStore(join(base, 'store'));
    for (const tag of ['A', 'B']) {
      await mkdir(join(base, tag, 'share'), { recursive: true });
      await writeFile(join(base, tag, 'share', 'data'), content(tag));
      await writeFile(join(base, tag, 'share', 'small'), `small ${tag}\n`);
    }
    mnt = join(base, 'mnt');
    bind = join(base, 'bind');
    await mkdir(mnt);
    await mkdir(bind);
  });
  after(async () => {
    await sh(`umount -l ${bind}`);
    await h?.close();
    await store?.close();
    await cleanup(base);
  });

  it(`${SWITCHES} switches: no torn reads, fresh opens see the new generation directly and through a bind`, async (t) => {
    const pa = (await store.ingest(join(base, 'A'), { name: 'data' })).path;
    const pb = (await store.ingest(join(base, 'B'), { name: 'data' })).path;
    await P.switchProfile(store, 'system', [{ path: pa }]);
    h = await startMount(store, mnt);
    const b = await sh(`mount --bind ${mnt}/usr ${bind}`);
    assert.equal(b.code, 0, b.stderr);

    const { createHash } = await import('node:crypto');
    const sha = (x: Buffer): string => createHash('sha256').update(x).digest('hex');
    const want = { A: content('A'), B: content('B') };
    const script = join(base, 'reader.py');
    await writeFile(script, READER);
    const stop = join(base, 'stop');
    const readers = [`${mnt}/usr`, `${mnt}/usr`, bind, bind].map((root) => {
      const c = spawn('python3', [script, `${root}/share/data`, stop, sha(want.A), sha(want.B)], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      c.stdout.on('data', (d) => (out += d));
      c.stderr.on('data', (d) => (out += d));
      return { c, out: () => out };
    });

    const client = (await connectControl(store.dir))!;
    const lat: number[] = [];
    let stale = 0;
    try {
      for (let i = 0; i < SWITCHES; i++) {
        const tag = i % 2 === 0 ? 'B' : 'A';
        const t0 = performance.now();
        await client.call('profile.switch', { profile: 'system', members: [{ path: tag === 'A' ? pa : pb }] });
        lat.push(performance.now() - t0);
        // A fresh open, after the switch returned, in both places.
        for (const root of [`${mnt}/usr`, bind]) {
          const got = await readFile(`${root}/share/data`);
          if (!got.equals(want[tag])) stale++;
          const small = await readFile(`${root}/share/small`, 'utf8');
          if (small !== `small ${tag}\n`) stale++;
        }
      }
    } finally {
      await writeFile(stop, '');
      client.close();
    }
    let reads = 0, torn = 0, na = 0, nb = 0;
    for (const r of readers) {
      await waitExit(r.c);
      const [x, y, z, w] = r.out().trim().split(/\s+/).map(Number);
      assert.ok(Number.isFinite(x), r.out());
      reads += x!; torn += y!; na += z!; nb += w!;
    }
    lat.sort((p, q) => p - q);
    const q = (f: number): number => lat[Math.min(lat.length - 1, Math.floor(f * lat.length))]!;
    const report = { switches: SWITCHES, reads, torn, readsA: na, readsB: nb, staleFreshOpens: stale, switchMsMedian: +q(0.5).toFixed(2), switchMsP99: +q(0.99).toFixed(2) };
    t.diagnostic(JSON.stringify(report));
    console.log(`mount-switch: ${JSON.stringify(report)}`);
    assert.equal(torn, 0, 'no read may mix generations');
    assert.equal(stale, 0, 'a fresh open after a switch returns sees the new generation');
    assert.ok(reads > SWITCHES, `readers made progress (${reads} reads)`);
    assert.ok(na > 0 && nb > 0, 'readers saw both generations');
  });
});
