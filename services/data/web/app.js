// The one script of the bureau's pages: uploads with a progress bar, and a confirmation on
// buttons that refuse something. Everything else works without it.
"use strict";

function uploadForm(form) {
  const input = form.querySelector("input[type=file]");
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
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    alert.hidden = true;
    const file = input.files[0];
    if (!file) return fail("Choisissez un fichier.");
    // Checked here before sending, and again by the server after.
    if (limit && file.size > limit) {
      return fail(`Le fichier fait ${(file.size / 1e6).toFixed(1)} Mo : la limite est de ${Math.floor(limit / 1e6)} Mo.`);
    }
    const name = file.name.toLowerCase();
    const typeOk = accept.length === 0 || accept.some((a) => (a.startsWith(".") ? name.endsWith(a) : file.type === a));
    if (!typeOk) return fail("Ce type de fichier n'est pas accepté ici.");
    const params = new URLSearchParams({ name: file.name });
    form.querySelectorAll("input[name]:not([type=file]):not([type=hidden])").forEach((i) => {
      if (i.value.trim()) params.set(i.name, i.value.trim());
    });
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `${form.getAttribute("action")}?${params}`);
    xhr.setRequestHeader("X-CSRF-Token", form.querySelector("input[name=csrf]").value);
    xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
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
        text.textContent = answer.duplicate ? "Ce fichier avait déjà été reçu." : "Reçu.";
        window.location.assign(answer.url);
      } else {
        bar.hidden = true;
        text.textContent = "";
        fail(answer.error || `Envoi refusé (erreur ${xhr.status}).`);
      }
    });
    xhr.addEventListener("error", () => fail("La connexion a été interrompue : rien n'a été enregistré, recommencez."));
    xhr.send(file);
  });
}

document.querySelectorAll("form[data-upload]").forEach(uploadForm);
document.querySelectorAll("[data-confirm]").forEach((b) =>
  b.addEventListener("click", (e) => {
    if (!window.confirm(b.dataset.confirm)) e.preventDefault();
  })
);
