// An administrator gives a counter's software a new API token in the browser: the accounts list
// offers it on the software's row, and the answer shows the token once.
// Started by tests/tests/web.rs, which checks the old token stops and the new one works.
import { launch, signIn } from "./chromium.mjs";

const base = process.env.BASE_URL;
const [email, password] = process.env.ADMIN.split("\n");

const browser = await launch();
try {
  const page = await signIn(browser, base, email, password, "/admin/comptes", { width: 1400, height: 900 });
  await page.screenshot({ path: `${process.env.SHOTS}/admin-accounts.png`, fullPage: true });
  const row = page.locator(`tr[data-account="${process.env.SOFTWARE}"]`);
  await Promise.all([page.waitForURL((u) => u.pathname.endsWith("/jeton")), row.getByRole("button", { name: "Nouveau jeton d'API" }).click()]);
  const token = (await page.locator("code[data-token]").innerText()).trim();
  if (!/^[0-9a-f]{64}$/.test(token)) throw new Error(`the page should show a new token, not ${token}`);
  await page.screenshot({ path: `${process.env.SHOTS}/admin-new-api-token.png`, fullPage: true });
  console.log(`accounts: a new token of ${token.length} characters shown`);
} finally {
  await browser.close();
}
