// The month picker of /reports: opens /reports/YYYY-MM with the chosen site, format and language.
"use strict";

(function () {
  const form = document.getElementById("picker");
  if (!form) return;
  form.addEventListener("submit", () => {
    const month = document.getElementById("month");
    if (!/^\d{4}-\d{2}$/.test(month.value)) return;
    form.action = "/reports/" + month.value;
    month.disabled = true;
  });
})();
