/**
 * A site proxy as a site would run one (issue 14 §4): a real squid on 127.0.0.1 in front of a real
 * nginx serving a pushed remote with the README's cache headers. Two lazy mounts from EMPTY
 * stores run the same program through the proxy; nginx's access log counts what the origin
 * served: the second client must cost the origin at most 5% of the first's requests. Then a
 * proxy that damages objects: a damaged copy costs one refetch past the caches, never wrong
 * bytes; a proxy that damages every copy gives EIO.
 */
import assert from 'node:assert/strict';
import * as http from 'node:http';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openStore } from '../store/open.js';
import { proxyFor } from '../store/remote/transport.js';
import * as P from '../store/profiles.js';
import { debianPackage } from './helpers/corpus.js';
import { json, miq } from './helpers/cli.js';
import { cleanup, mountDir, sh, tmp, type MountedDir } from './helpers/fuse.js';
import { startNginx, type Nginx } from './helpers/nginx.js';
import { startSquid, type Squid } from './helpers/squid.js';

const PACKAGES = ['libc6', 'libtinfo6', 'bash', 'coreutils', 'libacl1', 'libattr1', 'libgmp10', 'libselinux1', 'libpcre2-8-0'];

/** The README's nginx locations: immutable objects forever, pointers for seconds. */
export const NGINX_LOCATIONS = `
    location ~ ^/(chunks|objects|paths|bundles|treepacks)/ {
      add_header Cache-Control "public, max-age=31536000, immutable";
    }
    location ~ ^/(profiles|hints)/ {
      add_header Cache-Control "public, max-age=5";
    }`;

type Mounted = MountedDir;

let base: string;
let nginx: Nginx | undefined;
let squid: Squid | undefined;
let pub: string;
let bashPath: string;
const mounts: Mounted[] = [];
const proxies: http.Server[] = [];
const home = (n: string): NodeJS.ProcessEnv => ({ MIQ_HOME: join(base, n), http_proxy: '', HTTP_PROXY: '', no_proxy: '', NO_PROXY: '' });

async function mountLazy(store: string, proxy: string): Promise<Mounted> {
  const dir = join(base, `mnt-${store}`);
  await mkdir(dir, { recursive: true });
  const m = await mountDir(dir, ['--remote', nginx!.url, '--trusted-key', pub, '--proxy', proxy, '--no-hints', '--json'], { env: home(store) });
  mounts.push(m);
  return m;
}

async function runProgram(m: Mounted): Promise<string> {
  const view = join(m.dir, 'usr');
  const top = await readdir(view);
  const binds = top.flatMap((e) => ['--ro-bind', join(view, e), `/${e}`]);
  const run = await sh(`bwrap --unshare-all --die-with-parent --tmpfs / ${binds.map((b) => `'${b}'`).join(' ')} --dev /dev --proc /proc --tmpfs /tmp --setenv PATH /usr/bin:/bin /bin/bash -c 'echo $((6 * 7)); ls /usr/bin | sort | wc -l; sha256sum /bin/bash'`, { timeoutMs: 180_000 });
  assert.equal(run.code, 0, run.stderr + m.stderr());
  return run.stdout;
}

/** Origin requests and body bytes since the last clearLog. */
async function origin(): Promise<{ requests: number; bytes: number }> {
  const log = await nginx!.log();
  return { requests: log.length, bytes: log.reduce((s, l) => s + l.bytes, 0) };
}

/** A forward proxy that damages chunk and bundle bodies: the first copy of each (`once`; a
 * request with Cache-Control: no-cache gets the origin's bytes) or every copy (`always`). */
async function badProxy(mode: 'once' | 'always'): Promise<{ url: string; damaged: () => number; fresh: () => number }> {
  let damaged = 0, fresh = 0;
  const server = http.createServer((req, res) => {
    const u = new URL(req.url!);
    const noCache = /no-cache/.test(String(req.headers['cache-control'] ?? ''));
    if (noCache) fresh++;
    http.get(u, (up) => {
      const parts: Buffer[] = [];
      up.on('data', (b: Buffer) => parts.push(b));
      up.on('end', () => {
        let body = Buffer.concat(parts);
        if (up.statusCode === 200 && body.length > 0 && /^\/(chunks|bundles)\//.test(u.pathname) && (mode === 'always' || !noCache)) {
          body = Buffer.from(body);
          body[body.length >> 1]! ^= 0x5a;
          damaged++;
        }
        res.writeHead(up.statusCode ?? 502, { 'content-length': body.length, 'content-type': 'application/octet-stream' });
        res.end(body);
      });
    }).on('error', () => { res.writeHead(502); res.end(); });
  });
  proxies.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, damaged: () => damaged, fresh: () => fresh };
}

describe('which proxy a remote URL goes through', () => {
  it('--proxy, else http_proxy/https_proxy; no_proxy exempts hosts, domains, ports', () => {
    const u = (s: string): URL => new URL(s);
    const env = { http_proxy: 'http://squid:3128', HTTPS_PROXY: 'proxy.site:8080', no_proxy: 'localhost, .internal,10.0.0.1:8080' };
    assert.equal(proxyFor(u('http://cache.example/r/'), undefined, env)?.href, 'http://squid:3128/');
    assert.equal(proxyFor(u('https://cache.example/r/'), undefined, env)?.href, 'http://proxy.site:8080/');
    assert.equal(proxyFor(u('http://cache.example/r/'), 'http://other:1/', env)?.href, 'http://other:1/');
    assert.equal(proxyFor(u('http://cache.example/r/'), '', env), undefined);
    assert.equal(proxyFor(u('http://localhost:8000/'), undefined, env), undefined);
    assert.equal(proxyFor(u('http://a.b.internal/'), undefined, env), undefined);
    assert.equal(proxyFor(u('http://internal/'), undefined, env), undefined);
    assert.equal(proxyFor(u('http://10.0.0.1:8080/'), undefined, env), undefined);
    assert.equal(proxyFor(u('http://10.0.0.1:9090/'), undefined, env)?.host, 'squid:3128');
    assert.equal(proxyFor(u('http://x/'), undefined, { ...env, NO_PROXY: '*', no_proxy: undefined }), undefined);
    assert.throws(() => proxyFor(u('http://x/'), 'socks5://p:1', {}), /only http:\/\/ proxies/);
  });
});

