/**
 * `tls-session store stats|ls|purge|verify`: looks after a session store (SQLite file or Redis)
 * that attachSessionStore and TicketKeyRing write. Prints metadata only: never a value, a secret
 * or a Redis password.
 */
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import type { Sealer } from '../persist/records/envelope';
import type { StoredEntry } from '../persist/stores/contract';
import { DEFAULT_MAX_DER_BYTES } from '../session-header';
import { EXIT_FAILURE, EXIT_USAGE, fail, INPUT_LIMITS, printJson, readBounded, relativeTime, renderTable } from './output';

export interface StoreOptions {
  sqlite?: string;
  redis?: string;
  secretFile?: string;
  scope?: string;
  keyPrefix: string;
  json?: boolean;
  deleteBad?: boolean;
}

/** What the CLI needs of a store: both SqliteStore and RedisStore have these. */
interface ListableStore {
  entries(): AsyncGenerator<StoredEntry>;
  delete(key: string): Promise<void>;
  close(): Promise<void>;
}

interface OpenedStore {
  store: ListableStore;
  /** How the store is named in output: the file, or the Redis URL without its password. */
  label: string;
  /** Deletes expired records; undefined where the backend expires them itself (Redis). */
  purge?: () => Promise<number>;
  close(): Promise<void>;
}

type RecordKind = 'session' | 'ticket-key' | 'client' | 'other';

/** What one record turned out to be: never its content beyond metadata. */
interface RecordReport {
  key: string;
  kind: RecordKind;
  bytes: number;
  sealed: boolean;
  /** Sealed and not opened: no secret was given to open it (not a problem of the record). */
  unopened?: boolean;
  expiresAt: string | undefined;
  expired: boolean;
  /** Set when the record opened (a secret was given for sealed records) and held a session. */
  protocol?: string;
  cipher?: string;
  scope?: string;
  /** Why the record does not open with the given secret and scope; absent when it does. */
  problem?: string;
}

const SESSION_PREFIX = 'session:';
const TICKET_KEY_PREFIX = 'ticket-key:';
/** ClientSessionCache's default keyPrefix. */
const CLIENT_PREFIX = 'client:';
/** What stats and ls say for a sealed record read without --secret-file. */
const SEALED_UNOPENED = 'sealed (no --secret-file)';
const REDIS_CONNECT_TIMEOUT_MS = 3000;
const REDIS_COMMAND_BUDGET_MS = 5000;

export function registerStoreCommand(program: Command): void {
  const store = program
    .command('store')
    .description('look after a session store: stats, ls, purge, verify')
    .addHelpText(
      'after',
      `
Examples:
  $ tls-session store stats --sqlite /var/lib/myapp/tls-sessions.db
  $ tls-session store verify --redis redis://:PASSWORD@10.0.0.5:6379 --secret-file /etc/myapp/tls-secret`,
    );
  const subcommands: [name: string, description: string, example: string][] = [
    ['stats', 'count records by kind, protocol and expiry', 'store stats --sqlite tls-sessions.db --secret-file secret.hex'],
    ['ls', 'list records: key, kind, size, expiry, protocol (never values or secrets)', 'store ls --redis redis://127.0.0.1:6379 --json'],
    ['purge', 'delete expired records (SQLite; Redis expires them itself)', 'store purge --sqlite tls-sessions.db'],
    [
      'verify',
      'check that every record opens with the secret (and scope); exit 1 if any does not',
      'store verify --sqlite tls-sessions.db --secret-file secret.hex --delete-bad',
    ],
  ];
  for (const [name, description, example] of subcommands) {
    const command = store
      .command(name)
      .description(description)
      .option('--sqlite <file>', 'the SqliteStore file')
      .option('--redis <url>', 'the RedisStore URL (redis:// or rediss://; a password in it is never printed)')
      .option('--secret-file <file>', 'the stores\' secret: 64 hex digits (openssl rand -hex 32), or lines "id:hex", newest first')
      .option('--scope <scope>', 'the scope sessions must belong to (attachSessionStore: handle.scope)')
      .option('--key-prefix <prefix>', 'RedisStore keyPrefix', 'tls-session:')
      .option('--json', 'print JSON')
      .addHelpText('after', `\nExample:\n  $ tls-session ${example}`);
    if (name === 'verify') command.option('--delete-bad', 'delete the records that do not open');
    command.action(async (options: StoreOptions) => {
      process.exitCode = await runStoreCommand(name, options);
    });
  }
}

