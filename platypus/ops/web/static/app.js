// Platypus operations dashboard: confirmations and the bulk-replay progress poll.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
  for (const link of document.querySelectorAll("a[data-back]")) {
    link.addEventListener("click", (event) => { event.preventDefault(); history.back(); });
  }
  const box = document.getElementById("progress");
  if (!box) return;
  const set = (id, value) => { const el = document.getElementById(id); if (el) el.textContent = value; };
  const poll = async () => {
    try {
      const answer = await fetch(box.dataset.url, { credentials: "same-origin" });
      if (!answer.ok) throw new Error(answer.status);
      const job = await answer.json();
      const bar = document.getElementById("dispatch-bar");
      bar.max = job.total || 1;
      bar.value = job.dispatched;
      set("dispatched", job.dispatched);
      set("total", job.total);
      for (const [status, n] of Object.entries(job.statuses)) set("n-" + status, n);
      set("state", job.done ? "Done." : "Replaying…");
      if (!job.done) setTimeout(poll, 1000);
    } catch (error) {
      set("state", "Could not read the progress (" + error.message + "); retrying.");
      setTimeout(poll, 3000);
    }
  };
  setTimeout(poll, 500);
});
