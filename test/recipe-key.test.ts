import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { analyse, canonicalJson, RECIPE_FORMAT } from '../builder/key.js';
import { PROJECT_ROOT, loadRecipe, recipeModulePath } from '../builder/load.js';
import { debianArchives, mirrorBases, parseDeb822Sources, parseOneLineSources, resolveUrl } from '../builder/mirrors.js';
import { type Recipe, type RecipeInput, normaliseScript, recipe } from '../builder/recipe.js';
import { bwrapArgs } from '../builder/sandbox.js';
import { describeRecipe } from '../builder/show.js';
import { isMiqError } from '../store/errors.js';

const H1 = '31e066137a962676e89f69d1b65382de95a7ef7d914b8cb956f41ea72e0f516b';
const H2 = '0000000000000000000000000000000000000000000000000000000000000001';

const base: RecipeInput = {
  name: 'demo',
  version: '1.0',
  sources: [{ url: 'mirror://debian/pool/main/d/demo/demo_1.0.orig.tar.gz', sha256: H1 }],
  env: { CFLAGS: '-O2' },
  host: ['toolchain'],
  script: 'tar xf "$src"\nmake install PREFIX="$out"',
};
const lib = recipe({ name: 'lib', version: '2', host: ['toolchain'], script: 'mkdir -p "$out/lib"' });
const lib2 = recipe({ name: 'lib', version: '2', host: ['toolchain'], script: 'mkdir -p "$out/lib" ' });
const keyOf = (r: Recipe): string => analyse([r]).roots[0]!.key;
const pathOf = (r: Recipe): string => analyse([r]).roots[0]!.path;

test('canonical JSON: sorted keys, no whitespace, strict types (golden)', () => {
  assert.equal(canonicalJson({ b: [1, 'x', true], a: { d: '', c: 'é"\n' } }), '{"a":{"c":"é\\"\\n","d":""},"b":[1,"x",true]}');
  for (const bad of [null, undefined, 1.5, () => 1, new Date(0)]) {
    assert.throws(() => canonicalJson({ x: bad }), (e) => isMiqError(e, 'MIQ_BAD_INPUT'));
  }
});

test('recipe key and store path are pinned (golden): a change here moves every store path', () => {
  const r = recipe({ ...base, buildDeps: [lib] });
  const n = analyse([r]).roots[0]!;
  assert.equal(RECIPE_FORMAT, 'miq-recipe-1');
  assert.equal(
    n.canonical,
    '{"buildDeps":["' + keyOf(lib) + '"],"env":{"CFLAGS":"-O2"},"format":"miq-recipe-1","host":["toolchain"],"name":"demo","runDeps":[],'
      + '"script":"tar xf \\"$src\\"\\nmake install PREFIX=\\"$out\\"","sources":[{"name":"demo_1.0.orig.tar.gz","sha256":"' + H1
      + '","url":"mirror://debian/pool/main/d/demo/demo_1.0.orig.tar.gz"}],"version":"1.0"}',
  );
  assert.equal(keyOf(lib), '064616c7009bcbe7c66ee55d39aa3382d4cdb6d37027a9e451a29d8ceeb7a97f');
  assert.equal(n.key, '6293a18fea692710615fe44b503222f015e47549d3f9b838066246d2c6d34b64');
  assert.equal(n.path, `demo-1.0-${n.key.slice(0, 32)}`);
});

test('the key changes with every input', () => {
  const k0 = keyOf(recipe(base));
  const variants: [string, RecipeInput][] = [
    ['name', { ...base, name: 'demo2' }],
    ['version', { ...base, version: '1.1' }],
    ['one byte of the script', { ...base, script: base.script.replace('make', 'make ') }],
    ['source hash', { ...base, sources: [{ url: base.sources![0]!.url, sha256: H2 }] }],
    ['source algorithm', { ...base, sources: [{ url: base.sources![0]!.url, blake3: H1 }] }],
    ['source url', { ...base, sources: [{ url: 'mirror://debian/pool/main/d/demo/demo_1.0.orig.tar.xz', sha256: H1 }] }],
    ['source name', { ...base, sources: [{ ...base.sources![0]!, name: 'x.tar.gz' }] }],
    ['env', { ...base, env: { CFLAGS: '-O3' } }],
    ['host toolchain', { ...base, host: [] }],
    ['a build dependency', { ...base, buildDeps: [lib] }],
    ['a run dependency', { ...base, runDeps: [lib] }],
  ];
  const seen = new Map<string, string>([[k0, 'base']]);
  for (const [what, input] of variants) {
    const k = keyOf(recipe(input));
    assert.ok(!seen.has(k), `${what} gives the same key as ${seen.get(k)}`);
    seen.set(k, what);
  }
  // A change deep in a dependency reaches the dependent.
  assert.notEqual(keyOf(recipe({ ...base, buildDeps: [lib] })), keyOf(recipe({ ...base, buildDeps: [lib2] })));
  // Build-time and run-time dependencies are kept apart.
  assert.notEqual(keyOf(recipe({ ...base, buildDeps: [lib] })), keyOf(recipe({ ...base, runDeps: [lib] })));
});

