// Lint rules for the whole web/ tree (the capture page, its tests and its build script).
// eslint 9 flat config: @eslint/js's recommended rules, browser globals for the page and
// node globals for tests and tools. Kept small on purpose: tsc --checkJs does the types.
import js from '@eslint/js';
import globals from 'globals';

export default [
  { ignores: ['dist/', 'node_modules/'] },
  js.configs.recommended,
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: {
      ecmaVersion: 2023,
      sourceType: 'module',
      globals: { ...globals.browser, ...globals.node },
    },
    rules: {
      // An unused argument named _x is deliberate (an interface's shape); others are slips.
      'no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      eqeqeq: ['error', 'always'],
      'no-var': 'error',
      'prefer-const': 'error',
    },
  },
  {
    // The service worker runs in its own global scope.
    files: ['sw.js'],
    languageOptions: { globals: { ...globals.serviceworker } },
  },
];
