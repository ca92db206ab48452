/**
 * Getting bytes of a remote by relative path: over HTTP(S) from any static server, or from a
 * directory (`file://` or a plain path). A transport only moves bytes, bounded in size and
 * time; verifying them is the reader's job.
 *
 * HTTP deadlines sit well under fuse-native's 15 s request limit, so a stalled server turns into
 * EIO for one read, not a hung kernel request: connect 2 s, idle 3 s, total 10 s per call
 * including queueing and retries.
 *
 * A forward proxy (`proxy` option, else http_proxy/HTTP_PROXY, https_proxy/HTTPS_PROXY, minus
 * no_proxy/NO_PROXY) is asked with absolute URIs for http remotes and through a CONNECT tunnel
 * for https ones. Proxies may keep anything: `get(…, { fresh: true })` asks every cache on the
 * way to go back to the origin, which the reader does once when bytes fail their hash.
 */
import { stat, readFile } from 'node:fs/promises';
import * as http from 'node:http';
import * as https from 'node:https';
import type { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { MiqError, ioError } from '../errors.js';

export interface TransportStats {
  requests: number;
  bytes: number;
  retries: number;
  failures: number;
}

export interface Transport {
  readonly url: string;
  readonly stats: TransportStats;
  /** The body, or undefined when the remote does not have the file. Bodies over `maxBytes` fail.
   * `fresh`: bypass caches between here and the origin (a proxy's copy may be damaged). */
  get(rel: string, maxBytes: number, opts?: { fresh?: boolean }): Promise<Buffer | undefined>;
  close(): Promise<void>;
}

export interface HttpOptions {
  connectMs?: number;
  idleMs?: number;
  totalMs?: number;
  attempts?: number;
  backoffMs?: number;
  concurrency?: number;
  maxRedirects?: number;
  /** A forward proxy URL (http://[user:pass@]host:port); '' for none; undefined: from the
   * environment (http_proxy, https_proxy, no_proxy and their upper-case forms). */
  proxy?: string;
}

/** Whether `no_proxy` (comma- or space-separated hosts, .domains, host:port, or "*") exempts `u`. */
export function noProxyMatches(u: URL, list: string | undefined): boolean {
  if (!list) return false;
  const host = u.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  const port = u.port || (u.protocol === 'https:' ? '443' : '80');
  for (let e of list.split(/[\s,]+/).filter(Boolean)) {
    e = e.toLowerCase();
    if (e === '*') return true;
    let ePort: string | undefined;
    const m = /^(.*):(\d+)$/.exec(e);
    if (m && !e.startsWith('[') && m[1]!.includes(':') === false) { e = m[1]!; ePort = m[2]; }
    e = e.replace(/^\[|\]$/g, '').replace(/^\*?\./, '.');
    if (ePort && ePort !== port) continue;
    if (e.startsWith('.') ? host.endsWith(e) || host === e.slice(1) : host === e) return true;
  }
  return false;
}

/** The proxy to use for `target`, or undefined to go direct. */
export function proxyFor(target: URL, explicit: string | undefined, env: NodeJS.ProcessEnv = process.env): URL | undefined {
  if (noProxyMatches(target, env.no_proxy ?? env.NO_PROXY)) return undefined;
  const p = explicit ?? (target.protocol === 'https:' ? env.https_proxy ?? env.HTTPS_PROXY : env.http_proxy ?? env.HTTP_PROXY);
  if (!p) return undefined;
  let u: URL;
  try {
    u = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(p) ? p : `http://${p}`);
  } catch {
    throw new MiqError('MIQ_BAD_INPUT', `proxy "${p}" is not a URL; give http://HOST:PORT`);
  }
  if (u.protocol !== 'http:') throw new MiqError('MIQ_BAD_INPUT', `proxy ${p}: only http:// proxies are supported (https remotes go through them by CONNECT)`);
  return u;
}

