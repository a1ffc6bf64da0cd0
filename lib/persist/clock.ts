/**
 * The clock the persistence layer takes its expiry, age and rotation decisions by, as Go's
 * tls.Config.Time: an option `now` on attachSessionStore, ClientSessionCache, TicketKeyRing and
 * MemoryStore, so that tests and simulations move time instead of sleeping. Latency measurements
 * stay on performance.now(). It is the package's clock only: OpenSSL still checks a session's
 * lifetime against the real time when it resumes it, and Redis expires keys on its own clock.
 */
import { functionOption } from './options';

/** Milliseconds since 1970-01-01T00:00:00Z, as Date.now() returns them. */
export type Clock = () => number;

/** The default: the wall clock (looked up at each call, so a replaced global Date is followed). */
export const systemClock: Clock = () => Date.now();

/** The `now` option checked: undefined gives the default; anything but a function is ERR_INVALID_ARG_TYPE naming `name`. */
export function clockOption(now: unknown, name = 'options.now'): Clock {
  return functionOption(now as Clock | undefined, name) ?? systemClock;
}
