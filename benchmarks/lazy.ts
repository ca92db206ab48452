/**
 * benchmarks/lazy (issue 4): bytes and time to the first successful run of a program from a cold
 * lazy mount of a remote profile, against downloading and unpacking the whole profile — with
 * `miq fetch`, and with `curl | zstd -d | tar -x` of an equivalent tarball — from the same nginx
 * in the same run. Bytes are counted from nginx's access log.
 *
 * The profile: python3.11 with its standard library plus filler shared libraries from the host,
 * to at least --size MB. The program: `python3.11 -c "import json, email.parser"`, run from DIR/usr of
 * a real `miq mount --remote` started on an empty store.
 *
 *   node dist/benchmarks/lazy.js [--size 320] [--mbit 100] [--rtt 10 | --rtts 2,10,30,60] [--runs 3] [--work DIR] [--trace PREFIX] [--json]
 *
 * --no-hints skips the runs with a recorded prefetch list (miq mount --record-hints, push --hints).
 * --pyc unchecked recompiles the profile's .pyc files as unchecked-hash pycs before ingest (the
 * host's pycs never validate against the mount's mtime 1).
 * --runs repeats each measurement (fresh mount, store and cache each time) and reports medians.
 *
 * --trace writes the lazy run's requests (finish time, server seconds, status, bytes, path) to
 * PREFIX.<link>.log.
 *
 * Runs twice: straight at nginx on loopback, and through an emulated link (--mbit, --rtt; see
 * lazy-link.ts; --mbit 0 skips it); --rtts measures one emulated link per RTT, same bandwidth, in one
 * run (the data of report.ts's lazy-against-RTT chart).
 */
import { spawn } from 'node:child_process';
import { copyFile, cp, lstat, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openStore } from '../store/open.js';
import { generateKey, loadSigningKey, push } from '../store/remote/index.js';
import { startNginx } from './nginx.js';
import { emulateLink } from './lazy-link.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const MIQ = join(ROOT, 'bin', 'miq');

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; out: string; err: string }> {
  return new Promise((res) => {
    const c = spawn(cmd, args, { env: { ...process.env, ...env } });
    let out = '', err = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (err += d));
    c.on('close', (code) => res({ code: code ?? 1, out, err }));
  });
}

