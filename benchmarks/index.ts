/** The benchmarks' face (what cli/ may import): `miq bench`. */
export { runBench } from './bench.js';
