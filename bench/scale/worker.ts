/**
 * One measurement of bench/scale.ts in its own process (a fresh heap per store; for a SQLite
 * library the running Node lacks, another Node binary): receives one request, answers
 * { type: 'result', result } or { type: 'error', message }, and exits.
 */
import { MemoryPhaseRequest, runMemoryPhase } from './memory';
import { RedisPhaseRequest, runRedisPhase } from './redis';
import { loadableSqliteBackends, runSqlitePhase, SqlitePhaseRequest } from './sqlite';

export interface ProbeRequest {
  phase: 'probe';
}

export type WorkerRequest = ProbeRequest | SqlitePhaseRequest | RedisPhaseRequest | MemoryPhaseRequest;

async function run(request: WorkerRequest): Promise<unknown> {
  switch (request.phase) {
    case 'probe':
      return { node: process.version, backends: loadableSqliteBackends() };
    case 'sqlite':
      return runSqlitePhase(request);
    case 'redis':
      return runRedisPhase(request);
    case 'memory':
      return runMemoryPhase(request);
  }
}

process.once('message', (request: WorkerRequest) => {
  run(request).then(
    (result) => process.send!({ type: 'result', result }, () => process.disconnect()),
    (error: unknown) =>
      process.send!({ type: 'error', message: error instanceof Error ? (error.stack ?? error.message) : String(error) }, () =>
        process.disconnect(),
      ),
  );
});