async function must(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const r = await run(cmd, args, env);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.err}`);
  return r.out;
}

async function treeBytes(d: string): Promise<number> {
  let n = 0;
  for (const e of await readdir(d, { withFileTypes: true })) {
    const f = join(d, e.name);
    if (e.isDirectory()) n += await treeBytes(f);
    else if (e.isFile()) n += (await lstat(f)).size;
  }
  return n;
}

async function stage(dir: string, minBytes: number, uncheckedPyc: boolean): Promise<number> {
  await mkdir(join(dir, 'bin'), { recursive: true });
  await copyFile('/usr/bin/python3.11', join(dir, 'bin', 'python3.11'));
  await cp('/usr/lib/python3.11', join(dir, 'lib', 'python3.11'), { recursive: true, verbatimSymlinks: true });
  // The host's .pyc files record the host's source mtimes; a miq mount serves mtime 1, so they
  // never validate and python compiles every import from source. `--pyc unchecked` rewrites them
  // as unchecked-hash pycs (what a Python built for an immutable store ships) to measure that.
  if (uncheckedPyc) await must('/usr/bin/python3.11', ['-m', 'compileall', '-q', '-j', '0', '-f', '--invalidation-mode', 'unchecked-hash', join(dir, 'lib', 'python3.11')]).catch(() => undefined);
  let total = await treeBytes(dir);
  const filler = join(dir, 'lib', 'filler');
  await mkdir(filler, { recursive: true });
  const srcDir = '/usr/lib/x86_64-linux-gnu';
  for (const name of (await readdir(srcDir)).sort()) {
    if (total >= minBytes) break;
    const st = await lstat(join(srcDir, name));
    if (!st.isFile()) continue;
    await copyFile(join(srcDir, name), join(filler, name));
    total += st.size;
  }
  if (total < minBytes) throw new Error(`only ${total} bytes of filler available`);
  return total;
}

export async function lazyBench(o: { sizeMB: number; work?: string; mbit: number; rttMs: number; rtts?: number[]; trace?: string; runs: number; hints: boolean; uncheckedPyc?: boolean }): Promise<Record<string, unknown>> {
  const work = o.work ?? (await mkdtemp(join(tmpdir(), 'miq-lazy-')));
  const staging = join(work, 'profile');
  const remoteDir = join(work, 'remote');
  const profileBytes = await stage(staging, o.sizeMB * 1024 * 1024, o.uncheckedPyc ?? false);
  const storeA = join(work, 'store-a');
  const ing = JSON.parse((await must(process.execPath, [MIQ, 'ingest', staging, '--name', 'pyprofile', '--json'], { MIQ_HOME: storeA })).trim().split('\n').pop()!) as { path: string; tree: string };
  const k = await generateKey(join(work, 'keys'), 'bench-1');
  const store = await openStore(storeA);
  try {
    await push(store, remoteDir, { profile: { name: 'bench', generation: 1, paths: [ing.path], tree: ing.tree as never }, key: loadSigningKey(k.secretFile), durable: false });
  } finally {
    await store.close();
  }
  const du = async (d: string): Promise<number> => Number((await must('sh', ['-c', `du -sb '${d}' 2>/dev/null | cut -f1 || echo 0`])).trim() || 0);
  const remoteBytes = { total: await du(remoteDir), bundles: await du(join(remoteDir, 'bundles')), treePacks: await du(join(remoteDir, 'treepacks')) };
  await must('sh', ['-c', `tar -C '${staging}' -cf - . | zstd -q -3 -T0 -o '${remoteDir}/profile.tar.zst'`]);
  const nginx = await startNginx(remoteDir);
  const served = async (): Promise<{ bytes: number; requests: number }> => {
    const log = await nginx.log();
    return { bytes: log.reduce((a, l) => a + l.bytes, 0), requests: log.length };
  };
  type Row = { seconds: number; bytes: number; requests: number; all?: number[] };
  const links: Record<string, Record<string, Row>> = {};

  const measure = async (label: string, url: string): Promise<Record<string, Row>> => {
    const runs: Record<string, Row>[] = [];
    for (let i = 0; i < o.runs; i++) runs.push(await measureOnce(`${label}-${i}`, url));
    const med = (xs: number[]): number => { const v = [...xs].sort((a, b) => a - b); return v[(v.length - 1) >> 1]!; };
    return Object.fromEntries(Object.keys(runs[0]!).map((k) => [k, {
      seconds: med(runs.map((r) => r[k]!.seconds)),
      bytes: med(runs.map((r) => r[k]!.bytes)),
      requests: med(runs.map((r) => r[k]!.requests)),
      all: runs.map((r) => r[k]!.seconds),
    }]));
  };

  /** A cold lazy mount (`miq mount --remote` from an empty store, in its own process) and the
   * program's first run from it: the clock runs from spawning the mount to the program's exit. */
  const lazyRun = async (label: string, url: string, extra: string[]): Promise<{ run: Row; ready: Row }> => {
    const mnt = join(work, `mnt-${label}`);
    await nginx.clearLog();
    const t0 = performance.now();
    await mkdir(mnt, { recursive: true });
    const m = spawn(process.execPath, [MIQ, 'mount', mnt, '--remote', url, '--trusted-key', k.publicText, '--profile', 'bench', '--json', ...extra], { env: { ...process.env, MIQ_HOME: join(work, `store-lazy-${label}`) }, stdio: ['ignore', 'pipe', 'pipe'] });
    let mErr = '';
    m.stderr!.on('data', (d) => (mErr += d));
    let ok: { code: number; out: string; err: string };
    let mountedAt = 0;
    let ranAt = 0;
    let atMount = { bytes: 0, requests: 0 };
    try {
      await new Promise<void>((res, rej) => {
        let out = '';
        m.stdout!.on('data', (d) => { out += d; if (out.includes('"mounted":true')) res(); });
        m.once('exit', (c) => rej(new Error(`miq mount exited ${c}: ${mErr}`)));
      });
      mountedAt = (performance.now() - t0) / 1000;
      atMount = await served();
      const usr = join(mnt, 'usr');
      // Through sh: libuv's spawn blocks this event loop until exec succeeds, and on the emulated
      // link that exec needs this process (the link proxy) to carry the binary's chunks.
      ok = await run('/bin/sh', ['-c', 'exec "$0" "$@"', join(usr, 'bin', 'python3.11'), '-c', "import json, email.parser; print('ok')"], { PYTHONHOME: usr, PYTHONDONTWRITEBYTECODE: '1' });
      ranAt = performance.now();
    } finally {
      if (m.exitCode === null) {
        const exited = new Promise((r) => m.once('exit', r));
        m.kill('SIGTERM');
        await exited;
      }
      await run('sh', ['-c', `umount -l '${join(mnt, 'usr')}' 2>/dev/null; umount -l '${mnt}' 2>/dev/null; true`]);
    }
    if (ok.code !== 0 || ok.out.trim() !== 'ok') throw new Error(`program failed from the lazy mount: ${ok.err} ${mErr}`);
    if (o.trace) await writeFile(`${o.trace}.${label}.log`, (await nginx.log()).map((l) => `${l.at.toFixed(3)} ${l.took.toFixed(3)} ${l.status} ${l.bytes} ${l.uri}`).join('\n') + '\n');
    // The clock stops when the program exits; the bytes are counted after the mount has stopped,
    // so background fetches still running then are charged to the lazy run too.
    return { run: { seconds: (ranAt - t0) / 1000, ...(await served()) }, ready: { seconds: mountedAt, ...atMount } };
  };

  const measureOnce = async (label: string, url: string): Promise<Record<string, Row>> => {
    const results: Record<string, Row> = {};
    // 1. Lazy, without the prefetch list; then with it (the list was recorded beforehand, in
    // another mount of the same remote: see below).
    const plain = await lazyRun(label, url, ['--no-hints']);
    results.lazy = plain.run;
    results.lazyMountReady = plain.ready;
    if (hinted) results.lazyWithHints = (await lazyRun(`${label}-hints`, url, [])).run;
    let t0: number;

    // 2. miq fetch of the whole profile into an empty store.
    await nginx.clearLog();
    t0 = performance.now();
    await must(process.execPath, [MIQ, 'fetch', '--profile', 'bench', '--remote', url, '--trusted-key', k.publicText], { MIQ_HOME: join(work, `store-fetch-${label}`) });
    results.miqFetch = { seconds: (performance.now() - t0) / 1000, ...(await served()) };

    // 3. curl + zstd + tar of the equivalent tarball.
    await nginx.clearLog();
    const untar = join(work, `untar-${label}`);
    await mkdir(untar);
    t0 = performance.now();
    await must('sh', ['-c', `curl -sf '${url}profile.tar.zst' | zstd -dc | tar -x -C '${untar}'`]);
    results.curlTar = { seconds: (performance.now() - t0) / 1000, ...(await served()) };
    return results;
  };

  // The publisher's side of the prefetch list: one recorded start of the program from a lazy
  // mount (over loopback), pushed beside the pointer.
  let hinted = false;
  if (o.hints) {
    const file = join(work, 'python.hints');
    await lazyRun('record', nginx.url, ['--no-hints', '--record-hints', file]);
    const store2 = await openStore(storeA);
    try {
      await push(store2, remoteDir, { profile: { name: 'bench', generation: 1, paths: [ing.path], tree: ing.tree as never }, key: loadSigningKey(k.secretFile), durable: false, hints: await readFile(file) });
    } finally {
      await store2.close();
    }
    hinted = true;
  }
  try {
    links.loopback = await measure('loopback', nginx.url);
    if (o.mbit > 0) {
      for (const rtt of o.rtts ?? [o.rttMs]) {
        const link = await emulateLink(nginx.port, { mbit: o.mbit, rttMs: rtt });
        try {
          links[`${o.mbit}mbit-${rtt}ms`] = await measure(`link-${rtt}ms`, link.url);
        } finally {
          await link.close();
        }
      }
    }
  } finally {
    await nginx.stop();
    if (!o.work) await rm(work, { recursive: true, force: true });
  }
  const summary = (results: Record<string, Row>): Record<string, unknown> => {
    const full = Math.min(results.miqFetch!.seconds, results.curlTar!.seconds);
    return {
      results,
      lazyShareOfProfileBytes: results.lazy!.bytes / profileBytes,
      lazyTimeOverFastestFull: results.lazy!.seconds / full,
      ...(results.lazyWithHints ? { withHints: { share: results.lazyWithHints.bytes / profileBytes, timeOverFastestFull: results.lazyWithHints.seconds / full } } : {}),
      targets: { bytesUnder10pct: results.lazy!.bytes / profileBytes < 0.1, timeUnderFifth: results.lazy!.seconds / full < 0.2 },
    };
  };
  return { profileBytes, remoteBytes, links: Object.fromEntries(Object.entries(links).map(([k2, v]) => [k2, summary(v)])) };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const arg = (n: string): string | undefined => { const i = process.argv.indexOf(n); return i > 0 ? process.argv[i + 1] : undefined; };
  const r = await lazyBench({ sizeMB: Number(arg('--size') ?? 320), work: arg('--work'), mbit: Number(arg('--mbit') ?? 100), rttMs: Number(arg('--rtt') ?? 10), ...(arg('--rtts') ? { rtts: arg('--rtts')!.split(',').map(Number) } : {}), trace: arg('--trace'), runs: Number(arg('--runs') ?? 1), hints: !process.argv.includes('--no-hints'), uncheckedPyc: arg('--pyc') === 'unchecked' });
  if (process.argv.includes('--json')) process.stdout.write(`${JSON.stringify(r)}\n`);
  else {
    const pb = r.profileBytes as number;
    const mb = (b: number): string => (b / 1024 / 1024).toFixed(1);
    process.stdout.write(`profile: ${mb(pb)} MiB\n`);
    const rb = r.remoteBytes as { total: number; bundles: number; treePacks: number };
    process.stdout.write(`remote after miq push: ${mb(rb.total)} MiB, of which bundles ${mb(rb.bundles)} MiB and tree packs ${mb(rb.treePacks)} MiB\n`);
    for (const [link, sum] of Object.entries(r.links as Record<string, { results: Record<string, { seconds: number; bytes: number; requests: number; all?: number[] }>; lazyShareOfProfileBytes: number; lazyTimeOverFastestFull: number; targets: unknown }>)) {
      process.stdout.write(`\n${link}:\n\n| method | MiB downloaded | % of profile | requests | seconds |\n| --- | ---: | ---: | ---: | ---: |\n`);
      for (const [k, v] of Object.entries(sum.results)) process.stdout.write(`| ${k} | ${mb(v.bytes)} | ${((100 * v.bytes) / pb).toFixed(1)} | ${v.requests} | ${v.seconds.toFixed(2)}${v.all && v.all.length > 1 ? ` (${v.all.map((x) => x.toFixed(2)).join(', ')})` : ''} |\n`);
      process.stdout.write(`\nlazy first run: ${(100 * sum.lazyShareOfProfileBytes).toFixed(1)}% of the bytes, ${sum.lazyTimeOverFastestFull.toFixed(3)}x the time of the fastest full download+unpack; targets ${JSON.stringify(sum.targets)}\n`);
      const wh = (sum as { withHints?: { share: number; timeOverFastestFull: number } }).withHints;
      if (wh) process.stdout.write(`with the recorded prefetch list: ${(100 * wh.share).toFixed(1)}% of the bytes, ${wh.timeOverFastestFull.toFixed(3)}x\n`);
    }
  }
}
