/**
 * Loading recipe files. Recipes are TypeScript compiled with the project (tsconfig includes
 * recipes/), and Node 20 runs only JavaScript, so a `.ts` path inside the project maps to its
 * compiled twin: `<root>/X/y.ts` -> `<root>/dist/X/y.js`. A `.js`/`.mjs` path loads as is. A bare
 * name (`hello`) means `<root>/recipes/hello.ts`.
 *
 * A stale compiled recipe would silently give the old key, so before loading, every `.ts` in the
 * recipe's directory is checked against its compiled twin: if any source is newer, or has no twin,
 * loading stops and says to run `npx tsc -p .`.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MiqError } from '../store/errors.js';
import { type DepRef, type Recipe, recipe } from './recipe.js';
import type { Wire, WireDep } from './eval-child.js';

/** The project root: this file is <root>/dist/builder/load.js once compiled. */
export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

function compiledTwin(ts: string, root: string): string {
  const rel = relative(root, ts);
  return join(root, 'dist', rel.replace(/\.ts$/, '.js'));
}

function checkFresh(dir: string, root: string): void {
  const stale: string[] = [];
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) {
    if (!n.endsWith('.ts') || n.endsWith('.d.ts')) continue;
    const ts = join(dir, n);
    const js = compiledTwin(ts, root);
    let jsTime: number;
    try {
      jsTime = statSync(js).mtimeMs;
    } catch {
      stale.push(`${relative(root, ts)} (not compiled)`);
      continue;
    }
    if (statSync(ts).mtimeMs > jsTime) stale.push(`${relative(root, ts)} (changed since compiled)`);
  }
  if (stale.length) {
    throw new MiqError('MIQ_BAD_INPUT', `recipes are newer than their compiled JavaScript: ${stale.join(', ')}; run \`npx tsc -p .\` in ${root}`, { details: { stale } });
  }
}

/** Where the JavaScript for a recipe argument is. Throws MIQ_NOT_FOUND / MIQ_BAD_INPUT. */
export function recipeModulePath(arg: string, root = PROJECT_ROOT): string {
  let file = arg;
  if (!/[/\\]/.test(arg) && !/\.(m?[jt]s)$/.test(arg)) file = join(root, 'recipes', `${arg}.ts`);
  const abs = resolve(file);
  if (!existsSync(abs)) throw new MiqError('MIQ_NOT_FOUND', `recipe file ${arg} does not exist`, { details: { file: abs } });
  if (/\.m?js$/.test(abs)) return abs;
  if (!abs.endsWith('.ts') || abs.endsWith('.d.ts')) throw new MiqError('MIQ_BAD_INPUT', `recipe file ${arg} must be .ts (inside the project) or .js`);
  const rel = relative(root, abs);
  if (rel.startsWith('..') || isAbsolute(rel) || rel.split(/[/\\]/)[0] === 'dist') {
    throw new MiqError('MIQ_BAD_INPUT', `recipe ${arg} is a .ts file outside the miq project (${root}); compile it and pass the .js file`);
  }
  checkFresh(dirname(abs), root);
  return compiledTwin(abs, root);
}

/** Loads a recipe file and returns its default export (evaluated in the sandbox). */
export async function loadRecipe(arg: string, root = PROJECT_ROOT): Promise<Recipe> {
  return (await loadRecipes([arg], root))[0]!;
}

/**
 * Loads recipe files in one sandboxed evaluation, so recipes they share come back as one object.
 *
 * A recipe is a program, and `miq recipe show` of one somebody sent you must not be able to
 * change your machine: the modules are imported in a child node process under bubblewrap, with
 * no network, every file system read-only, no capabilities, a clean
 * environment, bounded memory, and a time limit after which the whole sandbox is killed (so
 * `while (true) {}` ends with an error instead of hanging). The child sends the recipe graph back
 * as data, and it is rebuilt here through recipe(), which validates every field again.
 */
export async function loadRecipes(args: readonly string[], root = PROJECT_ROOT): Promise<Recipe[]> {
  const files = args.map((a) => recipeModulePath(a, root));
  const wire = await evaluateSandboxed(args, files, root);
  return rebuild(wire);
}

const DEFAULT_TIMEOUT_S = 30;
const MAX_RESULT = 64 << 20;

function timeoutSeconds(): number {
  const v = process.env.MIQ_RECIPE_TIMEOUT;
  if (v === undefined || v === '') return DEFAULT_TIMEOUT_S;
  const n = /^\d{1,6}(?:\.\d{1,3})?$/.test(v) ? Number(v) : NaN;
  if (!(n > 0)) throw new MiqError('MIQ_BAD_INPUT', `MIQ_RECIPE_TIMEOUT "${v}" must be a number of seconds, more than 0`);
  return n;
}

