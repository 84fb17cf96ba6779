// What the headless-Chromium drivers (ws_browser.js, demo_browser.js) share:
// launching the browser the same way for every test.
'use strict';

const { chromium } = require('playwright-core');

// Launch Chromium headless, from `executablePath`, with a fresh temporary
// profile (playwright passes --user-data-dir), no sandbox or GPU (CI
// containers), and nothing fetched in the background. With `spkiList`, a
// certificate whose chain holds one of exactly these public keys (base64
// SHA-256 of the SubjectPublicKeyInfo) is accepted whatever its errors
// (unknown issuer, and the host name too); every other certificate is
// verified as usual. The driver handles the signals itself, so that its
// report says what was going on.
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

module.exports = { launchChromium };
