// A mailing's page as an operator sees it: for a refused e-mail, why its origin was judged
// forged. Started by tests/tests/web.rs, which records the mailing and its check.
import { launch, signIn } from "./chromium.mjs";

const base = process.env.BASE_URL;
const [email, password] = process.env.OPERATOR.split("\n");

const browser = await launch();
try {
  const page = await signIn(browser, base, email, password, "/console", { width: 1200, height: 800 });
  await page.goto(`${base}/mailings/${process.env.MAILING}`);
  const origin = await page.locator("dd.mail-origin").innerText();
  if (!origin.includes("falsifiée")) throw new Error(`the mailing's page should say the e-mail is forged, not: ${origin}`);
  await page.screenshot({ path: `${process.env.SHOTS}/mailing-mail-origin.png`, fullPage: true });
  console.log(`mailing: ${origin.split("\n")[0]}`);
} finally {
  await browser.close();
}
