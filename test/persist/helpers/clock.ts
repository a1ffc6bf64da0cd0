/** A clock for the `now` option that moves only when a test moves it: expiry without sleeping. */
export interface ManualClock {
  /** The clock to inject: milliseconds since the epoch. */
  readonly now: () => number;
  /** Moves the clock `ms` forward. */
  advance(ms: number): void;
}

export function manualClock(startMs = Date.now()): ManualClock {
  let nowMs = startMs;
  return {
    now: () => nowMs,
    advance(ms: number) {
      nowMs += ms;
    },
  };
}
