/**
 * `bench:handshake --metrics-cost`: what tls-session's events and the Prometheus collector cost
 * per resumed handshake, measured in one server process whose metrics state is switched in short
 * interleaved slices (bench/handshake/toggle.ts). This file turns the slices into ratios.
 *
 * Every ratio is taken inside one cycle (each state ran once per cycle, shuffled, a few hundred ms
 * apart): server CPU per handshake in a state over the same in 'off' (library attached, nobody
 * subscribed). Reported: the median of the per-cycle ratios with a distribution-free 95%
 * confidence interval of that median, the interquartile range, min–max, and the pooled ratio
 * (all CPU over all handshakes per state). 'off2' vs 'off' is an A/A control: the same state, so
 * its interval is the resolution of the method in this run.
 */
import type { ReplayPath, Slice, ToggleState, UnsubscribedPath } from './toggle';

/** The bound: the collector may add at most 2% of server CPU per resumed handshake. */
export const COLLECTOR_BOUND = 1.02;
/** Slices with fewer handshakes than this are dropped (a stalled slice says nothing). */
const MIN_HANDSHAKES = 5;
/** hasSubscribers reads on the unsubscribed path of one handshake, at most (attach: lookup + lookup channel; ring: ticket channel). */
const READS_PER_HANDSHAKE = 3;

export interface RatioSummary {
  median: number;
  /** 95% confidence interval of the median (order statistics; no distribution assumed). */
  ci95: [number, number];
  q1: number;
  q3: number;
  min: number;
  max: number;
  /** All CPU over all handshakes of the state, over the same for 'off'. */
  pooled: number;
  pairs: number;
}

export interface StateSummary {
  state: ToggleState;
  slices: number;
  handshakes: number;
  resumedShare: number;
  /** Pooled server CPU µs per handshake. */
  cpuMicrosPerHandshake: number;
  /** Per-cycle ratio to 'off' (undefined for 'off' itself). */
  vsOff?: RatioSummary;
}

export interface MetricsCostResult {
  key: string;
  id: string;
  sliceMs: number;
  cycles: number;
  droppedSlices: number;
  states: StateSummary[];
  unsubscribed: UnsubscribedPath & { nsPerHandshake: number; shareOfHandshake: number };
  collector: { bound: number; verdict: 'met' | 'missed' | 'inconclusive' };
  /**
   * The subscriber side alone (replayed events, toggle.ts): µs per handshake by state, and the
   * ratio it models: ('off' CPU per handshake measured end to end + the collector's µs over
   * nobody subscribed) / 'off'.
   */
  replay: ReplayPath & { modeledPrometheusVsOff: number; modeledNoopVsOff: number };
  generatorCpuShareMax: number;
  clientResumedShare: number;
  errors: number;
}

const quantile = (sorted: number[], q: number): number => {
  if (sorted.length === 0) return NaN;
  const at = (sorted.length - 1) * q;
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (at - lo);
};

/**
 * The 95% interval of the median from order statistics (binomial, normal approximation): the
 * values of 1-based ranks ⌊n/2 − 0.98·√n⌋ and ⌈1 + n/2 + 0.98·√n⌉.
 */
function medianCi(sorted: number[]): [number, number] {
  const n = sorted.length;
  const half = 0.98 * Math.sqrt(n);
  const lo = Math.max(0, Math.floor(n / 2 - half) - 1);
  const hi = Math.min(n - 1, Math.ceil(1 + n / 2 + half) - 1);
  return [sorted[lo]!, sorted[hi]!];
}

const perHandshake = (s: Slice): number => s.cpuMicros / s.handshakes;

