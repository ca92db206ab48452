/**
 * The recipe format. A recipe is a TypeScript module in `recipes/` whose default export is the
 * value returned by `recipe({...})`: plain, frozen data. Nothing in a recipe runs at build time
 * except its shell script, inside the sandbox.
 *
 *   import { recipe } from '../builder/recipe.js';
 *   import zlib from './zlib.js';
 *   export default recipe({
 *     name: 'pigz', version: '2.6',
 *     sources: [{ url: 'mirror://debian/pool/main/p/pigz/pigz_2.6.orig.tar.xz', sha256: '…' }],
 *     buildDeps: [], runDeps: [zlib],
 *     host: ['toolchain'],
 *     script: `tar xf "$src" && cd pigz-2.6 && make && install -D pigz "$out/bin/pigz"`,
 *   });
 *
 * Dependencies are other recipes, or functions returning one (`() => other`) where two modules
 * would otherwise import each other; such a cycle is then reported by the key computation
 * instead of surfacing as a module-loading error.
 */
import { MiqError } from '../store/errors.js';

/** Host features a recipe may ask for. Each one is part of the key. */
export type HostFeature =
  /** Read-only /usr (compiler, binutils, make, coreutils, sh, tar…) and the loader's /etc files. */
  | 'toolchain';

export const HOST_FEATURES: readonly HostFeature[] = ['toolchain'];

export interface SourceInput {
  /** `mirror://NAME/…`, `file:///abs/path`, `http://…` or `https://…`. */
  readonly url: string;
  /** Pinned hash of the file's bytes: exactly one of sha256 or blake3, 64 lowercase hex. */
  readonly sha256?: string;
  readonly blake3?: string;
  /** File name inside the sandbox (default: the last segment of the URL path). */
  readonly name?: string;
}

export type DepRef = Recipe | (() => Recipe);

export interface RecipeInput {
  readonly name: string;
  readonly version: string;
  readonly sources?: readonly SourceInput[];
  /** Needed only to build: visible in the sandbox, not expected in the output's closure. */
  readonly buildDeps?: readonly DepRef[];
  /** Needed to build and at run time (libraries the output links to). */
  readonly runDeps?: readonly DepRef[];
  readonly env?: Readonly<Record<string, string>>;
  readonly host?: readonly HostFeature[];
  /** Shell script run by /bin/sh -e in the sandbox; installs into $out. */
  readonly script: string;
}

export interface Source {
  readonly url: string;
  readonly algo: 'sha256' | 'blake3';
  readonly hash: string;
  readonly name: string;
}

export interface Recipe {
  readonly name: string;
  readonly version: string;
  readonly sources: readonly Source[];
  readonly buildDeps: readonly DepRef[];
  readonly runDeps: readonly DepRef[];
  readonly env: Readonly<Record<string, string>>;
  readonly host: readonly HostFeature[];
  /** Normalised: common indentation and surrounding blank lines removed (see `normaliseScript`). */
  readonly script: string;
}

/** Marks values made by `recipe()`. Symbol.for so that two copies of this module agree. */
const RECIPE_MARK = Symbol.for('miq.recipe');

export function isRecipe(v: unknown): v is Recipe {
  return typeof v === 'object' && v !== null && (v as Record<symbol, unknown>)[RECIPE_MARK] === true;
}

const NAME_RE = /^[A-Za-z0-9+_][A-Za-z0-9+._-]*$/;
const VERSION_RE = /^[A-Za-z0-9+._~-]+$/;
const HEX64 = /^[0-9a-f]{64}$/;
const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Set by the builder; a recipe may not override them. */
export const RESERVED_ENV = new Set(['out', 'src', 'srcs', 'PATH', 'HOME', 'TMPDIR', 'MIQ_CORES', 'SOURCE_DATE_EPOCH', 'NIX_BUILD_TOP']);

function bad(name: string, msg: string): never {
  throw new MiqError('MIQ_BAD_INPUT', `recipe ${name}: ${msg}`);
}

/**
 * Scripts live in template literals indented to match the code around them. The key is over the
 * script with its common indentation and leading/trailing blank lines removed, so re-indenting a
 * recipe file does not change its store path. Every other byte counts.
 */
export function normaliseScript(script: string): string {
  const lines = script.replace(/\r\n/g, '\n').split('\n');
  while (lines.length && lines[0]!.trim() === '') lines.shift();
  while (lines.length && lines[lines.length - 1]!.trim() === '') lines.pop();
  let indent = Infinity;
  for (const l of lines) {
    if (l.trim() === '') continue;
    const m = /^[ \t]*/.exec(l)![0].length;
    if (m < indent) indent = m;
  }
  if (!Number.isFinite(indent)) indent = 0;
  return lines.map((l) => (l.trim() === '' ? '' : l.slice(indent))).join('\n');
}

