/**
 * Declarative triggers, as moss runs them: maintainer scripts are never run; instead each
 * trigger whose paths match the new generation runs in bubblewrap against the generation
 * (materialised read-only: a tmpfs root with the generation's top-level folders bound), writes
 * only to its output folder, and that output becomes one more store path of the generation.
 * Its key is a hash of the trigger's definition and every input store path, so the same
 * generation gives the same output (cached: a second install runs nothing).
 *   - ldconfig: etc/ld.so.cache (the host's static ldconfig, its hash part of the key);
 *   - python: byte-code for every .py under usr/lib/python3*, as unchecked-hash pycs (they stay
 *     valid in a store whose mtimes are all 1);
 *   - alternatives: the links `update-alternatives --install` lines in postinst scripts would
 *     make (highest priority wins), so /usr/bin/awk exists when mawk is there.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { link, mkdir, mkdtemp, readdir, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Store } from '../store/api.js';
import { MiqError } from '../store/errors.js';
import { exportFile } from '../store/export.js';
import { idOf, type Id } from '../store/ids.js';
import { mkdirp } from '../store/mkdirp.js';
import { storePathName, type TreeEntry } from '../store/objects.js';
import * as P from '../store/profiles.js';
import type { UnpackedDeb } from './deb.js';
import { readStoreFile } from './universe.js';

const VERSION = 'miq-triggers-2';

export interface TriggerResult {
  name: string;
  /** Its output store path (undefined: it did not apply). */
  path?: string;
  cached: boolean;
  /** Packages whose maintainer scripts this trigger stands in for. */
  covers: string[];
  seconds: number;
  note?: string;
}

function run(cmd: string, args: string[], input?: string): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    c.on('error', (e) => reject(new MiqError('MIQ_IO', `cannot run ${cmd}: ${e.message}; install it (Debian: apt-get install bubblewrap)`, { cause: e })));
    c.on('close', (code) => resolve({ code: code ?? 1, out, err }));
    c.stdin.on('error', () => {});
    c.stdin.end(input ?? '');
  });
}

/** Files of packages unpacked by this install, by path in the generation: the same bytes as
 * the store holds (checked by file id), linked instead of exported from the store. */
type Staged = Map<string, { id: Id; abs: string }>;

async function indexStaged(store: Store, tree: Id, dir: string, rel: string, out: Staged): Promise<void> {
  const t = await store.getTree(tree);
  await Promise.all((t?.entries ?? []).map(async (e: TreeEntry) => {
    const name = e.name.toString();
    if (e.kind === 'dir') await indexStaged(store, e.id!, join(dir, name), `${rel}/${name}`, out);
    else if (e.kind === 'file' || e.kind === 'exe') out.set(`${rel}/${name}`, { id: e.id!, abs: join(dir, name) });
  }));
}

/** Writes a tree to disk (files, exec bits, symlinks), merging into what is there. */
async function materialise(store: Store, tree: Id, dest: string, staged: Staged, rel = ''): Promise<void> {
  const t = await store.getTree(tree);
  if (!t) throw new MiqError('MIQ_MISSING', `tree ${tree} is missing from the store; run \`miq verify\``);
  await mkdir(dest, { recursive: true });
  await Promise.all(t.entries.map(async (e: TreeEntry) => {
    const name = e.name.toString();
    const to = join(dest, name);
    if (e.kind === 'dir') await materialise(store, e.id!, to, staged, `${rel}/${name}`);
    else if (e.kind === 'symlink') await symlink(e.target!.toString(), to);
    else {
      const s = staged.get(`${rel}/${name}`);
      if (s && s.id === e.id && (await link(s.abs, to).then(() => true, () => false))) return;
      await exportFile(store, e.id!, to, e.kind === 'exe');
    }
  }));
}

/** The id of the directory at `parts` under `tree`, or undefined where a step is missing or not a directory. */
async function dirIdOf(store: Store, tree: Id, parts: string[]): Promise<Id | undefined> {
  let id = tree;
  for (const p of parts) {
    const t = await store.getTree(id);
    const e = t?.entries.find((x) => x.name.toString() === p);
    if (!e || e.kind !== 'dir') return undefined;
    id = e.id!;
  }
  return id;
}