/** Runs one store subcommand; resolves with the exit code. */
export async function runStoreCommand(name: string, options: StoreOptions): Promise<number> {
  if ((options.sqlite === undefined) === (options.redis === undefined))
    fail('give exactly one of --sqlite FILE and --redis URL', EXIT_USAGE);
  const sealers = options.secretFile !== undefined ? await readSealers(options.secretFile) : undefined;
  const opened = await openStore(options);
  // A cache on SQLite without a secret seals with the file's local key; with a secret, with that.
  const clientSealer = (options.sqlite !== undefined ? await localClientSealer(options.sqlite) : undefined) ?? sealers?.client;
  try {
    if (name === 'purge') return await purge(opened, options);
    const reports: RecordReport[] = [];
    const now = new Date();
    for await (const entry of opened.store.entries()) reports.push(await examine(entry, sealers, clientSealer, options.scope, now));
    if (name === 'stats') return printStats(opened.label, reports, sealers !== undefined, options);
    if (name === 'ls') return printList(reports, now, options);
    return await verify(opened, reports, sealers !== undefined, options);
  } finally {
    await opened.close();
  }
}

/** Query parameters that carry a credential in some client's URL form (ioredis reads ?password=). */
const SECRET_QUERY_PARAMETER = /pass|pwd|secret|token|auth|key/i;

/**
 * The Redis URL with every password form replaced by "***": the only way a URL is ever printed.
 * `redis://user:pw@…`, `?password=pw` (and any query parameter named like a credential), and the
 * legacy `redis://pw@…` (a lone user part that older clients read as the password: hidden when no
 * other password form is there).
 */
export function redactRedisUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return '(a Redis URL that does not parse)';
  }
  let passwordElsewhere = parsed.password !== '';
  if (parsed.password !== '') parsed.password = '***';
  for (const name of [...new Set(parsed.searchParams.keys())]) {
    if (!SECRET_QUERY_PARAMETER.test(name)) continue;
    passwordElsewhere = true;
    parsed.searchParams.set(name, '***');
  }
  if (parsed.username !== '' && !passwordElsewhere) parsed.username = '***';
  // URLSearchParams percent-encodes "*": keep the marker readable.
  return parsed.toString().replace(/%2A%2A%2A/g, '***');
}

async function openStore(options: StoreOptions): Promise<OpenedStore> {
  if (options.sqlite !== undefined) {
    const path = options.sqlite;
    // SqliteStore creates a missing file; a tool that reads a store must not.
    if (!existsSync(path)) fail(`${path}: no such SQLite store file`);
    // Not a SqliteStore (it would switch the file to WAL, add its table, chmod it and recreate a
    // damaged one): read-only, and read-write only for purge's and --delete-bad's deletes. A
    // damaged, foreign or newer file is a StoreError naming it, and is left as it is.
    const { openSqliteStoreFile } = await import('../persist/stores/sqlite-file-reader');
    const store = openSqliteStoreFile(path);
    return { store, label: `sqlite ${path}`, purge: () => store.sweep(), close: () => store.close() };
  }
  const url = options.redis!;
  const label = `redis ${redactRedisUrl(url)}`;
  if (!/^rediss?:\/\//.test(url)) fail(`--redis must be a redis:// or rediss:// URL, not ${redactRedisUrl(url)}`, EXIT_USAGE);
  const { Redis } = await import('ioredis');
  // Our own client: one connection attempt whose error (refused, WRONGPASS) can be reported.
  const client = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: REDIS_CONNECT_TIMEOUT_MS,
  });
  // The cause (ECONNREFUSED, WRONGPASS) arrives as an 'error' event; when AUTH fails, connect()
  // itself only rejects with "Connection is closed.".
  let cause: Error | undefined;
  client.on('error', (error: Error) => {
    cause ??= error;
  });
  try {
    await client.connect();
  } catch (error) {
    client.disconnect();
    fail(`cannot connect to ${label.slice('redis '.length)}: ${(cause ?? (error as Error)).message}`);
  }
  const { RedisStore } = await import('../persist/stores/redis');
  const store = new RedisStore({ client, keyPrefix: options.keyPrefix, budgetMs: REDIS_COMMAND_BUDGET_MS });
  return {
    store,
    label,
    close: async () => {
      await store.close();
      client.disconnect();
    },
  };
}