function sourceName(url: string): string {
  const m = /^[a-z0-9+.-]+:\/\/[^/]*(\/[^?#]*)?/i.exec(url);
  const path = m?.[1] ?? '';
  const last = path.split('/').filter(Boolean).pop() ?? '';
  try {
    return decodeURIComponent(last);
  } catch {
    return last;
  }
}

function checkSource(rname: string, s: SourceInput, i: number): Source {
  if (typeof s !== 'object' || s === null) bad(rname, `sources[${i}] is not an object`);
  if (typeof s.url !== 'string' || !/^(mirror|file|https?):\/\//.test(s.url)) {
    bad(rname, `sources[${i}].url "${String(s.url)}" must start with mirror://, file://, http:// or https://`);
  }
  const given = (['sha256', 'blake3'] as const).filter((a) => s[a] !== undefined);
  if (given.length !== 1) bad(rname, `sources[${i}] (${s.url}) needs exactly one pinned hash: sha256 or blake3`);
  const algo = given[0]!;
  const hash = s[algo]!;
  if (typeof hash !== 'string' || !HEX64.test(hash)) bad(rname, `sources[${i}].${algo} must be 64 lowercase hex characters, got "${String(hash)}"`);
  const name = s.name ?? sourceName(s.url);
  if (!name || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) bad(rname, `sources[${i}] has no usable file name; give one with name: '…'`);
  return Object.freeze({ url: s.url, algo, hash, name });
}

function checkDeps(rname: string, field: string, deps: readonly DepRef[] | undefined): readonly DepRef[] {
  if (deps === undefined) return Object.freeze([]);
  if (!Array.isArray(deps)) bad(rname, `${field} must be an array of recipes`);
  deps.forEach((d, i) => {
    if (d === undefined || d === null) bad(rname, `${field}[${i}] is ${String(d)}: missing dependency (check the import and that the module has a default export)`);
    if (typeof d !== 'function' && !isRecipe(d)) bad(rname, `${field}[${i}] is not a recipe (make it with recipe({...}))`);
  });
  return Object.freeze([...deps]);
}

/** The one helper recipes use. Validates and freezes; throws MIQ_BAD_INPUT on anything wrong. */
export function recipe(input: RecipeInput): Recipe {
  if (typeof input !== 'object' || input === null) throw new MiqError('MIQ_BAD_INPUT', 'recipe() takes an object');
  const name = input.name;
  if (typeof name !== 'string' || !NAME_RE.test(name)) bad(String(name), 'name must match [A-Za-z0-9+_][A-Za-z0-9+._-]*');
  if (typeof input.version !== 'string' || !VERSION_RE.test(input.version)) bad(name, 'version must be non-empty and use letters, digits and + . _ ~ -');
  if (typeof input.script !== 'string' || input.script.trim() === '') bad(name, 'script must be a non-empty string');
  const known = new Set(['name', 'version', 'sources', 'buildDeps', 'runDeps', 'env', 'host', 'script']);
  for (const k of Object.keys(input)) if (!known.has(k)) bad(name, `unknown field "${k}" (known: ${[...known].join(', ')})`);
  const sources = (input.sources ?? []).map((s, i) => checkSource(name, s, i));
  const names = new Set<string>();
  for (const s of sources) {
    if (names.has(s.name)) bad(name, `two sources are named "${s.name}"`);
    names.add(s.name);
  }
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(input.env ?? {})) {
    if (!ENV_NAME_RE.test(k)) bad(name, `env name "${k}" is not a shell variable name`);
    if (RESERVED_ENV.has(k)) bad(name, `env "${k}" is set by the builder`);
    if (typeof v !== 'string') bad(name, `env ${k} must be a string`);
    env[k] = v;
  }
  const host = [...new Set(input.host ?? [])];
  for (const h of host) if (!HOST_FEATURES.includes(h)) bad(name, `unknown host feature "${String(h)}" (known: ${HOST_FEATURES.join(', ')})`);
  host.sort();
  const r: Recipe = {
    name,
    version: input.version,
    sources: Object.freeze(sources),
    buildDeps: checkDeps(name, 'buildDeps', input.buildDeps),
    runDeps: checkDeps(name, 'runDeps', input.runDeps),
    env: Object.freeze(env),
    host: Object.freeze(host),
    script: normaliseScript(input.script),
  };
  Object.defineProperty(r, RECIPE_MARK, { value: true, enumerable: false });
  return Object.freeze(r);
}

/** Resolves a dependency reference (a recipe or a thunk) to a recipe, or throws MIQ_BAD_INPUT. */
export function resolveDep(owner: Recipe, field: string, i: number, d: DepRef): Recipe {
  let r: unknown = d;
  if (typeof d === 'function') {
    try {
      r = d();
    } catch (e) {
      throw new MiqError('MIQ_BAD_INPUT', `recipe ${owner.name}: ${field}[${i}] could not be resolved: ${(e as Error).message}`, { cause: e });
    }
  }
  if (r === undefined || r === null) throw new MiqError('MIQ_BAD_INPUT', `recipe ${owner.name}: ${field}[${i}] is ${String(r)}: missing dependency`);
  if (!isRecipe(r)) throw new MiqError('MIQ_BAD_INPUT', `recipe ${owner.name}: ${field}[${i}] is not a recipe`);
  return r;
}
