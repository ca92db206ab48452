/**
 * A real squid (the Debian package) as a site proxy on 127.0.0.1 and a free port, with its own
 * config, disk cache, logs and pid file in a temp folder. Squid drops root to the `proxy` user,
 * so the folder is handed to that user. The access log says per request whether it was a hit.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, mkdtempSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './nginx.js';

export interface Squid {
  readonly url: string;
  /** Squid's result codes (TCP_HIT, TCP_MISS, TCP_REFRESH_UNMODIFIED…) for the requests so far. */
  codes(): Promise<string[]>;
  stop(): Promise<void>;
}

/** The squid.conf the README shows, with this test's port and folders. */
export function squidConf(dir: string, port: number): string {
  return `
http_port 127.0.0.1:${port}
pid_filename ${dir}/squid.pid
cache_effective_user proxy
cache_dir ufs ${dir}/cache 512 16 256
cache_mem 64 MB
maximum_object_size 64 MB
maximum_object_size_in_memory 4 MB
access_log stdio:${dir}/access.log squid
cache_log ${dir}/cache.log
cache_store_log none
coredump_dir ${dir}
logfile_rotate 0
shutdown_lifetime 0 seconds
acl miq_local src 127.0.0.1/32
http_access allow miq_local
http_access deny all
# Objects are content-addressed: whatever the origin says, they never change. (No ignore-reload:
# a client that found damaged bytes asks with no-cache and must reach the origin.)
refresh_pattern /(chunks|objects|paths|bundles|treepacks)/ 525600 100% 525600 override-expire override-lastmod ignore-no-store ignore-private
# Pointers: as the origin says (a few seconds).
refresh_pattern . 0 20% 1
`;
}

export async function startSquid(): Promise<Squid> {
  const dir = mkdtempSync(join(tmpdir(), 'miq-squid-'));
  const uid = Number(spawnSync('id', ['-u', 'proxy'], { encoding: 'utf8' }).stdout.trim());
  const gid = Number(spawnSync('id', ['-g', 'proxy'], { encoding: 'utf8' }).stdout.trim());
  chownSync(dir, uid, gid);
  const port = await freePort();
  const conf = join(dir, 'squid.conf');
  await writeFile(conf, squidConf(dir, port));
  const z = spawnSync('squid', ['-N', '-z', '-f', conf], { encoding: 'utf8', timeout: 60_000 });
  if (z.status !== 0) throw new Error(`squid -z failed: ${z.stderr}${await readFile(join(dir, 'cache.log'), 'utf8').catch(() => '')}`);
  const child: ChildProcess = spawn('squid', ['-N', '-f', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => { stderr += b.toString(); });
  for (let i = 0; ; i++) {
    if (child.exitCode !== null || i > 400) {
      child.kill('SIGKILL');
      const log = await readFile(join(dir, 'cache.log'), 'utf8').catch(() => '');
      await rm(dir, { recursive: true, force: true });
      throw new Error(`squid did not start: ${stderr}${log}`);
    }
    const ok = await new Promise<boolean>((res) => {
      const c = connect(port, '127.0.0.1');
      c.once('connect', () => { c.destroy(); res(true); });
      c.once('error', () => res(false));
    });
    if (ok) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `http://127.0.0.1:${port}`,
    async codes() {
      const text = await readFile(join(dir, 'access.log'), 'utf8').catch(() => '');
      return text.split('\n').filter(Boolean).map((l) => l.trim().split(/\s+/)[3]?.split('/')[0] ?? '?');
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
