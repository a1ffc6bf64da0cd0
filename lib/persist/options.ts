/**
 * The one vocabulary for the persistence layer's option errors, Node's own:
 * - ERR_INVALID_ARG_TYPE (TypeError): not of the option's type;
 * - ERR_OUT_OF_RANGE (RangeError): a number outside its range, or not an integer;
 * - ERR_INVALID_ARG_VALUE (TypeError): not one of the option's values, or excluded by another option.
 * Each names the option (`options.budgetMs`). PersistConfigError is left for configuration the
 * environment refuses (a file that cannot be created, a backend that is not installed).
 */
import { invalidArgType, invalidArgValue, outOfRange } from '../errors';

/** `value` as an options object, or ERR_INVALID_ARG_TYPE. */
export function optionsObject<T extends object>(value: T | null | undefined, name = 'options'): T {
  if (value === null || typeof value !== 'object') throw invalidArgType(name, 'an object', value);
  return value;
}

/** An integer option from `min` to `max` (inclusive); `fallback` when undefined. */
export function integerOption(value: unknown, name: string, fallback: number, min: number, max?: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || (max !== undefined && value > max)) {
    throw outOfRange(name, max === undefined ? `an integer >= ${min}` : `an integer from ${min} to ${max}`, value);
  }
  return value;
}

/** A string option; `fallback` when undefined; `nonEmpty` refuses ''. */
export function stringOption(value: unknown, name: string, fallback: string, { nonEmpty = false } = {}): string {
  if (value === undefined) return fallback;
  if (typeof value !== 'string') throw invalidArgType(name, 'of type string', value);
  if (nonEmpty && value.length === 0) throw invalidArgValue(name, 'a non-empty string', "''");
  return value;
}

/** A boolean option; `fallback` when undefined. */
export function booleanOption(value: unknown, name: string, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw invalidArgType(name, 'of type boolean', value);
  return value;
}

/** An optional callback option. */
export function functionOption<F extends (...args: never[]) => unknown>(value: F | undefined, name: string): F | undefined {
  if (value !== undefined && typeof value !== 'function') throw invalidArgType(name, 'a function', value);
  return value;
}

/** One of `choices`; `fallback` when undefined. */
export function choiceOption<T extends string>(value: unknown, name: string, choices: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !(choices as readonly string[]).includes(value)) {
    const quoted = choices.map((c) => `'${c}'`);
    const expected = quoted.length === 1 ? quoted[0]! : `${quoted.slice(0, -1).join(', ')} or ${quoted.at(-1)!}`;
    throw invalidArgValue(name, expected, describe(value));
  }
  return value as T;
}

/** Two options that exclude each other. */
export function excludeEachOther(name: string, other: string): TypeError & { code: string } {
  return invalidArgValue(name, `left out when ${other} is given`, `both ${name} and ${other}`);
}

/** What an error says it received: a short description, never more than 40 characters of a string. */
function describe(value: unknown): string {
  if (typeof value === 'string') return value.length > 40 ? `'${value.slice(0, 40)}…'` : `'${value}'`;
  if (value === null) return 'null';
  return typeof value;
}
