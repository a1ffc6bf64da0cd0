// ESLint (flat config): typescript-eslint's recommended rules over the TypeScript sources, and
// ESLint's recommended rules over the CommonJS fixtures and scripts. Formatting is Prettier's job.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['dist/**', 'build/**', 'build-cmake/**', 'build-bench/**', 'node_modules/**', 'coverage/**'] },
  {
    files: ['**/*.ts'],
    extends: [js.configs.recommended, ...tseslint.configs.recommended],
    rules: {
      // Callback-shaped APIs (OpenSSL's, Node's) take parameters a listener may ignore.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // The native binding's surface is typed loosely on purpose where JavaScript values cross it.
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-function-type': 'off',
      // Typed events: `interface X { on(event: 'a', ...) }` merged with `class X extends
      // EventEmitter`, the pattern Node's own typings use.
      '@typescript-eslint/no-unsafe-declaration-merging': 'off',
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    extends: [js.configs.recommended],
    languageOptions: { sourceType: 'commonjs', globals: { ...globals.node } },
    rules: { 'no-unused-vars': ['error', { argsIgnorePattern: '^_', caughtErrors: 'none' }] },
  },
  { files: ['eslint.config.mjs'], languageOptions: { sourceType: 'module' } },
  { files: ['test/**/*.ts'], languageOptions: { globals: { ...globals.jest } } },
);