export function summarize(
  slices: Slice[],
  unsubscribed: UnsubscribedPath,
  replay: ReplayPath,
  meta: {
    key: string;
    id: string;
    sliceMs: number;
    cycles: number;
    generatorCpuShareMax: number;
    clientResumedShare: number;
    errors: number;
  },
): MetricsCostResult {
  const kept = slices.filter((s) => s.handshakes >= MIN_HANDSHAKES);
  const byCycle = new Map<number, Map<ToggleState, Slice>>();
  for (const s of kept) {
    if (!byCycle.has(s.cycle)) byCycle.set(s.cycle, new Map());
    byCycle.get(s.cycle)!.set(s.state, s);
  }
  const states = [...new Set(slices.map((s) => s.state))];
  const pooled = (state: ToggleState): number => {
    const list = kept.filter((s) => s.state === state);
    return list.reduce((a, s) => a + s.cpuMicros, 0) / list.reduce((a, s) => a + s.handshakes, 0);
  };
  const offPooled = pooled('off');
  const summaries: StateSummary[] = states.map((state) => {
    const list = kept.filter((s) => s.state === state);
    const handshakes = list.reduce((a, s) => a + s.handshakes, 0);
    const summary: StateSummary = {
      state,
      slices: list.length,
      handshakes,
      resumedShare: handshakes ? list.reduce((a, s) => a + s.resumed, 0) / handshakes : 0,
      cpuMicrosPerHandshake: pooled(state),
    };
    if (state !== 'off') {
      const ratios: number[] = [];
      for (const cycle of byCycle.values()) {
        const off = cycle.get('off');
        const mine = cycle.get(state);
        if (off && mine) ratios.push(perHandshake(mine) / perHandshake(off));
      }
      ratios.sort((a, b) => a - b);
      if (ratios.length > 0) {
        summary.vsOff = {
          median: quantile(ratios, 0.5),
          ci95: medianCi(ratios),
          q1: quantile(ratios, 0.25),
          q3: quantile(ratios, 0.75),
          min: ratios[0]!,
          max: ratios[ratios.length - 1]!,
          pooled: pooled(state) / offPooled,
          pairs: ratios.length,
        };
      }
    }
    return summary;
  });
  const prom = summaries.find((s) => s.state === 'prometheus')?.vsOff;
  const verdict = !prom
    ? 'inconclusive'
    : prom.ci95[1] <= COLLECTOR_BOUND
      ? 'met'
      : prom.ci95[0] > COLLECTOR_BOUND
        ? 'missed'
        : 'inconclusive';
  const nsPerHandshake = unsubscribed.listenerNs + READS_PER_HANDSHAKE * unsubscribed.hasSubscribersNs;
  return {
    key: meta.key,
    id: meta.id,
    sliceMs: meta.sliceMs,
    cycles: meta.cycles,
    droppedSlices: slices.length - kept.length,
    states: summaries,
    unsubscribed: { ...unsubscribed, nsPerHandshake, shareOfHandshake: nsPerHandshake / 1000 / offPooled },
    collector: { bound: COLLECTOR_BOUND, verdict },
    replay: {
      ...replay,
      modeledPrometheusVsOff: 1 + (replay.microsPerHandshake.prometheus - replay.microsPerHandshake.off) / offPooled,
      modeledNoopVsOff: 1 + (replay.microsPerHandshake.noop - replay.microsPerHandshake.off) / offPooled,
    },
    generatorCpuShareMax: meta.generatorCpuShareMax,
    clientResumedShare: meta.clientResumedShare,
    errors: meta.errors,
  };
}

const pct = (ratio: number): string => `${ratio >= 1 ? '+' : ''}${((ratio - 1) * 100).toFixed(1)}%`;

