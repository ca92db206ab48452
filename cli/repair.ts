/**
 * `miq repair [--remote URL]`: verify finds damage by hash; what a remote holds is fetched again
 * and written over it. Chunks and trees are checked against their ids, file records against the
 * remote's signed per-path index, so nothing unverified enters the store. A missing store path
 * that another one references is fetched with its closure.
 */
import type { Command } from 'commander';
import { MiqError, isMiqError, verifyStore, type Damage, type Id, type PruneStore, type Store, type VerifyReport } from '../store/index.js';
import { localSink, prefetch, type RemoteReader } from '../store/remote/index.js';
import { controlOf } from '../mount/client.js';
import { openRemoteFor, rememberedRemote } from './lazy.js';
import { count, fmtBytes, globals, printJson, progressLine, storeDir, trustedKeyFiles, withStore } from './context.js';

const collect = (v: string, acc: string[]): string[] => [...acc, v];

export interface RepairReport {
  ok: boolean;
  remote: string;
  /** Damaged objects verify found before the repair. */
  damaged: number;
  repaired: { kind: Damage['kind']; id: string }[];
  notRepaired: { kind: Damage['kind']; id: string; reason: string }[];
  /** Plain bytes fetched from the remote. */
  bytes: number;
  /** Damaged objects verify finds after it (0 when ok). */
  damagedAfter: number;
  seconds: number;
}

/** Fetches one damaged object from `remote` and writes it over the local copy. */
async function repairOne(store: Store, remote: RemoteReader, d: Damage): Promise<number> {
  const w = store.writer!;
  if (d.kind === 'chunk') {
    const plain = await remote.chunks.get(d.id as Id);
    if (!plain) throw new MiqError('MIQ_NOT_FOUND', 'the remote does not have it');
    await w.writeObjects({ chunks: [{ id: d.id as Id, plain }], replace: true });
    return plain.length;
  }
  if (d.kind === 'tree') {
    const t = await remote.getTree(d.id as Id);
    if (!t) throw new MiqError('MIQ_NOT_FOUND', 'the remote does not have it');
    await w.writeObjects({ trees: [{ id: d.id as Id, entries: t.entries }] });
    return 0;
  }
  if (d.kind === 'file') {
    // A file record is checked against the signed index of a store path that holds it.
    for (const p of d.paths) await remote.getStorePath(p);
    const rec = await remote.getFile(d.id as Id);
    if (!rec) throw new MiqError('MIQ_NOT_FOUND', 'the remote does not have it');
    await w.writeObjects({ files: [rec] });
    return 0;
  }
  const sink = localSink(store);
  const r = await prefetch(remote, { paths: [d.id] }, sink, 16);
  await sink.flush();
  return r.bytes;
}

async function repair(store: Store, remote: RemoteReader, onProgress: (text: string) => void): Promise<Omit<RepairReport, 'remote' | 'seconds'>> {
  const m: PruneStore = store.maintenance!;
  const verify = (what: string): Promise<VerifyReport> => verifyStore(m, (p) => onProgress(`${what}: ${p.paths} of ${count(p.total, 'store path')}, ${fmtBytes(p.bytes)}`));
  const before = await verify('verify');
  const repaired: RepairReport['repaired'] = [];
  const notRepaired: RepairReport['notRepaired'] = [];
  let bytes = 0;
  // Chunks first: a damaged file or tree may only have looked damaged through its chunks.
  const order = [...before.damaged].sort((a, b) => (a.kind === 'chunk' ? 0 : 1) - (b.kind === 'chunk' ? 0 : 1));
  let n = 0;
  for (const d of order) {
    onProgress(`repair: ${++n} of ${count(order.length, 'damaged object')}, ${fmtBytes(bytes)} fetched`);
    try {
      bytes += await repairOne(store, remote, d);
      repaired.push({ kind: d.kind, id: d.id });
    } catch (e) {
      if (!isMiqError(e)) throw e;
      notRepaired.push({ kind: d.kind, id: d.id, reason: e.message });
    }
  }
  const after = order.length ? await verify('verify again') : before;
  // What verify still finds is what was not repaired, whatever the fetch said.
  const still = new Set(after.damaged.map((d) => `${d.kind}:${d.id}`));
  const done = repaired.filter((r) => !still.has(`${r.kind}:${r.id}`));
  for (const r of repaired) if (still.has(`${r.kind}:${r.id}`)) notRepaired.push({ ...r, reason: 'still damaged after writing the fetched copy' });
  for (const d of after.damaged) if (!order.some((o) => o.kind === d.kind && o.id === d.id)) notRepaired.push({ kind: d.kind, id: d.id, reason: `found only after the repair: ${d.problem}` });
  return { ok: after.ok, damaged: before.damaged.length, repaired: done, notRepaired, bytes, damagedAfter: after.damaged.length };
}

export function register(program: Command): void {
  program
    .command('repair')
    .description('verify the store and fetch every damaged chunk, tree or file record again from a remote (the one `miq mount --remote` remembered, or --remote)')
    .option('--remote <url>', 'remote to fetch from: http(s)://…, file://… or a directory (default: the remembered one)')
    .option('--trusted-key <key>', 'NAME:BASE64, a .pub file, or NAME of <store>/keys/NAME.pub (file records and store paths are checked against signed records); repeatable', collect, [])
    .option('--proxy <url>', 'fetch through this HTTP proxy (default: $http_proxy / $https_proxy, minus $no_proxy)')
    .option('--json', 'print one JSON object')
    .action(async (o: { remote?: string; trustedKey: string[]; proxy?: string; json?: boolean }, cmd: Command) => {
      const g = { ...globals(cmd), json: o.json };
      const dir = storeDir(g);
      const t0 = performance.now();
      const bar = progressLine(g);
      const r = await withStore(g, async (store) => {
        if (controlOf(store) || !store.maintenance || !store.writer) throw new MiqError('MIQ_STORE_LOCKED', `the store at ${dir} is mounted; stop the mount (\`miq umount DIR\`) and run miq repair again`);
        const known = await rememberedRemote(store).catch(() => undefined);
        const url = o.remote ?? known?.url;
        if (!url) throw new MiqError('MIQ_BAD_INPUT', 'no remote known for this store: pass --remote URL (a `miq mount --remote URL` remembers one)');
        const keys = [...trustedKeyFiles(g, o.trustedKey), ...(url === known?.url ? known.trustedKeys : [])];
        const remote = await openRemoteFor(dir, url, keys, undefined, false, o.proxy);
        try {
          return { remote: url, ...(await repair(store, remote, (t) => bar.update(t))) };
        } finally {
          bar.done();
          await remote.close();
        }
      });
      const rep: RepairReport = { ...r, seconds: (performance.now() - t0) / 1000 };
      if (o.json) printJson(rep);
      else {
        if (rep.damaged === 0) process.stdout.write('nothing damaged: nothing to repair\n');
        else process.stdout.write(`${count(rep.damaged, 'damaged object')} found; ${rep.repaired.length} repaired from ${rep.remote} (${fmtBytes(rep.bytes)} fetched) in ${rep.seconds.toFixed(2)} s\n`);
        for (const n of rep.notRepaired) process.stdout.write(`NOT REPAIRED ${n.kind} ${n.id}: ${n.reason}\n`);
        process.stdout.write(rep.ok ? 'ok: nothing missing or corrupt\n' : `FAILED: ${count(rep.damagedAfter, 'damaged object')} remain (\`miq verify\` names the store paths using them)\n`);
      }
      if (!rep.ok) process.exitCode = 3;
    });
}