test('the key does not change with formatting: re-indented script, key order, equal copies', () => {
  const a = recipe(base);
  const b = recipe({ script: '\n      tar xf "$src"\n      make install PREFIX="$out"\n    ', host: ['toolchain', 'toolchain'], env: { CFLAGS: '-O2' }, version: '1.0', name: 'demo', sources: base.sources! });
  assert.equal(keyOf(a), keyOf(b));
  assert.equal(normaliseScript('\n\n    a\n      b\n\n    c\n  '), 'a\n  b\n\nc');
  // Thunks and direct references give the same key.
  assert.equal(keyOf(recipe({ ...base, runDeps: [lib] })), keyOf(recipe({ ...base, runDeps: [() => lib] })));
});

test('two recipe files with the same data formatted differently have the same key', async () => {
  const a = await loadRecipe(join(PROJECT_ROOT, 'test/fixtures/recipes/fmt-a.ts'));
  const b = await loadRecipe(join(PROJECT_ROOT, 'test/fixtures/recipes/fmt-b.ts'));
  assert.equal(describeRecipe(a).key, describeRecipe(b).key);
  assert.equal(describeRecipe(a).path, pathOf(a));
});

test('recipe() refuses bad data with MIQ_BAD_INPUT', () => {
  const bad: [string, unknown][] = [
    ['no hash', { ...base, sources: [{ url: 'https://x/y.tar' }] }],
    ['two hashes', { ...base, sources: [{ url: 'https://x/y.tar', sha256: H1, blake3: H1 }] }],
    ['short hash', { ...base, sources: [{ url: 'https://x/y.tar', sha256: 'abc' }] }],
    ['upper-case hash', { ...base, sources: [{ url: 'https://x/y.tar', sha256: H1.toUpperCase() }] }],
    ['unknown scheme', { ...base, sources: [{ url: 'ftp://x/y.tar', sha256: H1 }] }],
    ['missing dependency', { ...base, buildDeps: [undefined] }],
    ['non-recipe dependency', { ...base, runDeps: [{ name: 'x' }] }],
    ['reserved env', { ...base, env: { out: '/x' } }],
    ['unknown field', { ...base, deps: [] }],
    ['unknown host feature', { ...base, host: ['network'] }],
    ['bad name', { ...base, name: '.hidden' }],
    ['empty script', { ...base, script: '  \n ' }],
  ];
  for (const [what, input] of bad) {
    assert.throws(() => recipe(input as RecipeInput), (e) => isMiqError(e, 'MIQ_BAD_INPUT'), what);
  }
});

test('a dependency cycle is reported by name', async () => {
  let a: Recipe | undefined;
  const b = recipe({ name: 'b', version: '1', host: ['toolchain'], script: 'true', buildDeps: [() => a!] });
  a = recipe({ name: 'a', version: '1', host: ['toolchain'], script: 'true', runDeps: [b] });
  assert.throws(() => analyse([a!]), (e) => isMiqError(e, 'MIQ_BAD_INPUT') && /dependency cycle: a -> b -> a/.test(e.message));
  const fromFiles = await loadRecipe(join(PROJECT_ROOT, 'test/fixtures/recipes/cycle-a.ts'));
  assert.throws(() => describeRecipe(fromFiles), (e) => isMiqError(e, 'MIQ_BAD_INPUT') && /cycle-a -> cycle-b -> cycle-a/.test(e.message));
});

