/**
 * A profile merged from real Debian binary packages (apt-get download + dpkg-deb -x, one store
 * path each), mounted, and its usr view used as the root of a bubblewrap sandbox: a tmpfs root,
 * each top-level entry of the view bound read-only, fresh /dev, /proc and /tmp.
 * Packages are cached outside the repository ($MIQ_TEST_CACHE, see helpers/corpus.ts).
 */
import assert from 'node:assert/strict';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startMount, type MountHandle } from '../mount/daemon.js';
import type { Store } from '../store/api.js';
import { openStore } from '../store/open.js';
import * as P from '../store/profiles.js';
import { debianPackage } from './helpers/corpus.js';
import { cleanup, sh, tmp } from './helpers/fuse.js';

export const SANDBOX_PACKAGES = [
  'libc6', 'libgcc-s1', 'bash', 'libtinfo6', 'coreutils', 'libacl1', 'libattr1', 'libgmp10', 'libselinux1', 'libpcre2-8-0',
  'perl-base',
  'python3-minimal', 'python3.11-minimal', 'libpython3.11-minimal', 'libpython3.11-stdlib', 'python3.11', 'python3',
  'libexpat1', 'zlib1g', 'libssl3', 'libsqlite3-0', 'libffi8', 'libbz2-1.0', 'liblzma5', 'libcrypt1', 'libuuid1',
  'libncursesw6', 'libreadline8', 'libdb5.3', 'media-types',
];

let base: string;
let store: Store;
let h: MountHandle | undefined;

describe('a sandbox rooted in the usr view of real Debian packages', () => {
  before(async () => {
    base = await tmp('miq-deb-');
    store = await openStore(join(base, 'store'));
  });
  after(async () => {
    await h?.close();
    await store?.close();
    await cleanup(base);
  });

  it(`${SANDBOX_PACKAGES.length} packages, one store path each, merged; bash, python3 and perl run in bwrap`, { timeout: 900_000 }, async (t) => {
    const members: P.Member[] = [];
    for (const pkg of SANDBOX_PACKAGES) {
      const root = debianPackage(pkg);
      const r = await store.ingest(root, { name: pkg.replace(/[^A-Za-z0-9+._-]/g, '_') });
      members.push({ path: r.path });
    }
    assert.ok(members.length >= 15);
    const g = await P.switchProfile(store, 'system', members);
    t.diagnostic(`generation ${g.generation}: ${g.paths.length} store paths, env ${g.env}`);
    const mnt = join(base, 'mnt');
    await mkdir(mnt);
    h = await startMount(store, mnt);

    const view = join(mnt, 'usr');
    const top = await readdir(view);
    for (const must of ['usr', 'bin', 'lib']) assert.ok(top.includes(must), `view has /${must}: ${top.join(' ')}`);
    const binds = top.flatMap((e) => ['--ro-bind', join(view, e), `/${e}`]);
    const bwrap = (cmd: string): Promise<{ code: number; stdout: string; stderr: string }> =>
      sh(`bwrap --unshare-all --die-with-parent --tmpfs / ${binds.map((b) => `'${b}'`).join(' ')} --dev /dev --proc /proc --tmpfs /tmp --setenv PATH /usr/bin:/bin --setenv LC_ALL C ${cmd}`, { timeoutMs: 120_000 });

    const sh1 = await bwrap(`/bin/bash -c 'echo "bash $BASH_VERSION"; echo $((6 * 7)); ls / | sort | tr "\\n" " "; echo; readlink -f /proc/self/exe'`);
    assert.equal(sh1.code, 0, sh1.stderr);
    const lines = sh1.stdout.split('\n');
    assert.match(lines[0]!, /^bash 5\./);
    assert.equal(lines[1], '42');
    for (const e of top) assert.ok(lines[2]!.includes(e), `ls / shows ${e}`);
    assert.match(lines[3]!, /\/(usr\/)?bin\/readlink$/);

    const py = await bwrap(`/usr/bin/python3 -c 'import json, sqlite3, ssl, sys; c = sqlite3.connect(":memory:"); print(json.dumps({"py": sys.version_info[:2], "sqlite": c.execute("select sqlite_version()").fetchone()[0] > "3", "ssl": ssl.OPENSSL_VERSION.split()[0]}))'`);
    assert.equal(py.code, 0, py.stderr);
    const pv = JSON.parse(py.stdout) as { py: number[]; sqlite: boolean; ssl: string };
    assert.equal(pv.py[0], 3);
    assert.equal(pv.sqlite, true);
    assert.equal(pv.ssl, 'OpenSSL');

    const pl = await bwrap(`/usr/bin/perl -e 'print "perl ", $] >= 5.030 ? "ok" : "old", " ", join(",", map { $_ * 2 } 1..3), "\\n"'`);
    assert.equal(pl.code, 0, pl.stderr);
    assert.equal(pl.stdout, 'perl ok 2,4,6\n');
    t.diagnostic(`bash: ${lines[0]}; python: ${py.stdout.trim()}; ${pl.stdout.trim()}`);

    // The sandbox sees exactly the view: nothing of the host's /usr leaks in, and it is read-only.
    const ro = await bwrap(`/bin/bash -c 'touch /usr/x 2>&1; test -e /usr/bin/apt-get && echo leaked || echo sealed'`);
    assert.match(ro.stdout, /Read-only file system/);
    assert.match(ro.stdout, /sealed/);
  });
});
