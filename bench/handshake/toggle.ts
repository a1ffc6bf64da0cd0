/**
 * The server side of `bench:handshake --metrics-cost`: one server process, under steady load
 * from the generators, switches its metrics state in short slices and measures its own CPU per
 * handshake in each. States:
 *
 *   off         attachSessionStore / TicketKeyRing attached, nobody subscribed to tls-session's channels
 *   off2        the same again (A/A control: its ratio to 'off' is the method's noise floor)
 *   noop        a subscriber that does nothing on every server and ring channel: the events are
 *               built and published, nothing is counted (what the hasSubscribers guards save)
 *   prometheus  collectPrometheusMetrics on a prom-client Registry (what a user turns on): one
 *               collector made at start, its channel subscriptions switched on and off
 *
 * The slices themselves (order, gap, what a slice measures) are slices.ts's.
 */
import * as diagnostics from 'node:diagnostics_channel';
// The module object itself (not a copy), whose subscribe is patched for one call below.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const dc = require('node:diagnostics_channel') as typeof diagnostics;
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type * as tls from 'node:tls';
import {
  countHandshakes,
  cpuNow,
  runSlices,
  type Slice as GenericSlice,
  type SlicesRequest,
  type SlicesResult as GenericSlicesResult,
} from './slices';
import { Registry } from 'prom-client';
import { collectPrometheusMetrics, type MetricsCollector } from '../../lib/metrics';
import { CHANNELS } from '../../lib/metrics/events';

export const TOGGLE_STATES = ['off', 'off2', 'noop', 'prometheus'] as const;
export type ToggleState = (typeof TOGGLE_STATES)[number];

export type { SlicesRequest } from './slices';
export type Slice = GenericSlice<ToggleState>;

export interface UnsubscribedPath {
  /** The library's 'secureConnection' listeners (the handshake observer) with nobody subscribed: ns per emit, over a bare emit. */
  listenerNs: number;
  /** One `channel.hasSubscribers` read on a channel nobody subscribes to, ns. */
  hasSubscribersNs: number;
  /** How many library listeners were on 'secureConnection'. */
  listeners: number;
}

export type SlicesResult = GenericSlicesResult<ToggleState>;

/**
 * The subscriber side alone: the events the server published during its first measured 'noop'
 * slices (real payloads, recorded), replayed in-process with the load stopped, per handshake of
 * those slices. Medians of alternating rounds; no sockets, no OpenSSL, so little noise.
 */
export interface ReplayPath {
  /** Events per handshake, by channel. */
  eventsPerHandshake: Record<string, number>;
  /** Handshakes the recording covers. */
  recordedHandshakes: number;
  /** CPU µs per handshake's events, by state (median of the rounds). */
  microsPerHandshake: { off: number; noop: number; prometheus: number };
}

/** Every channel a server with attachSessionStore or a TicketKeyRing may publish on. */
const SERVER_CHANNELS = [
  CHANNELS.serverHandshake,
  CHANNELS.serverLookup,
  CHANNELS.serverStore,
  CHANNELS.ringTicket,
  CHANNELS.ringRotation,
  CHANNELS.ringKeyAdopted,
  CHANNELS.ringLocalKey,
  CHANNELS.ringStore,
];

/** Handshakes' worth of events recorded for the replay (whole noop slices, until at least this many). */
const RECORD_HANDSHAKES = 400;

/**
 * Installs the handshake counter on `server` (before the run, so every state pays for it alike)
 * and returns the function that runs the slices. `ownListeners`: the bench's own
 * 'secureConnection' listeners (the rest are the library's).
 */
