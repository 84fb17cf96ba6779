// Drives headless Chromium through playwright-core against `trionet demo`'s
// page, for tests/test_demo_browser.py and scripts/demo_screenshot.
//
//     node demo_browser.js '<config as JSON>'
//
// The config: {"chromium": path of the browser, "pages": [{"url": URL,
// "message": text to type into the echo box}, ...], "updates": how many live
// updates to wait for, "spkiList": [base64 SHA-256 of a
// SubjectPublicKeyInfo, ...] (optional), "screenshot": {"path": PNG file,
// "width": W, "height": H} (optional: of the last page, at the end),
// "timeoutMs": the whole run's deadline}.
//
// Each page is loaded in turn in one fresh browser (a new, empty profile),
// as a person would use it: wait until `updates` items are in the live
// updates list, type the message into the echo box, press Send (the
// button, by its accessible name), and wait until the server's echo shows.
// One JSON line per page:
//     {"url": ..., "status": the status line's text, "updates": [the
//      list's items, newest first], "echo": the echo's text, "title": ...,
//      "console": [...]}
// or, when the page did not load at all (a certificate error...):
//     {"url": ..., "loadError": "<message>", "console": [...]}
//
// Exit status 0 once every page has a line; non-zero with a last line
// {"error": ...} when the driver itself failed or ran out of time (a page
// that never showed its updates or its echo, say). Either way the browser is
// closed first.
'use strict';

const { openPage, runDriver } = require('./browser_common');

const config = JSON.parse(process.argv[2]);

// What a stalled page shows, for the error line.
async function describe(page) {
  return { text: await page.evaluate(() => document.body.innerText) };
}

async function visit(driver, context, { url, message }, last) {
  const page = await openPage(driver, context, url);
  if (page === null) {
    return;
  }
  const updates = page.locator('#updates li');
  await updates.nth(config.updates - 1).waitFor();
  await page.getByLabel('Message').fill(message);
  await page.getByRole('button', { name: 'Send' }).click();
  const echo = page.locator('#echo');
  await page.waitForFunction(() => document.getElementById('echo').textContent !== '');
  if (last && config.screenshot) {
    // One more update, so that the picture shows the list moving on.
    await updates.nth(config.updates).waitFor();
    await page.screenshot({ path: config.screenshot.path });
  }
  driver.printPage({
    url,
    title: await page.title(),
    status: await page.locator('#status').textContent(),
    updates: await updates.allTextContents(),
    echo: await echo.textContent(),
    console: driver.current.console,
  });
  await page.close();
}

runDriver(config, describe, async (driver) => {
  const viewport = config.screenshot
    ? { width: config.screenshot.width, height: config.screenshot.height }
    : { width: 900, height: 600 };
  const context = await driver.browser.newContext({ viewport });
  // Playwright's own per-action timeout stays under the run's deadline, so
  // that a stalled step fails with its own message.
  context.setDefaultTimeout(Math.max(1000, driver.deadlineMs - 5000));
  for (const [index, page] of config.pages.entries()) {
    await visit(driver, context, page, index === config.pages.length - 1);
  }
  await context.close();
});
