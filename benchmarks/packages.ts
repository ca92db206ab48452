/**
 * benchmarks/packages (issue 12): resolution and install by name against Debian's real indexes.
 *   - resolve time with a loaded index: python3, and a metapackage of more than 800 packages
 *     (targets ≤ 3 s and ≤ 10 s), medians of --runs;
 *   - `miq install python3` end to end into an empty store with an empty .deb cache (resolve,
 *     download through the mirror, check, unpack, ingest, triggers, switch), against
 *     `apt-get download` + `dpkg-deb -x` of the same set in the same run, order alternating
 *     (target ≤ 1.5×);
 *   - a second install of the same set (target ≤ 1 s).
 *
 *   node dist/benchmarks/packages.js [--runs 3] [--meta task-gnome-desktop] [--work DIR] [--json]
 */
import { spawn } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const MIQ = join(ROOT, 'bin', 'miq');

function run(cmd: string, args: string[], o: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<{ code: number; out: string; err: string; seconds: number }> {
  const t0 = performance.now();
  return new Promise((res) => {
    const c = spawn(cmd, args, { env: { ...process.env, ...o.env }, cwd: o.cwd });
    let out = '', err = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (err += d));
    c.on('close', (code) => res({ code: code ?? 1, out, err, seconds: (performance.now() - t0) / 1000 }));
  });
}

