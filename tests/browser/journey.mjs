// A day at the bureau, in Debian's Chromium driven by playwright-core:
// a counter deposits a multi-request PDF, follows it to its notice and files an incident;
// an operator loads a scanner folder and decides on a piece in review; a supervisor sees the late mailing and prioritises it.
// Started by tests/tests/web.rs, which sets the environment and checks the database afterwards.
import { launch, signIn as signInAt } from "./chromium.mjs";
import { readdirSync } from "node:fs";
import { join } from "node:path";

const base = process.env.BASE_URL;
const [counterEmail, counterPassword] = process.env.COUNTER.split("\n");
const [operatorEmail, operatorPassword] = process.env.OPERATOR.split("\n");
const [supervisorEmail, supervisorPassword] = process.env.SUPERVISOR.split("\n");
const shots = process.env.SHOTS;
const step = (what) => console.log(`browser: ${what}`);

const browser = await launch();

const signIn = (email, password, home) => signInAt(browser, base, email, password, home);

/// Reloads until `selector` is on the page.
async function waitFor(page, selector, seconds) {
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    if (await page.locator(selector).count() > 0) return;
    await page.waitForTimeout(1000);
    await page.reload();
  }
  throw new Error(`${selector} did not appear on ${page.url()} within ${seconds} s`);
}

