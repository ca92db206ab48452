/**
 * Builds for real: bubblewrap sandboxes, the real store, sources from file:// and (one package)
 * from the Debian archive through mirror://debian/. Sandbox escapes are tried by recipes, and
 * what they saw is written to $out so the test can read it back from the store.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { lookup } from 'node:dns/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { createHash } from 'node:crypto';
import { type BuildEvent, type BuildOptions, build } from '../builder/build.js';
import { analyse } from '../builder/key.js';
import { PROJECT_ROOT, loadRecipe } from '../builder/load.js';
import { readBuildLog } from '../builder/log.js';
import { materialize, rmTree } from '../builder/materialize.js';
import { mirrorBases } from '../builder/mirrors.js';
import { type Recipe, type RecipeInput, recipe } from '../builder/recipe.js';
import { storeSubstituter } from '../builder/substitute.js';
import type { Store } from '../store/api.js';
import { isMiqError } from '../store/errors.js';
import { openStore } from '../store/open.js';
import { ROOT, json, miqAsync } from './helpers/cli.js';
import { type MiqMount, cleanup, sh as fuseSh, startMiqMount, tmp as fuseTmp } from './helpers/fuse.js';

const run = promisify(execFile);
/** Downloads from the archive are cached outside the repo so reruns do not fetch again. */
const CACHE = process.env.MIQ_TEST_CACHE ?? '/var/cache/miq-test';
const SOURCES = join(CACHE, 'sources');
const FIXTURES = join(PROJECT_ROOT, 'test/fixtures/recipes');

function tmp(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `miq-${prefix}-`));
}

