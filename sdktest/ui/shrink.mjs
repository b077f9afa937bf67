// Makes the small copies of screenshots that docs/ui.md and the README
// show: node shrink.mjs OUT_DIR WIDTH shot.png... (headless chromium scales
// each to WIDTH css pixels and writes OUT_DIR/<name>.jpg, quality 70).
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { chromium } from 'playwright-core';

const [out, width, ...files] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath: process.env.VEXIL_CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
const page = await browser.newPage({ viewport: { width: Number(width), height: 100 } });
for (const f of files) {
  const data = readFileSync(f).toString('base64');
  await page.setContent(`<body style="margin:0"><img id="i" style="display:block;width:${width}px" src="data:image/png;base64,${data}"></body>`);
  await page.locator('#i').screenshot({ path: `${out}/${basename(f, '.png')}.jpg`, type: 'jpeg', quality: 70 });
}
await browser.close();
