/**
 * The mount benchmark (issue 3): on a tree of at least 1 GB, in one run,
 *   - cold sequential read of every file (page cache dropped; a fresh server),
 *   - warm re-read,
 *   - metadata walks (`find`, `du -s`), cold and warm,
 * for the plain directory, `miq mount` (store view, and the usr pointer view), and squashfuse on
 * a squashfs image of the same tree. Run as root (drop_caches):
 *
 *   node dist/benchmarks/mount.js [--src DIR] [--work DIR] [--runs N] [--out FILE] [--only NAME,…]
 *                                 [--env K=V,…]
 *
 * --env passes variables to the serving process, to compare its knobs in one run (e.g.
 * MIQ_MOUNT_THREADS, MIQ_MOUNT_INLINE, MIQ_MOUNT_READAHEAD, MIQ_MOUNT_READAHEAD_KB: fs/reader.ts,
 * mount/fuse.ts).
 *
 * The tree is copied once into the work dir ($MIQ_MOUNT_BENCH, default /var/cache/miq-mount-bench)
 * so the plain directory is on the same disk as the store and the image.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(fileURLToPath(import.meta.url), '..', '..', '..');
const MIQ = join(ROOT, 'bin', 'miq');

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : def;
}

const WORK = resolve(arg('work', process.env.MIQ_MOUNT_BENCH ?? '/var/cache/miq-mount-bench'));
const SRC = resolve(arg('src', '/var/cache/miq-bench/unpacked/deb'));
const RUNS = Number(arg('runs', '1'));
const OUT = arg('out', join(ROOT, 'benchmarks', 'mount-results.md'));
/** Comma-separated substrings of target names to run (the plain directory always runs). */
const ONLY = arg('only', '').split(',').filter(Boolean);
const ENV = Object.fromEntries(arg('env', '').split(',').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));

function sh(cmd: string): { code: number; out: string } {
  const r = spawnSync('/bin/bash', ['-c', cmd], { encoding: 'utf8', maxBuffer: 1 << 28 });
  return { code: r.status ?? 1, out: (r.stdout ?? '') + (r.stderr ?? '') };
}
function must(cmd: string): string {
  const r = sh(cmd);
  if (r.code !== 0) throw new Error(`${cmd}: ${r.out}`);
  return r.out;
}
function timed(cmd: string): number {
  const t0 = performance.now();
  must(cmd);
  return (performance.now() - t0) / 1000;
}
const dropCaches = (): void => void must('sync; echo 3 > /proc/sys/vm/drop_caches');
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

interface Target {
  name: string;
  dir: () => string;
  /** (Re)start the server so no user-space cache survives; no-op for the plain directory. */
  restart: () => Promise<void>;
  stop: () => Promise<void>;
}