test('recipe files: .ts maps to its compiled twin, bare names to recipes/, stale sources refused', () => {
  assert.equal(recipeModulePath('hello'), join(PROJECT_ROOT, 'dist/recipes/hello.js'));
  assert.equal(recipeModulePath(join(PROJECT_ROOT, 'recipes/zlib.ts')), join(PROJECT_ROOT, 'dist/recipes/zlib.js'));
  assert.throws(() => recipeModulePath('no-such-recipe'), (e) => isMiqError(e, 'MIQ_NOT_FOUND'));
  const root = mkdtempSync(join(tmpdir(), 'miq-load-'));
  try {
    mkdirSync(join(root, 'recipes'));
    mkdirSync(join(root, 'dist/recipes'), { recursive: true });
    writeFileSync(join(root, 'recipes/x.ts'), 'export default 1;\n');
    writeFileSync(join(root, 'dist/recipes/x.js'), 'export default 1;\n');
    utimesSync(join(root, 'recipes/x.ts'), 1000, 1000);
    assert.equal(recipeModulePath(join(root, 'recipes/x.ts'), root), join(root, 'dist/recipes/x.js'));
    utimesSync(join(root, 'recipes/x.ts'), new Date(), new Date(Date.now() + 60_000));
    assert.throws(() => recipeModulePath(join(root, 'recipes/x.ts'), root), (e) => isMiqError(e, 'MIQ_BAD_INPUT') && /npx tsc/.test(e.message));
    writeFileSync(join(root, 'recipes/y.ts'), 'export default 2;\n');
    utimesSync(join(root, 'recipes/x.ts'), 1000, 1000);
    assert.throws(() => recipeModulePath(join(root, 'recipes/x.ts'), root), (e) => isMiqError(e, 'MIQ_BAD_INPUT') && /y\.ts \(not compiled\)/.test(e.message));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a recipe importing a module that does not exist is a clear error', async () => {
  await assert.rejects(loadRecipe(join(PROJECT_ROOT, 'test/fixtures/recipes/missing-dep.ts')), (e) => isMiqError(e, 'MIQ_NOT_FOUND') && /no-such-recipe/.test(e.message));
});

test('apt sources: deb822 and one-line parsed; the main archive chosen, security left out', () => {
  const deb822 = [
    'Types: deb deb-src',
    'URIs: http://mirror.example/debian/',
    'Suites: bookworm bookworm-updates',
    'Components: main',
    '',
    '# a comment',
    'Types: deb',
    'URIs: http://mirror.example/debian-security',
    'Suites: bookworm-security',
    'Components: main',
    '',
    'Types: deb',
    'URIs: http://disabled.example/debian',
    'Suites: bookworm',
    'Enabled: no',
  ].join('\n');
  const e1 = parseDeb822Sources(deb822);
  assert.equal(e1.length, 3);
  assert.deepEqual(debianArchives(e1), ['http://mirror.example/debian']);
  const oneLine = 'deb [arch=amd64 signed-by=/k.gpg] http://a.example/debian bookworm main\ndeb http://a.example/debian-security bookworm-security main\n# deb http://c.example/debian x main\n';
  assert.deepEqual(debianArchives(parseOneLineSources(oneLine)), ['http://a.example/debian']);
});

test('mirror:// resolves from options, then $MIQ_MIRROR_NAME, then config, then apt', () => {
  const apt = mkdtempSync(join(tmpdir(), 'miq-apt-'));
  try {
    mkdirSync(join(apt, 'sources.list.d'));
    writeFileSync(join(apt, 'sources.list.d/debian.sources'), 'Types: deb\nURIs: http://apt.example/debian\nSuites: bookworm\nComponents: main\n');
    const env = { MIQ_CONFIG: join(apt, 'none.json') };
    assert.deepEqual(resolveUrl('mirror://debian/pool/main/h/x.tar.gz', { aptDir: apt, env }), ['http://apt.example/debian/pool/main/h/x.tar.gz']);
    writeFileSync(join(apt, 'c.json'), JSON.stringify({ mirrors: { debian: ['http://cfg.example/d/'] } }));
    assert.deepEqual(mirrorBases('debian', { aptDir: apt, env: { MIQ_CONFIG: join(apt, 'c.json') } }), ['http://cfg.example/d']);
    assert.deepEqual(mirrorBases('debian', { aptDir: apt, env: { ...env, MIQ_MIRROR_DEBIAN: 'http://e1.example/d,http://e2.example/d/' } }), ['http://e1.example/d', 'http://e2.example/d']);
    assert.deepEqual(mirrorBases('debian', { aptDir: apt, env: { MIQ_MIRROR_DEBIAN: 'http://e.example' }, mirrors: { debian: ['http://opt.example/'] } }), ['http://opt.example']);
    assert.throws(() => mirrorBases('gnu', { aptDir: apt, env }), (e) => isMiqError(e, 'MIQ_BAD_INPUT') && /MIQ_MIRROR_GNU/.test(e.message));
    assert.deepEqual(resolveUrl('https://x.example/a', { aptDir: apt, env }), ['https://x.example/a']);
  } finally {
    rmSync(apt, { recursive: true, force: true });
  }
});

test('sandbox arguments: no host directories without the toolchain, root read-only, no network', () => {
  const spec = {
    buildDir: '/w/build', outDir: '/w/out', outPath: 'x-1-' + '0'.repeat(32), etcDir: '/w/etc', scriptFile: '/w/script.sh',
    deps: [{ path: 'sh-1-' + '1'.repeat(32), dir: '/w/deps/sh' }], sources: [], env: { PATH: '/x' }, toolchain: false, shellFrom: 'sh-1-' + '1'.repeat(32),
  };
  const args = bwrapArgs(spec);
  const binds = args.flatMap((a, i) => (a === '--bind' || a === '--ro-bind' ? [args[i + 1]!] : []));
  assert.deepEqual(binds.sort(), ['/w/build', '/w/deps/sh', '/w/etc/group', '/w/etc/hosts', '/w/etc/passwd', '/w/out', '/w/script.sh']);
  assert.ok(args.includes('--unshare-all') && args.includes('--clearenv'));
  assert.ok(args.indexOf('--remount-ro') > args.lastIndexOf('--bind'));
  const withTc = bwrapArgs({ ...spec, toolchain: true });
  assert.ok(withTc.join(' ').includes('--ro-bind /usr /usr'));
});
