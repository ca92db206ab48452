/**
 * SIGTERM storm (issue 16 item 3): `miq mount` is stopped with SIGTERM while readers loop over
 * files (checking every completed read against the file's hash), a shell sits inside, and every
 * other trial a bind of DIR/usr is on top. Per trial: exit code, time to exit, mounts left, stack
 * traces in the log, wrong bytes. Too slow for the test suite (~3 s a trial); run as root:
 *
 *   node dist/benchmarks/sigterm-storm.js [--trials 100] [--backend fuse3|fuse-native]
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(fileURLToPath(import.meta.url), '..', '..', '..');
const MIQ = join(ROOT, 'bin', 'miq');
const arg = (n: string, d: string): string => {
  const i = process.argv.indexOf(`--${n}`);
  return i > 0 ? process.argv[i + 1]! : d;
};
const TRIALS = Number(arg('trials', '100'));
const BACKEND = arg('backend', 'fuse3');

const READER = `
import hashlib, os, sys, time
paths, want, stop = sys.argv[1].split(','), sys.argv[2].split(','), sys.argv[3]
ok = bad = err = 0
deadline = time.time() + 30
started = False
while time.time() < deadline and not os.path.exists(stop):
    for p, w in zip(paths, want):
        try:
            with open(p, 'rb') as f: b = f.read()
        except OSError:
            err += 1; time.sleep(0.01); continue
        if hashlib.sha256(b).hexdigest() == w: ok += 1
        else: bad += 1
        if not started:
            started = True
            print('go', flush=True)
print(ok, bad, err, flush=True)
`;

function sh(cmd: string): { code: number; out: string } {
  const r = spawnSync('/bin/bash', ['-c', cmd], { encoding: 'utf8' });
  return { code: r.status ?? 1, out: (r.stdout ?? '') + (r.stderr ?? '') };
}
const exitOf = (c: ChildProcess): Promise<{ code: number | null; signal: string | null }> =>
  new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r({ code: c.exitCode, signal: c.signalCode }) : c.once('exit', (code, signal) => r({ code, signal }))));

async function main(): Promise<void> {
  const base = mkdtempSync(join(tmpdir(), 'miq-storm-'));
  try {
    const src = join(base, 'src');
    mkdirSync(join(src, 'share'), { recursive: true });
    const files: Record<string, Buffer> = {};
    let x = 7;
    for (const [name, size] of [['big', 6 << 20], ['mid', 700 << 10], ['small', 3000]] as const) {
      const b = Buffer.alloc(size);
      for (let i = 0; i < size; i++) b[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
      files[name] = b;
      writeFileSync(join(src, 'share', name), b);
    }
    const S = `${process.execPath} ${MIQ} --store ${join(base, 'store')}`;
    const p = JSON.parse(sh(`${S} ingest ${src} --name storm --json`).out.trim().split('\n').pop()!).path as string;
    sh(`${S} profile switch system ${p}`);
    const mnt = join(base, 'mnt'), bind = join(base, 'bind');
    mkdirSync(mnt);
    mkdirSync(bind);
    writeFileSync(join(base, 'reader.py'), READER);
    const want = Object.values(files).map((b) => createHash('sha256').update(b).digest('hex'));
    const res = { trials: 0, exit0: 0, crashes: 0, hangs: 0, mountsLeft: 0, stackTraces: 0, wrongBytes: 0, readsOk: 0, readErrors: 0, exitMs: [] as number[] };
    for (let t = 0; t < TRIALS; t++) {
      const c = spawn(process.execPath, [MIQ, '--store', join(base, 'store'), 'mount', mnt, '--json', '--backend', BACKEND], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '', log = '';
      c.stderr!.on('data', (d) => (log += d));
      await new Promise<void>((ok, no) => {
        c.stdout!.on('data', (d) => ((out += d), out.includes('\n') && ok()));
        c.once('exit', (code) => no(new Error(`mount exited ${code}: ${log}`)));
      });
      const stop = join(base, `stop${t}`);
      const roots = [`${mnt}/usr/share`, `${mnt}/store/${p}/share`];
      const readers = roots.map((r) => spawn('/usr/bin/python3', [join(base, 'reader.py'), Object.keys(files).map((n) => `${r}/${n}`).join(','), want.join(','), stop], { stdio: ['ignore', 'pipe', 'ignore'] }));
      const rout = readers.map((r) => {
        let s = '';
        r.stdout!.on('data', (d) => (s += d));
        return () => s;
      });
      const shell = spawn('/bin/bash', ['-c', `cd ${mnt}/usr/share && exec sleep 30`], { stdio: 'ignore' });
      if (t % 2 === 1) sh(`mount --bind ${mnt}/usr ${bind}`);
      // Readers busy (each has read once) before the signal, then a random moment.
      for (const end = Date.now() + 15_000; !rout.every((o) => o().startsWith('go')) && Date.now() < end;) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 200 + Math.random() * 600));
      const t0 = Date.now();
      c.kill('SIGTERM');
      const e = await Promise.race([exitOf(c), new Promise<'hang'>((r) => setTimeout(() => r('hang'), 10_000))]);
      const ms = Date.now() - t0;
      res.trials++;
      if (e === 'hang') {
        res.hangs++;
        c.kill('SIGKILL');
        await exitOf(c);
      } else if (e.code === 0 && ms < 5000) res.exit0++;
      else if (e.code !== 0) res.crashes++;
      else res.hangs++;
      res.exitMs.push(ms);
      writeFileSync(stop, '');
      shell.kill('SIGKILL');
      for (const r of readers) await exitOf(r);
      for (const o of rout) {
        const [ok, bad, err] = o().replace(/^go\n/, '').trim().split(/\s+/).map(Number);
        res.readsOk += ok ?? 0;
        res.wrongBytes += bad ?? 0;
        res.readErrors += err ?? 0;
      }
      if (/\n\s+at /.test(log)) {
        res.stackTraces++;
        process.stderr.write(`trial ${t}: stack trace in the log:\n${log}\n`);
      }
      const left = readFileSync('/proc/mounts', 'utf8').split('\n').filter((l) => l.includes(base));
      if (left.length > 0) {
        res.mountsLeft++;
        for (const l of left.reverse()) sh(`umount -l ${l.split(' ')[1]}`);
      }
      process.stderr.write(`trial ${t + 1}/${TRIALS}: exit ${e === 'hang' ? 'hang' : e.code ?? e.signal} in ${ms} ms, left ${left.length}\n`);
    }
    const sorted = [...res.exitMs].sort((a, b) => a - b);
    const summary = { backend: BACKEND, ...res, exitMs: undefined, exitMsMedian: sorted[Math.floor(sorted.length / 2)], exitMsMax: sorted.at(-1) };
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  } finally {
    for (const l of readFileSync('/proc/mounts', 'utf8').split('\n').filter((l) => l.includes(base)).reverse()) sh(`umount -l ${l.split(' ')[1]}`);
    rmSync(base, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`sigterm-storm: ${(e as Error).message}\n`);
  process.exitCode = 1;
});
