// An operator's hour at the review station, in Debian's Chromium driven by playwright-core: the
// pieces waiting are decided one after another with the keyboard only ("a" accepts, and the next
// piece comes), and the pace is printed as decisions per minute.
// Started by tests/tests/web.rs, which seeds the pieces and checks the database afterwards.
import { launch, signIn } from "./chromium.mjs";

const base = process.env.BASE_URL;
const [email, password] = process.env.OPERATOR.split("\n");
const count = Number(process.env.COUNT);

const browser = await launch();
try {
  const page = await signIn(browser, base, email, password, "/console", { width: 1400, height: 900 });
  await page.goto(`${base}/console/review/${process.env.FIRST_PIECE}`);
  await page.locator("[data-station] img.page").first().waitFor();
  await page.waitForFunction(() => document.querySelector("[data-station] img.page")?.naturalWidth > 0);
  await page.screenshot({ path: `${process.env.SHOTS}/operator-station.png`, fullPage: false });
  const seen = new Set();
  const t0 = Date.now();
  for (let i = 0; i < count; i++) {
    const piece = await page.locator("[data-station]").getAttribute("data-piece");
    if (seen.has(piece)) throw new Error(`piece ${piece} came back after its decision`);
    seen.add(piece);
    // The page is there to be looked at: wait for its first page image, as an operator would.
    const shown = await page.locator("[data-station] img.page").first().evaluate((img) =>
      img.complete ? img.naturalWidth : new Promise((ok) => img.addEventListener("load", () => ok(img.naturalWidth))));
    if (!(shown > 0)) throw new Error(`the page of piece ${piece} did not show`);
    await Promise.all([page.waitForURL((u) => !u.pathname.endsWith(`/${piece}`)), page.keyboard.press("a")]);
  }
  const minutes = (Date.now() - t0) / 60_000;
  if (!page.url().endsWith("/console/review")) throw new Error(`after the last piece the list should show, not ${page.url()}`);
  if ((await page.locator("section.review").count()) !== 0) throw new Error("pieces still wait after every one was decided");
  console.log(`station: ${seen.size} decisions in ${(minutes * 60).toFixed(1)} s, ${(seen.size / minutes).toFixed(0)} decisions per minute`);
} finally {
  await browser.close();
}
