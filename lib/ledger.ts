/** Counts of SSL_SESSION references the library took and released, for this process. */
import { native } from './binding';

export interface Ledger {
  acquired: number;
  released: number;
  live: number;
  releasedBy: { explicit: number; gc: number; teardown: number };
}

export function ledger(): Ledger {
  const l = native.ledger();
  const released = l.explicit + l.gc + l.teardown;
  return {
    acquired: l.acquired,
    released,
    live: l.acquired - released,
    releasedBy: { explicit: l.explicit, gc: l.gc, teardown: l.teardown },
  };
}