describe('lazy mounts through a site proxy (squid) in front of nginx', () => {
  before(async () => {
    base = await tmp('miq-proxy-');
    const k = miq(['key', 'generate', 'site-1', '--dir', join(base, 'keys'), '--json'], { env: home('a') });
    assert.equal(k.code, 0, k.stderr);
    pub = json<{ publicText: string }>(k).publicText;
    const store = await openStore(join(base, 'a'));
    try {
      const members: P.Member[] = [];
      for (const pkg of PACKAGES) {
        const r = await store.ingest(debianPackage(pkg), { name: pkg.replace(/[^A-Za-z0-9+._-]/g, '_') });
        if (pkg === 'bash') bashPath = r.path;
        members.push({ path: r.path });
      }
      await P.switchProfile(store, 'system', members);
    } finally {
      await store.close();
    }
    const p = miq(['push', join(base, 'remote'), '--profile', 'system', '--sign-key', join(base, 'keys', 'site-1.key'), '--json'], { env: home('a') });
    assert.equal(p.code, 0, p.stderr);
    nginx = await startNginx(join(base, 'remote'), { locations: NGINX_LOCATIONS });
    squid = await startSquid();
  });

  after(async () => {
    for (const m of mounts) await m.stop().catch(() => {});
    for (const s of proxies) s.closeAllConnections();
    for (const s of proxies) await new Promise((r) => s.close(r));
    await squid?.stop();
    await nginx?.stop();
    await cleanup(base);
    const left = (await sh('grep fuse /proc/mounts || true')).stdout.split('\n').filter((l) => l.includes(base));
    assert.deepEqual(left, [], 'no FUSE mounts of this test remain');
  });

  it('the second client costs the origin at most 5% of the first\'s requests', { timeout: 600_000 }, async (t) => {
    const cached = await sh(`curl -sI -x ${squid!.url} ${nginx!.url}profiles/system`);
    t.diagnostic(`pointer headers via squid: ${cached.stdout.split('\r\n').filter((l) => /^cache-control/i.test(l)).join(' ')}`);
    await nginx!.clearLog();
    const m1 = await mountLazy('c1', squid!.url);
    let out1: string;
    try {
      out1 = await runProgram(m1);
    } finally {
      await m1.stop();
    }
    const first = await origin();
    await nginx!.clearLog();
    const m2 = await mountLazy('c2', squid!.url);
    let out2: string;
    try {
      out2 = await runProgram(m2);
    } finally {
      await m2.stop();
    }
    const second = await origin();
    assert.equal(out2, out1);
    assert.match(out1, /^42\n/);
    const codes = await squid!.codes();
    const hits = codes.filter((c) => c.includes('HIT')).length;
    t.diagnostic(`origin: client 1 ${first.requests} requests, ${first.bytes} bytes; client 2 ${second.requests} requests, ${second.bytes} bytes (${(100 * second.requests / first.requests).toFixed(1)}% of requests); squid: ${codes.length} requests, ${hits} hits`);
    assert.ok(first.requests >= 20, `the first client needed ${first.requests} origin requests`);
    assert.ok(second.requests <= 0.05 * first.requests, `second client: ${second.requests} origin requests vs ${first.requests}`);
    assert.ok(hits >= first.requests * 0.9, `squid hits ${hits}`);
  });

  it('a damaged copy from the proxy costs a refetch, never wrong bytes; damaged every time, EIO', { timeout: 600_000 }, async (t) => {
    const once = await badProxy('once');
    const m = await mountLazy('c3', once.url);
    try {
      const out = await runProgram(m);
      assert.match(out, /^42\n/);
      const cmp = await sh(`cmp ${join(m.dir, 'store', bashPath, 'bin/bash')} ${join(debianPackage('bash'), 'bin/bash')}`);
      assert.equal(cmp.code, 0, cmp.stdout + cmp.stderr);
      t.diagnostic(`bad proxy (first copy damaged): ${once.damaged()} damaged bodies, ${once.fresh()} no-cache refetches`);
      assert.ok(once.damaged() > 0);
      assert.ok(once.fresh() >= 1);
    } finally {
      await m.stop();
    }
    const always = await badProxy('always');
    const m4 = await mountLazy('c4', always.url);
    try {
      const cmp = await sh(`cmp ${join(m4.dir, 'store', bashPath, 'bin/bash')} ${join(debianPackage('bash'), 'bin/bash')}`);
      assert.equal(cmp.code, 2, `cmp must fail on a read error, not find different bytes: ${cmp.stdout}${cmp.stderr}`);
      assert.match(cmp.stderr, /Input\/output error/);
      t.diagnostic(`bad proxy (every copy damaged): ${always.damaged()} damaged bodies, ${always.fresh()} refetches, read: EIO`);
    } finally {
      await m4.stop();
    }
  });
});
