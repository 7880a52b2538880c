// What a test needs from outside node (the custody binary, Chromium). Run by hand, a test
// whose need is missing is skipped with the reason; under `cargo xtask test`
// (CUSTODY_REQUIRE_ALL=1) it fails instead, since a skipped test there proves nothing.

/**
 * @param {boolean} present whether the thing the test needs is here
 * @param {string} why what is missing and how to get it
 * @returns {false | string} the `skip` option for node:test
 */
export function skipUnless(present, why) {
  if (present) return false;
  if (process.env.CUSTODY_REQUIRE_ALL) throw new Error(`required for this test run: ${why}`);
  return why;
}
