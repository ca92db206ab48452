/**
 * The mount benchmark (issue 3): on a tree of at least 1 GB, in one run,
 *   - cold sequential read of every file (page cache dropped; a fresh server),
 *   - warm re-read,
 *   - metadata walks (`find`, `du -s`), cold and warm,
 *   - one large file, cold (dd bs=1M),
 * for the plain directory, `miq mount` on both backends (fuse3: our libfuse 3 addon; fuse-native:
 * libfuse 2), each through the store view and the usr view, and squashfuse on a squashfs image of
 * the same tree; and program start (`python3 -c 'import json, sqlite3, ssl'` in the same bwrap
 * wrapper) with the tree as /usr, from ext4 and from each usr view. Run as root (drop_caches):
 *
 *   node dist/benchmarks/mount.js [--src DIR] [--work DIR] [--runs N] [--out FILE] [--only NAME,…]
 *                                 [--env K=V,…]
 *
 * --env passes variables to the serving process, to compare its knobs in one run (e.g.
 * MIQ_MOUNT_THREADS, MIQ_MOUNT_INLINE, MIQ_MOUNT_READAHEAD, MIQ_MOUNT_READAHEAD_KB: fs/reader.ts,
 * mount/fuse.ts).
 *
 * The tree is copied once into the work dir ($MIQ_MOUNT_BENCH, default /var/cache/miq-mount-bench)
 * so the plain directory is on the same disk as the store and the image. Without --src (or when
 * it does not exist) the tree is a copy of this machine's own /usr (share, include,
 * lib/x86_64-linux-gnu, lib/python3*, lib64, bin/python3*: ~1.5 GB, mostly small files), which also
 * holds the python3 (and its libraries) the start-up figure runs.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MiqError } from '../store/errors.js';

const ROOT = resolve(fileURLToPath(import.meta.url), '..', '..', '..');
const MIQ = join(ROOT, 'bin', 'miq');

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : def;
}

const WORK = resolve(arg('work', process.env.MIQ_MOUNT_BENCH ?? '/var/cache/miq-mount-bench'));
const SRC = arg('src', '') ? resolve(arg('src', '')) : '';
const USR_PARTS = ['share', 'include', 'lib/x86_64-linux-gnu', 'lib/python3', 'lib/python3.11', 'lib64', 'bin/python3', 'bin/python3.11'];
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
  if (process.getuid?.() !== 0) throw new MiqError('MIQ_BAD_INPUT', 'the mount benchmark must run as root (it drops the page cache and mounts); run it with sudo');
  mkdirSync(WORK, { recursive: true });
  const tree = join(WORK, 'tree');
  if (!existsSync(join(WORK, 'tree.done'))) {
    rmSync(tree, { recursive: true, force: true });
    if (SRC && existsSync(SRC)) must(`cp -a ${SRC} ${tree}`);
    else {
      for (const p of USR_PARTS) if (existsSync(`/usr/${p}`)) must(`mkdir -p ${tree}/${dirname(p)} && cp -a /usr/${p} ${tree}/${p}`);
    }
    writeFileSync(join(WORK, 'tree.done'), '');
  }
  const bytes = Number(must(`du -sb --apparent-size ${tree} | cut -f1`).trim());
  const files = Number(must(`find ${tree} -type f | wc -l`).trim());
  if (bytes < 1e9) throw new MiqError('MIQ_BAD_INPUT', `the tree at ${tree} has ${bytes} bytes; the mount benchmark wants at least 1 GB: give a bigger --tree`);

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
  const storeBytes = Number(must(`du -sb --exclude=reserve ${store} | cut -f1`).trim()); // the full-disk reserve is not stored data
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
  const startMiq = async (backend: string): Promise<void> => {
    await stopMiq();
    miq = spawn(process.execPath, [MIQ, '--store', store, 'mount', mnt, '--json', '--backend', backend], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...ENV } });
    await waitLine(miq);
  };
  const targets: Target[] = [
    { name: 'plain directory', dir: () => tree, restart: async () => {}, stop: async () => {} },
    { name: 'miq fuse3, store/ view', dir: () => join(mnt, 'store', path), restart: () => startMiq('fuse3'), stop: stopMiq },
    { name: 'miq fuse3, usr/ view', dir: () => join(mnt, 'usr'), restart: () => startMiq('fuse3'), stop: stopMiq },
    { name: 'miq fuse-native, store/ view', dir: () => join(mnt, 'store', path), restart: () => startMiq('fuse-native'), stop: stopMiq },
    { name: 'miq fuse-native, usr/ view (direct_io)', dir: () => join(mnt, 'usr'), restart: () => startMiq('fuse-native'), stop: stopMiq },
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
  const big = must(`cd ${tree} && find . -type f -printf '%s %p\\n' | sort -n | tail -1`).trim();
  const bigPath = big.slice(big.indexOf(' ') + 1);
  const bigBytes = Number(big.slice(0, big.indexOf(' ')));
  // Program start: the same bwrap wrapper, the tree (or a usr view) as /usr.
  const py = (usr: string): string => `bwrap --ro-bind ${usr} /usr --symlink usr/lib /lib --symlink usr/lib64 /lib64 --symlink usr/bin /bin --symlink usr/sbin /sbin --ro-bind /etc /etc --proc /proc --dev /dev --tmpfs /tmp /usr/bin/python3 -c 'import json, sqlite3, ssl'`;
  const rows: { name: string; cold: number; warm: number; findCold: number; findWarm: number; duCold: number; duWarm: number; bigCold: number; pyCold?: number; pyWarm?: number }[] = [];
  for (const t of targets) {
    if (t !== targets[0] && ONLY.length > 0 && !ONLY.some((o) => t.name.includes(o))) continue;
    const r = { cold: [] as number[], warm: [] as number[], findCold: [] as number[], findWarm: [] as number[], duCold: [] as number[], duWarm: [] as number[], bigCold: [] as number[], pyCold: [] as number[], pyWarm: [] as number[] };
    const usrLike = t.name === 'plain directory' || t.name.includes('usr/');
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
      r.bigCold.push(timed(`dd if=${t.dir()}/${bigPath} of=/dev/null bs=1M status=none`));
      await t.restart();
      dropCaches();
      r.cold.push(timed(readAll(t.dir())));
      r.warm.push(timed(readAll(t.dir())));
      if (usrLike && existsSync(join(tree, 'bin', 'python3'))) {
        for (let k = 0; k < 3; k++) {
          await t.restart();
          dropCaches();
          r.pyCold.push(timed(py(t.dir())));
        }
        timed(py(t.dir()));
        for (let k = 0; k < 15; k++) r.pyWarm.push(timed(py(t.dir())));
      }
      process.stderr.write(`${t.name}: run ${i + 1}: cold ${r.cold.at(-1)!.toFixed(2)} s, warm ${r.warm.at(-1)!.toFixed(2)} s, find ${r.findCold.at(-1)!.toFixed(2)}/${r.findWarm.at(-1)!.toFixed(2)} s, du ${r.duCold.at(-1)!.toFixed(2)}/${r.duWarm.at(-1)!.toFixed(2)} s\n`);
    }
    await t.stop();
    rows.push({ name: t.name, cold: median(r.cold), warm: median(r.warm), findCold: median(r.findCold), findWarm: median(r.findWarm), duCold: median(r.duCold), duWarm: median(r.duWarm), bigCold: median(r.bigCold), pyCold: r.pyCold.length ? median(r.pyCold) : undefined, pyWarm: r.pyWarm.length ? median(r.pyWarm) : undefined });
  }
  const plain = rows[0]!;
  const gbps = (s: number): string => `${(bytes / s / 1e9).toFixed(2)} GB/s`;
  const ratio = (x: number, p: number, inverse: boolean): string => `${(inverse ? p / x : x / p).toFixed(2)}×`;
  const lines = [
    `# Mount benchmark (${new Date().toISOString().slice(0, 10)})`,
    '',
    `Tree: ${(bytes / 1e9).toFixed(2)} GB, ${files} files (${SRC || 'a copy of this machine\'s /usr: ' + USR_PARTS.join(', ')}); largest file ${(bigBytes / 1e6).toFixed(0)} MB; store ${(storeBytes / 1e9).toFixed(2)} GB on disk, squashfs image ${(imgBytes / 1e9).toFixed(2)} GB.`,
    `Machine: ${must('nproc').trim()} cores, kernel ${must('uname -r').trim()}, load average ${must('cut -d" " -f1-3 /proc/loadavg').trim()} at the end. Median of ${RUNS} run(s). Cold = page cache dropped and the server restarted.`,
    Object.keys(ENV).length > 0 ? `Serving process environment: ${Object.entries(ENV).map(([k, v]) => `${k}=${v}`).join(' ')}.` : '',
    ingestSeconds !== undefined ? `Ingest of the tree: ${ingestSeconds.toFixed(1)} s.` : '',
    '',
    '| target | cold read | vs plain | warm re-read | vs plain | find cold / warm | vs plain (cold / warm) | du cold / warm | vs plain (cold / warm) | large file cold | vs plain | python start cold / warm | vs ext4 (cold / warm) |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map((r) => `| ${r.name} | ${r.cold.toFixed(2)} s (${gbps(r.cold)}) | ${ratio(r.cold, plain.cold, true)} | ${r.warm.toFixed(2)} s (${gbps(r.warm)}) | ${ratio(r.warm, plain.warm, true)} | ${r.findCold.toFixed(2)} / ${r.findWarm.toFixed(3)} s | ${ratio(r.findCold, plain.findCold, false)} / ${ratio(r.findWarm, plain.findWarm, false)} | ${r.duCold.toFixed(2)} / ${r.duWarm.toFixed(3)} s | ${ratio(r.duCold, plain.duCold, false)} / ${ratio(r.duWarm, plain.duWarm, false)} | ${r.bigCold.toFixed(2)} s | ${ratio(r.bigCold, plain.bigCold, true)} | ${r.pyCold !== undefined ? `${(r.pyCold * 1000).toFixed(0)} / ${(r.pyWarm! * 1000).toFixed(0)} ms` : '–'} | ${r.pyCold !== undefined && plain.pyCold !== undefined ? `${ratio(r.pyCold, plain.pyCold, false)} / ${ratio(r.pyWarm!, plain.pyWarm!, false)}` : '–'} |`),
    '',
    'Read columns (all files, and the largest file with dd bs=1M): throughput relative to the plain directory (higher is better; issue 11 targets: cold ≥ 0.5×, warm ≥ 0.9×, large file cold ≥ 0.9×).',
    'find/du columns: time relative to the plain directory (lower is better; targets ≤ 2× cold, ≤ 1.2× warm).',
    'Python start: the same bwrap wrapper with the tree (ext4) or the view as /usr, time relative to ext4 (targets ≤ 1.15× warm, ≤ 1.5× cold; cold = caches dropped and server restarted, median of 3; warm = median of 15).',
    '',
  ];
  writeFileSync(OUT, lines.join('\n'));
  process.stdout.write(lines.join('\n'));
}

main().catch((e) => {
  process.stderr.write(`benchmarks/mount: ${(e as Error).message}\n`);
  process.exitCode = 1;
});
