/**
 * The SAT solver behind resolution, as a small interface: boolean variables 1..n, clauses of
 * signed literals, a list of objectives minimised one after the other (lexicographically), and
 * named rule groups that can be switched off to find a small unsatisfiable core. The one
 * implementation is MiniSat compiled to JavaScript (`logic-solver` 2.0.1, runs on Node 20).
 */
import { createRequire } from 'node:module';

export interface SatProblem {
  /** Number of variables; literals are ±(1..vars). */
  vars: number;
  /** Clauses that always hold. */
  hard: number[][];
  /** Clauses that hold while their rule is on (rule index → clauses). */
  rules: number[][][];
  /** Literals to minimise the count of, most important first. */
  objectives: number[][];
}

export type SatAnswer = { sat: true; trueVars: Set<number> } | { sat: false; core: number[] };

export interface SatSolver {
  /** Solves with every rule on; when unsatisfiable, `core` is a minimal set of rule indices
   * that cannot hold together (deletion-based). */
  solve(p: SatProblem, o?: { core?: boolean }): SatAnswer;
}

interface LogicModule {
  Solver: new () => LogicSolver;
  or(...t: unknown[]): unknown;
  and(...t: unknown[]): unknown;
  not(t: unknown): unknown;
  disablingAssertions<T>(f: () => T): T;
}
interface LogicSolution {
  getTrueVars(): string[];
}
interface LogicSolver {
  require(...f: unknown[]): void;
  getVarNum(name: string): number;
  solve(): LogicSolution | null;
  solveAssuming(f: unknown): LogicSolution | null;
  minimizeWeightedSum(s: LogicSolution, terms: unknown[], weights: number | number[]): LogicSolution;
}

let logic: LogicModule | undefined;
function L(): LogicModule {
  return (logic ??= createRequire(import.meta.url)('logic-solver') as LogicModule);
}

/** Values every solution shares: unit propagation from the unit clauses (the request, and
 * dependencies with one satisfier). Pure. */
export function propagate(vars: number, clauses: readonly (readonly number[])[]): Int8Array {
  const val = new Int8Array(vars + 1);
  let changed = true;
  while (changed) {
    changed = false;
    for (const c of clauses) {
      let free = 0;
      let last = 0;
      let sat = false;
      for (const l of c) {
        const x = val[l > 0 ? l : -l]!;
        if (x === 0) {
          free++;
          last = l;
        } else if ((x > 0) === (l > 0)) {
          sat = true;
          break;
        }
      }
      if (!sat && free === 1) {
        val[last > 0 ? last : -last] = last > 0 ? 1 : -1;
        changed = true;
      }
    }
  }
  return val;
}

export const logicSolver: SatSolver = {
  solve(p, o = {}) {
    const Logic = L();
    // Formula compilation with logic-solver's run-time type checks off: the problems come
    // from encode(), not from users; with them on, building the clauses of a desktop
    // metapackage took longer than solving it.
    return Logic.disablingAssertions(() => {
      const s = new Logic.Solver();
      const num = [0];
      for (let v = 1; v <= p.vars; v++) num.push(s.getVarNum(`v${v}`));
      const lit = (l: number): number => (l > 0 ? num[l]! : -num[-l]!);
      const all = [...p.hard, ...p.rules.flat()];
      for (const c of all) s.require(Logic.or(c.map(lit)));
      let sol = s.solve();
      if (!sol) return o.core ? { sat: false as const, core: core(p) } : { sat: false as const, core: [] };
      // Values fixed in every solution only add a constant to an objective: leaving them out
      // keeps the adder circuits small (a desktop metapackage's count: 2306 terms -> 1492).
      const fixed = propagate(p.vars, all);
      for (const obj of p.objectives) {
        const terms = obj.filter((l) => fixed[l > 0 ? l : -l] === 0).map(lit);
        if (terms.length === 0) continue;
        sol = s.minimizeWeightedSum(sol, terms, 1);
      }
      const trueVars = new Set<number>();
      for (const v of sol.getTrueVars()) if (v.startsWith('v')) trueVars.add(Number(v.slice(1)));
      return { sat: true as const, trueVars };
    });
  },
};

/** A minimal set of rules that cannot hold together (deletion-based): each rule's clauses are
 * guarded by a selector variable, so rules can be switched off by assumption. Built only for
 * an unsatisfiable request, where explaining matters more than time. */
function core(p: SatProblem): number[] {
  const Logic = L();
  const name = (v: number): string => `v${v}`;
  const lit = (l: number): unknown => (l > 0 ? name(l) : Logic.not(name(-l)));
  const sel = (i: number): string => `r${i}`;
  const s = new Logic.Solver();
  for (const c of p.hard) s.require(Logic.or(...c.map(lit)));
  p.rules.forEach((cs, i) => {
    for (const c of cs) s.require(Logic.or(Logic.not(sel(i)), ...c.map(lit)));
  });
  let keep = p.rules.map((_, i) => i);
  for (const i of [...keep]) {
    const without = keep.filter((j) => j !== i);
    if (!s.solveAssuming(Logic.and(...without.map(sel)))) keep = without;
  }
  return keep;
}