async function withStore<T>(fn: (store: Store, dir: string) => Promise<T>): Promise<T> {
  const dir = tmp('store');
  const store = await openStore(dir);
  try {
    return await fn(store, dir);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const sh = (name: string, script: string, more: Partial<RecipeInput> = {}): Recipe =>
  recipe({ name, version: '1', host: ['toolchain'], script, ...more });

function opts(extra: BuildOptions = {}): BuildOptions {
  return { cacheDir: SOURCES, ...extra };
}

async function readOut(store: Store, path: string, file: string): Promise<string> {
  const dir = tmp('read');
  try {
    const root = await materialize(store, path, dir);
    return readFileSync(join(root, file), 'utf8');
  } finally {
    await rmTree(dir);
  }
}

test('a build lands at its predicted path with its log, and a second build is skipped', async () => {
  const srcDir = tmp('src');
  try {
    writeFileSync(join(srcDir, 'data.txt'), 'payload\n');
    const sha = createHash('sha256').update('payload\n').digest('hex');
    const r = sh('basic', `
      echo "building from $src"
      mkdir -p "$out/share" "$out/bin"
      cp "$src" "$out/share/data.txt"
      printf '#!/bin/sh\\necho basic works\\n' > "$out/bin/basic"
      chmod +x "$out/bin/basic"
    `, { sources: [{ url: pathToFileURL(join(srcDir, 'data.txt')).href, sha256: sha }] });
    const predicted = analyse([r]).roots[0]!;
    await withStore(async (store) => {
      const events: BuildEvent[] = [];
      const [first] = await build(store, [r], opts({ onEvent: (e) => events.push(e) }));
      assert.equal(first!.status, 'built');
      assert.equal(first!.path, predicted.path);
      const rec = await store.getStorePath(predicted.path);
      assert.ok(rec);
      assert.equal(rec.key, predicted.key);
      assert.deepEqual(rec.made, { kind: 'build', recipe: predicted.key, log: first!.log });
      assert.equal(await readOut(store, predicted.path, 'share/data.txt'), 'payload\n');
      assert.match((await readBuildLog(store, predicted.path)).toString(), /building from \/miq\/sources\/data\.txt/);
      assert.ok(existsSync(join(SOURCES, 'sha256', sha)), 'the verified source is cached by its hash');

      const again: BuildEvent[] = [];
      const [second] = await build(store, [r], opts({ onEvent: (e) => again.push(e) }));
      assert.equal(second!.status, 'present');
      assert.equal(second!.tree, first!.tree);
      assert.deepEqual(again.map((e) => e.type), ['present']);
    });
  } finally {
    rmSync(srcDir, { recursive: true, force: true });
  }
});

test('a wrong source hash is an error naming expected and actual, and leaves no store path', async () => {
  const srcDir = tmp('src');
  try {
    writeFileSync(join(srcDir, 'data.txt'), 'the real bytes\n');
    const actual = createHash('sha256').update('the real bytes\n').digest('hex');
    const pinned = 'ab'.repeat(32);
    const r = sh('wronghash', 'cp "$src" "$out/x"', { sources: [{ url: pathToFileURL(join(srcDir, 'data.txt')).href, sha256: pinned }] });
    await withStore(async (store) => {
      await assert.rejects(build(store, [r], opts()), (e) => isMiqError(e, 'MIQ_BAD_INPUT')
        && e.message.includes(`expected sha256:${pinned}`) && e.message.includes(`actual   sha256:${actual}`));
      assert.deepEqual(await store.listStorePaths(), []);
      assert.ok(!existsSync(join(SOURCES, 'sha256', pinned)), 'nothing cached under the wrong hash');
    });
  } finally {
    rmSync(srcDir, { recursive: true, force: true });
  }
});

test('a failing script gives the log tail, no store path, and its dependents are not built', async () => {
  const failing = await loadRecipe(join(FIXTURES, 'fails.ts'));
  const dependent = sh('after-fail', 'touch "$out/x"', { buildDeps: [failing] });
  const independent = sh('independent', 'sleep 0; touch "$out/x"');
  await withStore(async (store) => {
    await assert.rejects(build(store, [dependent], opts()), (e) => isMiqError(e, 'MIQ_BUILD_FAILED')
      && /fails-1-[0-9a-f]{32} failed \(exit status 3\)/.test(e.message) && e.message.includes('error: the thing is broken') && e.message.includes('compiling the thing'));
    assert.deepEqual(await store.listStorePaths(), []);
    // Nothing at all in $out is a failure too.
    await assert.rejects(build(store, [sh('empty', 'true')], opts()), (e) => isMiqError(e, 'MIQ_BUILD_FAILED') && /wrote nothing/.test(e.message));
    assert.deepEqual(await store.listStorePaths(), []);
    const [ok] = await build(store, [independent], opts());
    assert.equal(ok!.status, 'built');
  });
});

test('missing and cyclic dependencies are refused before anything runs', async () => {
  await withStore(async (store) => {
    assert.throws(() => sh('m', 'true', { buildDeps: [undefined as unknown as Recipe] }), (e) => isMiqError(e, 'MIQ_BAD_INPUT') && /missing dependency/.test(e.message));
    await assert.rejects(loadRecipe(join(FIXTURES, 'missing-dep.ts')), (e) => isMiqError(e, 'MIQ_NOT_FOUND'));
    const cyc = await loadRecipe(join(FIXTURES, 'cycle-a.ts'));
    await assert.rejects(build(store, [cyc], opts()), (e) => isMiqError(e, 'MIQ_BAD_INPUT') && /dependency cycle/.test(e.message));
    assert.deepEqual(await store.listStorePaths(), []);
  });
});

test('a build cannot reach the network: not the host loopback, not the archive, no DNS', async () => {
  let hits = 0;
  const server = createServer((_q, res) => res.end('reachable'));
  server.on('connection', () => hits++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  try {
    // Positive control: from outside the sandbox the server answers.
    assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), 'reachable');
    hits = 0;
    const archiveHost = new URL(mirrorBases('debian')[0]!).hostname;
    const archiveIp = (await lookup(archiveHost, { family: 4 }).catch(() => ({ address: '' }))).address;
    const probe = `
      try() { if bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; then echo "$3=open"; else echo "$3=blocked"; fi; }
      {
        try 127.0.0.1 "$PORT" loopback
        if [ -n "$ARCHIVE_IP" ]; then try "$ARCHIVE_IP" 80 archive; else echo archive=blocked; fi
        if getent hosts "$ARCHIVE_HOST" >/dev/null 2>&1; then echo dns=open; else echo dns=blocked; fi
        echo "interfaces=$(ls /sys/class/net 2>/dev/null | tr '\\n' ' ')"
      } > "$out/result"
    `;
    const env = { PORT: String(port), ARCHIVE_IP: archiveIp, ARCHIVE_HOST: archiveHost };
    // Positive control: the same probe run on the host does connect, so "blocked" below means
    // the sandbox blocked it, not that the probe is broken.
    const hostOut = tmp('probe');
    try {
      await run('/bin/sh', ['-c', probe], { env: { ...process.env, ...env, out: hostOut } });
      assert.match(readFileSync(join(hostOut, 'result'), 'utf8'), /loopback=open/);
      assert.equal(hits, 1);
    } finally {
      rmSync(hostOut, { recursive: true, force: true });
    }
    hits = 0;
    const r = sh('no-network', probe, { env });
    await withStore(async (store) => {
      const [o] = await build(store, [r], opts());
      const result = await readOut(store, o!.path, 'result');
      assert.match(result, /loopback=blocked/);
      assert.match(result, /archive=blocked/);
      assert.match(result, /dns=blocked/);
      assert.equal(hits, 0, 'the host server saw no connection from the build');
    });
  } finally {
    server.close();
  }
});

test('a build sees its declared dependencies (and their run-time closure) and nothing else of the store or the host home', async () => {
  const secretName = `.miq-test-secret-${process.pid}`;
  const secretPath = join(homedir(), secretName);
  writeFileSync(secretPath, 'home secret\n');
  try {
    const other = sh('other', 'echo store-secret > "$out/secret"');
    const base = sh('base', 'mkdir -p "$out/lib" && echo base-lib > "$out/lib/base.txt"');
    const mid = sh('mid', 'mkdir -p "$out/bin" && printf "#!/bin/sh\\necho mid tool\\n" > "$out/bin/midtool" && chmod +x "$out/bin/midtool"', { runDeps: [base] });
    await withStore(async (store, storeDir) => {
      const [otherOut] = await build(store, [other], opts());
      const probe = sh('probe', `
        {
          echo "store=$(ls /miq/store | tr '\\n' ' ')"
          echo "mid-tool=$(midtool)"
          echo "mid-var=$mid"
          echo "base-lib=$(cat /miq/store/$BASE/lib/base.txt)"
          if cat "$SECRET" 2>/dev/null; then echo home=readable; else echo home=hidden; fi
          if ls /root /home 2>/dev/null | grep -q .; then echo homes=listed; else echo homes=hidden; fi
          if cat "/miq/store/$OTHER/secret" 2>/dev/null; then echo other=readable; else echo other=hidden; fi
          if ls "$STORE_DIR" >/dev/null 2>&1; then echo storedir=visible; else echo storedir=hidden; fi
        } > "$out/result"
      `, {
        buildDeps: [mid],
        env: { SECRET: secretPath, OTHER: otherOut!.path, STORE_DIR: storeDir, BASE: analyse([base]).roots[0]!.path },
      });
      const [o] = await build(store, [probe], opts());
      const result = await readOut(store, o!.path, 'result');
      const paths = analyse([probe]).roots[0]!;
      const visible = /store=(.*)/.exec(result)![1]!.trim().split(' ').sort();
      assert.deepEqual(visible, [paths.path, paths.buildDeps[0]!.path, paths.buildDeps[0]!.runDeps[0]!.path].sort());
      assert.match(result, /mid-tool=mid tool/);
      assert.match(result, new RegExp(`mid-var=/miq/store/${paths.buildDeps[0]!.path}`));
      assert.match(result, /base-lib=base-lib/);
      assert.match(result, /home=hidden/);
      assert.match(result, /homes=hidden/);
      assert.match(result, /other=hidden/);
      assert.match(result, /storedir=hidden/);
      assert.doesNotMatch(result, /home secret|store-secret/);
    });
  } finally {
    rmSync(secretPath, { force: true });
  }
});

test('a build cannot write outside $out: not its dependencies, the store, the root, /usr or the host', async () => {
  const hostDir = tmp('hostdir');
  const leak = `miq-leak-${process.pid}`;
  try {
    const dep = sh('victim', 'echo original > "$out/file"');
    const probe = sh('writer', `
      w() { if (echo x > "$1") 2>/dev/null; then echo "$2=written"; else echo "$2=refused"; fi; }
      {
        w "/miq/store/$DEP/file" dep
        w "/miq/store/$DEP/new" dep-new
        w /miq/store/new-path store
        w /usr/miq-test root-usr
        w /miq-test root
        w /etc/passwd etc
        w "$HOST_DIR/x" host
        w "/tmp/$LEAK" tmp
        w "/build/$LEAK" build
      } > "$out/result"
    `, { buildDeps: [dep], env: { DEP: analyse([dep]).roots[0]!.path, HOST_DIR: hostDir, LEAK: leak } });
    await withStore(async (store) => {
      const [depOut] = await build(store, [dep], opts());
      const [o] = await build(store, [probe], opts());
      const result = await readOut(store, o!.path, 'result');
      for (const k of ['dep', 'dep-new', 'store', 'root-usr', 'root', 'etc']) assert.match(result, new RegExp(`^${k}=refused$`, 'm'), k);
      // The host directory is not there at all (a write creates a file only inside the private root, which is read-only).
      assert.match(result, /^host=refused$/m);
      // Scratch space works but is private and discarded.
      assert.match(result, /^tmp=written$/m);
      assert.match(result, /^build=written$/m);
      assert.deepEqual(readdirSync(hostDir), []);
      assert.ok(!existsSync(join(tmpdir(), leak)));
      assert.ok(!existsSync(`/usr/miq-test`) && !existsSync('/miq-test'));
      const after = await store.getStorePath(depOut!.path);
      assert.equal(after!.tree, depOut!.tree);
      assert.equal(await readOut(store, depOut!.path, 'file'), 'original\n');
    });
  } finally {
    rmSync(hostDir, { recursive: true, force: true });
  }
});

test('without the host toolchain the sandbox holds no host files: /bin/sh comes from a dependency', async () => {
  // A statically linked stand-in for a shell, built with the toolchain, that records what it sees.
  const fakeShell = sh('probe-shell', `
    cat > probe.c <<'EOF'
    #include <stdio.h>
    #include <stdlib.h>
    #include <unistd.h>
    int main(void) {
      char p[4096];
      snprintf(p, sizeof p, "%s/result", getenv("out"));
      FILE *f = fopen(p, "w");
      if (!f) return 1;
      const char *probe[] = { "/usr", "/bin/ls", "/lib", "/etc/alternatives", "/etc/ld.so.cache", "/miq/script.sh", 0 };
      for (int i = 0; probe[i]; i++) fprintf(f, "%s=%s\\n", probe[i], access(probe[i], F_OK) == 0 ? "present" : "absent");
      fprintf(f, "PATH=%s\\n", getenv("PATH"));
      return fclose(f) != 0;
    }
    EOF
    mkdir -p "$out/bin"
    gcc -static -O2 -o "$out/bin/sh" probe.c
  `);
  const bare = recipe({ name: 'bare', version: '1', buildDeps: [fakeShell], script: 'not run by a real shell' });
  await withStore(async (store) => {
    const [o] = await build(store, [bare], opts());
    const result = await readOut(store, o!.path, 'result');
    for (const p of ['/usr', '/bin/ls', '/lib', '/etc/alternatives', '/etc/ld.so.cache']) assert.match(result, new RegExp(`^${p}=absent$`, 'm'), p);
    assert.match(result, /^\/miq\/script\.sh=present$/m);
    assert.match(result, new RegExp(`^PATH=/miq/store/${analyse([fakeShell]).roots[0]!.path}/bin$`, 'm'));
    // And with neither the toolchain nor a shell among the dependencies, nothing can run.
    await assert.rejects(build(store, [recipe({ name: 'noshell', version: '1', script: 'true' })], opts()), (e) => isMiqError(e, 'MIQ_BAD_INPUT') && /nothing provides \/bin\/sh/.test(e.message));
  });
});

test('--store-view: dependencies are bound from a directory serving store paths (a mount) instead of copied', async () => {
  const dep = sh('viewdep', 'echo from-view > "$out/x"');
  const user = sh('viewuser', 'cat "$viewdep/x" > "$out/y"', { buildDeps: [dep] });
  const view = tmp('view');
  try {
    await withStore(async (store) => {
      const [d] = await build(store, [dep], opts());
      await assert.rejects(build(store, [user], opts({ storeView: view })), (e) => isMiqError(e, 'MIQ_MISSING') && e.message.includes(d!.path));
      assert.equal(await store.getStorePath(analyse([user]).roots[0]!.path), undefined);
      await materialize(store, d!.path, view);
      const [u] = await build(store, [user], opts({ storeView: view }));
      assert.equal(await readOut(store, u!.path, 'y'), 'from-view\n');
    });
  } finally {
    await rmTree(view);
  }
});

test('-j 2 runs independent builds at once; -j 1 one after another', async () => {
  const a = sh('par-a', 'sleep 1; touch "$out/a"');
  const b = sh('par-b', 'sleep 1; touch "$out/b"');
  const order = async (jobs: number): Promise<string[]> => withStore(async (store) => {
    const ev: string[] = [];
    await build(store, [a, b], opts({ jobs, onEvent: (e) => { if (e.type === 'start' || e.type === 'built') ev.push(e.type); } }));
    return ev;
  });
  assert.deepEqual(await order(2), ['start', 'start', 'built', 'built']);
  assert.deepEqual(await order(1), ['start', 'built', 'start', 'built']);
});

test('substitution: a path another store has is fetched, not built', async () => {
  const r = sh('subst', 'echo from-remote > "$out/x"');
  await withStore(async (remote) => {
    const [built] = await build(remote, [r], opts());
    await withStore(async (local) => {
      const events: string[] = [];
      const [got] = await build(local, [r], opts({ substituters: [storeSubstituter('other', remote)], onEvent: (e) => events.push(e.type) }));
      assert.equal(got!.status, 'substituted');
      assert.equal(got!.path, built!.path);
      assert.equal(got!.tree, built!.tree);
      assert.deepEqual(events, ['substituted']);
      assert.equal(await readOut(local, got!.path, 'x'), 'from-remote\n');
    });
  });
});

// The suite's only real autotools build, done twice at once: once through the API and once as a
// user runs it (`miq build`), each into an empty store. The same path and tree from both is the
// reproducibility check; the CLI's store then serves the program from its store path and through
// a mounted profile (what test/build-mount did with a third compile of its own).
test('GNU hello from the Debian archive: same path and tree in two empty stores; it runs from its store path and through a mounted profile', { timeout: 600_000 }, async () => {
  const hello = await loadRecipe('hello');
  const b = await fuseTmp('miq-hello-');
  let mount: MiqMount | undefined;
  try {
    const S = ['--store', join(b, 'store')];
    const [api, cli] = await Promise.all([
      withStore(async (store) => {
        const [o] = await build(store, [hello], opts({ jobs: 1 }));
        return { path: o!.path, tree: o!.tree };
      }),
      miqAsync([...S, 'build', join(ROOT, 'recipes', 'hello.ts'), '--json']),
    ]);
    assert.equal(cli.code, 0, cli.stderr);
    const built = json<{ results: { path: string; tree: string }[] }>(cli).results[0]!;
    assert.match(built.path, /^hello-2\.10-[0-9a-f]{32}$/);
    assert.equal(api.path, built.path);
    assert.equal(api.tree, built.tree, 'hello builds reproducibly');

    // From the store path, exported as a user would run it without a mount.
    const out = join(b, 'out');
    assert.equal((await miqAsync([...S, 'export', built.path, out])).code, 0);
    assert.equal((await fuseSh(`${out}/bin/hello`)).stdout, 'Hello, world!\n');

    // Through a mounted profile.
    assert.equal((await miqAsync([...S, 'profile', 'switch', 'system', built.path])).code, 0);
    const mnt = join(b, 'mnt');
    mkdirSync(mnt);
    mount = await startMiqMount([...S, 'mount', mnt, '--json']);
    const viaUsr = await fuseSh(`${mnt}/usr/bin/hello`);
    assert.equal(viaUsr.stdout, 'Hello, world!\n', viaUsr.stderr);
    const viaStore = await fuseSh(`${mnt}/store/${built.path}/bin/hello --greeting=miq`);
    assert.equal(viaStore.stdout, 'miq\n', viaStore.stderr);
    assert.equal(await mount.stop(), 0, `miq mount ended by ${mount.child.signalCode ?? "exit"}; stderr: ${mount.stderr()}`);
  } finally {
    if (mount && mount.child.exitCode === null && mount.child.signalCode === null) mount.child.kill('SIGKILL');
    await cleanup(b);
  }
});

test('CLI: build, log, recipe show; failures exit non-zero with a readable message', async () => {
  const store = tmp('cli');
  const miq = (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
    run(process.execPath, [join(PROJECT_ROOT, 'dist/cli/main.js'), '--store', store, ...args], { env: { ...process.env, MIQ_CACHE: CACHE } })
      .then((r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }), (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }));
  try {
    const tiny = join(FIXTURES, 'tiny.ts');
    const show = await miq('recipe', 'show', tiny, '--json');
    assert.equal(show.code, 0);
    const info = JSON.parse(show.stdout) as { path: string; key: string };
    const b = await miq('build', tiny);
    assert.equal(b.code, 0, b.stderr);
    assert.equal(b.stdout, `${info.path}\n`);
    const j = await miq('build', '--json', tiny);
    assert.equal((JSON.parse(j.stdout) as { results: { status: string }[] }).results[0]!.status, 'present');
    const log = await miq('log', info.path);
    assert.equal(log.code, 0);
    assert.match(log.stdout, new RegExp(`building ${info.path}`));
    const fail = await miq('build', join(FIXTURES, 'fails.ts'));
    assert.equal(fail.code, 6);
    assert.match(fail.stderr, /error: the thing is broken/);
    const cyc = await miq('build', join(FIXTURES, 'cycle-a.ts'));
    assert.equal(cyc.code, 2);
    assert.match(cyc.stderr, /dependency cycle: cycle-a -> cycle-b -> cycle-a/);
    const missing = await miq('build', join(FIXTURES, 'missing-dep.ts'));
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /no-such-recipe/);
    const paths = await miq('paths', '--json');
    assert.deepEqual((JSON.parse(paths.stdout) as { path: string }[]).map((p) => p.path), [info.path]);
    // A second store substitutes from the first instead of building.
    const second = tmp('cli2');
    try {
      const sub = await run(process.execPath, [join(PROJECT_ROOT, 'dist/cli/main.js'), '--store', second, 'build', '--substituter', store, tiny]);
      assert.equal(sub.stdout, `${info.path}\n`);
      assert.match(sub.stderr, /substituted/);
      assert.doesNotMatch(sub.stderr, /building/);
    } finally {
      rmSync(second, { recursive: true, force: true });
    }
    // A signed remote (miq push to a directory) substitutes too; with an untrusted key the
    // record is refused and the build runs instead.
    const remoteDir = tmp('remote');
    const keys = tmp('keys');
    const third = tmp('cli3');
    const fourth = tmp('cli4');
    try {
      assert.equal((await miq('key', 'generate', '--dir', keys, 'k1')).code, 0);
      assert.equal((await miq('key', 'generate', '--dir', keys, 'k2')).code, 0);
      const pushed = await miq('push', '--sign-key', join(keys, 'k1.key'), remoteDir, info.path);
      assert.equal(pushed.code, 0, pushed.stderr);
      const cli = join(PROJECT_ROOT, 'dist/cli/main.js');
      const good = await run(process.execPath, [cli, '--store', third, 'build', '--substituter', remoteDir, '--trusted-key', join(keys, 'k1.pub'), tiny]);
      assert.equal(good.stdout, `${info.path}\n`);
      assert.match(good.stderr, /substituted/);
      const bad = await run(process.execPath, [cli, '--store', fourth, 'build', '--substituter', remoteDir, '--trusted-key', join(keys, 'k2.pub'), tiny]);
      assert.equal(bad.stdout, `${info.path}\n`);
      assert.match(bad.stderr, /not substituted from/);
      assert.match(bad.stderr, /built/);
    } finally {
      for (const d of [remoteDir, keys, third, fourth]) rmSync(d, { recursive: true, force: true });
    }
  } finally {
    rmSync(store, { recursive: true, force: true });
  }
});
