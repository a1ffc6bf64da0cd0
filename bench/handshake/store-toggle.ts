/**
 * The server side of `bench:handshake --store-cost`: one server process, under steady load,
 * switches in short interleaved slices (slices.ts) between
 *
 *   map    the reference listeners: a hand-written Map on newSession/resumeSession
 *   map2   the same again (A/A control: its ratio to 'map' is the method's noise floor)
 *   store  attachSessionStore over the configuration's store (attached on entry, detached on exit)
 *
 * and measures its own CPU per handshake in each: the ratio of the same handshakes in the same
 * process a few hundred milliseconds apart, free of the separate-process spread of the matrix.
 * A client's session from one state does not resume in the other (each has its own sessions and
 * attachSessionStore sets its own session ID context): the gap after a switch lets every
 * connection get a session of the new state before the slice is measured.
 */
import type * as tls from 'node:tls';
import { countHandshakes, runSlices, type SlicesRequest, type SlicesResult } from './slices';

export const STORE_TOGGLE_STATES = ['map', 'map2', 'store'] as const;
export type StoreToggleState = (typeof STORE_TOGGLE_STATES)[number];

/** The reference listeners: a Map of every session (answered in the same turn, or one promise later). Returns the detach. */
export function attachMapListeners(server: tls.Server, { later = false } = {}): () => void {
  const sessions = new Map<string, Buffer>();
  const onNew = (id: Buffer, data: Buffer, done: () => void): void => {
    if (sessions.size >= 200_000) sessions.clear();
    sessions.set(id.toString('hex'), data);
    done();
  };
  const onResume = (id: Buffer, done: (err: Error | null, data: Buffer | null) => void): void => {
    const data = sessions.get(id.toString('hex')) ?? null;
    if (later) void Promise.resolve(data).then((found) => done(null, found));
    else done(null, data);
  };
  server.on('newSession', onNew);
  server.on('resumeSession', onResume);
  return () => {
    server.removeListener('newSession', onNew);
    server.removeListener('resumeSession', onResume);
  };
}

/** Installs the counter; returns the function that runs the slices. `attachStore` attaches the library and returns its detach. */
export function prepareStoreToggle(server: tls.Server, attachStore: () => () => void) {
  const counter = countHandshakes(server);
  let detach: (() => void) | undefined;
  let current: StoreToggleState | undefined;
  const enter = (state: StoreToggleState): void => {
    if (state === current) return;
    detach?.();
    detach = state === 'store' ? attachStore() : attachMapListeners(server);
    current = state;
  };
  return async (request: SlicesRequest): Promise<SlicesResult<StoreToggleState>> => {
    const slices = await runSlices(STORE_TOGGLE_STATES, enter, counter, request);
    return { type: 'slices', slices };
  };
}
