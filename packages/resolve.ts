/**
 * Resolution: which packages (one version each) satisfy a request on an empty system, as apt
 * would choose them. The encoding (the feasibility spike of issue 12 matched apt exactly on
 * Debian 12 with it):
 *   - one boolean per candidate package in the request's closure (only what the request can
 *     reach: encoding the whole 63k-package index took 11 s);
 *   - Depends and Pre-Depends: per group, `p → s1 ∨ s2 ∨ …` over every package that satisfies
 *     an alternative: the real package when its version matches, and providers (an unversioned
 *     Provides satisfies only an unversioned relation); `:any` is accepted;
 *   - Conflicts and Breaks: `¬p ∨ ¬q`;
 *   - minimised first: groups whose preferred satisfier (the first alternative's real
 *     package; for a purely virtual name, its provider with the best Priority) is not chosen;
 *     then the number of packages.
 * Pure apart from the solver call.
 */
import { MiqError } from '../store/errors.js';
import { formatRelation, type Relation } from './deb822.js';
import { logicSolver, type SatProblem, type SatSolver } from './solver.js';
import { fieldOf, rel, type Pkg, type Universe } from './universe.js';
import { satisfies } from './version.js';

export interface ResolveRequest {
  /** `name` or `name=version`. */
  packages: readonly string[];
  /** Add the Essential set (and apt, which apt itself treats as essential). */
  essential?: boolean;
}

export interface Edge {
  from: Pkg;
  to: Pkg;
  /** The dependency group as written, e.g. `libc6 (>= 2.34)` or `mawk | awk`. */
  label: string;
}

export interface Resolution {
  packages: Pkg[];
  roots: Pkg[];
  /** One edge per satisfied dependency group, to the chosen satisfier. */
  edges: Edge[];
  seconds: number;
  /** Size of the encoded problem. */
  closure: number;
}

export interface Rule {
  kind: 'request' | 'depends' | 'conflicts' | 'missing';
  text: string;
}

const PRIORITY: Record<string, number> = { required: 0, important: 1, standard: 2, optional: 3, extra: 4 };
const prio = (p: Pkg): number => PRIORITY[fieldOf(p, 'Priority') ?? 'optional'] ?? 3;
const isEssential = (p: Pkg): boolean => fieldOf(p, 'Essential') === 'yes';

/** Every package that satisfies one alternative, preferred first. */
export function satisfiers(u: Universe, r: Relation, chosen: (name: string) => Pkg | undefined): Pkg[] {
  if (r.arch && r.arch !== 'any' && r.arch !== 'native' && r.arch !== u.repos[0]?.config.arch) return [];
  const out: Pkg[] = [];
  const real = chosen(r.name);
  if (real && (!r.op || satisfies(real.version, r.op, r.version!))) out.push(real);
  const provs = u.providersOf(r.name)
    .filter((x) => (r.op ? x.version !== undefined && satisfies(x.version, r.op, r.version!) : true))
    .map((x) => chosen(x.pkg.name) === x.pkg ? x.pkg : undefined)
    .filter((x): x is Pkg => x !== undefined && x !== real);
  provs.sort((a, b) => prio(a) - prio(b) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const p of provs) if (!out.includes(p)) out.push(p);
  return out;
}

/** Everything the solver is told, with names for the rules (for explanations). */
export interface Encoding {
  pkgs: Pkg[];
  index: Map<Pkg, number>;
  problem: SatProblem;
  rules: Rule[];
  roots: Pkg[];
  groups: { from: Pkg; label: string; sats: Pkg[] }[];
}