async function must(cmd: string, args: string[], o: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<{ out: string; seconds: number }> {
  const r = await run(cmd, args, o);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.err.slice(-2000)}`);
  return r;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : dflt;
}

async function main(): Promise<void> {
  const runs = Number(arg('runs', '3'));
  const meta = arg('meta', 'task-gnome-desktop');
  const work = await mkdtemp(join(arg('work', tmpdir()), 'miq-bench-pkgs-'));
  const asJson = process.argv.includes('--json');
  const load0 = loadavg();
  const log = (s: string): void => void (asJson ? process.stderr : process.stdout).write(`${s}\n`);
  try {
    // One store with the verified index, for the resolve timings.
    const base = join(work, 'index-store');
    await must(process.execPath, [MIQ, '--store', base, 'repo', 'add', 'debian', '--from-apt']);
    const upd = await must(process.execPath, [MIQ, '--store', base, 'repo', 'update']);
    log(`repo update (from apt's lists, verified, stored): ${upd.seconds.toFixed(2)} s`);
    // Resolve through the CLI: its JSON "seconds" is the solve with the index loaded; the
    // command's wall time adds loading the index (benchmarks/ may not import packages/).
    const resolveOnce = async (pkg: string): Promise<{ solve: number; wall: number; n: number; set: string[] }> => {
      const r = await must(process.execPath, [MIQ, '--store', base, 'resolve', pkg, '--json']);
      const j = JSON.parse(r.out) as { packages: { name: string; version: string }[]; seconds: number };
      return { solve: j.seconds, wall: r.seconds, n: j.packages.length, set: j.packages.map((p) => `${p.name}=${p.version}`) };
    };
    // Anchors for the wall times: node starting and exiting, and miq's start-up alone.
    const nodeT: number[] = [];
    for (let i = 0; i < 5; i++) nodeT.push((await must(process.execPath, ['-e', '0'])).seconds);
    log(`node -e 0: median ${median(nodeT).toFixed(2)} s`);
    const timesPy: number[] = [];
    const wallMeta: number[] = [];
    const timesMeta: number[] = [];
    const wallPy: number[] = [];
    let nPy = 0, nMeta = 0;
    let set: string[] = [];
    for (let i = 0; i < runs; i++) {
      const a = await resolveOnce('python3');
      timesPy.push(a.solve);
      wallPy.push(a.wall);
      nPy = a.n;
      set = a.set;
      const b = await resolveOnce(meta);
      timesMeta.push(b.solve);
      wallMeta.push(b.wall);
      nMeta = b.n;
    }
    const loadS = median(wallPy) - median(timesPy);
    log(`miq resolve python3 wall: median ${median(wallPy).toFixed(2)} s (loading the index and starting node: ~${loadS.toFixed(2)} s)`);
    log(`resolve python3 (${nPy} packages): median ${median(timesPy).toFixed(2)} s [${timesPy.map((x) => x.toFixed(2)).join(', ')}]`);
    log(`resolve ${meta} (${nMeta} packages): median ${median(timesMeta).toFixed(2)} s [${timesMeta.map((x) => x.toFixed(2)).join(', ')}]; miq resolve wall ${median(wallMeta).toFixed(2)} s`);

    // Install end to end vs apt-get download + dpkg-deb -x, order alternating.
    const miqT: number[] = [], aptT: number[] = [], againT: number[] = [], againIn: number[] = [], otherProfileT: number[] = [];
    const phases: unknown[] = [];
    for (let i = 0; i < runs; i++) {
      const st = join(work, `s${i}`);
      const cache = join(work, `cache${i}`);
      // An empty store with the verified index: a copy of the one made above (repo update
      // is not part of an install; apt's anchor does not update its lists either).
      await cp(base, st, { recursive: true });
      const doMiq = async (): Promise<void> => {
        const r = await must(process.execPath, [MIQ, '--store', st, 'install', '--profile', 'b', 'python3', '--json'], { env: { MIQ_CACHE: cache } });
        miqT.push(r.seconds);
        phases.push((JSON.parse(r.out) as { seconds: unknown }).seconds);
      };
      const doApt = async (): Promise<void> => {
        const d = join(work, `apt${i}`);
        await mkdir(join(d, 'root'), { recursive: true });
        const t = performance.now();
        await must('apt-get', ['download', '-q', ...set], { cwd: d });
        for (const f of (await readdir(d)).filter((x) => x.endsWith('.deb'))) await must('dpkg-deb', ['-x', join(d, f), join(d, 'root')]);
        aptT.push((performance.now() - t) / 1000);
      };
      if (i % 2 === 0) { await doMiq(); await doApt(); } else { await doApt(); await doMiq(); }
      const again = await must(process.execPath, [MIQ, '--store', st, 'install', '--profile', 'b', 'python3', '--json'], { env: { MIQ_CACHE: cache } });
      againT.push(again.seconds);
      againIn.push((JSON.parse(again.out) as { seconds: { total: number } }).seconds.total);
      const other = await must(process.execPath, [MIQ, '--store', st, 'install', '--profile', 'c', 'python3', '--json'], { env: { MIQ_CACHE: cache } });
      otherProfileT.push(other.seconds);
      log(`run ${i + 1} (load ${loadavg()[0]!.toFixed(1)}): miq install ${miqT.at(-1)!.toFixed(2)} s ${JSON.stringify(phases.at(-1))}, apt-get download + dpkg-deb -x ${aptT.at(-1)!.toFixed(2)} s, again ${again.seconds.toFixed(2)} s wall (${againIn.at(-1)!.toFixed(3)} s in the command), same set into a new profile ${other.seconds.toFixed(2)} s`);
      await rm(join(work, `apt${i}`), { recursive: true, force: true });
    }
    const result = {
      packages: nPy, meta, metaPackages: nMeta, loadSeconds: loadS,
      resolvePython3: median(timesPy), resolveMeta: median(timesMeta),
      installMiq: median(miqT), installApt: median(aptT), ratio: median(miqT) / median(aptT),
      secondInstall: median(againT), secondInstallInCommand: median(againIn), secondInstallNewProfile: median(otherProfileT), nodeStart: median(nodeT), runs,
      resolvePython3Wall: median(wallPy), resolveMetaWall: median(wallMeta), loadAverage: { start: load0, end: loadavg() },
      raw: { timesPy, timesMeta, wallPy, wallMeta, miqT, aptT, againT, againIn, otherProfileT, nodeT, phases },
    };
    log(`install python3 end to end: miq ${result.installMiq.toFixed(2)} s vs apt-get download + dpkg-deb -x ${result.installApt.toFixed(2)} s: ${result.ratio.toFixed(2)}x; second install ${result.secondInstall.toFixed(2)} s wall, ${result.secondInstallInCommand.toFixed(3)} s in the command (node -e 0: ${result.nodeStart.toFixed(2)} s; new profile ${result.secondInstallNewProfile.toFixed(2)} s)`);
    log(`load average: start ${load0.map((x) => x.toFixed(1)).join(' ')}, end ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
    if (asJson) process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