async function dirOf(store: Store, tree: Id, parts: string[]): Promise<{ entries: readonly TreeEntry[] } | undefined> {
  const id = await dirIdOf(store, tree, parts);
  return id === undefined ? undefined : store.getTree(id);
}

async function hasPath(store: Store, tree: Id, parts: string[]): Promise<boolean> {
  return (await dirIdOf(store, tree, parts)) !== undefined;
}

async function postinst(store: Store, d: UnpackedDeb): Promise<string> {
  if (!d.scripts.includes('postinst')) return '';
  return (await readStoreFile(store, d.path, `var/lib/miq/deb/${d.pkg.name}/postinst`)).toString('utf8');
}

interface Alternative { link: string; name: string; path: string; priority: number; slaves: { link: string; name: string; path: string }[] }

/** `update-alternatives --install LINK NAME PATH PRIO [--slave LINK NAME PATH]…` lines with
 * literal arguments (lines using shell variables are skipped). Pure. */
export function parseAlternatives(script: string): Alternative[] {
  const out: Alternative[] = [];
  const text = script.replace(/\\\n\s*/g, ' ');
  for (const line of text.split('\n')) {
    const i = line.indexOf('update-alternatives');
    if (i < 0) continue;
    const words = line.slice(i).split(/\s+/).filter(Boolean);
    const k = words.indexOf('--install');
    if (k < 0) continue;
    const [link, name, path, prio] = words.slice(k + 1, k + 5);
    if (!link || !name || !path || !prio || [link, name, path, prio].some((w) => /[$`"']/.test(w)) || !/^\d+$/.test(prio)) continue;
    const slaves: Alternative['slaves'] = [];
    for (let j = k + 5; j < words.length; j++) {
      if (words[j] === '--slave' && words[j + 3] && ![words[j + 1], words[j + 2], words[j + 3]].some((w) => /[$`"';|&]/.test(w!))) {
        slaves.push({ link: words[j + 1]!, name: words[j + 2]!, path: words[j + 3]! });
        j += 3;
      }
    }
    out.push({ link, name, path, priority: Number(prio), slaves });
  }
  return out;
}

const merged = (p: string): string => p.replace(/^\/(bin|sbin|lib|lib64)\//, '/usr/$1/');

export async function runTriggers(store: Store, members: readonly string[], debs: readonly UnpackedDeb[]): Promise<TriggerResult[]> {
  const paths = [...members].sort();
  const { tree } = await P.buildEnv(store, paths.map((path) => ({ path })));
  const scripts = new Map<string, string>();
  await Promise.all(debs.map(async (d) => scripts.set(d.pkg.name, await postinst(store, d))));
  const covered = (re: RegExp): string[] => debs.filter((d) => re.test(scripts.get(d.pkg.name) ?? '') || (re.source.includes('ldconfig') && d.scripts.includes('triggers'))).map((d) => d.pkg.name).sort();
  let gen: string | undefined;
  let genDir: Promise<string> | undefined;
  const generation = (): Promise<string> => (genDir ??= (async () => {
    gen = await mkdtemp(join(tmpdir(), 'miq-gen-'));
    const staged: Staged = new Map();
    for (const d of debs) {
      const rec = d.staged ? await store.getStorePath(d.path) : undefined;
      if (rec) await indexStaged(store, rec.tree, d.staged!, '', staged);
    }
    await materialise(store, tree, join(gen, 'root'), staged);
    return join(gen, 'root');
  })());
  const keyed = (name: string, extra: string, inputs: readonly string[] = paths): { key: Id; path: string } => {
    const key = idOf(Buffer.from(`${VERSION}\n${name}\n${extra}\n${inputs.join('\n')}\n`));
    return { key, path: storePathName(`trigger-${name}`, key) };
  };
  const out: TriggerResult[] = [];
  try {
    // ldconfig
    {
      const t0 = performance.now();
      const ldconfig = '/sbin/ldconfig';
      let bin: Buffer | undefined;
      try {
        bin = readFileSync(ldconfig);
      } catch {
        bin = undefined;
      }
      const applies = bin !== undefined && (await hasPath(store, tree, ['usr', 'lib']));
      if (applies) {
        const k = keyed('ldconfig', createHash('sha256').update(bin!).digest('hex'));
        const cached = !!(await store.getStorePath(k.path));
        if (!cached) {
          const root = await generation();
          const o = await mkdtemp(join(tmpdir(), 'miq-trig-'));
          try {
            await mkdirp(join(o, 'etc'));
            const r = await run('bwrap', [...sandbox(root), '--ro-bind', ldconfig, '/.miq-ldconfig', '--bind', join(o, 'etc'), '/.miq-out',
              '/.miq-ldconfig', '-X', '-C', '/.miq-out/ld.so.cache', '-f', '/etc/ld.so.conf', '/usr/lib/x86_64-linux-gnu', '/usr/lib']);
            if (r.code !== 0) throw new MiqError('MIQ_BUILD_FAILED', `the ldconfig trigger failed: ${r.err.trim()}`);
            await store.ingest(o, { name: 'trigger-ldconfig', key: k.key, pin: false });
          } finally {
            await rm(o, { recursive: true, force: true });
          }
        }
        out.push({ name: 'ldconfig', path: k.path, cached, covers: covered(/\bldconfig\b/), seconds: (performance.now() - t0) / 1000 });
      }
    }
    // python byte-compilation
    {
      const t0 = performance.now();
      const lib = (await store.getTree(tree))?.entries.find((e) => e.name.toString() === 'usr');
      const usrLib = lib ? (await store.getTree(lib.id!))?.entries.find((e) => e.name.toString() === 'lib') : undefined;
      const pyDirs = usrLib ? ((await store.getTree(usrLib.id!))?.entries ?? []).filter((e) => e.kind === 'dir' && /^python3(\.\d+)?$/.test(e.name.toString())).map((e) => e.name.toString()) : [];
      const hasPython = await hasPath(store, tree, ['usr', 'bin']) && pyDirs.length > 0;
      if (hasPython) {
        // The pycs depend only on the sources under usr/lib/python3* and the interpreter that
        // compiles them (usr/bin/python3*): adding a package without either (mawk, say) must not
        // byte-compile everything again.
        const inputs: string[] = [];
        for (const m of paths) {
          const rec = await store.getStorePath(m);
          if (!rec) continue;
          const bin = await dirOf(store, rec.tree, ['usr', 'bin']);
          const hasPy = (await Promise.all(pyDirs.map((d) => hasPath(store, rec.tree, ['usr', 'lib', d])))).some(Boolean) || (bin?.entries ?? []).some((e) => /^python3(\.\d+)?$/.test(e.name.toString()));
          if (hasPy) inputs.push(m);
        }
        const k = keyed('python', `${pyDirs.join(',')}\n${createHash('sha256').update(PYC_SCRIPT).digest('hex')}`, inputs);
        const cached = !!(await store.getStorePath(k.path));
        let note: string | undefined;
        if (!cached) {
          const root = await generation();
          const bins = (await readdir(join(root, 'usr', 'bin'))).filter((b) => /^python3(\.\d+)?$/.test(b)).sort();
          const py = bins.at(-1);
          if (py) {
            const o = await mkdtemp(join(tmpdir(), 'miq-trig-'));
            try {
              const script = PYC_SCRIPT.replace('@DIRS@', JSON.stringify(pyDirs.map((d) => `/usr/lib/${d}`)));
              const r = await run('bwrap', [...sandbox(root), '--bind', o, '/.miq-out', `/usr/bin/${py}`, '-I', '-S', '-c', script]);
              if (r.code !== 0) throw new MiqError('MIQ_BUILD_FAILED', `the python byte-compile trigger failed: ${r.err.trim().split('\n').slice(-3).join(' ')}`);
              note = r.out.trim();
              await store.ingest(o, { name: 'trigger-python', key: k.key, pin: false });
            } finally {
              await rm(o, { recursive: true, force: true });
            }
          }
        }
        if (cached || note !== undefined) out.push({ name: 'python', path: k.path, cached, covers: covered(/py3compile|pycompile|py_compile|compileall|py3clean/), seconds: (performance.now() - t0) / 1000, ...(note ? { note } : {}) });
      }
    }
    // update-alternatives
    {
      const t0 = performance.now();
      const best = new Map<string, { alt: Alternative; pkg: string }>();
      for (const d of debs) {
        for (const a of parseAlternatives(scripts.get(d.pkg.name) ?? '')) {
          const cur = best.get(a.name);
          if (!cur || a.priority > cur.alt.priority || (a.priority === cur.alt.priority && d.pkg.name < cur.pkg)) best.set(a.name, { alt: a, pkg: d.pkg.name });
        }
      }
      if (best.size) {
        const spec = [...best.entries()].sort().map(([n, b]) => `${n} ${b.alt.link} ${b.alt.path} ${b.alt.slaves.map((s) => `${s.link}=${s.path}`).join(',')}`).join('\n');
        const k = keyed('alternatives', spec);
        const cached = !!(await store.getStorePath(k.path));
        if (!cached) {
          const o = await mkdtemp(join(tmpdir(), 'miq-trig-'));
          try {
            for (const [, b] of best) {
              for (const l of [{ link: b.alt.link, name: b.alt.name, path: b.alt.path }, ...b.alt.slaves]) {
                // Debian's two hops: LINK -> /etc/alternatives/NAME -> PATH.
                await mkdirp(join(o, 'etc', 'alternatives'));
                await symlink(merged(l.path), join(o, 'etc', 'alternatives', l.name)).catch(() => {});
                const at = join(o, merged(l.link));
                await mkdirp(join(at, '..'));
                await symlink(`/etc/alternatives/${l.name}`, at).catch(() => {});
              }
            }
            await store.ingest(o, { name: 'trigger-alternatives', key: k.key, pin: false });
          } finally {
            await rm(o, { recursive: true, force: true });
          }
        }
        out.push({ name: 'alternatives', path: k.path, cached, covers: covered(/update-alternatives/), seconds: (performance.now() - t0) / 1000 });
      }
    }
  } finally {
    if (gen) await rm(gen, { recursive: true, force: true });
  }
  return out;
}

/** bwrap arguments: a tmpfs root with the generation's top-level entries bound read-only. */
function sandbox(root: string): string[] {
  const args = ['--unshare-all', '--die-with-parent', '--tmpfs', '/'];
  for (const e of ['usr', 'etc', 'var', 'opt']) args.push('--ro-bind-try', join(root, e), `/${e}`);
  for (const l of ['bin', 'sbin', 'lib', 'lib64']) args.push('--symlink', `usr/${l}`, `/${l}`);
  args.push('--dev', '/dev', '--proc', '/proc', '--tmpfs', '/tmp', '--setenv', 'PATH', '/usr/bin', '--setenv', 'LC_ALL', 'C.UTF-8', '--chdir', '/');
  return args;
}

/** Runs inside the sandbox with the generation's own python: one unchecked-hash pyc per .py
 * (tests and files that do not compile are skipped, as Debian's py3compile does), written under
 * /.miq-out at the path the interpreter looks for it. */
const PYC_SCRIPT = `
import os, sys, importlib.util, py_compile
dirs = @DIRS@
todo = []
for top in dirs:
    for d, subs, files in os.walk(top):
        subs[:] = sorted(s for s in subs if s not in ('test', 'tests', '__pycache__', 'idlelib', 'lib2to3') and not s.startswith('.'))
        todo += [os.path.join(d, f) for f in sorted(files) if f.endswith('.py')]
def compile_all(files):
    n = bad = 0
    for src in files:
        dst = '/.miq-out' + importlib.util.cache_from_source(src)
        try:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            py_compile.compile(src, cfile=dst, dfile=src, doraise=True, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
            n += 1
        except Exception:
            bad += 1
    return n, bad
# One process per core, each a fixed slice: the pycs do not depend on the split.
k = max(1, min(os.cpu_count() or 1, 8))
kids = []
for i in range(1, k):
    pid = os.fork()
    if pid == 0:
        n, bad = compile_all(todo[i::k])
        os._exit(0 if bad < 256 else 1)
    kids.append(pid)
n, bad = compile_all(todo[0::k])
for pid in kids:
    os.waitpid(pid, 0)
print(f"{len(todo)} sources, {k} processes")
`;