/**
 * The secret file: one 32-byte key as 64 hex digits (id "default", what a Buffer secret means),
 * or one "id:hex" a line, newest first (a Secret list). Its content is never printed.
 */
async function readSealers(file: string): Promise<{ session: Sealer; ticketKey: Sealer; client: Sealer }> {
  const text = readBounded(file, INPUT_LIMITS.secretFile, `the secret file ${file}`).toString('utf8');
  const lines = text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0 && !line.startsWith('#'));
  const hex64 = /^[0-9a-fA-F]{64}$/;
  const keys = lines.map((line, index) => {
    const separator = line.lastIndexOf(':');
    const id = separator < 0 ? 'default' : line.slice(0, separator);
    const hex = separator < 0 ? line : line.slice(separator + 1);
    if (!hex64.test(hex))
      fail(`secret file ${file}, line ${index + 1}: expected 64 hex digits (32 bytes), optionally after "id:"`, EXIT_USAGE);
    return { id, key: Buffer.from(hex, 'hex') };
  });
  if (keys.length === 0) fail(`secret file ${file} holds no key`, EXIT_USAGE);
  const { Sealer } = await import('../persist/records/envelope');
  try {
    return {
      session: new Sealer(keys, 'session-record'),
      ticketKey: new Sealer(keys, 'ticket-key'),
      client: new Sealer(keys, 'client-session'),
    };
  } catch (error) {
    return fail(`secret file ${file}: ${(error as Error).message}`, EXIT_USAGE);
  } finally {
    for (const { key } of keys) key.fill(0);
  }
}

/**
 * ClientSessionCache on SQLite without a secret seals with the key in `<file>.key` (mode 600,
 * next to the file): opened with it here when it exists, so `client` records read without
 * --secret-file. Never created: a tool that reads must not write.
 */
async function localClientSealer(path: string): Promise<Sealer | undefined> {
  const keyFile = `${path}.key`;
  if (!existsSync(keyFile)) return undefined;
  const { fileKey } = await import('../persist/client/local-key');
  const { Sealer } = await import('../persist/records/envelope');
  let key: Buffer;
  try {
    key = fileKey(keyFile);
  } catch {
    return undefined; // unusable (mode, owner): the records stay unopened, as without it
  }
  try {
    return new Sealer([{ id: 'local', key }], 'client-session');
  } finally {
    key.fill(0);
  }
}

function kindOf(key: string): RecordKind {
  if (key.startsWith(SESSION_PREFIX)) return 'session';
  if (key.startsWith(TICKET_KEY_PREFIX)) return 'ticket-key';
  if (key.startsWith(CLIENT_PREFIX)) return 'client';
  return 'other';
}

