/**
 * The layers, checked over the real import graph of the sources (DESIGN §2, STYLE "one module
 * per concept, imports pointing one way"):
 *  - a folder imports only folders of a lower layer (cli → mount → fs → store, cli → builder →
 *    store, …); store imports no other folder;
 *  - across folders, only a folder's face: `index.ts` and the modules it re-exports;
 *  - shipped code never imports test/;
 *  - no import cycle anywhere (type-only and dynamic imports count: they tie modules as well).
 * The graph is read with the TypeScript parser, so comments and strings do not count as imports.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Lower numbers are lower layers. A folder may import its own modules and lower layers. */
export const LAYERS: Record<string, number> = {
  store: 0,
  fs: 1,
  builder: 1,
  image: 1,
  packages: 2,
  mount: 2,
  recipes: 2,
  benchmarks: 2,
  cli: 3,
};

export interface Edge { from: string; to: string; line: number }

/** Every .ts module under `root` (project-relative paths with '/'), without node_modules/dist. */
export function sources(root: string): string[] {
  const out: string[] = [];
  const visit = (d: string): void => {
    for (const n of readdirSync(d)) {
      if (n === 'node_modules' || n === 'dist' || n.startsWith('.')) continue;
      // Recipe fixtures include a deliberate import cycle (the loader's cycle test).
      if (relative(root, join(d, n)) === join('test', 'fixtures')) continue;
      const p = join(d, n);
      if (statSync(p).isDirectory()) visit(p);
      else if (n.endsWith('.ts') && !n.endsWith('.d.ts')) out.push(relative(root, p).split(sep).join('/'));
    }
  };
  for (const top of readdirSync(root)) {
    const p = join(root, top);
    if (top in LAYERS || top === 'test') if (statSync(p).isDirectory()) visit(p);
  }
  return out.sort();
}

/** Relative import specifiers of one module: static, re-exports, dynamic import(). */
export function importsOf(file: string, text: string): { spec: string; line: number; reexport: boolean }[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true);
  const out: { spec: string; line: number; reexport: boolean }[] = [];
  const add = (lit: ts.Expression | undefined, node: ts.Node, reexport: boolean): void => {
    if (lit && ts.isStringLiteral(lit)) out.push({ spec: lit.text, line: sf.getLineAndCharacterOfPosition(node.getStart()).line + 1, reexport });
  };
  const walk = (n: ts.Node): void => {
    if (ts.isImportDeclaration(n)) add(n.moduleSpecifier, n, false);
    else if (ts.isExportDeclaration(n)) add(n.moduleSpecifier, n, true);
    else if (ts.isCallExpression(n) && n.expression.kind === ts.SyntaxKind.ImportKeyword) add(n.arguments[0], n, false);
    else if (ts.isImportTypeNode(n) && ts.isLiteralTypeNode(n.argument)) add(n.argument.literal as ts.Expression, n, false);
    ts.forEachChild(n, walk);
  };
  walk(sf);
  return out;
}

/** Project-relative module a specifier names, or undefined for packages and Node built-ins. */
function target(from: string, spec: string): string | undefined {
  if (!spec.startsWith('.')) return undefined;
  return join(dirname(from), spec).split(sep).join('/').replace(/\.js$/, '.ts');
}

export function graph(root: string, files: string[], read = (f: string) => readFileSync(join(root, f), 'utf8')): { edges: Edge[]; reexports: Map<string, string[]> } {
  const edges: Edge[] = [];
  const reexports = new Map<string, string[]>();
  for (const f of files) {
    for (const im of importsOf(f, read(f))) {
      const to = target(f, im.spec);
      if (!to) continue;
      edges.push({ from: f, to, line: im.line });
      if (im.reexport) reexports.set(f, [...(reexports.get(f) ?? []), to]);
    }
  }
  return { edges, reexports };
}

const top = (f: string): string => f.split('/')[0]!;

/** A folder's face: its index.ts and the modules that re-exports (following nested index files,
 * e.g. store/remote/index.ts). */