export function encode(u: Universe, req: ResolveRequest): Encoding {
  const pinned = new Map<string, Pkg>();
  const roots: Pkg[] = [];
  const rules: Rule[] = [];
  const ruleClauses: number[][][] = [];
  const missing: string[] = [];
  for (const spec of req.packages) {
    const p = u.find(spec);
    if (p) {
      if (spec.includes('=')) pinned.set(p.name, p);
      roots.push(p);
      continue;
    }
    // A virtual name asked for directly: apt refuses it unless one package provides it.
    const prov = [...new Set(u.providersOf(spec).map((x) => x.pkg))];
    if (prov.length === 1) roots.push(prov[0]!);
    else missing.push(prov.length ? `${spec} is a virtual package provided by ${prov.map((x) => x.name).slice(0, 6).join(', ')}: name one of them` : `no package ${spec} in the repositories`);
  }
  if (missing.length) throw new MiqError('MIQ_NOT_FOUND', missing.join('; '), { details: { missing } });
  if (req.essential) {
    roots.push(...u.essentials());
  }
  const chosen = (name: string): Pkg | undefined => pinned.get(name) ?? u.candidate(name);

  const index = new Map<Pkg, number>();
  const pkgs: Pkg[] = [];
  const v = (p: Pkg): number => {
    let i = index.get(p);
    if (i === undefined) {
      pkgs.push(p);
      index.set(p, (i = pkgs.length));
    }
    return i;
  };
  const hard: number[][] = [];
  const groups: Encoding['groups'] = [];
  const penalties: number[] = [];
  const deferredPenalties: { p: Pkg; pref: Pkg; sats: Pkg[] }[] = [];
  const queue: Pkg[] = [];
  const seen = new Set<Pkg>();
  const visit = (p: Pkg): void => {
    if (!seen.has(p)) {
      seen.add(p);
      queue.push(p);
    }
  };
  for (const r of roots) {
    visit(r);
    rules.push({ kind: 'request', text: `you asked for ${r.name}${req.essential && (isEssential(r) || r.name === 'apt') && !req.packages.includes(r.name) ? ' (Essential)' : ''}` });
    ruleClauses.push([[v(r)]]);
  }
  while (queue.length) {
    const p = queue.shift()!;
    const pv = v(p);
    for (const field of ['Pre-Depends', 'Depends'] as const) {
      for (const g of rel(p, field)) {
        const sats: Pkg[] = [];
        for (const alt of g) for (const s of satisfiers(u, alt, chosen)) if (!sats.includes(s)) sats.push(s);
        const label = g.map(formatRelation).join(' | ');
        groups.push({ from: p, label, sats });
        rules.push({ kind: sats.length ? 'depends' : 'missing', text: sats.length ? `${p.name} ${field}: ${label}` : `${p.name} ${field}: ${label}, which no package satisfies` });
        ruleClauses.push([[-pv, ...sats.map(v)]]);
        for (const s of sats) visit(s);
        if (sats.length > 1) deferredPenalties.push({ p, pref: sats[0]!, sats });
      }
    }
  }
  // Conflicts only matter between packages of the closure.
  for (const p of pkgs.slice()) {
    for (const field of ['Conflicts', 'Breaks'] as const) {
      for (const g of rel(p, field)) {
        for (const alt of g) {
          const hits = new Set<Pkg>();
          const real = chosen(alt.name);
          if (real && index.has(real) && (!alt.op || satisfies(real.version, alt.op, alt.version!))) hits.add(real);
          for (const x of u.providersOf(alt.name)) {
            if (!index.has(x.pkg)) continue;
            if (alt.op ? x.version !== undefined && satisfies(x.version, alt.op, alt.version!) : true) hits.add(x.pkg);
          }
          hits.delete(p);
          for (const q of hits) {
            rules.push({ kind: 'conflicts', text: `${p.name} ${field}: ${formatRelation(alt)}${q.name !== alt.name ? ` (${q.name} provides it)` : ''}` });
            ruleClauses.push([[-v(p), -v(q)]]);
          }
        }
      }
    }
  }
  let nvars = pkgs.length;
  for (const d of deferredPenalties) {
    const n = ++nvars;
    hard.push([-index.get(d.p)!, index.get(d.pref)!, n]);
    penalties.push(n);
  }
  const problem: SatProblem = { vars: nvars, hard, rules: ruleClauses, objectives: [penalties, pkgs.map((_, i) => i + 1)] };
  return { pkgs, index, problem, rules, roots, groups };
}

/**
 * The answer without a solver, when there is an obvious one. With no penalty, every chosen
 * package's every group has its preferred satisfier chosen (its penalty clause says so), so
 * every penalty-free answer contains G, the closure of the request under preferred satisfiers.
 * If G itself breaks no rule it is therefore the one optimum (no penalty, fewest packages), the
 * same set the solver would return; most requests are like that, and they skip loading MiniSat
 * (0.5-1.5 s). Pure.
 */
