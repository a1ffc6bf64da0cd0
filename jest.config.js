/** Jest runs the TypeScript sources through ts-jest; the addon comes from build/ (npm install). */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.test.json' }] },
  testTimeout: 30000,
  // Sessions dropped without free() are reclaimed by GC in the ownership tests.
  // Each test file gets its own worker; two cores, so at most two at once.
  maxWorkers: 2,
};
