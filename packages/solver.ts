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
}
interface LogicSolution {
  getTrueVars(): string[];
}
interface LogicSolver {
  require(...f: unknown[]): void;
  solve(): LogicSolution | null;
  solveAssuming(f: unknown): LogicSolution | null;
  minimizeWeightedSum(s: LogicSolution, terms: unknown[], weights: number | number[]): LogicSolution;
}

let logic: LogicModule | undefined;
function L(): LogicModule {
  return (logic ??= createRequire(import.meta.url)('logic-solver') as LogicModule);
}

const name = (v: number): string => `v${v}`;
const lit = (l: number): unknown => (l > 0 ? name(l) : L().not(name(-l)));
const sel = (i: number): string => `r${i}`;

export const logicSolver: SatSolver = {
  solve(p, o = {}) {
    const Logic = L();
    const s = new Logic.Solver();
    for (const c of p.hard) s.require(Logic.or(...c.map(lit)));
    // Each rule's clauses are guarded by a selector so the core search can switch rules off.
    p.rules.forEach((cs, i) => {
      for (const c of cs) s.require(Logic.or(Logic.not(sel(i)), ...c.map(lit)));
    });
    const all = p.rules.map((_, i) => sel(i));
    let sol = s.solveAssuming(Logic.and(...all));
    if (!sol) {
      if (!o.core) return { sat: false, core: [] };
      let keep = p.rules.map((_, i) => i);
      for (const i of [...keep]) {
        const without = keep.filter((j) => j !== i);
        if (!s.solveAssuming(Logic.and(...without.map(sel)))) keep = without;
      }
      return { sat: false, core: keep };
    }
    s.require(...all);
    for (const obj of p.objectives) {
      if (obj.length === 0) continue;
      sol = s.minimizeWeightedSum(sol, obj.map(lit), 1);
    }
    const trueVars = new Set<number>();
    for (const v of sol.getTrueVars()) if (v.startsWith('v')) trueVars.add(Number(v.slice(1)));
    return { sat: true, trueVars };
  },
};