export function preferredAnswer(enc: Encoding): Set<number> | undefined {
  const byFrom = new Map<Pkg, Pkg[]>();
  for (const g of enc.groups) {
    // An unsatisfiable group of a chosen package breaks its rule: the check below says so.
    if (g.sats.length === 0) continue;
    let l = byFrom.get(g.from);
    if (!l) byFrom.set(g.from, (l = []));
    l.push(g.sats[0]!);
  }
  const chosen = new Set<number>();
  const queue = [...enc.roots];
  for (const r of enc.roots) chosen.add(enc.index.get(r)!);
  while (queue.length) {
    const p = queue.pop()!;
    for (const s of byFrom.get(p) ?? []) {
      const v = enc.index.get(s)!;
      if (!chosen.has(v)) {
        chosen.add(v);
        queue.push(s);
      }
    }
  }
  // Variables past the packages are penalties: all false here.
  const holds = (c: readonly number[]): boolean => c.some((l) => (l > 0 ? chosen.has(l) : !chosen.has(-l)));
  if (!enc.problem.hard.every(holds)) return undefined;
  if (!enc.problem.rules.every((cs) => cs.every(holds))) return undefined;
  return chosen;
}

export function resolve(u: Universe, req: ResolveRequest, solver: SatSolver = logicSolver): Resolution {
  const t0 = performance.now();
  const enc = encode(u, req);
  const quick = preferredAnswer(enc);
  const ans = quick ? { sat: true as const, trueVars: quick } : solver.solve(enc.problem, { core: true });
  if (!ans.sat) {
    const core = ans.core.map((i) => enc.rules[i]!);
    throw new MiqError('MIQ_CONFLICT', `no set of packages satisfies the request; these rules cannot all hold:\n${core.map((r) => `  - ${r.text}`).join('\n')}`, { details: { unsatisfiable: core } });
  }
  const chosen = enc.pkgs.filter((_, i) => ans.trueVars.has(i + 1));
  const set = new Set(chosen);
  const edges: Edge[] = [];
  for (const g of enc.groups) {
    if (!set.has(g.from)) continue;
    const to = g.sats.find((s) => set.has(s));
    if (to) edges.push({ from: g.from, to, label: g.label });
  }
  chosen.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { packages: chosen, roots: enc.roots, edges, seconds: (performance.now() - t0) / 1000, closure: enc.pkgs.length };
}

/** Rules of the encoding that a given set breaks (empty: the set is a valid answer). Used to
 * check apt's own answers against miq's rules. */
export function violations(u: Universe, req: ResolveRequest, set: readonly { name: string; version: string }[]): string[] {
  const enc = encode(u, req);
  const byId = new Map(set.map((x) => [`${x.name}=${x.version}`, x]));
  const truth = (lit: number): boolean => {
    const p = enc.pkgs[Math.abs(lit) - 1];
    const val = p !== undefined && byId.has(`${p.name}=${p.version}`);
    return lit > 0 ? val : !val;
  };
  const out: string[] = [];
  for (const x of set) if (!enc.pkgs.some((p) => p.name === x.name && p.version === x.version)) out.push(`${x.name}=${x.version} is not a candidate in the request's closure`);
  enc.problem.rules.forEach((cs, i) => {
    for (const c of cs) if (!c.some(truth)) out.push(enc.rules[i]!.text);
  });
  return out;
}

/** Why each chosen package is there: the first edge that reaches it from a root. */
export function explain(r: Resolution): Map<Pkg, Edge | 'requested'> {
  const out = new Map<Pkg, Edge | 'requested'>();
  const queue: Pkg[] = [];
  for (const p of r.roots) {
    out.set(p, 'requested');
    queue.push(p);
  }
  const bySrc = new Map<Pkg, Edge[]>();
  for (const e of r.edges) {
    let l = bySrc.get(e.from);
    if (!l) bySrc.set(e.from, (l = []));
    l.push(e);
  }
  while (queue.length) {
    const p = queue.shift()!;
    for (const e of bySrc.get(p) ?? []) {
      if (out.has(e.to)) continue;
      out.set(e.to, e);
      queue.push(e.to);
    }
  }
  return out;
}

/** Graphviz text: nodes `name=version`, one labelled edge per satisfied dependency group. */
export function toDot(r: Resolution): string {
  const q = (s: string): string => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
  const id = (p: Pkg): string => q(`${p.name}=${p.version}`);
  const lines = ['digraph resolution {', '  rankdir=LR;', '  node [shape=box, fontsize=10];', '  edge [fontsize=8];'];
  const roots = new Set(r.roots);
  for (const p of r.packages) lines.push(`  ${id(p)}${roots.has(p) ? ' [style=bold]' : ''};`);
  for (const e of r.edges) lines.push(`  ${id(e.from)} -> ${id(e.to)} [label=${q(e.label)}];`);
  lines.push('}');
  return `${lines.join('\n')}\n`;
}
