/** Waiting on key rotations without timed assertions: poll a condition, fail with what was awaited. */
import type { TicketKeyRing } from '../../../lib/persist';

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `condition` until it holds; throws naming `what` after `timeoutMs` (generous: the machine is shared). */
export async function waitFor(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

/** The wall-clock end of `epoch` (ms), as TicketKeyRing cuts time. */
export function epochEndMs(epoch: number, rotationSeconds: number): number {
  return (epoch + 1) * rotationSeconds * 1000;
}

/**
 * Runs `issue` late in an epoch (about `marginMs` before its end) and returns its result with the
 * epoch it ran in; retries in the next epoch if the boundary passed while it ran, so the result
 * surely belongs to one epoch.
 */
export async function lateInEpoch<T>(
  rotationSeconds: number,
  issue: () => Promise<T>,
  marginMs = Math.min(700, (rotationSeconds * 1000) / 2),
): Promise<{ result: T; epoch: number }> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const now = Date.now();
    let epoch = Math.floor(now / 1000 / rotationSeconds);
    if (epochEndMs(epoch, rotationSeconds) - now < marginMs) epoch += 1;
    await sleep(Math.max(0, epochEndMs(epoch, rotationSeconds) - marginMs - Date.now()));
    const before = Math.floor(Date.now() / 1000 / rotationSeconds);
    const result = await issue();
    if (Math.floor(Date.now() / 1000 / rotationSeconds) === before) return { result, epoch: before };
  }
  throw new Error('could not run within one epoch in 5 attempts (machine overloaded?)');
}

/** Waits until every ring seals with a key of an epoch after `epoch`. */
export function untilRotatedPast(rings: TicketKeyRing[], epoch: number): Promise<void> {
  return waitFor(() => rings.every((ring) => ring.epoch! > epoch), `the rings to rotate past epoch ${epoch}`);
}

/** Rings (and their store) on a clock a test moves: rotations without waiting for the wall clock. */
export interface RingClock {
  readonly now: () => number;
  advance(ms: number): void;
}

/**
 * Moves `clock` to `marginMs` before the end of its epoch (past the halfway point where the rings
 * fetch the next key), waits until every ring holds the next key, and returns the epoch. Each
 * ring's `stats()` runs the key sync the moved clock made due.
 */
export async function clockLateInEpoch(
  clock: RingClock,
  rings: TicketKeyRing[],
  rotationSeconds: number,
  marginMs = 1000,
): Promise<number> {
  const epoch = Math.floor(clock.now() / 1000 / rotationSeconds);
  const target = epochEndMs(epoch, rotationSeconds) - marginMs;
  if (clock.now() >= target) throw new Error('the clock is already within the margin of its epoch end: start it earlier');
  clock.advance(target - clock.now());
  await waitFor(() => rings.every((ring) => ring.stats().nextKeyReady), `the rings to fetch the key after epoch ${epoch}`, 5000);
  return epoch;
}

/** Moves `clock` `ms` past the end of `epoch`. */
export function clockPastEpoch(clock: RingClock, epoch: number, rotationSeconds: number, ms = 1): void {
  clock.advance(epochEndMs(epoch, rotationSeconds) + ms - clock.now());
}