export function prepareToggle(server: tls.Server, ownListeners: Array<(...args: never[]) => unknown>) {
  const counter = countHandshakes(server);
  const own = new Set<unknown>([...ownListeners, counter.listener]);

  // One collector for the whole run, its subscriptions switched: the state changes without
  // registering and removing its metrics each time (no churn in the registry or the heap). Its
  // subscriber functions are caught as it subscribes them (diagnostics_channel.subscribe, patched
  // for that one call), then unsubscribed and subscribed again exactly as stop() would.
  const subscriptions: Array<[string, (message: unknown, name: string | symbol) => void]> = [];
  const original = dc.subscribe;
  dc.subscribe = (name, onMessage) => {
    subscriptions.push([String(name), onMessage]);
    original(name, onMessage);
  };
  let collector: MetricsCollector;
  try {
    collector = collectPrometheusMetrics({ register: new Registry() });
  } finally {
    dc.subscribe = original;
  }
  if (subscriptions.length === 0) throw new Error('the Prometheus collector subscribed to nothing');
  for (const [name, onMessage] of subscriptions) dc.unsubscribe(name, onMessage);
  void collector; // kept (not stopped): its metrics stay registered
  let collectorOn = false;
  // The 'noop' subscriber: records what is published during the first measured noop slices.
  const recorded: Array<[diagnostics.Channel, unknown]> = [];
  let recording = false;
  let recordedHandshakes = 0;
  const noopFor = new Map<string, (message: unknown) => void>(
    SERVER_CHANNELS.map((name) => {
      const channel = diagnostics.channel(name);
      return [name, (message: unknown) => void (recording && recorded.push([channel, message]))];
    }),
  );
  let noopOn = false;
  const enter = (state: ToggleState): void => {
    if (state !== 'prometheus' && collectorOn) {
      for (const [name, onMessage] of subscriptions) dc.unsubscribe(name, onMessage);
      collectorOn = false;
    }
    if (state !== 'noop' && noopOn) {
      for (const name of SERVER_CHANNELS) diagnostics.unsubscribe(name, noopFor.get(name)!);
      noopOn = false;
    }
    if (state === 'prometheus' && !collectorOn) {
      for (const [name, onMessage] of subscriptions) dc.subscribe(name, onMessage);
      collectorOn = true;
    }
    if (state === 'noop' && !noopOn) {
      for (const name of SERVER_CHANNELS) diagnostics.subscribe(name, noopFor.get(name)!);
      noopOn = true;
    }
  };

  /**
   * The per-handshake work the library does when nobody subscribes, measured in-process with the
   * load stopped: the extra 'secureConnection' listener (the observer, which returns at once) and
   * one hasSubscribers read (the publishers make 1-3 per handshake).
   */
  const measureUnsubscribed = (): UnsubscribedPath => {
    enter('off');
    const library = server.listeners('secureConnection').filter((l) => !own.has(l)) as Array<(...args: unknown[]) => void>;
    const noop = (): void => undefined;
    const bare = new EventEmitter();
    const withLibrary = new EventEmitter();
    bare.on('secureConnection', noop);
    withLibrary.on('secureConnection', noop);
    for (const l of library) withLibrary.on('secureConnection', l);
    const socket = {}; // never touched: with nobody subscribed the observer returns before reading it
    const N = 200_000;
    const timeEmit = (emitter: EventEmitter): number => {
      const t0 = performance.now();
      for (let i = 0; i < N; i++) emitter.emit('secureConnection', socket);
      return ((performance.now() - t0) * 1e6) / N;
    };
    const channel = diagnostics.channel(CHANNELS.serverHandshake);
    let sink = 0;
    const timeReads = (): number => {
      const t0 = performance.now();
      for (let i = 0; i < N; i++) if (channel.hasSubscribers) sink += 1;
      return ((performance.now() - t0) * 1e6) / N;
    };
    const extra: number[] = [];
    const reads: number[] = [];
    for (let round = 0; round < 7; round++) {
      const a = timeEmit(bare);
      const b = timeEmit(withLibrary);
      extra.push(b - a);
      reads.push(timeReads());
    }
    if (sink !== 0) throw new Error('a channel had a subscriber during the unsubscribed measurement');
    extra.sort((x, y) => x - y);
    reads.sort((x, y) => x - y);
    return { listenerNs: Math.max(0, extra[extra.length >> 1]!), hasSubscribersNs: reads[reads.length >> 1]!, listeners: library.length };
  };

  const run = async (request: SlicesRequest): Promise<SlicesResult> => {
    const slices = await runSlices(TOGGLE_STATES, enter, counter, request, {
      opened: (state, measured) => {
        recording = state === 'noop' && measured && recordedHandshakes < RECORD_HANDSHAKES;
      },
      closed: (_state, _measured, handshakes) => {
        if (recording) recordedHandshakes += handshakes;
        recording = false;
      },
    });
    enter('off');
    return { type: 'slices', slices };
  };
  /** Replays the recorded events with nobody subscribed, the do-nothing subscriber and the collector: CPU per handshake. */
  const measureReplay = (): ReplayPath => {
    const events = recorded.filter(([, message]) => message !== undefined);
    const eventsPerHandshake: Record<string, number> = {};
    for (const [channel] of events) {
      const name = String(channel.name);
      eventsPerHandshake[name] = (eventsPerHandshake[name] ?? 0) + 1 / Math.max(1, recordedHandshakes);
    }
    const states = ['off', 'noop', 'prometheus'] as const;
    const samples: Record<(typeof states)[number], number[]> = { off: [], noop: [], prometheus: [] };
    if (events.length === 0 || recordedHandshakes === 0) {
      return { eventsPerHandshake, recordedHandshakes, microsPerHandshake: { off: NaN, noop: NaN, prometheus: NaN } };
    }
    const repeat = Math.max(1, Math.ceil(100_000 / events.length));
    for (let round = 0; round < 9; round++) {
      for (const state of round % 2 ? [...states].reverse() : states) {
        enter(state);
        const cpu0 = cpuNow();
        for (let r = 0; r < repeat; r++) {
          for (const [channel, message] of events) if (channel.hasSubscribers) channel.publish(message);
        }
        samples[state].push((cpuNow() - cpu0) / (repeat * recordedHandshakes));
      }
    }
    enter('off');
    const med = (values: number[]): number => [...values].sort((a, b) => a - b)[values.length >> 1]!;
    return {
      eventsPerHandshake,
      recordedHandshakes,
      microsPerHandshake: { off: med(samples.off), noop: med(samples.noop), prometheus: med(samples.prometheus) },
    };
  };

  return { run, measureUnsubscribed, measureReplay };
}
