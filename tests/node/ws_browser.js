// Drives headless Chromium through playwright-core for tests/test_ws_browser.py.
//
//     node ws_browser.js '<config as JSON>'
//
// The config: {"chromium": path of the browser, "pages": [URL, ...],
// "spkiList": [base64 SHA-256 of a SubjectPublicKeyInfo, ...] (optional),
// "timeoutMs": the whole run's deadline}.
//
// Each page is loaded in turn in one fresh browser (a new, empty profile each
// run). A page's script defines `window.result`, a promise of its report; the
// driver awaits it and prints one JSON line per page:
//     {"url": ..., "report": <the page's report>, "console": [...]}
// or, when the page did not load at all (a certificate error...):
//     {"url": ..., "loadError": "<message>", "console": [...]}
//
// Exit status 0 once every page has a line; non-zero with a last line
// {"error": ...} when the driver itself failed or ran out of time. Either
// way the browser is closed first.
'use strict';

const { openPage, runDriver } = require('./browser_common');

const config = JSON.parse(process.argv[2]);

// A stalled page's progress, for the error line.
async function describe(page) {
  return { progress: await page.evaluate(() => window.progress || null) };
}

runDriver(config, describe, async (driver) => {
  const context = await driver.browser.newContext();
  for (const url of config.pages) {
    const page = await openPage(driver, context, url);
    if (page === null) {
      continue;
    }
    const report = await page.evaluate(() => window.result);
    driver.printPage({ url, report, console: driver.current.console });
    await page.close();
  }
  await context.close();
});