function waitLine(c: ChildProcess): Promise<string> {
  return new Promise((res, rej) => {
    let out = '', err = '';
    c.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('\n')) res(out.split('\n')[0]!);
    });
    c.stderr!.on('data', (d) => (err += d));
    c.on('exit', (code) => rej(new Error(`exited ${code}: ${err}`)));
  });
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root (drop_caches, mounts)');
  mkdirSync(WORK, { recursive: true });
  const tree = join(WORK, 'tree');
  if (!existsSync(join(WORK, 'tree.done'))) {
    rmSync(tree, { recursive: true, force: true });
    must(`cp -a ${SRC} ${tree}`);
    writeFileSync(join(WORK, 'tree.done'), '');
  }
  const bytes = Number(must(`du -sb --apparent-size ${tree} | cut -f1`).trim());
  const files = Number(must(`find ${tree} -type f | wc -l`).trim());
  if (bytes < 1e9) throw new Error(`the tree at ${tree} has ${bytes} bytes; the benchmark wants at least 1 GB`);

  // The store (made once) and the image (made once).
  const store = join(WORK, 'store');
  let path: string;
  let ingestSeconds: number | undefined;
  if (!existsSync(join(WORK, 'store.path'))) {
    rmSync(store, { recursive: true, force: true });
    const t0 = performance.now();
    path = JSON.parse(must(`${process.execPath} ${MIQ} --store ${store} ingest ${tree} --name tree --json`).trim().split('\n').pop()!).path as string;
    ingestSeconds = (performance.now() - t0) / 1000;
    must(`${process.execPath} ${MIQ} --store ${store} profile switch system ${path}`);
    writeFileSync(join(WORK, 'store.path'), path);
  } else {
    path = must(`cat ${join(WORK, 'store.path')}`).trim();
  }
  const img = join(WORK, 'tree.squashfs');
  if (!existsSync(img)) must(`mksquashfs ${tree} ${img} -comp zstd -noappend -quiet -no-progress`);
  const storeBytes = Number(must(`du -sb ${store} | cut -f1`).trim());
  const imgBytes = Number(must(`stat -c %s ${img}`).trim());

  const mnt = join(WORK, 'mnt');
  const sq = join(WORK, 'sq');
  for (const d of [mnt, sq]) {
    sh(`umount -l ${d}/usr 2>/dev/null; umount -l ${d} 2>/dev/null`);
    mkdirSync(d, { recursive: true });
  }
  let miq: ChildProcess | undefined;
  const stopMiq = async (): Promise<void> => {
    if (!miq) return;
    const c = miq;
    miq = undefined;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    await exited;
  };
  const startMiq = async (): Promise<void> => {
    await stopMiq();
    miq = spawn(process.execPath, [MIQ, '--store', store, 'mount', mnt, '--json'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...ENV } });
    await waitLine(miq);
  };
  const targets: Target[] = [
    { name: 'plain directory', dir: () => tree, restart: async () => {}, stop: async () => {} },
    { name: 'miq mount, store/ view', dir: () => join(mnt, 'store', path), restart: startMiq, stop: stopMiq },
    { name: 'miq mount, usr/ view (pointer, direct_io)', dir: () => join(mnt, 'usr'), restart: startMiq, stop: stopMiq },
    {
      name: 'squashfuse (zstd image)', dir: () => sq,
      restart: async () => { sh(`umount ${sq} 2>/dev/null`); must(`squashfuse ${img} ${sq}`); },
      stop: async () => void sh(`umount ${sq}`),
    },
  ];
  // The read measures reading: the file list is made once, on the plain tree, so the walk is
  // not part of it (the walk is measured by find and du).
  const list = join(WORK, 'files.list');
  must(`cd ${tree} && find . -type f -print0 > ${list}`);
  const readAll = (d: string): string => `cd ${d} && xargs -0 cat < ${list} > /dev/null`;
  const rows: { name: string; cold: number; warm: number; findCold: number; findWarm: number; duCold: number; duWarm: number }[] = [];
  for (const t of targets) {
    if (t !== targets[0] && ONLY.length > 0 && !ONLY.some((o) => t.name.includes(o))) continue;
    const r = { cold: [] as number[], warm: [] as number[], findCold: [] as number[], findWarm: [] as number[], duCold: [] as number[], duWarm: [] as number[] };
    for (let i = 0; i < RUNS; i++) {
      await t.restart();
      dropCaches();
      r.findCold.push(timed(`find ${t.dir()} > /dev/null`));
      r.findWarm.push(timed(`find ${t.dir()} > /dev/null`));
      await t.restart();
      dropCaches();
      r.duCold.push(timed(`du -s ${t.dir()} > /dev/null`));
      r.duWarm.push(timed(`du -s ${t.dir()} > /dev/null`));
      await t.restart();
      dropCaches();
      r.cold.push(timed(readAll(t.dir())));
      r.warm.push(timed(readAll(t.dir())));
      process.stderr.write(`${t.name}: run ${i + 1}: cold ${r.cold.at(-1)!.toFixed(2)} s, warm ${r.warm.at(-1)!.toFixed(2)} s, find ${r.findCold.at(-1)!.toFixed(2)}/${r.findWarm.at(-1)!.toFixed(2)} s, du ${r.duCold.at(-1)!.toFixed(2)}/${r.duWarm.at(-1)!.toFixed(2)} s\n`);
    }
    await t.stop();
    rows.push({ name: t.name, cold: median(r.cold), warm: median(r.warm), findCold: median(r.findCold), findWarm: median(r.findWarm), duCold: median(r.duCold), duWarm: median(r.duWarm) });
  }
  const plain = rows[0]!;
  const gbps = (s: number): string => `${(bytes / s / 1e9).toFixed(2)} GB/s`;
  const ratio = (x: number, p: number, inverse: boolean): string => `${(inverse ? p / x : x / p).toFixed(2)}×`;
  const lines = [
    `# Mount benchmark (${new Date().toISOString().slice(0, 10)})`,
    '',
    `Tree: ${(bytes / 1e9).toFixed(2)} GB, ${files} files (${SRC}); store ${(storeBytes / 1e9).toFixed(2)} GB on disk, squashfs image ${(imgBytes / 1e9).toFixed(2)} GB.`,
    `Machine: ${must('nproc').trim()} cores, kernel ${must('uname -r').trim()}, load average ${must('cut -d" " -f1-3 /proc/loadavg').trim()} at the end. Median of ${RUNS} run(s). Cold = page cache dropped and the server restarted.`,
    Object.keys(ENV).length > 0 ? `Serving process environment: ${Object.entries(ENV).map(([k, v]) => `${k}=${v}`).join(' ')}.` : '',
    ingestSeconds !== undefined ? `Ingest of the tree: ${ingestSeconds.toFixed(1)} s.` : '',
    '',
    '| target | cold read | vs plain | warm re-read | vs plain | find cold / warm | vs plain (warm) | du cold / warm | vs plain (warm) |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map((r) => `| ${r.name} | ${r.cold.toFixed(2)} s (${gbps(r.cold)}) | ${ratio(r.cold, plain.cold, true)} | ${r.warm.toFixed(2)} s (${gbps(r.warm)}) | ${ratio(r.warm, plain.warm, true)} | ${r.findCold.toFixed(2)} / ${r.findWarm.toFixed(2)} s | ${ratio(r.findWarm, plain.findWarm, false)} | ${r.duCold.toFixed(2)} / ${r.duWarm.toFixed(2)} s | ${ratio(r.duWarm, plain.duWarm, false)} |`),
    '',
    'Read columns: `xargs cat` over a file list made beforehand; throughput relative to the plain directory (higher is better; targets: cold ≥ 0.75×, warm ≥ 0.8×).',
    'find/du columns: time relative to the plain directory (lower is better; target ≤ 3×).',
    '',
  ];
  writeFileSync(OUT, lines.join('\n'));
  process.stdout.write(lines.join('\n'));
}

main().catch((e) => {
  process.stderr.write(`benchmarks/mount: ${(e as Error).message}\n`);
  process.exitCode = 1;
});