export function face(folder: string, reexports: Map<string, string[]>): Set<string> {
  const out = new Set<string>();
  const todo = [`${folder}/index.ts`];
  while (todo.length) {
    const m = todo.pop()!;
    if (out.has(m)) continue;
    out.add(m);
    if (m.endsWith('/index.ts')) for (const t of reexports.get(m) ?? []) if (top(t) === folder) todo.push(t);
  }
  return out;
}

/** Every rule broken by `edges`, one readable line each. */
export function violations(edges: Edge[], reexports: Map<string, string[]>, exists: (f: string) => boolean): string[] {
  const out: string[] = [];
  const faces = new Map<string, Set<string>>();
  for (const e of edges) {
    const a = top(e.from), b = top(e.to);
    const at = `${e.from}:${e.line}`;
    if (a === 'test') continue;
    if (b === 'test') {
      out.push(`${at} imports ${e.to}: shipped code must not import test/ (move what it needs out of test/)`);
      continue;
    }
    if (!exists(e.to)) {
      out.push(`${at} imports ${e.to}, which does not exist`);
      continue;
    }
    if (a === b) continue;
    if (!(a in LAYERS) || !(b in LAYERS)) {
      out.push(`${at} imports ${e.to}: folder ${!(a in LAYERS) ? a : b} has no layer (add it to LAYERS in test/layers.test.ts)`);
      continue;
    }
    if (LAYERS[b]! >= LAYERS[a]!) {
      out.push(`${at} imports ${e.to}: ${a}/ (layer ${LAYERS[a]}) may not import ${b}/ (layer ${LAYERS[b]}): imports point down only`);
      continue;
    }
    if (!faces.has(b)) faces.set(b, face(b, reexports));
    if (!faces.get(b)!.has(e.to)) out.push(`${at} imports ${e.to}, an internal module of ${b}/: use what ${b}/index.ts exports (or add the module to that face if it is meant to be public)`);
  }
  return out;
}

/** Import cycles (strongly connected components of more than one module, or a self-import). */
export function cycles(edges: Edge[]): string[][] {
  const adj = new Map<string, string[]>();
  for (const e of edges) adj.set(e.from, [...(adj.get(e.from) ?? []), e.to]);
  let index = 0;
  const idx = new Map<string, number>(), low = new Map<string, number>(), on = new Set<string>();
  const stack: string[] = [];
  const out: string[][] = [];
  const strong = (v: string): void => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of adj.get(v) ?? []) {
      if (!idx.has(w)) {
        strong(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1 || (adj.get(v) ?? []).includes(v)) out.push(comp.sort());
    }
  };
  for (const v of adj.keys()) if (!idx.has(v)) strong(v);
  return out;
}

test('layers: imports point down, cross folders only through faces, never from shipped code into test/', () => {
  const files = sources(ROOT);
  assert.ok(files.length > 100 && files.includes('store/api.ts'), 'the source tree was found');
  const { edges, reexports } = graph(ROOT, files);
  const bad = violations(edges, reexports, (f) => existsSync(join(ROOT, f)));
  assert.equal(bad.length, 0, `layer violations:\n${bad.join('\n')}`);
});

