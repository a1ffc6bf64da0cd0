/**
 * The slice loop behind `--metrics-cost` (toggle.ts) and `--store-cost` (store-toggle.ts): one
 * server process under steady load switches between states in short slices and measures its own
 * CPU per handshake in each. Each cycle runs every state once, in a seeded shuffled order (no
 * state always follows the same one). A slice switches state first, waits `gapMs` (in-flight
 * handshakes and the switch's own garbage settle), then measures process.cpuUsage() and the
 * handshakes completed over `sliceMs`; switching happens outside the measured window.
 */
import { performance } from 'node:perf_hooks';
import type * as tls from 'node:tls';
import { seededRandom } from '../scale/stats';

export interface SlicesRequest {
  type: 'slices';
  sliceMs: number;
  gapMs: number;
  /** Measured cycles (each: every state once). */
  cycles: number;
  /** Cycles run first and thrown away (JIT of every path). */
  warmupCycles: number;
  seed: number;
}

export interface Slice<S extends string = string> {
  cycle: number;
  /** Position in its cycle (0-based). */
  position: number;
  state: S;
  cpuMicros: number;
  wallMs: number;
  handshakes: number;
  resumed: number;
}

export interface SlicesResult<S extends string = string> {
  type: 'slices';
  slices: Array<Slice<S>>;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export const cpuNow = (): number => {
  const usage = process.cpuUsage();
  return usage.user + usage.system;
};

export interface HandshakeCounter {
  readonly handshakes: number;
  readonly resumed: number;
  /** The 'secureConnection' listener (the caller's own, not the library's). */
  readonly listener: (socket: tls.TLSSocket) => void;
}

/** Counts `server`'s handshakes (installed before the run, so every state pays for it alike). */
export function countHandshakes(server: tls.Server): HandshakeCounter {
  const counter = {
    handshakes: 0,
    resumed: 0,
    listener: (socket: tls.TLSSocket): void => {
      counter.handshakes += 1;
      if (socket.isSessionReused()) counter.resumed += 1;
    },
  };
  server.on('secureConnection', counter.listener);
  return counter;
}

export interface SliceHooks<S extends string> {
  /** Called as a measured window opens (after the gap). */
  opened?(state: S, measured: boolean): void;
  /** Called as it closes, with the handshakes it counted. */
  closed?(state: S, measured: boolean, handshakes: number): void;
}

/** Runs the request's cycles over `states`, switching with `enter`; returns the measured slices. */
export async function runSlices<S extends string>(
  states: readonly S[],
  enter: (state: S) => void,
  counter: HandshakeCounter,
  request: SlicesRequest,
  hooks: SliceHooks<S> = {},
): Promise<Array<Slice<S>>> {
  // Seeded: the same seed, the same slice order.
  const random = seededRandom(request.seed);
  const slices: Array<Slice<S>> = [];
  const total = request.warmupCycles + request.cycles;
  for (let cycle = 0; cycle < total; cycle++) {
    const order = [...states];
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const measured = cycle >= request.warmupCycles;
    for (const [position, state] of order.entries()) {
      enter(state);
      await sleep(request.gapMs);
      hooks.opened?.(state, measured);
      const cpu0 = cpuNow();
      const t0 = performance.now();
      const h0 = counter.handshakes;
      const r0 = counter.resumed;
      await sleep(request.sliceMs);
      const slice: Slice<S> = {
        cycle: cycle - request.warmupCycles,
        position,
        state,
        cpuMicros: cpuNow() - cpu0,
        wallMs: performance.now() - t0,
        handshakes: counter.handshakes - h0,
        resumed: counter.resumed - r0,
      };
      hooks.closed?.(state, measured, slice.handshakes);
      if (measured) slices.push(slice);
    }
  }
  return slices;
}

// --- the driver's side: ratios of slices -----------------------------------------------------

/** Slices with fewer handshakes than this are dropped (a stalled slice says nothing). */
export const MIN_HANDSHAKES = 5;

export interface RatioSummary {
  median: number;
  /** 95% confidence interval of the median (order statistics; no distribution assumed). */
  ci95: [number, number];
  q1: number;
  q3: number;
  min: number;
  max: number;
  /** All CPU over all handshakes of the state, over the same for the reference. */
  pooled: number;
  pairs: number;
}

export interface StateSummary<S extends string = string> {
  state: S;
  slices: number;
  handshakes: number;
  resumedShare: number;
  /** Pooled server CPU µs per handshake. */
  cpuMicrosPerHandshake: number;
  /** Per-cycle ratio to the reference state (undefined for the reference itself). */
  vsReference?: RatioSummary;
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

/**
 * Every state's CPU per handshake, and its ratio to `reference` taken inside each cycle (each
 * state ran once per cycle, a few hundred ms apart): the median of the per-cycle ratios with a
 * distribution-free 95% confidence interval, the IQR, min–max and the pooled ratio.
 */
export function summarizeStates<S extends string>(
  slices: Array<Slice<S>>,
  reference: S,
): { states: Array<StateSummary<S>>; dropped: number } {
  const kept = slices.filter((s) => s.handshakes >= MIN_HANDSHAKES);
  const byCycle = new Map<number, Map<S, Slice<S>>>();
  for (const s of kept) {
    if (!byCycle.has(s.cycle)) byCycle.set(s.cycle, new Map());
    byCycle.get(s.cycle)!.set(s.state, s);
  }
  const pooled = (state: S): number => {
    const list = kept.filter((s) => s.state === state);
    return list.reduce((a, s) => a + s.cpuMicros, 0) / list.reduce((a, s) => a + s.handshakes, 0);
  };
  const perHandshake = (s: Slice<S>): number => s.cpuMicros / s.handshakes;
  const referencePooled = pooled(reference);
  const states = [...new Set(slices.map((s) => s.state))].map((state): StateSummary<S> => {
    const list = kept.filter((s) => s.state === state);
    const handshakes = list.reduce((a, s) => a + s.handshakes, 0);
    const summary: StateSummary<S> = {
      state,
      slices: list.length,
      handshakes,
      resumedShare: handshakes ? list.reduce((a, s) => a + s.resumed, 0) / handshakes : 0,
      cpuMicrosPerHandshake: pooled(state),
    };
    if (state === reference) return summary;
    const ratios: number[] = [];
    for (const cycle of byCycle.values()) {
      const ref = cycle.get(reference);
      const mine = cycle.get(state);
      if (ref && mine) ratios.push(perHandshake(mine) / perHandshake(ref));
    }
    ratios.sort((a, b) => a - b);
    if (ratios.length > 0) {
      summary.vsReference = {
        median: quantile(ratios, 0.5),
        ci95: medianCi(ratios),
        q1: quantile(ratios, 0.25),
        q3: quantile(ratios, 0.75),
        min: ratios[0]!,
        max: ratios[ratios.length - 1]!,
        pooled: pooled(state) / referencePooled,
        pairs: ratios.length,
      };
    }
    return summary;
  });
  return { states, dropped: slices.length - kept.length };
}

/** met when the whole 95% interval is within `bound` (at most), missed when it is all beyond, else inconclusive. */
export function verdictOf(ratio: RatioSummary | undefined, bound: number): 'met' | 'missed' | 'inconclusive' {
  if (!ratio) return 'inconclusive';
  return ratio.ci95[1] <= bound ? 'met' : ratio.ci95[0] > bound ? 'missed' : 'inconclusive';
}

export const pct = (ratio: number): string => `${ratio >= 1 ? '+' : ''}${((ratio - 1) * 100).toFixed(1)}%`;

/** Prints `rows` under `header` as aligned columns, a blank line between groups (rows whose first two cells differ). */
export function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
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
}

/** A ratio's cells: median [95% CI], IQR, min–max, pooled (empty for the reference). */
export function ratioCells(v: RatioSummary | undefined): string[] {
  return v
    ? [
        `${v.median.toFixed(3)}× [${v.ci95[0].toFixed(3)}–${v.ci95[1].toFixed(3)}]`,
        `${v.q1.toFixed(3)}–${v.q3.toFixed(3)}`,
        `${v.min.toFixed(2)}–${v.max.toFixed(2)}`,
        `${v.pooled.toFixed(3)}×`,
      ]
    : ['(reference)', '', '', ''];
}
