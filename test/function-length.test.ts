/**
 * STYLE: no function over 150 lines in the store, fs and mount layers (a long function is several
 * concerns in one closure; split it by concern). Functions are counted from the TypeScript parse,
 * nested ones on their own (an inner function's lines count for its outer one too).
 *
 *   node dist/test/function-length.test.js --list [FOLDER…]   lists every function over the limit
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const LIMIT = 150;
/** Folders held to the limit. */
const CHECKED = ['fs', 'mount', 'store'];

export interface LongFunction { file: string; name: string; line: number; lines: number }

export function longFunctions(folders: string[], limit = LIMIT): LongFunction[] {
  const out: LongFunction[] = [];
  const visitDir = (d: string): void => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) visitDir(p);
      else if (n.endsWith('.ts') && !n.endsWith('.d.ts')) visitFile(p);
    }
  };
  const visitFile = (p: string): void => {
    const sf = ts.createSourceFile(p, readFileSync(p, 'utf8'), ts.ScriptTarget.ES2022, true);
    const lineOf = (pos: number): number => sf.getLineAndCharacterOfPosition(pos).line + 1;
    const walk = (node: ts.Node): void => {
      if (ts.isFunctionLike(node) && 'body' in node && node.body) {
        const first = lineOf(node.getStart(sf)), last = lineOf(node.getEnd());
        if (last - first + 1 > limit) out.push({ file: relative(ROOT, p), name: nameOf(node), line: first, lines: last - first + 1 });
      }
      ts.forEachChild(node, walk);
    };
    walk(sf);
  };
  for (const f of folders) visitDir(join(ROOT, f));
  return out;
}

function nameOf(node: ts.Node): string {
  const n = (node as { name?: ts.Node }).name;
  if (n && (ts.isIdentifier(n) || ts.isStringLiteral(n))) return n.text;
  const p = node.parent;
  if (p && (ts.isVariableDeclaration(p) || ts.isPropertyAssignment(p)) && ts.isIdentifier(p.name)) return p.name.text;
  return '(anonymous)';
}

if (process.argv.includes('--list')) {
  const folders = process.argv.slice(process.argv.indexOf('--list') + 1);
  for (const f of longFunctions(folders.length ? folders : CHECKED)) process.stdout.write(`${f.file}:${f.line} ${f.name}: ${f.lines} lines\n`);
} else {
  test(`no function over ${LIMIT} lines in ${CHECKED.join(', ')}`, () => {
    const long = longFunctions(CHECKED);
    assert.deepEqual(long.map((f) => `${f.file}:${f.line} ${f.name} (${f.lines} lines)`), []);
  });
  test('the check finds a long function', () => {
    // Guards the checker itself: the limit set below the longest function must list something.
    assert.ok(longFunctions(['fs'], 20).length > 0);
  });
}
