/**
 * The mount benchmark (issues 3 and 11): on a tree of at least 1 GB of many small files, in one
 * run of interleaved rounds (each round measures every system once, so a load swing on the shared
 * machine hits them alike),
 *   - cold read of every file (page cache dropped; a fresh server) and the warm re-read,
 *   - metadata walks (`find`, `du -s`), cold and warm,
 *   - one large file, cold (dd bs=1M),
 * for the plain directory, `miq mount` on both backends (fuse3: our libfuse 3 addon; fuse-native:
 * libfuse 2), each through the store view and the usr view, and squashfuse on a squashfs image of
 * the same tree; and program start (`python3 -c 'import json, sqlite3, ssl'` in the same bwrap
 * wrapper) with the tree as /usr, from ext4 and from each usr view. Run as root (drop_caches):
 *
 *   node dist/benchmarks/mount.js [--src DIR] [--work DIR] [--runs N] [--out FILE.md] [--json FILE]
 *                                 [--only NAME,…] [--env K=V,…]
 *
 * --env passes variables to the serving process, to compare its knobs in one run (e.g.
 * MIQ_MOUNT_THREADS, MIQ_MOUNT_READAHEAD, MIQ_MOUNT_READAHEAD_KB: fs/reader.ts, mount/fuse3.ts).
 * The JSON's shape is described in .notes/fuse-needs.md §9.
 *
 * The tree is copied once into the work dir ($MIQ_MOUNT_BENCH, default /var/cache/miq-mount-bench)
 * so the plain directory is on the same disk as the store and the image. Without --src (or when
 * it does not exist) the tree is a copy of this machine's own /usr (share, include,
 * lib/x86_64-linux-gnu, lib/python3*, lib64, bin/python3*: ~1.5 GB, mostly small files), which also
 * holds the python3 (and its libraries) the start-up figure runs. Its .pyc files are rewritten once
 * as unchecked-hash pycs (what `miq install`'s trigger makes): the mount serves every file with
 * mtime 1, so timestamp pycs never validate there and python would compile from source on every
 * start while ext4 loads the pycs; both sides then load the same pycs.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
const JSON_OUT = arg('json', OUT.replace(/\.md$/, '') + '.json');
/** Comma-separated substrings of system names to run (the plain directory always runs). */
const ONLY = arg('only', '').split(',').filter(Boolean);
const ENV = Object.fromEntries(arg('env', '').split(',').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
/** Python start-ups per round: cold ones (each after a drop and a restart) and warm ones. */
const PY_COLD = 3, PY_WARM = 15;
/**
 * Warm runs per round: a warm `find` or `du -s` takes 0.2-0.4 s, and one run a round swung its
 * ratio from 0.76x to 1.38x between the rounds of one quiet run (r34-r36); several, the median
 * taken over all rounds as for python's warm starts. The warm re-read (~5 s) runs twice.
 */
const WALK_WARM = 5, READ_WARM = 2;

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
const loadavg = (): number[] => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number);

type MetricId = 'readCold' | 'readWarm' | 'findCold' | 'findWarm' | 'duCold' | 'duWarm' | 'largeCold' | 'pyCold' | 'pyColdRecall' | 'pyWarm';
interface Metric { id: MetricId; label: string; unit: 's'; better: 'higher-throughput' | 'lower-time'; target?: number; targetNote?: string }
const METRICS: Metric[] = [
  { id: 'readCold', label: 'cold read of every file', unit: 's', better: 'higher-throughput', target: 0.5, targetNote: 'moonshot 0.75×' },
  { id: 'readWarm', label: 'warm re-read of every file', unit: 's', better: 'higher-throughput', target: 0.9 },
  { id: 'findCold', label: 'find, cold', unit: 's', better: 'lower-time', target: 2 },
  { id: 'findWarm', label: 'find, warm', unit: 's', better: 'lower-time', target: 1.2 },
  { id: 'duCold', label: 'du -s, cold', unit: 's', better: 'lower-time', target: 2 },
  { id: 'duWarm', label: 'du -s, warm', unit: 's', better: 'lower-time', target: 1.2 },
  { id: 'largeCold', label: 'largest file, cold (dd bs=1M)', unit: 's', better: 'higher-throughput', target: 0.9 },
  { id: 'pyCold', label: "python3 -c 'import json, sqlite3, ssl', cold, no recall list", unit: 's', better: 'lower-time', target: 1.5 },
  { id: 'pyColdRecall', label: "python3 -c 'import json, sqlite3, ssl', cold, the last start recalled (MIQ_MOUNT_RECALL)", unit: 's', better: 'lower-time', target: 1.5 },
  { id: 'pyWarm', label: "python3 -c 'import json, sqlite3, ssl', warm", unit: 's', better: 'lower-time', target: 1.15 },
];

