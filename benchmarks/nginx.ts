/**
 * A real nginx (the Debian package) serving a directory on 127.0.0.1 and a free port, for tests
 * and benchmarks. One process (master_process off), so running as root needs no worker user
 * that can read the test's private temp folders. The access log records each request's URI,
 * status and body bytes, so callers can count what a client really downloaded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface LogLine {
  uri: string;
  status: number;
  bytes: number;
  /** When the response was finished (seconds since the epoch, ms resolution). */
  at: number;
  /** Seconds the server spent on the request, first byte read to last byte sent. */
  took: number;
}

export interface Nginx {
  readonly url: string;
  readonly port: number;
  log(): Promise<LogLine[]>;
  /** Forgets the log so far (truncates the file). */
  clearLog(): Promise<void>;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => res(p));
    });
  });
}

async function waitListening(port: number, child: ChildProcess, errLog: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}: ${await readFile(errLog, 'utf8').catch(() => '')}`);
    const ok = await new Promise<boolean>((res) => {
      const c = connect(port, '127.0.0.1');
      c.once('connect', () => { c.destroy(); res(true); });
      c.once('error', () => res(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('nginx did not start listening');
}

/** `locations`: the server's location blocks (default: serve `root` as is). */
export async function startNginx(root: string, opts: { locations?: string } = {}): Promise<Nginx> {
  const dir = await mkdtemp(join(tmpdir(), 'miq-nginx-'));
  const port = await freePort();
  const accessLog = join(dir, 'access.log');
  const errLog = join(dir, 'error.log');
  const conf = `
daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${errLog} warn;
events { worker_connections 256; }
http {
  default_type application/octet-stream;
  log_format miq '$uri $status $body_bytes_sent $msec $request_time';
  access_log ${accessLog} miq;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  sendfile on;
  keepalive_requests 100000;
  server {
    listen 127.0.0.1:${port};
    root ${root};
    ${opts.locations ?? 'location / { }'}
  }
}
`;
  await writeFile(join(dir, 'nginx.conf'), conf);
  const child = spawn('nginx', ['-p', dir, '-c', join(dir, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => { stderr += b.toString(); });
  try {
    await waitListening(port, child, errLog);
  } catch (e) {
    child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
    throw new Error(`${(e as Error).message}\n${stderr}`);
  }
  return {
    url: `http://127.0.0.1:${port}/`,
    port,
    async log() {
      const text = await readFile(accessLog, 'utf8').catch(() => '');
      return text.split('\n').filter(Boolean).map((l) => {
        const [uri, status, bytes, at, took] = l.split(' ');
        return { uri: uri!, status: Number(status), bytes: Number(bytes), at: Number(at), took: Number(took) };
      });
    },
    async clearLog() {
      await writeFile(accessLog, '');
    },
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGQUIT');
        const t = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(t);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