test('layers: no code outside store/ reaches for the local store class or a layered store\'s parts', () => {
  const bad: string[] = [];
  for (const f of sources(ROOT)) {
    if (f.startsWith('store/') || f.startsWith('test/')) continue;
    readFileSync(join(ROOT, f), 'utf8').split('\n').forEach((l, i) => {
      if (/\bLocalStore\b|local\.ts'|\{ local\?: Store \}|\.local as\b/.test(l)) bad.push(`${f}:${i + 1}: ${l.trim()}`);
    });
  }
  assert.equal(bad.length, 0, `use the Store interface (store.maintenance, store.writer, openStore):\n${bad.join('\n')}`);
});

test('layers: no import cycle in the project', () => {
  const { edges } = graph(ROOT, sources(ROOT));
  const c = cycles(edges);
  assert.equal(c.length, 0, `import cycles:\n${c.map((x) => x.join(' -> ')).join('\n')}`);
});

test('layers: the check itself catches each kind of violation', () => {
  const files: Record<string, string> = {
    'store/index.ts': "export { a } from './a.js';\n",
    'store/a.ts': "import { b } from './b.js';\nexport const a = b;\n",
    'store/b.ts': "import type { x } from '../fs/x.js';\nimport { a } from './a.js';\nexport const b = 1;\n",
    'fs/index.ts': "export * from './x.js';\n",
    'fs/x.ts': "import { b } from '../store/b.js';\nimport { a } from '../store/index.js';\nexport const x = await import('../test/helpers/h.js');\n",
    'test/helpers/h.ts': "import { b } from '../../store/b.js';\n",
  };
  const { edges, reexports } = graph('', Object.keys(files), (f) => files[f]!);
  const bad = violations(edges, reexports, (f) => f in files);
  assert.equal(bad.length, 3, bad.join('\n'));
  assert.match(bad[0]!, /^store\/b\.ts:1 imports fs\/x\.ts: store\/ \(layer 0\) may not import fs\//);
  assert.match(bad[1]!, /^fs\/x\.ts:1 imports store\/b\.ts, an internal module of store\//);
  assert.match(bad[2]!, /^fs\/x\.ts:3 imports test\/helpers\/h\.ts: shipped code must not import test\//);
  assert.deepEqual(cycles(edges), [['fs/x.ts', 'store/a.ts', 'store/b.ts', 'store/index.ts', 'test/helpers/h.ts']]);
});

/** Functions (declarations, methods, arrows, function expressions, accessors, constructors)
 * longer than `max` lines in one module, as `file:line name (N lines)`. A nested function counts
 * in its own right and inside its parent, as a reader meets it. */
export function longFunctions(file: string, text: string, max: number): string[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true);
  const out: string[] = [];
  const lineOf = (pos: number): number => sf.getLineAndCharacterOfPosition(pos).line + 1;
  const walk = (n: ts.Node): void => {
    if (ts.isFunctionLike(n) && 'body' in n && n.body) {
      const first = lineOf(n.getStart()), last = lineOf(n.getEnd());
      const name = n.name && ts.isIdentifier(n.name) ? n.name.text : ts.isVariableDeclaration(n.parent) && ts.isIdentifier(n.parent.name) ? n.parent.name.text : '(anonymous)';
      if (last - first + 1 > max) out.push(`${file}:${first} ${name} (${last - first + 1} lines)`);
    }
    ts.forEachChild(n, walk);
  };
  walk(sf);
  return out;
}

/** Issue 13's limit, for store/, fs/, mount/ and the benchmarks' report renderer. */
const FUNCTION_LIMIT = 150;

test(`layers: no function over ${FUNCTION_LIMIT} lines in store/, fs/, mount/ and benchmarks/report.ts`, () => {
  const long: string[] = [];
  for (const f of sources(ROOT)) {
    if (!/^(store|fs|mount)\//.test(f) && f !== 'benchmarks/report.ts') continue;
    long.push(...longFunctions(f, readFileSync(join(ROOT, f), 'utf8'), FUNCTION_LIMIT));
  }
  assert.equal(long.length, 0, `split these functions:\n${long.join('\n')}`);
});

test('layers: the function-length check counts a long nested arrow and ignores a short one', () => {
  const body = (n: number): string => Array.from({ length: n }, (_, i) => `  x += ${i};`).join('\n');
  const text = `export function outer() {\n  let x = 0;\n  const inner = () => {\n${body(160)}\n  };\n  const short = () => 1;\n  return inner() + short();\n}\n`;
  const found = longFunctions('store/x.ts', text, FUNCTION_LIMIT);
  assert.deepEqual(found.map((l) => l.replace(/ \(\d+ lines\)$/, '')), ['store/x.ts:1 outer', 'store/x.ts:3 inner']);
});