interface System {
  id: string;
  label: string;
  kind: 'plain' | 'miq' | 'squashfuse';
  backend?: 'fuse3' | 'fuse-native';
  view?: 'store' | 'usr';
  dir: () => string;
  /** (Re)start the server so no user-space cache survives; no-op for the plain directory. */
  restart: () => Promise<void>;
  stop: () => Promise<void>;
  runs: Partial<Record<MetricId, number[]>>;
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

interface Prepared { tree: string; store: string; path: string; img: string; bytes: number; files: number; storeBytes: number; imgBytes: number; ingestSeconds?: number }

/** The tree, its store (ingested once) and its squashfs image (made once). */
function prepare(): Prepared {
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
  const store = join(WORK, 'store');
  const img = join(WORK, 'tree.squashfs');
  if (!existsSync(join(WORK, 'tree.pyc-unchecked')) && existsSync(join(tree, 'bin', 'python3'))) {
    // Rewrite the pycs (see the head comment); the store and the image follow the tree.
    for (const d of ['lib/python3.11', 'lib/python3/dist-packages']) {
      if (existsSync(join(tree, d))) sh(`python3 -m compileall -q -f -j 1 --invalidation-mode unchecked-hash ${join(tree, d)}`);
    }
    rmSync(join(WORK, 'store.path'), { force: true });
    rmSync(img, { force: true });
    writeFileSync(join(WORK, 'tree.pyc-unchecked'), '');
  }
  const bytes = Number(must(`du -sb --apparent-size ${tree} | cut -f1`).trim());
  const files = Number(must(`find ${tree} -type f | wc -l`).trim());
  if (bytes < 1e9) throw new MiqError('MIQ_BAD_INPUT', `the tree at ${tree} has ${bytes} bytes; the mount benchmark wants at least 1 GB: give a bigger --src`);
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
    path = readFileSync(join(WORK, 'store.path'), 'utf8').trim();
  }
  if (!existsSync(img)) must(`mksquashfs ${tree} ${img} -comp zstd -noappend -quiet -no-progress`);
  const storeBytes = Number(must(`du -sb --exclude=reserve ${store} | cut -f1`).trim()); // the full-disk reserve is not stored data
  const imgBytes = Number(must(`stat -c %s ${img}`).trim());
  return { tree, store, path, img, bytes, files, storeBytes, imgBytes, ingestSeconds };
}

function systems(p: Prepared): System[] {
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
    miq = spawn(process.execPath, [MIQ, '--store', p.store, 'mount', mnt, '--json', '--backend', backend], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...ENV } });
    await waitLine(miq);
  };
  const view = (backend: 'fuse3' | 'fuse-native', v: 'store' | 'usr', note = ''): System => ({
    id: `${backend}-${v}`, label: `miq ${backend}, ${v}/ view${note}`, kind: 'miq', backend, view: v,
    dir: () => (v === 'store' ? join(mnt, 'store', p.path) : join(mnt, 'usr')),
    restart: () => startMiq(backend), stop: stopMiq, runs: {},
  });
  return [
    { id: 'plain', label: 'plain directory (ext4)', kind: 'plain', dir: () => p.tree, restart: async () => {}, stop: async () => {}, runs: {} },
    view('fuse3', 'store'),
    view('fuse3', 'usr'),
    view('fuse-native', 'store'),
    view('fuse-native', 'usr', ' (direct_io)'),
    {
      id: 'squashfuse', label: 'squashfuse (zstd image)', kind: 'squashfuse', dir: () => sq,
      restart: async () => { sh(`umount ${sq} 2>/dev/null`); must(`squashfuse ${p.img} ${sq}`); },
      stop: async () => void sh(`umount ${sq}`), runs: {},
    },
  ];
}

