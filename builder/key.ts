/**
 * Input addressing. A recipe's key is BLAKE3 of the canonical JSON of its data with every
 * dependency replaced by that dependency's key, so the store path is known before anything is
 * built, and any change to a dependency ripples into every dependent's path.
 *
 * The canonical form is a format: changing it moves every store path. Golden tests in
 * test/recipe-key.test.ts pin it; bump RECIPE_FORMAT on purpose when it must change.
 */
import { MiqError } from '../store/errors.js';
import { type Id, idOf } from '../store/ids.js';
import { storePathName } from '../store/objects.js';
import { type Recipe, resolveDep } from './recipe.js';

export const RECIPE_FORMAT = 'miq-recipe-1';

/** Canonical JSON: object keys sorted by code point, no whitespace, only strings, integers,
 * booleans, arrays and plain objects. Anything else is a bug in the caller, not data. */
export function canonicalJson(v: unknown): string {
  if (typeof v === 'string' || typeof v === 'boolean') return JSON.stringify(v);
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new MiqError('MIQ_BAD_INPUT', `canonical JSON takes only safe integers, got ${v}`);
    return String(v);
  }
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype) {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
  }
  throw new MiqError('MIQ_BAD_INPUT', `canonical JSON cannot hold ${v === null ? 'null' : typeof v}`);
}

/** The hashed form of one recipe, given its dependencies' keys (in declaration order). */
export function canonicalInputs(r: Recipe, buildDepKeys: readonly Id[], runDepKeys: readonly Id[]): Record<string, unknown> {
  return {
    format: RECIPE_FORMAT,
    name: r.name,
    version: r.version,
    sources: r.sources.map((s) => ({ url: s.url, [s.algo]: s.hash, name: s.name })),
    buildDeps: [...buildDepKeys],
    runDeps: [...runDepKeys],
    env: { ...r.env },
    host: [...r.host],
    script: r.script,
  };
}

export function recipeKey(r: Recipe, buildDepKeys: readonly Id[], runDepKeys: readonly Id[]): Id {
  return idOf(Buffer.from(canonicalJson(canonicalInputs(r, buildDepKeys, runDepKeys)), 'utf8'));
}

/** One recipe with everything derived from it. */
export interface Node {
  readonly recipe: Recipe;
  readonly key: Id;
  /** `<name>-<version>-<first 32 hex of key>`. */
  readonly path: string;
  readonly buildDeps: readonly Node[];
  readonly runDeps: readonly Node[];
  readonly canonical: string;
}

export function pathNameOf(r: Recipe): string {
  return `${r.name}-${r.version}`;
}

/**
 * Resolves, keys and deduplicates the graph reachable from `roots`. Throws MIQ_BAD_INPUT naming
 * the cycle (a -> b -> a) when there is one, and for a dependency that is missing.
 */
export function analyse(roots: readonly Recipe[]): { roots: Node[]; nodes: Node[] } {
  const done = new Map<Recipe, Node>();
  const byKey = new Map<Id, Node>();
  const visiting: Recipe[] = [];
  const order: Node[] = [];

  const visit = (r: Recipe): Node => {
    const have = done.get(r);
    if (have) return have;
    const at = visiting.indexOf(r);
    if (at >= 0) {
      const cycle = [...visiting.slice(at), r].map((x) => x.name).join(' -> ');
      throw new MiqError('MIQ_BAD_INPUT', `dependency cycle: ${cycle}`, { details: { cycle: [...visiting.slice(at), r].map((x) => x.name) } });
    }
    visiting.push(r);
    const b = r.buildDeps.map((d, i) => visit(resolveDep(r, 'buildDeps', i, d)));
    const rd = r.runDeps.map((d, i) => visit(resolveDep(r, 'runDeps', i, d)));
    visiting.pop();
    const canonical = canonicalJson(canonicalInputs(r, b.map((n) => n.key), rd.map((n) => n.key)));
    const key = idOf(Buffer.from(canonical, 'utf8'));
    let node = byKey.get(key);
    if (!node) {
      node = { recipe: r, key, path: storePathName(pathNameOf(r), key), buildDeps: b, runDeps: rd, canonical };
      byKey.set(key, node);
      order.push(node);
    }
    done.set(r, node);
    return node;
  };

  const rootNodes = roots.map(visit);
  return { roots: rootNodes, nodes: order };
}

/** The run-time closure of a node as far as recipes say (the store adds scanned references). */
export function runClosure(n: Node): Node[] {
  const seen = new Set<Node>();
  const walk = (x: Node): void => {
    for (const d of x.runDeps) {
      if (!seen.has(d)) {
        seen.add(d);
        walk(d);
      }
    }
  };
  walk(n);
  return [...seen];
}
