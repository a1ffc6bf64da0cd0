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
import {
  pct,
  printTable,
  ratioCells,
  summarizeStates,
  verdictOf,
  type RatioSummary,
  type StateSummary as GenericStateSummary,
} from './slices';
import type { ReplayPath, Slice, ToggleState, UnsubscribedPath } from './toggle';

/** The bound: the collector may add at most 2% of server CPU per resumed handshake. */
export const COLLECTOR_BOUND = 1.02;
/** hasSubscribers reads on the unsubscribed path of one handshake, at most (attach: lookup + lookup channel; ring: ticket channel). */
const READS_PER_HANDSHAKE = 3;

export type StateSummary = GenericStateSummary<ToggleState> & {
  /** Per-cycle ratio to 'off' (undefined for 'off' itself). */
  vsOff?: RatioSummary;
};

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
  const { states: generic, dropped } = summarizeStates(slices, 'off');
  const summaries: StateSummary[] = generic.map(({ vsReference, ...rest }) => ({
    ...rest,
    ...(vsReference ? { vsOff: vsReference } : {}),
  }));
  const offPooled = summaries.find((s) => s.state === 'off')!.cpuMicrosPerHandshake;
  const prom = summaries.find((s) => s.state === 'prometheus')?.vsOff;
  const verdict = verdictOf(prom, COLLECTOR_BOUND);
  const nsPerHandshake = unsubscribed.listenerNs + READS_PER_HANDSHAKE * unsubscribed.hasSubscribersNs;
  return {
    key: meta.key,
    id: meta.id,
    sliceMs: meta.sliceMs,
    cycles: meta.cycles,
    droppedSlices: dropped,
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

export function reportMetricsCost(results: MetricsCostResult[]): void {
  const header = ['key', 'configuration', 'state', 'hs', 'resumed', 'µs/hs', 'vs off: median [95% CI]', 'IQR', 'min–max', 'pooled'];
  const rows = results.flatMap((r) =>
    r.states.map((s) => [
      r.key,
      r.id,
      s.state === 'off2' ? 'off2 (A/A)' : s.state,
      String(s.handshakes),
      `${(s.resumedShare * 100).toFixed(1)}%`,
      s.cpuMicrosPerHandshake.toFixed(1),
      ...ratioCells(s.vsOff),
    ]),
  );
  console.log('\nmetrics cost: one server process, metrics state switched in interleaved slices; server CPU per handshake vs "off"');
  console.log('(off: library attached, nobody subscribed; off2: the same, A/A control; noop: a do-nothing subscriber on every');
  console.log(' server/ring channel; prometheus: collectPrometheusMetrics on)\n');
  printTable(header, rows);
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