/** One round of every measurement on one system; each cold figure after a restart and a drop. */
async function measure(t: System, p: Prepared, list: string, bigPath: string): Promise<void> {
  const put = (m: MetricId, s: number): void => void (t.runs[m] ??= []).push(s);
  // Every cold figure but pyColdRecall is of a mount with no recall list (fs/recall.ts: what the
  // last mount's start read, which a mount reads before it reports mounted): removed between the
  // last mount's stop (which writes one) and the next start. (Removed before the restart, as
  // until 1693af8, the stopping mount wrote its list after the removal: pyCold's second and
  // third starts of a round replayed the list of the recalled start before them, 0.08-0.09 s
  // against 0.155-0.175 s for the first.)
  const forget = (): void => void sh(`rm -f ${p.store}/run/mount-recall.*`);
  const cold = async (keep = false): Promise<void> => {
    await t.stop();
    if (!keep) forget();
    await t.restart();
    dropCaches();
  };
  const readAll = `cd ${t.dir()} && xargs -0 cat < ${list} > /dev/null`;
  await cold();
  put('findCold', timed(`find ${t.dir()} > /dev/null`));
  for (let k = 0; k < WALK_WARM; k++) put('findWarm', timed(`find ${t.dir()} > /dev/null`));
  await cold();
  put('duCold', timed(`du -s ${t.dir()} > /dev/null`));
  for (let k = 0; k < WALK_WARM; k++) put('duWarm', timed(`du -s ${t.dir()} > /dev/null`));
  await cold();
  put('largeCold', timed(`dd if=${t.dir()}/${bigPath} of=/dev/null bs=1M status=none`));
  await cold();
  put('readCold', timed(readAll));
  for (let k = 0; k < READ_WARM; k++) put('readWarm', timed(readAll));
  if ((t.kind === 'plain' || t.view === 'usr') && existsSync(join(p.tree, 'bin', 'python3'))) {
    // The same bwrap wrapper for both, the tree (or a usr view) as /usr.
    const py = `bwrap --ro-bind ${t.dir()} /usr --symlink usr/lib /lib --symlink usr/lib64 /lib64 --symlink usr/bin /bin --symlink usr/sbin /sbin --ro-bind /etc /etc --proc /proc --dev /dev --tmpfs /tmp /usr/bin/python3 -c 'import json, sqlite3, ssl'`;
    for (let k = 0; k < PY_COLD; k++) {
      await cold();
      const c = timed(py);
      put('pyCold', c);
      // Then with the list that start left (written at its mount's stop, by the restart): the
      // next mount reads those files before `mounted`, then the page cache is dropped as always.
      if (t.kind === 'plain') put('pyColdRecall', c);
      else {
        await cold(true);
        put('pyColdRecall', timed(py));
      }
    }
    forget();
    timed(py);
    for (let k = 0; k < PY_WARM; k++) put('pyWarm', timed(py));
  }
  const f = (m: MetricId): string => (t.runs[m]?.at(-1) ?? NaN).toFixed(2);
  process.stderr.write(`${t.label}: read ${f('readCold')}/${f('readWarm')} s, find ${f('findCold')}/${f('findWarm')} s, du ${f('duCold')}/${f('duWarm')} s, large ${f('largeCold')} s, py ${f('pyCold')}/${f('pyColdRecall')}/${f('pyWarm')} s\n`);
}

function ratioOf(m: Metric, s: number, plain: number): number {
  return m.better === 'higher-throughput' ? plain / s : s / plain;
}

async function main(): Promise<void> {
  // --render FILE.json: the report of a saved run again (this version's tables), nothing measured.
  const saved = arg('render', '');
  if (saved) {
    const r = JSON.parse(readFileSync(saved, 'utf8')) as Result;
    return void process.stdout.write(renderMarkdown(r, r.tree.largestBytes));
  }
  if (process.getuid?.() !== 0) throw new MiqError('MIQ_BAD_INPUT', 'the mount benchmark must run as root (it drops the page cache and mounts); run it with sudo');
  const load0 = loadavg();
  const p = prepare();
  const all = systems(p);
  const run = all.filter((t, i) => i === 0 || ONLY.length === 0 || ONLY.some((o) => t.label.includes(o) || t.id.includes(o)));
  // The read measures reading: the file list is made once, on the plain tree, so the walk is
  // not part of it (the walk is measured by find and du).
  const list = join(WORK, 'files.list');
  must(`cd ${p.tree} && find . -type f -print0 > ${list}`);
  const big = must(`cd ${p.tree} && find . -type f -printf '%s %p\\n' | sort -n | tail -1`).trim();
  const bigPath = big.slice(big.indexOf(' ') + 1);
  const bigBytes = Number(big.slice(0, big.indexOf(' ')));
  const perRound: number[][] = [];
  // Written after every system of every round: a run cut short (the shared machine is slow)
  // still leaves what it measured.
  const write = (): void => {
    const result = summarise(run, { p, bigBytes, load0, perRound });
    writeFileSync(JSON_OUT, JSON.stringify(result, null, 1) + '\n');
    writeFileSync(OUT, renderMarkdown(result, bigBytes));
  };
  for (let i = 0; i < RUNS; i++) {
    for (const t of run) {
      try {
        await measure(t, p, list, bigPath);
      } finally {
        await t.stop();
      }
      write();
    }
    perRound.push(loadavg());
    write();
    process.stderr.write(`round ${i + 1}/${RUNS} done, load ${perRound.at(-1)!.join(' ')}\n`);
  }
  process.stdout.write(readFileSync(OUT, 'utf8'));
}

