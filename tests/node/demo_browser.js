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

const { launchChromium } = require('./browser_common');

const config = JSON.parse(process.argv[2]);
const deadlineMs = config.timeoutMs || 25000;

let browser = null;
let current = { url: null, console: [], page: null };
let finished = false;

function delay(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

function print(object) {
  process.stdout.write(JSON.stringify(object) + '\n');
}

async function closeBrowser() {
  if (browser === null) {
    return;
  }
  const closing = browser;
  browser = null;
  await Promise.race([closing.close(), delay(5000)]);
}

// What a stalled page shows, for the error line.
async function snapshot(page) {
  try {
    return await Promise.race([
      page.evaluate(() => document.body.innerText),
      delay(1000).then(() => null),
    ]);
  } catch {
    return null;
  }
}

async function fail(message) {
  if (finished) {
    return;
  }
  finished = true;
  const text = current.page ? await snapshot(current.page) : null;
  print({ error: message, url: current.url, text, console: current.console });
  await closeBrowser();
  process.exit(1);
}

const deadline = setTimeout(() => {
  fail(`the driver timed out after ${deadlineMs} ms`);
}, deadlineMs);

for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
  process.on(signal, () => fail(`the driver got ${signal}`));
}

async function visit(context, { url, message }, last) {
  const page = await context.newPage();
  current = { url, console: [], page };
  const log = current.console;
  page.on('console', (entry) => log.push(`${entry.type()}: ${entry.text()}`));
  page.on('pageerror', (error) => log.push(`pageerror: ${error.message}`));
  let response;
  try {
    response = await page.goto(url, { waitUntil: 'load' });
  } catch (error) {
    print({ url, loadError: error.message.split('\n')[0], console: log });
    await page.close();
    return;
  }
  if (response === null || !response.ok()) {
    print({ url, loadError: `HTTP ${response && response.status()}`, console: log });
    await page.close();
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
  print({
    url,
    title: await page.title(),
    status: await page.locator('#status').textContent(),
    updates: await updates.allTextContents(),
    echo: await echo.textContent(),
    console: log,
  });
  await page.close();
}

async function main() {
  browser = await launchChromium(config.chromium, config.spkiList);
  const viewport = config.screenshot
    ? { width: config.screenshot.width, height: config.screenshot.height }
    : { width: 900, height: 600 };
  const context = await browser.newContext({ viewport });
  // Playwright's own per-action timeout stays under the run's deadline, so
  // that a stalled step fails with its own message.
  context.setDefaultTimeout(Math.max(1000, deadlineMs - 5000));
  for (const [index, page] of config.pages.entries()) {
    await visit(context, page, index === config.pages.length - 1);
  }
  await context.close();
}

main().then(
  async () => {
    if (finished) {
      return;
    }
    finished = true;
    clearTimeout(deadline);
    await closeBrowser();
  },
  (error) => fail(`the driver failed: ${error && error.stack ? error.stack : error}`),
);
