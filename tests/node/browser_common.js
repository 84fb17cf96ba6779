// What the headless-Chromium drivers (ws_browser.js, demo_browser.js) share:
// launching the browser, the run's deadline and signals, the failure line,
// and loading a page while keeping its console.
//
// A driver prints one JSON line per page and exits 0, or, when it failed or
// ran out of time, a last line {"error": ..., "url": ..., "console": [...],
// plus what `describe(page)` adds} and exits 1. Either way the browser is
// closed first.
'use strict';

const { chromium } = require('playwright-core');

function delay(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

function print(object) {
  process.stdout.write(JSON.stringify(object) + '\n');
}

// Launch Chromium headless with a fresh temporary profile (playwright passes
// --user-data-dir), no sandbox or GPU (CI containers), and nothing fetched in
// the background. With `spkiList`, a certificate whose chain holds one of
// exactly these public keys (base64 SHA-256 of the SubjectPublicKeyInfo) is
// accepted whatever its errors (unknown issuer, and the host name too); every
// other certificate is verified as usual. The signals are the driver's, so
// that its report says what was going on.
async function launchChromium(executablePath, spkiList) {
  const args = [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ];
  if (spkiList && spkiList.length > 0) {
    args.push(`--ignore-certificate-errors-spki-list=${spkiList.join(',')}`);
  }
  return chromium.launch({
    executablePath,
    headless: true,
    args,
    handleSIGINT: false,
    handleSIGTERM: false,
    handleSIGHUP: false,
  });
}

// Run `main(driver)` under a deadline of `config.timeoutMs` (25 s by
// default). `driver.current` is the page being visited ({url, console,
// page}); `driver.printPage(line)` prints a page's line unless the run has
// already failed; `describe(page)` adds what a stalled page shows to the
// error line. The test terminates the driver when its own, longer, timeout
// runs out; were the driver killed instead, Chromium would still exit (it
// quits when its DevTools pipe to this process closes).
function runDriver(config, describe, main) {
  const deadlineMs = config.timeoutMs || 25000;
  const driver = {
    deadlineMs,
    browser: null,
    current: { url: null, console: [], page: null },
    finished: false,
    printPage(object) {
      if (!driver.finished) {
        print(object);
      }
    },
  };

  async function closeBrowser() {
    if (driver.browser === null) {
      return;
    }
    const closing = driver.browser;
    driver.browser = null;
    // A browser that hangs on close must not keep the driver alive.
    await Promise.race([closing.close(), delay(5000)]);
  }

  async function fail(message) {
    if (driver.finished) {
      return;
    }
    driver.finished = true;
    const { url, page, console: log } = driver.current;
    let shown = {};
    try {
      if (page) {
        shown = (await Promise.race([describe(page), delay(1000).then(() => ({}))])) || {};
      }
    } catch {
      // The page is gone; report without what it showed.
    }
    print({ error: message, url, ...shown, console: log });
    await closeBrowser();
    process.exit(1);
  }

  const deadline = setTimeout(() => fail(`the driver timed out after ${deadlineMs} ms`), deadlineMs);
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
    process.on(signal, () => fail(`the driver got ${signal}`));
  }

  (async () => {
    driver.browser = await launchChromium(config.chromium, config.spkiList);
    await main(driver);
  })().then(
    async () => {
      if (driver.finished) {
        return;
      }
      driver.finished = true;
      clearTimeout(deadline);
      await closeBrowser();
    },
    (error) => fail(`the driver failed: ${error && error.stack ? error.stack : error}`),
  );
}

// Open `url` in a new page of `context`, keeping its console. Returns the
// page, or null after printing {url, loadError, console} when it did not
// load (a certificate error, an HTTP error status).
async function openPage(driver, context, url) {
  const page = await context.newPage();
  driver.current = { url, console: [], page };
  const log = driver.current.console;
  page.on('console', (entry) => log.push(`${entry.type()}: ${entry.text()}`));
  page.on('pageerror', (error) => log.push(`pageerror: ${error.message}`));
  let response;
  try {
    response = await page.goto(url, { waitUntil: 'load' });
  } catch (error) {
    driver.printPage({ url, loadError: error.message.split('\n')[0], console: log });
    await page.close();
    return null;
  }
  if (response === null || !response.ok()) {
    driver.printPage({ url, loadError: `HTTP ${response && response.status()}`, console: log });
    await page.close();
    return null;
  }
  return page;
}

module.exports = { openPage, runDriver };
