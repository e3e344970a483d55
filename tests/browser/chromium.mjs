// What every browser test shares: Debian's Chromium launched the way this machine needs it,
// and a person signed in through the login page.
import { chromium } from "playwright-core";

// The flags this machine needs: no sandbox as root, no calls to Google's hosts. Playwright
// gives every launch a new, empty profile of its own.
export function launch() {
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
}

// A page of a new context signed in as `email`, once the sign-in has led to `home`.
export async function signIn(browser, base, email, password, home, viewport) {
  const context = await browser.newContext(viewport ? { viewport } : {});
  const page = await context.newPage();
  page.setDefaultTimeout(30_000);
  await page.goto(`${base}/login`);
  await page.fill("input[name=email]", email);
  await page.fill("input[name=password]", password);
  await Promise.all([page.waitForURL(`${base}${home}`), page.click("button[type=submit]")]);
  return page;
}