try {
  // The counter.
  step("counter signs in");
  const counter = await signIn(counterEmail, counterPassword, "/portal");
  await counter.setInputFiles("form[data-upload] input[type=file]", process.env.DEPOSIT_PDF);
  const progressSeen = counter.waitForFunction(() => {
    const p = document.querySelector("form[data-upload] progress");
    return p && !p.hidden;
  });
  step("counter uploads a multi-request PDF");
  await Promise.all([counter.waitForURL(/\/mailings\/m-/, { timeout: 120_000 }), counter.click("form[data-upload] button[type=submit]")]);
  await progressSeen.catch(() => { throw new Error("the progress bar never showed"); });
  const mailing = counter.url().split("/mailings/")[1];
  step(`deposit ${mailing} received; waiting for it to be processed`);
  await waitFor(counter, "[data-status=done]", 300);
  await waitFor(counter, "details.notice[data-notice-status=sent]", 120);
  await counter.locator("details.notice summary").first().click();
  const notice = await counter.locator("details.notice pre").first().innerText();
  if (!notice.includes("Le bureau de numérisation")) throw new Error(`unexpected notice text: ${notice.slice(0, 200)}`);
  const pieces = await counter.locator("table.pieces tbody tr").count();
  if (pieces === 0) throw new Error("no pieces listed");
  await counter.screenshot({ path: `${shots}/counter-mailing.png`, fullPage: true });
  step(`processed: ${pieces} pieces, notice sent`);

  step("counter files an incident about this mailing");
  await Promise.all([counter.waitForURL(/\/portal\/incidents/), counter.click("text=Signaler un incident sur ce pli")]);
  await counter.selectOption("select[name=kind]", "notice_not_received");
  await counter.fill("textarea[name=description]", "Le référent dit ne pas avoir reçu l'avis.");
  await Promise.all([counter.waitForURL(`${base}/portal/incidents`), counter.click("text=Envoyer la fiche incident")]);
  const row = counter.locator("tr[data-incident]", { hasText: "ne pas avoir reçu" });
  if (await row.count() !== 1) throw new Error("the incident is not listed");
  if (!(await row.locator(".incident-status").innerText()).includes("ouvert")) throw new Error("the incident is not open");
  await counter.screenshot({ path: `${shots}/counter-incidents.png`, fullPage: true });
  await counter.goto(`${base}/portal`);
  if (await counter.locator(`a[href="/mailings/${mailing}"]`).count() !== 1) throw new Error("the deposit is not in the counter's list");
  await counter.screenshot({ path: `${shots}/counter-portal.png`, fullPage: true });
  await counter.goto(`${base}/account`);
  await counter.screenshot({ path: `${shots}/counter-account.png`, fullPage: true });

  step("counter asks the registry for a request of another territory");
  await counter.goto(`${base}/portal/slips?numero_unique=9740325091042G3533`);
  const refusal = await counter.locator("p.error").innerText();
  if (!refusal.includes("autre territoire")) throw new Error(`no territory refusal: ${refusal}`);
  await counter.screenshot({ path: `${shots}/counter-slip-other-territory.png`, fullPage: true });

  step("counter types a numéro of its territory and fills the slip from the registry");
  await counter.goto(`${base}/portal/slips`);
  await counter.fill("input[name=numero_unique]", "0930325091042G3533");
  await Promise.all([counter.waitForURL(/numero_unique=0930325091042G3533/), counter.click("a[data-registry-fill]")]);
  if (!(await counter.inputValue("input[name=nom]"))) throw new Error("the registry did not fill in the numéro just typed");
  await counter.screenshot({ path: `${shots}/counter-slip-filled.png`, fullPage: true });

  step("someone guesses passwords for an address nobody has");
  const guesser = await (await browser.newContext()).newPage();
  for (let i = 0; i < 5; i++) {
    await guesser.goto(`${base}/login`);
    await guesser.fill("input[name=email]", "personne@nulle-part.example");
    await guesser.fill("input[name=password]", "pas le bon mot de passe");
    await guesser.click("button[type=submit]");
    await guesser.locator("p.error").waitFor();
  }
  if (!(await guesser.locator("p.error").innerText()).includes("réessayez dans")) throw new Error("no lock after five failures");
  await guesser.screenshot({ path: `${shots}/login-locked.png`, fullPage: true });

  // The operator.
  step("operator signs in and opens the review queue");
  const operator = await signIn(operatorEmail, operatorPassword, "/console");
  step("operator loads a scanner folder as one batch");
  const scans = readdirSync(process.env.BATCH_FOLDER).map((f) => join(process.env.BATCH_FOLDER, f));
  await operator.setInputFiles("form[data-upload] input[name=file]", scans);
  await Promise.all([operator.waitForURL(/\/mailings\/m-/, { timeout: 120_000 }), operator.click("form[data-upload] button[type=submit]")]);
  await waitFor(operator, "[data-status=done]", 300);
  step(`batch of ${scans.length} files processed`);
  await operator.goto(`${base}/console`);
  await operator.screenshot({ path: `${shots}/operator-batches.png`, fullPage: true });
  await operator.goto(`${base}/console/failed`);
  await operator.screenshot({ path: `${shots}/operator-failed.png`, fullPage: true });
  await operator.goto(`${base}/console/incidents`);
  if (await operator.locator("tr[data-incident] select[name=status]").count() < 1) throw new Error("the incident has no answer form");
  await operator.screenshot({ path: `${shots}/operator-incidents.png`, fullPage: true });
  await operator.goto(`${base}/console/review`);
  const first = operator.locator("section.review").first();
  if (await operator.locator("section.review").count() === 0) throw new Error("the review queue is empty");
  const piece = await first.getAttribute("data-piece");
  const thumb = first.locator("img.thumb").first();
  if (await thumb.count() > 0) {
    await thumb.scrollIntoViewIfNeeded();
    await operator.waitForFunction((id) => {
      const img = document.querySelector(`section[data-piece="${id}"] img.thumb`);
      return img && img.complete && img.naturalWidth > 0;
    }, piece);
  }
  await operator.screenshot({ path: `${shots}/operator-review.png`, fullPage: true });
  // « Accepter » only where a category is proposed; the PDF one click away.
  const cards = await operator.locator("section.review").evaluateAll((ss) =>
    ss.map((s) => ({ none: s.querySelector("p strong")?.textContent === "aucune", accept: !!s.querySelector("input[value=accept]") })));
  if (cards.some((c) => c.none === c.accept)) throw new Error(`Accepter is not offered exactly where a category is proposed: ${JSON.stringify(cards)}`);
  if (await operator.locator("section.review a[href$='/pdf']").count() === 0) throw new Error("no link to a piece's PDF");
  step(`operator reclassifies piece ${piece}`);
  const choices = await first.locator("select[name=type] option").evaluateAll((os) => os.map((o) => ({ value: o.value, selected: o.selected })));
  const other = choices.find((c) => !c.selected);
  await first.locator("select[name=type]").selectOption(other.value);
  await Promise.all([operator.waitForURL(`${base}/console/review`), first.locator("text=Reclasser").click()]);
  if (await operator.locator(`section.review[data-piece="${piece}"]`).count() !== 0) throw new Error("the decided piece is still in the queue");

  // The supervisor.
  step("supervisor signs in and looks at the dashboard");
  const supervisor = await signIn(supervisorEmail, supervisorPassword, "/dashboard");
  const lateCount = Number(await supervisor.locator("#late span").innerText());
  if (lateCount < 1) throw new Error("no late mailing on the dashboard");
  const lateRow = supervisor.locator(`#risks tr.late[data-mailing="${process.env.LATE_MAILING}"]`);
  if (await lateRow.count() !== 1) throw new Error("the forgotten mailing is not flagged late");
  if (await supervisor.locator("svg.chart").count() < 2) throw new Error("the charts are missing");
  await supervisor.screenshot({ path: `${shots}/supervisor-dashboard.png`, fullPage: true });
  step("supervisor prioritises the late mailing");
  await Promise.all([supervisor.waitForURL(`${base}/dashboard`), lateRow.locator("text=Prioriser").click()]);
  const csv = await supervisor.request.get(`${base}/dashboard/export.csv`);
  if (csv.status() !== 200 || !(await csv.text()).startsWith("date,plis_recus")) throw new Error("the CSV export failed");
  step("supervisor reads the counters' activity of the month");
  await supervisor.goto(`${base}/dashboard/activite`);
  const line = supervisor.locator('#activity tr[data-guichet="G3533"]');
  if (await line.count() !== 1) throw new Error("no activity line for the counter");
  const cells = await line.locator("td").allInnerTexts();
  if (!(Number(cells[1]) >= 2 && Number(cells[2]) > 0)) throw new Error(`the counter's month: ${cells}`);
  await supervisor.screenshot({ path: `${shots}/supervisor-activity.png`, fullPage: true });
  const activity = await supervisor.request.get(`${base}/dashboard/activite.csv`);
  const rows = (await activity.text()).split("\n");
  if (activity.status() !== 200 || rows[0] !== "mois,guichet,plis,pages,pieces_deposees,pieces_refusees,pieces_en_verification,delai_median_heures,pages_refusees_par_motif"
    || !rows.some((r) => r.split(",")[1] === "G3533")) throw new Error(`the activity CSV: ${rows.slice(0, 3)}`);
  step("done");
} finally {
  await browser.close();
}