/** The bwrap command line of an evaluation. Pure, so tests can read it. */
export function evalSandboxArgs(child: string, pairs: readonly string[]): string[] {
  return [
    '--unshare-all', '--die-with-parent', '--new-session', '--cap-drop', 'ALL',
    '--ro-bind', '/', '/',
    // No private /tmp: a recipe file may live there, and nothing in the box needs to write.
    '--dev', '/dev', '--proc', '/proc',
    '--clearenv', '--setenv', 'PATH', '/usr/bin:/bin', '--setenv', 'HOME', '/nonexistent',
    '--chdir', '/',
    '--', process.execPath, '--max-old-space-size=512', child, ...pairs,
  ];
}

type Graph = Exclude<Wire, { error: unknown }>;

function evaluateSandboxed(args: readonly string[], files: readonly string[], root: string): Promise<Graph> {
  const secs = timeoutSeconds();
  const child = join(root, 'dist', 'builder', 'eval-child.js');
  const pairs = args.flatMap((a, i) => [a, files[i]!]);
  const what = args.length === 1 ? `recipe ${args[0]}` : `recipes ${args.join(', ')}`;
  return new Promise((resolvePromise, reject) => {
    const p = spawn('bwrap', evalSandboxArgs(child, pairs), { stdio: ['ignore', 'ignore', 'pipe', 'pipe'] });
    let err = '';
    const out: Buffer[] = [];
    let outLen = 0;
    let failed: MiqError | undefined;
    const timer = setTimeout(() => {
      failed = new MiqError('MIQ_BAD_INPUT', `${what}: evaluation did not finish within ${secs} s (an endless loop at load time?); it was stopped. Recipes are evaluated in a sandbox with a time limit (MIQ_RECIPE_TIMEOUT=SECONDS changes it)`);
      p.kill('SIGKILL');
    }, secs * 1000);
    p.stderr!.on('data', (d: Buffer) => { if (err.length < 8192) err += d.toString(); });
    (p.stdio[3] as NodeJS.ReadableStream).on('data', (d: Buffer) => {
      outLen += d.length;
      if (outLen > MAX_RESULT) {
        failed ??= new MiqError('MIQ_BAD_INPUT', `${what}: evaluation produced more than ${MAX_RESULT >> 20} MiB of recipe data; stopped`);
        p.kill('SIGKILL');
        return;
      }
      out.push(d);
    });
    p.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new MiqError('MIQ_IO', e.code === 'ENOENT' ? 'recipes are evaluated under bubblewrap, which is not installed: apt-get install bubblewrap' : `cannot start bwrap to evaluate ${what}: ${e.message}`, { cause: e }));
    });
    p.on('close', (code, sig) => {
      clearTimeout(timer);
      if (failed) return reject(failed);
      const text = Buffer.concat(out).toString('utf8');
      if (!text) {
        const tail = err.trim().split('\n').slice(-3).join(' | ');
        return reject(new MiqError('MIQ_BAD_INPUT', `${what}: evaluation ended without a result (${sig ? `signal ${sig}` : `exit ${code}`})${tail ? `: ${tail}` : ''}`));
      }
      let w: Wire;
      try {
        w = JSON.parse(text) as Wire;
      } catch (e) {
        return reject(new MiqError('MIQ_BAD_INPUT', `${what}: evaluation sent back something that is not a recipe graph`, { cause: e }));
      }
      if ('error' in w) return reject(MiqError.fromJSON(w.error as Parameters<typeof MiqError.fromJSON>[0]));
      resolvePromise(w as Graph);
    });
  });
}

/** Recipe objects from the sandbox's graph, each validated again by recipe(). Dependencies
 * become thunks, so a cycle is still reported by the key computation, as for modules loaded here. */
function rebuild(w: Graph): Recipe[] {
  const bad = (): never => { throw new MiqError('MIQ_BAD_INPUT', 'recipe evaluation sent back a malformed recipe graph'); };
  if (!Array.isArray(w.nodes) || !Array.isArray(w.roots)) bad();
  const made: (Recipe | undefined)[] = [];
  const make = (i: number): Recipe => {
    if (!Number.isInteger(i) || i < 0 || i >= w.nodes.length) bad();
    const have = made[i];
    if (have) return have;
    const n = w.nodes[i]!;
    const ref = (d: WireDep): DepRef => {
      if ('node' in d) return () => make(d.node);
      if ('thrown' in d) return () => { throw new Error(String(d.thrown)); };
      if ('missing' in d) return () => undefined as unknown as Recipe;
      return () => ({}) as Recipe;
    };
    const r = recipe({
      name: n.name,
      version: n.version,
      sources: (n.sources ?? []).map((s) => ({ url: s.url, [s.algo === 'blake3' ? 'blake3' : 'sha256']: s.hash, name: s.name })),
      buildDeps: (n.buildDeps ?? []).map(ref),
      runDeps: (n.runDeps ?? []).map(ref),
      env: n.env,
      host: n.host as Recipe['host'],
      script: n.script,
    });
    made[i] = r;
    return r;
  };
  return w.roots.map(make);
}
