/**
 * `miq status` (what the store is doing: its mount, who holds it, its remote, its disk use) and
 * `miq umount DIR` (stop the miq mount serving DIR, or clear one a killed server left).
 */
import { readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { connectControl, lazyUnmount, mounts, probe, type MountStatus } from '../mount/index.js';
import { MiqError, openStore, readHolder, remote as R, type Holder } from '../store/index.js';
import { fmtBytes, globals, printJson, storeDir } from './context.js';

/** Bytes of the files under `dir` (0 when it does not exist); never follows links. */
async function du(dir: string): Promise<number> {
  let total = 0;
  const ents = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of ents) {
    const p = join(dir, e.name);
    if (e.isDirectory()) total += await du(p);
    else if (e.isFile()) total += (await stat(p).catch(() => ({ size: 0 }))).size;
  }
  return total;
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
};

export interface StatusReport {
  store: string;
  exists: boolean;
  mount: MountStatus | null;
  lock: { free: boolean; holder: Holder | null };
  remote: { url: string } | null;
  disk: { packsBytes: number; dbBytes: number; remoteCacheBytes: number; logsAndRunBytes: number };
}

async function statusOf(dir: string): Promise<StatusReport> {
  const exists = await stat(join(dir, 'db')).then(() => true, () => false);
  const disk = {
    packsBytes: await du(join(dir, 'packs')),
    dbBytes: await du(join(dir, 'db')),
    remoteCacheBytes: await du(join(dir, 'remote-cache')),
    logsAndRunBytes: (await du(join(dir, 'run'))) + (await du(join(dir, 'tmp'))),
  };
  const rep: StatusReport = { store: dir, exists, mount: null, lock: { free: true, holder: null }, remote: null, disk };
  if (!exists) return rep;
  const client = await connectControl(dir);
  let meta: Buffer | undefined;
  if (client) {
    try {
      rep.mount = await client.call<MountStatus>('mount.status');
    } finally {
      client.close();
    }
    rep.lock = { free: false, holder: (await readHolder(dir)) ?? { pid: rep.mount.pid, command: `miq mount ${rep.mount.dir}`, cwd: '', since: '' } };
  } else {
    try {
      const s = await openStore(dir);
      try {
        meta = await s.getMeta(R.REMOTE_URL_KEY);
      } finally {
        await s.close();
      }
    } catch (e) {
      if ((e as MiqError).code !== 'MIQ_STORE_LOCKED') throw e;
      rep.lock = { free: false, holder: (await readHolder(dir)) ?? null };
    }
  }
  if (meta) rep.remote = { url: (JSON.parse(meta.toString()) as { url: string }).url };
  return rep;
}

export function register(program: Command): void {
  program
    .command('status')
    .description('the store: where it is, its mount, which process holds it, its remote, its disk use')
    .option('--json', 'one JSON object')
    .action(async (o: { json?: boolean }, cmd: Command) => {
      const r = await statusOf(storeDir(globals(cmd)));
      if (o.json) return printJson(r);
      const out = [`store:   ${r.store}${r.exists ? '' : ' (not created yet: the first ingest creates it)'}`];
      if (r.mount) out.push(`mounted: ${r.mount.dir} by pid ${r.mount.pid}, profile ${r.mount.profile} generation ${r.mount.generation ?? 'none'}, ${r.mount.openHandles} open files (stop: miq umount ${r.mount.dir})`);
      else out.push('mounted: no');
      if (!r.mount) out.push(`lock:    ${r.lock.free ? 'free' : r.lock.holder ? `held by pid ${r.lock.holder.pid} (${r.lock.holder.command}) since ${r.lock.holder.since}` : 'held by another process'}`);
      out.push(`remote:  ${r.remote ? r.remote.url : 'none remembered'}`);
      out.push(`disk:    packs ${fmtBytes(r.disk.packsBytes)}, index ${fmtBytes(r.disk.dbBytes)}, remote chunk cache ${fmtBytes(r.disk.remoteCacheBytes)}, run and tmp ${fmtBytes(r.disk.logsAndRunBytes)}`);
      process.stdout.write(`${out.join('\n')}\n`);
    });

  program
    .command('umount')
    .description('stop the miq mount serving DIR (it unmounts and exits), or clear a mount a killed server left')
    .argument('<dir>', 'the mountpoint given to `miq mount`')
    .option('--json', 'one JSON object')
    .action(async (dirArg: string, o: { json?: boolean }, cmd: Command) => {
      const dir = resolve(dirArg);
      const store = storeDir(globals(cmd));
      const client = await connectControl(store);
      const st = client ? await client.call<MountStatus>('mount.status').finally(() => client.close()) : undefined;
      let how: 'stopped' | 'cleared';
      if (st && st.dir === dir) {
        process.kill(st.pid, 'SIGTERM');
        const t0 = Date.now();
        while (alive(st.pid)) {
          if (Date.now() - t0 > 30_000) throw new MiqError('MIQ_TIMEOUT', `the miq mount of ${dir} (pid ${st.pid}) did not stop within 30 s of SIGTERM; files open under it keep it busy (\`fuser -m ${dir}\`)`);
          await new Promise((r) => setTimeout(r, 100));
        }
        how = 'stopped';
      } else {
        const m = (await mounts()).find((x) => x.mountpoint === dir);
        if (!m || !(m.source === 'miq' || /^fuse(blk)?\.miq$/.test(m.fstype))) throw new MiqError('MIQ_NOT_FOUND', `${dir} is not a miq mount; \`miq status\` shows this store's mount`);
        if ((await probe(dir)) !== 'stale') throw new MiqError('MIQ_BAD_INPUT', `${dir} is served by a miq mount of another store than ${store}; run \`miq --store THAT-STORE umount ${dir}\``);
        for (const sub of (await mounts()).filter((x) => x.mountpoint.startsWith(`${dir}/`)).reverse()) await lazyUnmount(sub.mountpoint).catch(() => {});
        await lazyUnmount(dir);
        how = 'cleared';
      }
      if (o.json) printJson({ dir, result: how, pid: st?.pid ?? null });
      else process.stdout.write(how === 'stopped' ? `unmounted ${dir} (stopped pid ${st!.pid})\n` : `cleared the dead mount at ${dir}\n`);
    });
}
