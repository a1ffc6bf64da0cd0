/**
 * Jest runs the TypeScript sources through ts-jest; the addon comes from build/ (npm install).
 * Lanes (TEST_LANE; README "Test lanes"):
 *   (unset) `npm test`           the fast lane: everything but the two below
 *   redis   `npm run test:redis` *.redis.test.ts: spawn redis-server (and a Redis Cluster)
 *   slow    `npm run test:slow`  *.slow.test.ts: valgrind, the cmake-js build, compiled
 *                                declarations, multi-process stress (the script builds first)
 */
const lanes = { redis: '\\.redis\\.test\\.ts$', slow: '\\.slow\\.test\\.ts$' };
const lane = process.env.TEST_LANE;
if (lane !== undefined && !(lane in lanes)) throw new Error(`TEST_LANE must be one of ${Object.keys(lanes).join(', ')} (or unset)`);

module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testRegex: lane ? lanes[lane] : '\\.test\\.ts$',
  testPathIgnorePatterns: lane ? ['/node_modules/'] : ['/node_modules/', ...Object.values(lanes)],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.test.json' }] },
  testTimeout: 30000,
  // Sessions dropped without free() are reclaimed by GC in the ownership tests.
  // Each test file gets its own worker; two cores, so at most two at once.
  maxWorkers: 2,
};
