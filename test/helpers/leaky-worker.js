// Worker for test/ownership.test.ts: takes sessions and never frees them; environment teardown must.
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const path = require('node:path');
const addon = require(process.env.TLS_SESSION_ADDON || path.join(__dirname, '..', '..', 'build', 'Release', 'tls_session.node'));

const kept = [];
for (let i = 0; i < workerData.count; i++) kept.push(addon.decode(workerData.der));
parentPort.postMessage({ live: addon.ledger().liveInThisEnvironment });
if (workerData.tid) {
  // test/helpers/worker-exit.ts threadIdSlot: the parent blocks until this thread is gone.
  Atomics.store(workerData.tid, 0, Number(require('node:fs').readlinkSync('/proc/thread-self').split('/').pop()));
  Atomics.notify(workerData.tid, 0);
}
if (workerData.wait) setInterval(() => {}, 1000); // stays alive until terminated
