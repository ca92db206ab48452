/**
 * Runs inside the recipe-evaluation sandbox (see load.ts): imports recipe modules, resolves their
 * dependency graph (thunks included: they are the recipe's code too) and writes it to fd 3 as
 * plain data. Nothing here is trusted by the parent beyond being JSON it re-validates.
 *
 *   node eval-child.js ARG JSFILE [ARG JSFILE]…
 */
import { writeSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { MiqError, isMiqError } from '../store/errors.js';
import { isRecipe, type DepRef, type Recipe, type Source } from './recipe.js';

export type WireDep = { node: number } | { thrown: string } | { missing: string } | { notRecipe: true };
export interface WireNode {
  name: string;
  version: string;
  sources: Source[];
  buildDeps: WireDep[];
  runDeps: WireDep[];
  env: Record<string, string>;
  host: string[];
  script: string;
}
export type Wire = { roots: number[]; nodes: WireNode[] } | { error: { code: string; message: string; details?: Record<string, unknown> } };

async function load(arg: string, js: string): Promise<Recipe> {
  let mod: { default?: unknown };
  try {
    mod = (await import(pathToFileURL(js).href)) as { default?: unknown };
  } catch (e) {
    if (isMiqError(e)) throw e;
    const err = e as NodeJS.ErrnoException;
    if (err?.code === 'ERR_MODULE_NOT_FOUND') {
      throw new MiqError('MIQ_NOT_FOUND', `recipe ${arg} imports something that does not exist (missing dependency?): ${err.message}`);
    }
    if (e instanceof ReferenceError && /before initialization/.test(err.message)) {
      throw new MiqError('MIQ_BAD_INPUT', `recipe ${arg}: recipe modules import each other (a dependency cycle): ${err.message}`);
    }
    throw new MiqError('MIQ_BAD_INPUT', `recipe ${arg} failed to load: ${err?.message ?? String(e)}`);
  }
  if (!isRecipe(mod.default)) throw new MiqError('MIQ_BAD_INPUT', `recipe ${arg} has no default export made by recipe({...})`);
  return mod.default;
}

function toWire(roots: Recipe[]): { roots: number[]; nodes: WireNode[] } {
  const index = new Map<Recipe, number>();
  const nodes: WireNode[] = [];
  const visit = (r: Recipe): number => {
    const have = index.get(r);
    if (have !== undefined) return have;
    const i = nodes.length;
    index.set(r, i);
    const n: WireNode = { name: r.name, version: r.version, sources: [...r.sources], buildDeps: [], runDeps: [], env: { ...r.env }, host: [...r.host], script: r.script };
    nodes.push(n);
    const dep = (d: DepRef): WireDep => {
      let v: unknown = d;
      if (typeof d === 'function') {
        try {
          v = d();
        } catch (e) {
          return { thrown: (e as Error)?.message ?? String(e) };
        }
      }
      if (v === undefined || v === null) return { missing: String(v) };
      if (!isRecipe(v)) return { notRecipe: true };
      return { node: visit(v) };
    };
    n.buildDeps = r.buildDeps.map(dep);
    n.runDeps = r.runDeps.map(dep);
    return i;
  };
  return { roots: roots.map(visit), nodes };
}

function send(w: Wire): void {
  const b = Buffer.from(JSON.stringify(w));
  for (let off = 0; off < b.length;) off += writeSync(3, b, off, b.length - off);
}

async function main(): Promise<void> {
  const roots: Recipe[] = [];
  try {
    const argv = process.argv.slice(2);
    for (let i = 0; i + 1 < argv.length; i += 2) roots.push(await load(argv[i]!, argv[i + 1]!));
    send(toWire(roots));
  } catch (e) {
    const m = isMiqError(e) ? e : new MiqError('MIQ_BAD_INPUT', `recipe evaluation failed: ${(e as Error)?.message ?? String(e)}`);
    send({ error: m.toJSON() });
  }
  process.exit(0);
}

void main();