/** Opens one record the way attachSessionStore / TicketKeyRing would, and reports what it is. */
async function examine(
  entry: StoredEntry,
  sealers: { session: Sealer; ticketKey: Sealer } | undefined,
  clientSealer: Sealer | undefined,
  scope: string | undefined,
  now: Date,
): Promise<RecordReport> {
  const { isSealedEnvelope } = await import('../persist/records/envelope');
  const kind = kindOf(entry.key);
  const report: RecordReport = {
    key: entry.key,
    kind,
    bytes: entry.value.length,
    sealed: isSealedEnvelope(entry.value),
    expiresAt: entry.expiresAt?.toISOString(),
    expired: entry.expiresAt !== undefined && entry.expiresAt.getTime() <= now.getTime(),
  };
  if (entry.unreadable !== undefined) {
    // A Redis key of another type under the prefix (WRONGTYPE): listed, never skipped.
    report.problem = `not a string value: ${entry.unreadable}`;
    return report;
  }
  if (kind === 'other') {
    // verify vouches only for what it opened: a key no tls-session part writes is not "ok".
    report.problem = 'not a record tls-session writes (key is not session:, ticket-key: or client:)';
    return report;
  }
  const sealer = kind === 'session' ? sealers?.session : kind === 'client' ? clientSealer : sealers?.ticketKey;
  if (report.sealed && sealer === undefined) {
    // Not a fault of the record: nothing to open it with. verify still counts it (it cannot vouch for it).
    report.unopened = true;
    report.problem = 'sealed: give --secret-file to open it';
    return report;
  }
  try {
    Object.assign(report, await openRecord(kind, entry, sealer, scope));
  } catch (error) {
    report.problem = (error as Error).message;
  }
  return report;
}

/**
 * What a record holds, opened by the functions its writer uses (lib/persist/records): the
 * protocol and cipher of a session, its scope; `problem` when it holds something its reader
 * would refuse. Throws what opening it threw.
 */
async function openRecord(
  kind: 'session' | 'ticket-key' | 'client',
  entry: StoredEntry,
  sealer: Sealer | undefined,
  scope: string | undefined,
): Promise<Pick<RecordReport, 'protocol' | 'cipher' | 'scope' | 'problem'>> {
  if (kind === 'ticket-key') {
    const { openTicketKeyRecord } = await import('../persist/records/ticket-key');
    openTicketKeyRecord(sealer, entry.key, entry.value).fill(0);
    return {};
  }
  if (kind === 'client') {
    // ClientSessionCache keys are "<prefix><peer digest>:<slot>", sealed under the key without the slot.
    const poolKey = entry.key.slice(0, entry.key.lastIndexOf(':'));
    const { openClientSessionRecord } = await import('../persist/records/client-session');
    const opened = openClientSessionRecord(sealer, poolKey, entry.value, {
      peerDigest: poolKey.slice(CLIENT_PREFIX.length),
      maxSessionBytes: DEFAULT_MAX_DER_BYTES,
    });
    try {
      return { protocol: opened.session.protocol, cipher: opened.session.cipher };
    } finally {
      opened.session.free();
      opened.record.der.fill(0); // key material
    }
  }
  const { decodeStoredServerSession, openServerSessionRecord } = await import('../persist/records/server-session');
  const record = openServerSessionRecord(sealer, entry.key, entry.value);
  try {
    using session = decodeStoredServerSession(
      record.der,
      Buffer.from(entry.key.slice(SESSION_PREFIX.length), 'hex'),
      DEFAULT_MAX_DER_BYTES,
    );
    return {
      scope: record.scope,
      protocol: session.protocol,
      cipher: session.cipher,
      ...(scope !== undefined && record.scope !== scope ? { problem: 'session belongs to another scope' } : {}),
    };
  } finally {
    record.der.fill(0); // key material
  }
}

function expiryBucket(report: RecordReport, now: number): string {
  if (report.expiresAt === undefined) return 'no expiry';
  const left = Date.parse(report.expiresAt) - now;
  if (left <= 0) return 'expired';
  if (left <= 3600_000) return 'within 1 h';
  if (left <= 86_400_000) return 'within 24 h';
  return 'later';
}

function count(values: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const value of values) counts[value] = (counts[value] ?? 0) + 1;
  return counts;
}