function summarise(run: System[], c: { p: Prepared; bigBytes: number; load0: number[]; perRound: number[][] }): Result {
  const plain = run[0]!;
  const { p } = c;
  return {
    kind: 'mount' as const,
    date: new Date().toISOString(),
    commit: process.env.MIQ_BENCH_COMMIT ?? (sh(`git -C ${ROOT} rev-parse --short HEAD`).code === 0 ? sh(`git -C ${ROOT} rev-parse --short HEAD`).out.trim() : 'unknown'),
    machine: { cores: Number(must('nproc').trim()), kernel: must('uname -r').trim() },
    tree: { bytes: p.bytes, files: p.files, largestBytes: c.bigBytes, source: SRC || `a copy of this machine's /usr: ${USR_PARTS.join(', ')}`, storeBytes: p.storeBytes, imageBytes: p.imgBytes },
    rounds: Math.max(...run.map((t) => t.runs.readCold?.length ?? 0)),
    loadavg: { start: c.load0, end: loadavg(), perRound: c.perRound },
    env: ENV,
    ingestSeconds: p.ingestSeconds,
    metrics: METRICS,
    systems: run.map((t) => ({
      id: t.id, label: t.label, kind: t.kind, backend: t.backend, view: t.view,
      results: Object.fromEntries(METRICS.filter((m) => t.runs[m.id]?.length && plain.runs[m.id]?.length).map((m) => {
        const med = median(t.runs[m.id]!);
        const ratio = ratioOf(m, med, median(plain.runs[m.id]!));
        const met = m.target === undefined || t === plain ? undefined : m.better === 'higher-throughput' ? ratio >= m.target : ratio <= m.target;
        return [m.id, { runs: t.runs[m.id]!, median: med, ratio, met }];
      })),
    })),
  };
}

type Result = { kind: 'mount'; date: string; commit: string; machine: { cores: number; kernel: string }; tree: { bytes: number; files: number; largestBytes: number; source: string; storeBytes: number; imageBytes: number }; rounds: number; loadavg: { start: number[]; end: number[]; perRound: number[][] }; env: Record<string, string>; ingestSeconds?: number; metrics: Metric[]; systems: { id: string; label: string; kind: string; backend?: string; view?: string; results: Partial<Record<MetricId, { runs?: number[]; median: number; ratio: number; met?: boolean }>> }[] };

/** How cold "cold" was: the plain directory's cold read of the largest file. Dropping the VM's
 * page cache does not empty the host's: a disk image the host keeps in its RAM reads at GB/s
 * (measured 1.6-2.1 GB/s at stop 21, against ~140 MB/s from the disk a stop earlier), and the
 * cold ratios then compare a decompress-and-verify path against RAM. */
function diskLine(r: Result, bigBytes: number): string {
  const plain = r.systems.find((s) => s.kind === 'plain')?.results.largeCold?.median;
  if (!plain) return '';
  const mbs = bigBytes / plain / 1e6;
  return `Plain cold read of the largest file: ${mbs.toFixed(0)} MB/s${mbs > 600 ? ' — faster than this machine class\'s disks: the host served the VM\'s disk from its own cache, so cold ratios here compare against RAM, not a disk' : ''}.`;
}

/** A round's plain figure this far from the plain median (either way) makes the round suspect. */
const PLAIN_OFF = 1.5;

/**
 * Per-round ratios, each against the plain directory in the same round, with rounds whose plain
 * figure is PLAIN_OFF× or more off the plain median flagged: on a VM whose disk the host caches
 * now and then, one round's plain cold read took 103 s and the next 9 s (stop 27), and a median
 * over three rounds then hides which ratio to believe.
 */
