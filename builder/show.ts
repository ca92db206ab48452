/** What `miq recipe show` prints: a recipe's key, store path and inputs, computed without building. */
import { analyse, type Node } from './key.js';
import type { Recipe } from './recipe.js';

export interface RecipeInfo {
  name: string;
  version: string;
  key: string;
  path: string;
  host: string[];
  sources: { name: string; url: string; algo: string; hash: string }[];
  buildDeps: { name: string; key: string; path: string }[];
  runDeps: { name: string; key: string; path: string }[];
  env: Record<string, string>;
  script: string;
  /** The exact bytes whose BLAKE3 is the key. */
  canonical: string;
}

const dep = (n: Node): { name: string; key: string; path: string } => ({ name: n.recipe.name, key: n.key, path: n.path });

export function describeRecipe(r: Recipe): RecipeInfo {
  const n = analyse([r]).roots[0]!;
  return {
    name: r.name,
    version: r.version,
    key: n.key,
    path: n.path,
    host: [...r.host],
    sources: r.sources.map((s) => ({ name: s.name, url: s.url, algo: s.algo, hash: s.hash })),
    buildDeps: n.buildDeps.map(dep),
    runDeps: n.runDeps.map(dep),
    env: { ...r.env },
    script: r.script,
    canonical: n.canonical,
  };
}
