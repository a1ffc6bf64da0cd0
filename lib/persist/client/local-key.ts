/**
 * The key ClientSessionCache seals records with when no `secret` is given and the store is local
 * to this machine. A record is only data (any peer certificate, any master key), so unsealed
 * records let whoever can write the store impersonate servers; sealed ones need the key too.
 *
 * - MemoryStore, and SqliteStore on ':memory:': a random key held in this process, one per store
 *   (every cache over that store shares it; nothing outside the process sees the store anyway).
 * - SqliteStore on a file: 32 random bytes in `<file>.key` (hex), mode 0600, outside the
 *   database: a writer of the database file who cannot read that file cannot forge. Created
 *   atomically (written to a private temporary name, then link()ed, which fails if another
 *   process won the race: its key is used), opened without following symlinks, and refused when
 *   another user owns it or others may read or write it.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fstatSync, linkSync, openSync, readSync, unlinkSync, writeSync, fsyncSync } from 'node:fs';
import { PersistConfigError } from '../errors';

const KEY_BYTES = 32;
const inProcess = new WeakMap<object, Buffer>();

/** The random key of a store that lives in this process. */
export function inProcessKey(store: object): Buffer {
  let key = inProcess.get(store);
  if (key === undefined) {
    key = randomBytes(KEY_BYTES);
    inProcess.set(store, key);
  }
  return key;
}

/** The key in `path` (created if absent); PersistConfigError when it cannot be used safely. */
export function fileKey(path: string): Buffer {
  for (let attempt = 0; attempt < 3; attempt++) {
    const existing = readKeyFile(path);
    if (existing) return existing;
    if (createKeyFile(path)) continue; // ours is in place: read it back like any other
  }
  throw new PersistConfigError(`client session key file ${path} could not be created or read`);
}

function readKeyFile(path: string): Buffer | undefined {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP') throw new PersistConfigError(`client session key file ${path} is a symbolic link; refusing it`);
    throw new PersistConfigError(`client session key file ${path} cannot be read: ${(error as Error).message}`);
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new PersistConfigError(`client session key file ${path} is not a regular file`);
    if (typeof process.getuid === 'function' && stat.uid !== process.getuid()) {
      throw new PersistConfigError(`client session key file ${path} is owned by another user (uid ${stat.uid}); refusing it`);
    }
    if ((stat.mode & 0o077) !== 0) {
      throw new PersistConfigError(
        `client session key file ${path} has mode ${(stat.mode & 0o777).toString(8)}: others may read or change it ` +
          '(anyone who can read it can forge sessions); make it 600 or remove it',
      );
    }
    const text = Buffer.alloc(KEY_BYTES * 2 + 2);
    const length = readSync(fd, text, 0, text.length, 0);
    const hex = text.toString('latin1', 0, length).trim();
    text.fill(0);
    // The message names the problem, never the contents.
    if (!/^[0-9a-f]{64}$/.test(hex)) throw new PersistConfigError(`client session key file ${path} does not hold 64 hex digits`);
    return Buffer.from(hex, 'hex');
  } finally {
    closeSync(fd);
  }
}

/** Writes a new key under a private temporary name and links it into place; false if another process got there first. */
function createKeyFile(path: string): boolean {
  const temporary = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const key = randomBytes(KEY_BYTES);
  let fd: number;
  try {
    fd = openSync(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  } catch (error) {
    throw new PersistConfigError(`client session key file ${path} cannot be created: ${(error as Error).message}`);
  }
  try {
    try {
      writeSync(fd, `${key.toString('hex')}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    linkSync(temporary, path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new PersistConfigError(`client session key file ${path} cannot be created: ${(error as Error).message}`);
  } finally {
    key.fill(0);
    try {
      unlinkSync(temporary);
    } catch {
      /* already gone */
    }
  }
}