function perRoundLines(r: Result): string[] {
  const plain = r.systems.find((s) => s.kind === 'plain');
  if (!plain || r.rounds < 2) return [];
  const lines = ['Per round (ratios to the plain directory in the same round; ⚠ = plain was ' + `${PLAIN_OFF}× or more off its median in that round):`, ''];
  const others = r.systems.filter((s) => s !== plain);
  lines.push(`| figure | round | plain | ${others.map((s) => s.label).join(' | ')} |`, `| --- | --- | --- | ${others.map(() => '---').join(' | ')} |`);
  for (const m of METRICS) {
    const pr = plain.results[m.id]?.runs;
    if (!pr || pr.length < r.rounds) continue;
    const per = pr.length / r.rounds;
    const inRound = (xs: number[], i: number): number => median(xs.slice(i * per, (i + 1) * per));
    const pm = median(pr);
    for (let i = 0; i < r.rounds; i++) {
      const pv = inRound(pr, i);
      const off = pv >= pm * PLAIN_OFF || pv * PLAIN_OFF <= pm;
      const cells = others.map((s) => {
        const xs = s.results[m.id]?.runs;
        return xs && xs.length === pr.length ? `${ratioOf(m, inRound(xs, i), pv).toFixed(2)}×` : '–';
      });
      lines.push(`| ${m.label} | ${i + 1}${off ? ' ⚠' : ''} | ${pv.toFixed(3)} s | ${cells.join(' | ')} |`);
    }
  }
  return [...lines, ''];
}

/** How many runs of a figure each round took (the plain directory's; older results: 1). */
function perRound(r: Result, m: MetricId): number {
  const n = r.systems.find((s) => s.kind === 'plain')?.results[m]?.runs?.length ?? r.rounds;
  return Math.max(1, Math.round(n / Math.max(1, r.rounds)));
}

function renderMarkdown(r: Result, bigBytes: number): string {
  const cell = (s: Result['systems'][number], m: Metric): string => {
    const x = s.results[m.id];
    if (!x) return '–';
    const v = m.id.startsWith('py') ? `${(x.median * 1000).toFixed(0)} ms` : `${x.median.toFixed(x.median < 1 ? 3 : 2)} s`;
    return `${v} (${x.ratio.toFixed(2)}×${x.met === undefined ? '' : x.met ? ' ✓' : ' ✗'})`;
  };
  const head = `| system | ${METRICS.map((m) => m.label).join(' | ')} |`;
  return [
    `# Mount benchmark (${r.date.slice(0, 10)}, commit ${r.commit})`,
    '',
    `Tree: ${(r.tree.bytes / 1e9).toFixed(2)} GB, ${r.tree.files} files (${r.tree.source}); largest file ${(bigBytes / 1e6).toFixed(0)} MB; store ${(r.tree.storeBytes / 1e9).toFixed(2)} GB on disk, squashfs image ${(r.tree.imageBytes / 1e9).toFixed(2)} GB.`,
    `Machine: ${r.machine.cores} cores, kernel ${r.machine.kernel}; load average ${r.loadavg.start.join(' ')} at the start, after each round ${r.loadavg.perRound.map((l) => l.join(' ')).join(' / ') || '–'}, ${r.loadavg.end.join(' ')} when written. ${r.rounds} interleaved round(s), medians. Cold = page cache dropped and the server restarted before each; warm find and du -s ${perRound(r, 'findWarm')} run(s) a round, the warm re-read ${perRound(r, 'readWarm')}, right after the cold one.`,
    Object.keys(r.env).length > 0 ? `Serving process environment: ${Object.entries(r.env).map(([k, v]) => `${k}=${v}`).join(' ')}.` : '',
    r.ingestSeconds !== undefined ? `Ingest of the tree: ${r.ingestSeconds.toFixed(1)} s.` : '',
    diskLine(r, bigBytes),
    '',
    head,
    `| --- | ${METRICS.map(() => '---').join(' | ')} |`,
    ...r.systems.map((s) => `| ${s.label} | ${METRICS.map((m) => cell(s, m)).join(' | ')} |`),
    '',
    'Each cell: median, then the ratio to the plain directory in the same rounds. Reads (every file, and the largest file) give a throughput ratio (plain time ÷ time, higher is better; issue 11 targets: cold ≥ 0.5× (moonshot 0.75×), warm ≥ 0.9×, large file cold ≥ 0.9×); find, du and python start a time ratio (lower is better; ≤ 2× cold and ≤ 1.2× warm for find/du, python ≤ 1.5× cold and ≤ 1.15× warm). ✓/✗: target met or not.',
    'Python start: the same bwrap wrapper with the tree (ext4) or the view as /usr; cold = caches dropped and server restarted (3 a round), warm = 15 a round. "No recall list": the store\'s recall list (MIQ_MOUNT_RECALL) removed before the restart, as for every other cold figure. "The last start recalled": right after each of those, a restart that keeps the list that start left (its mount\'s stop writes it): the new mount reads those files (~18 MB for this start) before it reports mounted, then the page cache is dropped; the plain directory\'s figure is its one cold start.',
    '',
    ...perRoundLines(r),
  ].join('\n');
}

main().catch((e) => {
  process.stderr.write(`benchmarks/mount: ${(e as Error).message}\n`);
  process.exitCode = 1;
});
