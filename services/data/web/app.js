// The one script of the bureau's pages: uploads with a progress bar, a confirmation on
// buttons that refuse something, the registry look-up of the numéro just typed, and the review
// station's keyboard. Everything else works without it.
"use strict";

function uploadForm(form) {
  const inputs = [...form.querySelectorAll("input[type=file]")];
  const bar = form.querySelector("progress");
  const text = form.querySelector(".progress-text");
  const alert = form.querySelector("[role=alert]");
  const button = form.querySelector("button[type=submit]");
  const limit = Number(form.dataset.limit || 0);
  const accept = (form.dataset.accept || "").split(",").map((s) => s.trim().toLowerCase()).filter(Boolean);
  const fail = (message) => {
    alert.textContent = message;
    alert.hidden = false;
    button.disabled = false;
  };
  const hidden = (f) => f.name.startsWith(".") || f.name.toLowerCase() === "thumbs.db";
  const typeOk = (f) => accept.length === 0 || accept.some((a) => (a.startsWith(".") ? f.name.toLowerCase().endsWith(a) : f.type === a));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    alert.hidden = true;
    // Several files (or a folder) make one batch, taken in the order of their names.
    const files = inputs.flatMap((i) => [...i.files]).filter((f) => !hidden(f)).sort((a, b) => a.name.localeCompare(b.name));
    if (files.length === 0) return fail("Choisissez un fichier.");
    if (files.length > 1 && form.dataset.folder === undefined) return fail("Un seul fichier à la fois ici.");
    // Checked here before sending, and again by the server after.
    const size = files.reduce((n, f) => n + f.size, 0);
    if (limit && size > limit) {
      return fail(`L'envoi fait ${(size / 1e6).toFixed(1)} Mo : la limite est de ${Math.floor(limit / 1e6)} Mo.`);
    }
    const refused = files.find((f) => !typeOk(f));
    if (refused) return fail(`${refused.name} : ce type de fichier n'est pas accepté ici.`);
    const params = new URLSearchParams({ name: files[0].name });
    form.querySelectorAll("input[name]:not([type=file]):not([type=hidden])").forEach((i) => {
      if (i.value.trim()) params.set(i.name, i.value.trim());
    });
    const xhr = new XMLHttpRequest();
    let body = files[0];
    if (files.length > 1) {
      body = new FormData();
      files.forEach((f) => body.append("file", f, f.name));
      xhr.open("POST", `${form.getAttribute("action")}/folder`);
    } else {
      xhr.open("POST", `${form.getAttribute("action")}?${params}`);
      xhr.setRequestHeader("Content-Type", files[0].type || "application/octet-stream");
    }
    xhr.setRequestHeader("X-CSRF-Token", form.querySelector("input[name=csrf]").value);
    bar.hidden = false;
    bar.value = 0;
    button.disabled = true;
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) {
        bar.value = Math.round((e.loaded / e.total) * 100);
        text.textContent = `${bar.value} % envoyés`;
      }
    });
    xhr.addEventListener("load", () => {
      let answer = {};
      try { answer = JSON.parse(xhr.responseText); } catch (_) { /* an HTML error page */ }
      if (xhr.responseURL.includes("/login")) {
        bar.hidden = true;
        text.textContent = "";
        fail("Votre session a expiré : reconnectez-vous, puis recommencez l'envoi.");
      } else if (xhr.status >= 200 && xhr.status < 300 && answer.url) {
        text.textContent = answer.duplicate ? "Ce lot avait déjà été reçu." : "Reçu.";
        window.location.assign(answer.url);
      } else {
        bar.hidden = true;
        text.textContent = "";
        fail(answer.error || `Envoi refusé (erreur ${xhr.status}).`);
      }
    });
    xhr.addEventListener("error", () => fail("La connexion a été interrompue : rien n'a été enregistré, recommencez."));
    xhr.send(body);
  });
}

document.querySelectorAll("form[data-upload]").forEach(uploadForm);
document.querySelectorAll("[data-confirm]").forEach((b) =>
  b.addEventListener("click", (e) => {
    if (!window.confirm(b.dataset.confirm)) e.preventDefault();
  })
);
// "Remplir depuis le registre" looks up the numéro typed in its form, not the one the page was
// loaded with (without the script, the link asks for the latter).
document.querySelectorAll("a[data-registry-fill]").forEach((a) =>
  a.addEventListener("click", (e) => {
    const typed = a.closest("form")?.querySelector("input[name=numero_unique]")?.value.trim();
    if (!typed) return;
    e.preventDefault();
    window.location.assign(`/portal/slips?numero_unique=${encodeURIComponent(typed)}`);
  })
);

// The review station's keyboard: each key named by a control's data-key presses it (a link or a
// button) or focuses it (the type list, the original's place: Enter then sends its form); never
// while typing in a field.
const station = document.querySelector("[data-station]");
if (station) {
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || ["INPUT", "SELECT", "TEXTAREA"].includes(e.target.tagName)) return;
    const control = station.querySelector(`[data-key="${CSS.escape(e.key)}"]`);
    if (!control) return;
    e.preventDefault();
    if (control.tagName === "SELECT" || control.tagName === "INPUT") control.focus();
    else control.click();
  });
}
