// The one pop-up frame (#modal, a native <dialog>) and the toast region (#toasts).
//
// Openers are real links with hx-get and hx-target="#modal". After htmx swaps the pop-up's
// partial into the dialog we call showModal(): the browser makes the page inert, and Escape
// closes the dialog natively. Focus goes to the first field ([autofocus] first). When a form
// inside the dialog is re-rendered with errors, focus goes to the first invalid field.
// The server closes the pop-up with the `closeModal` HX-Trigger event; [data-close-modal]
// buttons and a click on the backdrop close it too. On close the dialog is emptied and focus
// returns to the element that opened it. `showMessage` events ({text, level}) show a toast;
// failed pop-up requests show an error toast; a full page answered to a pop-up request (the
// login page after the session ended) is shown as a page, not inside the dialog.
(function () {
  "use strict";
  const FIELDS = "input:not([type=hidden]):not([disabled]), select:not([disabled]), textarea:not([disabled])";
  let opener = null;

  function dialog() { return document.getElementById("modal"); }

  function focusFirst(root) {
    const target = root.querySelector("[aria-invalid=true]") || root.querySelector("[autofocus]") ||
      root.querySelector(FIELDS) || root.querySelector("button, [href], [tabindex]:not([tabindex='-1'])");
    if (target) { target.focus(); }
  }

  function closeModal() {
    const d = dialog();
    if (d && d.open) { d.close(); }
  }

  function showMessage(text, level) {
    // While the pop-up is open the page behind it is inert and covered, so the toast goes
    // into the dialog (the top layer); it is cleared with the dialog.
    const d = dialog();
    let region = document.getElementById("toasts");
    if (d && d.open) {
      region = d.querySelector(".toasts");
      if (!region) {
        region = d.appendChild(document.createElement("div"));
        region.className = "toasts";
        region.setAttribute("role", "alert");
      }
    }
    if (!region || !text) { return; }
    const toast = document.createElement("div");
    toast.className = "toast " + (level || "info");
    toast.textContent = text;
    region.appendChild(toast);
    setTimeout(function () { toast.remove(); }, 5000);
  }

  // Remember the opener: the element whose request targets the dialog while it is closed.
  document.addEventListener("htmx:beforeRequest", function (evt) {
    const d = dialog();
    if (d && evt.detail.target === d && !d.open) {
      opener = evt.detail.elt === document.body ? document.activeElement : evt.detail.elt;
    }
  });

  // A whole page answered to a pop-up request means a redirect happened, most likely to the
  // login page after the session ended: show that page instead of nesting it in the dialog.
  document.addEventListener("htmx:beforeSwap", function (evt) {
    const d = dialog();
    const xhr = evt.detail.xhr;
    if (d && evt.detail.shouldSwap && (evt.detail.target === d || d.contains(evt.detail.target)) &&
        /^\s*<!doctype html/i.test(xhr.responseText || "")) {
      evt.detail.shouldSwap = false;
      window.location.assign(xhr.responseURL || window.location.href);
    }
  });

  document.addEventListener("htmx:afterSwap", function (evt) {
    const d = dialog();
    if (!d) { return; }
    if (evt.detail.target === d) {
      if (!d.open) { d.showModal(); }
      focusFirst(d);
    } else if (d.open && d.contains(evt.detail.target)) {
      focusFirst(evt.detail.target.isConnected ? evt.detail.target : d);  // outerHTML swaps replace the target
    }
  });

  // A pop-up that cannot be opened (403, 404, 500) swaps nothing in htmx 2: say so.
  document.addEventListener("htmx:responseError", function (evt) {
    const status = evt.detail.xhr ? evt.detail.xhr.status : "";
    showMessage(status === 403 ? "You do not have permission to do that." :
      "Something went wrong (" + status + "). Please try again.", "error");
  });
  document.addEventListener("htmx:sendError", function () {
    showMessage("The server could not be reached. Please try again.", "error");
  });

  // HX-Trigger events are dispatched on the element that made the request and bubble up.
  document.addEventListener("closeModal", closeModal);
  document.addEventListener("showMessage", function (evt) {
    const detail = evt.detail || {};
    showMessage(detail.text || detail.value, detail.level);
  });

  // Backdrop clicks: only when both press and release happen on the dialog itself (the
  // backdrop), so selecting text in a field and releasing outside does not close it.
  let pressedOnBackdrop = false;
  document.addEventListener("mousedown", function (evt) {
    pressedOnBackdrop = evt.target === dialog();
  });
  document.addEventListener("click", function (evt) {
    if (evt.target.closest && evt.target.closest("[data-close-modal]")) {
      evt.preventDefault();
      closeModal();
      return;
    }
    if (pressedOnBackdrop && evt.target === dialog()) { closeModal(); }
    pressedOnBackdrop = false;
  });

  function onClose() {
    const d = dialog();
    d.innerHTML = "";
    const back = opener;
    opener = null;
    if (back && back.isConnected && typeof back.focus === "function") { back.focus(); }
  }

  function init() {
    const d = dialog();
    if (d && !d.dataset.modalReady) {
      d.dataset.modalReady = "1";
      d.addEventListener("close", onClose);
    }
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
