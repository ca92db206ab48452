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
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { MiqError, isMiqError } from '../store/errors.js';
import { type Recipe, isRecipe } from './recipe.js';

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

/** Loads a recipe file and returns its default export. */
export async function loadRecipe(arg: string, root = PROJECT_ROOT): Promise<Recipe> {
  const js = recipeModulePath(arg, root);
  let mod: { default?: unknown };
  try {
    mod = (await import(pathToFileURL(js).href)) as { default?: unknown };
  } catch (e) {
    if (isMiqError(e)) throw e;
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ERR_MODULE_NOT_FOUND') {
      throw new MiqError('MIQ_NOT_FOUND', `recipe ${arg} imports something that does not exist (missing dependency?): ${err.message}`, { cause: e });
    }
    if (e instanceof ReferenceError && /before initialization/.test(err.message)) {
      throw new MiqError('MIQ_BAD_INPUT', `recipe ${arg}: recipe modules import each other (a dependency cycle): ${err.message}`, { cause: e });
    }
    throw new MiqError('MIQ_BAD_INPUT', `recipe ${arg} failed to load: ${err.message}`, { cause: e });
  }
  if (!isRecipe(mod.default)) {
    throw new MiqError('MIQ_BAD_INPUT', `recipe ${arg} has no default export made by recipe({...})`);
  }
  return mod.default;
}
