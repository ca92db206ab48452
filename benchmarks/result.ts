/** What one `miq bench` run produced (its own module so the report renderer and the runner do not import each other). */
import type { Manifest } from './corpus.js';
import type { MachineFacts } from './machine.js';
import type { Series } from './runner.js';

export interface BenchResult {
  date: string;
  quick: boolean;
  runs: number;
  facts: MachineFacts;
  manifest: Manifest;
  series: Series[];
  sweep: string[];
  reportPath: string;
}
