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

const { launchChromium } = require('./browser_common');

const config = JSON.parse(process.argv[2]);
const deadlineMs = config.timeoutMs || 25000;

let browser = null;
let current = { url: null, console: [] };
let finished = false;

function delay(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

function print(object) {
  process.stdout.write(JSON.stringify(object) + '\n');
}

// A page's line; none once the run has failed (its error line is the last).
function printPage(object) {
  if (!finished) {
    print(object);
  }
}

async function closeBrowser() {
  if (browser === null) {
    return;
  }
  const closing = browser;
  browser = null;
  // A browser that hangs on close must not keep the driver alive (and the
  // timer, unref'd, must not either once the browser closed).
  await Promise.race([closing.close(), delay(5000)]);
}

async function fail(message) {
  if (finished) {
    return;
  }
  finished = true;
  let progress = null;
  try {
    if (current.page) {
      progress = await Promise.race([
        current.page.evaluate(() => window.progress || null),
        delay(1000).then(() => null),
      ]);
    }
  } catch {
    // The page is gone; report without its progress.
  }
  print({ error: message, url: current.url, progress, console: current.console });
  await closeBrowser();
  process.exit(1);
}

const deadline = setTimeout(() => {
  fail(`the driver timed out after ${deadlineMs} ms`);
}, deadlineMs);

// The test terminates the driver when its own, longer, timeout runs out.
// (Were the driver killed instead, Chromium would still exit: it quits when
// its DevTools pipe to this process closes.)
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
  process.on(signal, () => fail(`the driver got ${signal}`));
}

async function main() {
  browser = await launchChromium(config.chromium, config.spkiList);
  const context = await browser.newContext();
  for (const url of config.pages) {
    const page = await context.newPage();
    current = { url, console: [], page };
    const log = current.console;
    page.on('console', (message) => log.push(`${message.type()}: ${message.text()}`));
    page.on('pageerror', (error) => log.push(`pageerror: ${error.message}`));
    let response;
    try {
      response = await page.goto(url, { waitUntil: 'load' });
    } catch (error) {
      printPage({ url, loadError: error.message.split('\n')[0], console: log });
      await page.close();
      continue;
    }
    if (response === null || !response.ok()) {
      printPage({ url, loadError: `HTTP ${response && response.status()}`, console: log });
      await page.close();
      continue;
    }
    const report = await page.evaluate(() => window.result);
    printPage({ url, report, console: log });
    await page.close();
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