function printStats(label: string, reports: RecordReport[], haveSecret: boolean, options: StoreOptions): number {
  const now = Date.now();
  const stats = {
    store: label,
    records: reports.length,
    byKind: count(reports.map((r) => r.kind)),
    // Sessions, server's and clients': a sealed one read without a secret is "sealed", not "unreadable".
    byProtocol: count(
      reports
        .filter((r) => r.kind === 'session' || r.kind === 'client')
        .map((r) => r.protocol ?? (r.unopened ? SEALED_UNOPENED : 'unreadable')),
    ),
    byExpiry: count(reports.map((r) => expiryBucket(r, now))),
    sealed: reports.filter((r) => r.sealed).length,
    /** Sealed records not opened for want of --secret-file. */
    unopened: reports.filter((r) => r.unopened).length,
    /** Records that do not open or decode: a fault of the record (or of the secret given). */
    unreadable: reports.filter((r) => r.problem !== undefined && !r.unopened).length,
  };
  if (options.json) {
    printJson(stats);
    return 0;
  }
  const line = (counts: Record<string, number>): string =>
    Object.entries(counts)
      .map(([name, n]) => `${name} ${n}`)
      .join(', ') || 'none';
  process.stdout.write(
    `store:       ${stats.store}\n` +
      `records:     ${stats.records} (${stats.sealed} sealed${stats.unopened > 0 ? `, ${stats.unopened} not opened: no --secret-file` : ''})\n` +
      `by kind:     ${line(stats.byKind)}\n` +
      `by protocol: ${line(stats.byProtocol)}\n` +
      `by expiry:   ${line(stats.byExpiry)}\n` +
      `unreadable:  ${stats.unreadable}\n`,
  );
  return 0;
}

function printList(reports: RecordReport[], now: Date, options: StoreOptions): number {
  if (options.json) {
    printJson(reports);
    return 0;
  }
  const rows = reports.map((r) => [
    r.key,
    r.kind,
    String(r.bytes),
    r.sealed ? 'yes' : 'no',
    r.expiresAt === undefined ? 'never' : relativeTime(new Date(r.expiresAt), now),
    r.protocol ?? (r.kind === 'session' || r.kind === 'client' ? (r.unopened ? 'sealed' : 'unreadable') : '-'),
    r.cipher ?? (r.unopened ? '(sealed: --secret-file)' : ''),
  ]);
  process.stdout.write(renderTable(['KEY', 'KIND', 'BYTES', 'SEALED', 'EXPIRES', 'PROTOCOL', 'CIPHER'], rows));
  return 0;
}

async function purge(opened: OpenedStore, options: StoreOptions): Promise<number> {
  const purged = opened.purge ? await opened.purge() : 0;
  if (options.json) printJson({ store: opened.label, purged });
  else if (opened.purge) process.stdout.write(`purged ${purged} expired record(s) from ${opened.label}\n`);
  else process.stdout.write(`purged 0: Redis deletes expired records itself (${opened.label})\n`);
  return 0;
}

async function verify(opened: OpenedStore, reports: RecordReport[], haveSecret: boolean, options: StoreOptions): Promise<number> {
  const bad = reports.filter((r) => r.problem !== undefined);
  let deleted = 0;
  if (options.deleteBad) {
    for (const report of bad) {
      // Keys tls-session does not write are reported, never deleted: they may be another writer's.
      if (report.kind === 'other') continue;
      try {
        await opened.store.delete(report.key);
        deleted += 1;
      } catch (error) {
        // One record that cannot be deleted does not stop the others.
        report.problem += `; not deleted: ${(error as Error).message}`;
      }
    }
  }
  const summary = { store: opened.label, checked: reports.length, ok: reports.length - bad.length, bad: bad.length, deleted };
  if (options.json) {
    printJson({ ...summary, problems: bad.map(({ key, problem }) => ({ key, problem })) });
  } else {
    for (const report of bad) process.stdout.write(`BAD  ${report.key}: ${report.problem}\n`);
    process.stdout.write(
      `checked ${summary.checked} record(s) in ${opened.label}${haveSecret ? ' with the secret' : ' without a secret'}` +
        `${options.scope !== undefined ? ' and scope' : ''}: ${summary.ok} ok, ${summary.bad} bad` +
        `${options.deleteBad ? `, ${deleted} deleted` : bad.length > 0 ? ' (--delete-bad deletes them)' : ''}\n`,
    );
  }
  return bad.length > deleted ? EXIT_FAILURE : 0;
}