function proxyAuth(proxy: URL): Record<string, string> {
  if (!proxy.username) return {};
  const cred = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`;
  return { 'proxy-authorization': `Basic ${Buffer.from(cred).toString('base64')}` };
}

/** An https agent whose sockets are TLS over a CONNECT tunnel through `proxy`. Node's Agent
 * accepts a createConnection that answers by callback, so pooling and keep-alive still apply. */
class TunnelAgent extends https.Agent {
  constructor(private readonly proxy: URL, opts: https.AgentOptions) {
    super(opts);
  }
  override createConnection(o: tls.ConnectionOptions & { host?: string; port?: number; servername?: string }, cb: (err: Error | null, s?: Duplex) => void): Duplex | undefined {
    const authority = `${o.host}:${o.port ?? 443}`;
    const req = http.request({ host: this.proxy.hostname, port: this.proxy.port || 80, method: 'CONNECT', path: authority, headers: { host: authority, ...proxyAuth(this.proxy) } });
    req.once('connect', (res, socket) => {
      if (res.statusCode !== 200) {
        socket.destroy();
        cb(new MiqError('MIQ_REMOTE', `proxy ${this.proxy.host} refused CONNECT ${authority}: ${res.statusCode}`, { details: { proxy: this.proxy.host } }));
        return;
      }
      cb(null, tls.connect({ ...o, socket, servername: o.servername ?? o.host }));
    });
    req.once('error', (e) => cb(e));
    req.end();
    return undefined;
  }
}

/** The folder a location names (`file://…` or a path), or undefined for an http(s) URL. */
export function remoteFolder(location: string): string | undefined {
  if (/^https?:\/\//i.test(location)) return undefined;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(location) && !location.startsWith('file://')) {
    throw new MiqError('MIQ_BAD_INPUT', `remote ${location}: only http://, https://, file:// and directories are supported`);
  }
  return location.startsWith('file://') ? fileURLToPath(location) : resolve(location);
}

export function openTransport(location: string, opts: HttpOptions = {}): Transport {
  const dir = remoteFolder(location);
  return dir === undefined ? new HttpTransport(location, opts) : new DirTransport(dir);
}

function tooBig(url: string, n: number | string, max: number): MiqError {
  return new MiqError('MIQ_CORRUPT', `${url}: the server sent more than the expected ${max} bytes (${n}); body cut off`, { details: { url } });
}

class DirTransport implements Transport {
  readonly url: string;
  readonly stats: TransportStats = { requests: 0, bytes: 0, retries: 0, failures: 0 };
  constructor(private readonly root: string) {
    this.url = pathToFileURL(root).href;
  }
  async get(rel: string, maxBytes: number): Promise<Buffer | undefined> {
    const file = join(this.root, rel);
    this.stats.requests++;
    try {
      const st = await stat(file);
      if (st.size > maxBytes) throw tooBig(file, st.size, maxBytes);
      const b = await readFile(file);
      if (b.length > maxBytes) throw tooBig(file, b.length, maxBytes);
      this.stats.bytes += b.length;
      return b;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      this.stats.failures++;
      if (e instanceof MiqError) throw e;
      throw ioError(e, 'cannot read remote file', file);
    }
  }
  async close(): Promise<void> {}
}

type Retryable = MiqError & { retry?: boolean };
const retryable = (e: MiqError): Retryable => Object.assign(e, { retry: true });

class HttpTransport implements Transport {
  readonly url: string;
  readonly stats: TransportStats = { requests: 0, bytes: 0, retries: 0, failures: 0 };
  private readonly base: URL;
  private readonly o: Required<HttpOptions>;
  private readonly agent: http.Agent;
  private readonly proxy: URL | undefined;
  private running = 0;
  private readonly waiting: { go: () => void }[] = [];
  private closed = false;

  constructor(location: string, opts: HttpOptions) {
    this.base = new URL(location.endsWith('/') ? location : `${location}/`);
    this.url = this.base.href;
    this.o = { connectMs: 2000, idleMs: 3000, totalMs: 10000, attempts: 4, backoffMs: 100, concurrency: 16, maxRedirects: 3, proxy: '', ...opts };
    this.proxy = proxyFor(this.base, opts.proxy);
    const ao = { keepAlive: true, maxSockets: this.o.concurrency, scheduling: 'lifo' as const };
    this.agent = this.base.protocol === 'https:' ? (this.proxy ? new TunnelAgent(this.proxy, ao) : new https.Agent(ao)) : new http.Agent(ao);
  }

  async get(rel: string, maxBytes: number, opts: { fresh?: boolean } = {}): Promise<Buffer | undefined> {
    if (this.closed) throw new MiqError('MIQ_CLOSED', 'remote is closed');
    const target = new URL(rel, this.base);
    const deadline = Date.now() + this.o.totalMs;
    await this.acquire(deadline, target.href);
    try {
      let last: MiqError | undefined;
      for (let attempt = 0; attempt < this.o.attempts; attempt++) {
        if (attempt > 0) {
          const wait = Math.min(this.o.backoffMs * 2 ** (attempt - 1) * (0.5 + Math.random()), deadline - Date.now() - 50);
          if (wait < 0) break;
          this.stats.retries++;
          await new Promise((r) => setTimeout(r, wait));
        }
        try {
          return await this.follow(target, maxBytes, deadline, !!opts.fresh);
        } catch (e) {
          last = e as MiqError;
          if (!(e as Retryable).retry || Date.now() >= deadline) break;
        }
      }
      this.stats.failures++;
      throw last ?? new MiqError('MIQ_TIMEOUT', `${target.href}: no time left for a request`, { details: { url: target.href } });
    } finally {
      this.release();
    }
  }

  private async follow(target: URL, maxBytes: number, deadline: number, fresh: boolean): Promise<Buffer | undefined> {
    let url = target;
    for (let hop = 0; ; hop++) {
      const r = await this.once(url, maxBytes, deadline, fresh);
      if (!('redirect' in r)) return r.body;
      const next = new URL(r.redirect, url);
      if (next.origin !== this.base.origin) {
        throw new MiqError('MIQ_REMOTE', `${url.href}: redirect to another host (${next.origin}) refused`, { details: { url: url.href, location: next.href } });
      }
      if (hop >= this.o.maxRedirects) throw new MiqError('MIQ_REMOTE', `${target.href}: too many redirects`, { details: { url: target.href } });
      url = next;
    }
  }

  private once(url: URL, maxBytes: number, deadline: number, fresh: boolean): Promise<{ body: Buffer | undefined } | { redirect: string }> {
    this.stats.requests++;
    const href = url.href;
    return new Promise((resolveP, rejectP) => {
      const mod = url.protocol === 'https:' ? https : http;
      let settled = false;
      const timers: NodeJS.Timeout[] = [];
      const done = (err: MiqError | undefined, v?: { body: Buffer | undefined } | { redirect: string }): void => {
        if (settled) return;
        settled = true;
        for (const t of timers) clearTimeout(t);
        if (err) {
          req.destroy();
          rejectP(err);
        } else resolveP(v!);
      };
      const timeout = (what: string, ms: number): MiqError => retryable(new MiqError('MIQ_TIMEOUT', `${href}: ${what} timed out after ${ms} ms`, { details: { url: href } }));
      const headers: Record<string, string> = { 'accept-encoding': 'identity', 'user-agent': 'miq', ...(fresh ? { 'cache-control': 'no-cache', pragma: 'no-cache' } : {}) };
      // A plain-http remote through a proxy: the absolute URI goes to the proxy, which keeps the
      // response under it (https ones tunnel, and the agent makes the tunnel).
      const req = this.proxy && url.protocol === 'http:'
        ? http.request({ host: this.proxy.hostname, port: this.proxy.port || 80, path: url.href, method: 'GET', agent: this.agent, headers: { ...headers, host: url.host, ...proxyAuth(this.proxy) } })
        : mod.request(url, { method: 'GET', agent: this.agent, headers });
      const left = deadline - Date.now();
      timers.push(setTimeout(() => done(timeout('request', this.o.totalMs)), Math.max(1, left)));
      req.on('socket', (s) => {
        if (!s.connecting) return;
        const t = setTimeout(() => done(timeout('connect', this.o.connectMs)), this.o.connectMs);
        timers.push(t);
        s.once('connect', () => clearTimeout(t));
      });
      req.setTimeout(this.o.idleMs, () => done(timeout('waiting for data', this.o.idleMs)));
      req.on('error', (e: NodeJS.ErrnoException) => {
        done(retryable(new MiqError('MIQ_REMOTE', `${href}: ${e.code ?? e.message}`, { cause: e, details: { url: href } })));
      });
      req.on('response', (res) => {
        const st = res.statusCode ?? 0;
        if (st === 404 || st === 410) {
          res.destroy();
          return done(undefined, { body: undefined });
        }
        if ([301, 302, 303, 307, 308].includes(st) && res.headers.location) {
          res.destroy();
          return done(undefined, { redirect: res.headers.location });
        }
        if (st !== 200) {
          res.destroy();
          const e = new MiqError('MIQ_REMOTE', `${href}: the server answered ${st} ${res.statusMessage ?? ''}`.trim(), { details: { url: href, status: st } });
          return done(st >= 500 || st === 429 || st === 408 ? retryable(e) : e);
        }
        const cl = res.headers['content-length'] === undefined ? undefined : Number(res.headers['content-length']);
        if (cl !== undefined && cl > maxBytes) return done(tooBig(href, `Content-Length ${cl}`, maxBytes));
        const parts: Buffer[] = [];
        let n = 0;
        res.on('data', (b: Buffer) => {
          n += b.length;
          this.stats.bytes += b.length;
          if (n > maxBytes) return done(tooBig(href, `at least ${n}`, maxBytes));
          parts.push(b);
        });
        res.on('aborted', () => done(retryable(new MiqError('MIQ_REMOTE', `${href}: the connection closed after ${n} bytes`, { details: { url: href } }))));
        res.on('error', (e) => done(retryable(new MiqError('MIQ_REMOTE', `${href}: ${e.message} after ${n} bytes`, { cause: e, details: { url: href } }))));
        res.on('end', () => {
          if (!res.complete || (cl !== undefined && n !== cl)) {
            return done(retryable(new MiqError('MIQ_REMOTE', `${href}: truncated body (${n} of ${cl ?? '?'} bytes)`, { details: { url: href } })));
          }
          done(undefined, { body: Buffer.concat(parts, n) });
        });
      });
      req.end();
    });
  }

  private acquire(deadline: number, href: string): Promise<void> {
    if (this.running < this.o.concurrency) {
      this.running++;
      return Promise.resolve();
    }
    return new Promise((resolveP, rejectP) => {
      const w = {
        go: () => {
          clearTimeout(t);
          this.running++;
          resolveP();
        },
      };
      const t = setTimeout(() => {
        const i = this.waiting.indexOf(w);
        if (i >= 0) this.waiting.splice(i, 1);
        this.stats.failures++;
        rejectP(new MiqError('MIQ_TIMEOUT', `${href}: waited too long for a free connection`, { details: { url: href } }));
      }, Math.max(1, deadline - Date.now()));
      this.waiting.push(w);
    });
  }

  private release(): void {
    this.running--;
    this.waiting.shift()?.go();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.agent.destroy();
  }
}
