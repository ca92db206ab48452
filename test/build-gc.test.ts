/**
 * Temporary GC roots (issue 15): a build does not hold the store while its script runs, so a
 * `miq gc` from another process may run then; the build's temporary roots must keep the unpinned
 * dependency its output references. A temporary root whose owner process is gone (or whose pid
 * was reused) is ignored by gc and removed.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, test } from 'node:test';
import { MIQ, ROOT, json, miq, tempDir } from './helpers/cli.js';

const tmp = tempDir();
after(() => tmp.cleanup());
const store = join(tmp.dir, 'store');
const S = ['--store', store];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const RECIPE = pathToFileURL(join(ROOT, 'dist', 'builder', 'recipe.js')).href;
const STORE_MOD = pathToFileURL(join(ROOT, 'dist', 'store', 'index.js')).href;
// A sleep whose argument no other process on the machine has: the test finds it in /proc and
// kills it to let the build's script go on (the sandbox sees none of the host's files).
const NAP = `${900 + Math.floor(Math.random() * 99)}.${process.pid}`;

function sleepers(): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'latin1') === `sleep\0${NAP}\0`) out.push(Number(d));
    } catch { /* gone */ }
  }
  return out;
}

writeFileSync(join(tmp.dir, 'dep.mjs'), `import { recipe } from ${JSON.stringify(RECIPE)};
export default recipe({ name: 'dep', version: '1', host: ['toolchain'], script: 'mkdir -p "$out"; echo dependency > "$out/x"' });
`);
writeFileSync(join(tmp.dir, 'user.mjs'), `import { recipe } from ${JSON.stringify(RECIPE)};
import dep from './dep.mjs';
export default recipe({ name: 'user', version: '1', host: ['toolchain'], buildDeps: [dep],
  script: 'echo waiting; sleep ${NAP} || true; mkdir -p "$out"; cat "$dep/x" > "$out/copy"; echo "$dep" > "$out/ref"' });
`);

const storePaths = (): string[] => json<{ path: string }[]>(miq([...S, 'paths', '--json'])).map((p) => p.path);

/** Sets meta keys through the store interface, as a build would. */
function setMeta(entries: Record<string, string[]>): void {
  const code = `const { openStore } = await import(${JSON.stringify(STORE_MOD)});
const s = await openStore(${JSON.stringify(store)});
await s.batchMeta(Object.entries(${JSON.stringify(entries)}).map(([key, v]) => ({ key, value: Buffer.from(JSON.stringify(v)) })));
await s.close();`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

test('gc during a build\'s script keeps the unpinned dependency the output references', async () => {
  const d = miq([...S, 'build', '--no-pin', '--json', join(tmp.dir, 'dep.mjs')]);
  assert.equal(d.code, 0, d.stderr);
  const dep = json<{ results: { path: string }[] }>(d).results[0]!.path;
  // Unpinned, nothing references it: a gc now would delete it (checked with --dry-run).
  assert.match(miq([...S, 'gc', '--dry-run']).stdout, new RegExp(`would delete ${dep}`));

  const b = spawn(process.execPath, [MIQ, ...S, 'build', '-L', '--json', join(tmp.dir, 'user.mjs')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  b.stdout.on('data', (x) => (out += x));
  b.stderr.on('data', (x) => (err += x));
  const done = new Promise<number>((r) => b.once('close', (c) => r(c ?? 128)));
  try {
    for (let i = 0; i < 300 && sleepers().length === 0; i++) await sleep(100);
    assert.ok(sleepers().length > 0, `the build's script never reached its sleep:\n${err}`);
    // The build closes the store IDLE_MS after its last use (cli/lease.ts), the holder record with
    // it: a clean-clone run at stop 39 ran gc inside that moment ("in use by another miq process").
    // A build that held the store through its script still fails here (gc exits 4).
    for (let i = 0; i < 50 && existsSync(join(store, 'run', 'holder.json')); i++) await sleep(100);
    const gc = miq([...S, 'gc', '--json']);
    assert.equal(gc.code, 0, gc.stderr);
    assert.ok(!json<{ deadPaths: string[] }>(gc).deadPaths.includes(dep), `gc deleted ${dep}, which the running build uses`);
  } finally {
    for (const p of sleepers()) { try { process.kill(p); } catch { /* gone */ } }
  }
  assert.equal(await done, 0, err);
  const user = json<{ results: { path: string }[] }>({ code: 0, stdout: out, stderr: err }).results[0]!.path;
  const v = miq([...S, 'verify', '--json']);
  assert.equal(v.code, 0, v.stdout + v.stderr);
  assert.equal(json<{ ok: boolean }>(v).ok, true, v.stdout);
  assert.ok(storePaths().includes(dep), 'the dependency is still in the store');
  assert.ok(storePaths().includes(user));
  // The build released its temporary root: the dependency is now kept by the pinned output's
  // reference alone, and a gc keeps it for that reason.
  const gc2 = json<{ deadPaths: string[] }>(miq([...S, 'gc', '--json']));
  assert.ok(!gc2.deadPaths.includes(dep));
});

test('a temporary root of a dead process, or of a reused pid, is ignored by gc and removed; a live one is honoured', async () => {
  const mk = (name: string): string => {
    writeFileSync(join(tmp.dir, `${name}.mjs`), `import { recipe } from ${JSON.stringify(RECIPE)};
export default recipe({ name: ${JSON.stringify(name)}, version: '1', host: ['toolchain'], script: 'mkdir -p "$out"; echo ${name} > "$out/x"' });
`);
    const r = miq([...S, 'build', '--no-pin', '--json', join(tmp.dir, `${name}.mjs`)]);
    assert.equal(r.code, 0, r.stderr);
    return json<{ results: { path: string }[] }>(r).results[0]!.path;
  };
  const [deadOnly, reusedOnly, liveOnly] = [mk('orphan-a'), mk('orphan-b'), mk('kept-c')];
  const gone = spawnSync('true');
  const deadPid = gone.pid!;
  const myStart = readFileSync('/proc/self/stat', 'latin1').split(') ')[1]!.split(' ')[19]!;
  const keys = {
    [`temproots/${deadPid}-12345-0`]: [deadOnly],
    // This process's pid with another start time: a process that had this pid before.
    [`temproots/${process.pid}-${Number(myStart) + 1}-0`]: [reusedOnly],
    [`temproots/${process.pid}-${myStart}-0`]: [liveOnly],
  };
  setMeta(keys);
  const gc = miq([...S, 'gc', '--json']);
  assert.equal(gc.code, 0, gc.stderr);
  const dead = json<{ deadPaths: string[] }>(gc).deadPaths;
  assert.ok(dead.includes(deadOnly), 'a dead owner\'s root is ignored');
  assert.ok(dead.includes(reusedOnly), 'a reused pid\'s root is ignored');
  assert.ok(!dead.includes(liveOnly), 'a live owner\'s root is honoured');
  const left = storePaths();
  assert.ok(left.includes(liveOnly) && !left.includes(deadOnly) && !left.includes(reusedOnly));
  // The stale keys were deleted, the live one stays.
  const code = `const { openStore } = await import(${JSON.stringify(STORE_MOD)});
const s = await openStore(${JSON.stringify(store)});
console.log(JSON.stringify((await s.listMeta('temproots/')).map((e) => e.key)));
await s.close();`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), [`temproots/${process.pid}-${myStart}-0`]);
});
