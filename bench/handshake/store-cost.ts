/**
 * `bench:handshake --store-cost`: what attachSessionStore costs over the bare Map listener, per
 * handshake, in one server process switched in interleaved slices (store-toggle.ts): issue 24's
 * targets 2 (TLS 1.2 session IDs through RedisStore ≤ 1.10× the Map) and 3 (storing on a full
 * handshake ≤ 1.05× the Map listener), each with its A/A control ('map2' vs 'map': the method's
 * resolution in the same run). A verdict is met when the whole 95% interval of the median ratio
 * is within the bound, missed when it is all beyond, inconclusive otherwise.
 */
import { pct, printTable, ratioCells, type RatioSummary, type Slice, type StateSummary } from './slices';
import type { StoreToggleState } from './store-toggle';

export interface StoreCostTarget {
  /** The matrix configuration whose store and protocol the slices use (configs.ts). */
  config: string;
  bound: number;
  name: string;
}

export const STORE_COST_TARGETS: StoreCostTarget[] = [
  ...['memory', 'sqlite'].map((store) => ({
    config: `tls12 full +${store}+seal`,
    bound: 1.05,
    name: `target 3: a full handshake storing its session (${store}+seal) vs the Map listener, server CPU`,
  })),
  ...['redis', 'redis+seal'].map((store) => ({
    config: `tls12 resumed ${store}`,
    bound: 1.1,
    name: `target 2: TLS 1.2 resumed through RedisStore (${store}) vs the bare Map, server CPU`,
  })),
];

export interface StoreCostResult {
  key: string;
  id: string;
  target: StoreCostTarget;
  sliceMs: number;
  gapMs: number;
  cycles: number;
  droppedSlices: number;
  states: Array<StateSummary<StoreToggleState>>;
  verdict: 'met' | 'missed' | 'inconclusive';
  generatorCpuShareMax: number;
  clientResumedShare: number;
  errors: number;
  slices: Array<Slice<StoreToggleState>>;
}

const ci = (v: RatioSummary | undefined): string => (v ? `${pct(v.median)} [${pct(v.ci95[0])} to ${pct(v.ci95[1])}]` : 'n/a');

export function reportStoreCost(results: StoreCostResult[]): void {
  const header = ['key', 'configuration', 'state', 'hs', 'resumed', 'µs/hs', 'vs map: median [95% CI]', 'IQR', 'min–max', 'pooled'];
  const rows = results.flatMap((r) =>
    r.states.map((s) => [
      r.key,
      r.id,
      s.state === 'map2' ? 'map2 (A/A)' : s.state,
      String(s.handshakes),
      `${(s.resumedShare * 100).toFixed(1)}%`,
      s.cpuMicrosPerHandshake.toFixed(1),
      ...ratioCells(s.vsReference),
    ]),
  );
  console.log('\nstore cost: one server process, switched between the Map listener and attachSessionStore in interleaved slices;');
  console.log('server CPU per handshake vs "map" (map2: the Map again, A/A control)\n');
  printTable(header, rows);
  for (const r of results) {
    const get = (state: StoreToggleState) => r.states.find((s) => s.state === state)?.vsReference;
    console.log(
      `[${r.key}] ${r.id} (${r.cycles} cycles of ${r.sliceMs} ms slices, ${r.gapMs} ms gaps, ${r.droppedSlices} slices dropped):`,
    );
    console.log(
      `  ${r.target.name}: ${ci(get('store'))} — bound ≤ ${pct(r.target.bound)}: ${r.verdict.toUpperCase()}` +
        (r.verdict === 'inconclusive' ? ' (the 95% interval straddles the bound: more cycles or a quieter machine)' : ''),
    );
    console.log(`  A/A control (map vs map, the method's resolution in this run): ${ci(get('map2'))}`);
    console.log(
      `  clients resumed ${(r.clientResumedShare * 100).toFixed(1)}%, errors ${r.errors}, busiest generator ${(r.generatorCpuShareMax * 100).toFixed(0)}% of a core`,
    );
  }
}
