// An original sent by mistake, in Debian's Chromium driven by playwright-core: at the review
// station the operator sees the suspicion, presses "g", types where the paper is put and Enter;
// then in the register ticks it, gives the posting's tracking number and opens its return slip.
// Started by tests/tests/web.rs, which seeds the piece and checks the database afterwards.
import { launch, signIn } from "./chromium.mjs";

const base = process.env.BASE_URL;
const [email, password] = process.env.OPERATOR.split("\n");
const piece = process.env.PIECE;
const shots = process.env.SHOTS;

const browser = await launch();
try {
  const page = await signIn(browser, base, email, password, "/console", { width: 1400, height: 900 });
  await page.goto(`${base}/console/review/${piece}`);
  await page.waitForFunction(() => document.querySelector("[data-station] img.page")?.naturalWidth > 0);
  const warning = await page.locator(".suspicion").innerText();
  if (!warning.includes("Original possible")) throw new Error(`no suspicion shown: ${warning}`);
  await page.screenshot({ path: `${shots}/browser-station-original.png` });
  // "g" goes to the original's place; Enter files it.
  await page.keyboard.press("g");
  const focused = await page.evaluate(() => document.activeElement?.getAttribute("name"));
  if (focused !== "emplacement") throw new Error(`"g" should focus the place of the original, not ${focused}`);
  await page.keyboard.type("bac B3");
  await Promise.all([page.waitForURL((u) => !u.pathname.endsWith(`/${piece}`)), page.keyboard.press("Enter")]);

  await page.goto(`${base}/console/originaux`);
  const row = page.locator("tr", { has: page.locator('input[name=emplacement][value="bac B3"]') });
  await row.waitFor();
  if (!(await row.innerText()).includes("dépassé")) throw new Error("an original kept past its month is flagged");
  await page.screenshot({ path: `${shots}/browser-originals-register.png`, fullPage: true });
  await row.locator("input[type=checkbox]").check();
  await page.fill("input[name=suivi]", "8R0123456789");
  await Promise.all([page.waitForLoadState("load"), page.click("text=Enregistrer l'envoi au GIP SNE")]);
  await page.locator("text=Renvoyés au GIP SNE (1)").waitFor();
  const slip = page.locator("a", { hasText: "8R0123456789" });
  const answer = await page.request.get(new URL(await slip.getAttribute("href"), base).toString());
  if (answer.headers()["content-type"] !== "application/pdf") throw new Error(`the return slip is not a PDF: ${answer.headers()["content-type"]}`);
  await page.screenshot({ path: `${shots}/browser-originals-returned.png`, fullPage: true });
  console.log("original: filed at the station with the keyboard, posted back, return slip opened");
} finally {
  await browser.close();
}
