// The one pop-up frame (#modal, a native <dialog>). Openers are real links with hx-get
// targeting #modal; after the swap we showModal() (the browser moves focus in and traps
// it; Escape closes). Closing returns focus to the opener and clears the dialog.
(function () {
  "use strict";
  let opener = null;
  function dialog() { return document.getElementById("modal"); }

  document.addEventListener("htmx:beforeRequest", function (evt) {
    const target = evt.detail.target;
    if (target && target.id === "modal") { opener = evt.detail.elt; }
  });

  document.addEventListener("htmx:afterSwap", function (evt) {
    const d = dialog();
    if (!d || evt.detail.target !== d) { return; }
    if (!d.open) { d.showModal(); }
    const first = d.querySelector("[autofocus], input:not([type=hidden]), select, textarea, button");
    if (first) { first.focus(); }
  });

  function closeModal() { const d = dialog(); if (d && d.open) { d.close(); } }

  document.addEventListener("closeModal", closeModal);
  document.addEventListener("click", function (evt) {
    if (evt.target.closest("[data-close-modal]")) { evt.preventDefault(); closeModal(); }
    // a click on the backdrop (the dialog itself, outside its content) closes too
    const d = dialog();
    if (d && evt.target === d) { closeModal(); }
  });

  document.addEventListener("DOMContentLoaded", function () {
    const d = dialog();
    if (!d) { return; }
    d.addEventListener("close", function () {
      d.innerHTML = "";
      if (opener && document.body.contains(opener)) { opener.focus(); }
      opener = null;
    });
  });
})();