export function reportMetricsCost(results: MetricsCostResult[]): void {
  const header = ['key', 'configuration', 'state', 'hs', 'resumed', 'µs/hs', 'vs off: median [95% CI]', 'IQR', 'min–max', 'pooled'];
  const rows: string[][] = [];
  for (const r of results) {
    for (const s of r.states) {
      const v = s.vsOff;
      rows.push([
        r.key,
        r.id,
        s.state === 'off2' ? 'off2 (A/A)' : s.state,
        String(s.handshakes),
        `${(s.resumedShare * 100).toFixed(1)}%`,
        s.cpuMicrosPerHandshake.toFixed(1),
        v ? `${v.median.toFixed(3)}× [${v.ci95[0].toFixed(3)}–${v.ci95[1].toFixed(3)}]` : '(reference)',
        v ? `${v.q1.toFixed(3)}–${v.q3.toFixed(3)}` : '',
        v ? `${v.min.toFixed(2)}–${v.max.toFixed(2)}` : '',
        v ? `${v.pooled.toFixed(3)}×` : '',
      ]);
    }
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  console.log('\nmetrics cost: one server process, metrics state switched in interleaved slices; server CPU per handshake vs "off"');
  console.log('(off: library attached, nobody subscribed; off2: the same, A/A control; noop: a do-nothing subscriber on every');
  console.log(' server/ring channel; prometheus: collectPrometheusMetrics on)\n');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  let previous: string | undefined;
  for (const row of rows) {
    const group = `${row[0]} ${row[1]}`;
    if (previous !== undefined && group !== previous) console.log('');
    previous = group;
    console.log(line(row));
  }
  console.log('');
  for (const r of results) {
    const get = (state: ToggleState) => r.states.find((s) => s.state === state)?.vsOff;
    const prom = get('prometheus');
    const aa = get('off2');
    const noop = get('noop');
    const ci = (v: RatioSummary | undefined): string => (v ? `${pct(v.median)} [${pct(v.ci95[0])} to ${pct(v.ci95[1])}]` : 'n/a');
    console.log(`[${r.key}] ${r.id} (${r.cycles} cycles of ${r.sliceMs} ms slices, ${r.droppedSlices} slices dropped):`);
    console.log(
      `  Prometheus collector on vs off: ${ci(prom)} — bound ≤ ${pct(r.collector.bound)}: ${r.collector.verdict.toUpperCase()}` +
        (r.collector.verdict === 'inconclusive' ? ' (the 95% interval straddles the bound: more cycles or a quieter machine)' : ''),
    );
    console.log(`  events published to a do-nothing subscriber vs nobody subscribed: ${ci(noop)}`);
    console.log(`  A/A control (off vs off, the method's resolution in this run): ${ci(aa)}`);
    console.log(
      `  nobody subscribed, measured in-process: ${r.unsubscribed.nsPerHandshake.toFixed(0)} ns per handshake ` +
        `(the observer's 'secureConnection' listener ${r.unsubscribed.listenerNs.toFixed(0)} ns + ${READS_PER_HANDSHAKE} × hasSubscribers ` +
        `${r.unsubscribed.hasSubscribersNs.toFixed(1)} ns) = ${(r.unsubscribed.shareOfHandshake * 100).toFixed(3)}% of the handshake's server CPU`,
    );
    const rp = r.replay;
    const events = Object.entries(rp.eventsPerHandshake)
      .map(([name, n]) => `${name.replace('tls-session:', '')} ${n.toFixed(2)}`)
      .join(', ');
    console.log(
      `  subscriber side alone (events of ${rp.recordedHandshakes} handshakes replayed in-process; per handshake: ${events}): ` +
        `collector ${(rp.microsPerHandshake.prometheus - rp.microsPerHandshake.off).toFixed(2)} µs, ` +
        `do-nothing subscriber ${(rp.microsPerHandshake.noop - rp.microsPerHandshake.off).toFixed(2)} µs over nobody subscribed ` +
        `(${rp.microsPerHandshake.off.toFixed(3)} µs) → modeled collector on vs off ${pct(rp.modeledPrometheusVsOff)}`,
    );
    console.log(
      `  clients resumed ${(r.clientResumedShare * 100).toFixed(1)}%, errors ${r.errors}, busiest generator ${(r.generatorCpuShareMax * 100).toFixed(0)}% of a core`,
    );
  }
}
