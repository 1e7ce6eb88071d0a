// Copy buttons: <button type="button" data-copy="#element-id">Copy</button> copies the value
// (inputs) or the text (anything else) of the element, or the button's data-copy-text. One
// delegated listener, so it works in pop-ups swapped in by htmx. Without the Clipboard API
// (or permission) it selects the text so Ctrl+C works, and says so.
(function () {
  "use strict";
  if (window.copyButtonsReady) { return; }
  window.copyButtonsReady = true;

  function say(button, text) {
    const label = button.dataset.label || button.textContent;
    button.dataset.label = label;
    button.textContent = text;
    setTimeout(function () { button.textContent = label; }, 2000);
  }

  function select(el) {
    if (el.select) { el.focus(); el.select(); return; }
    const range = document.createRange();
    range.selectNodeContents(el);
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }

  document.addEventListener("click", function (evt) {
    const button = evt.target.closest ? evt.target.closest("[data-copy]") : null;
    if (!button) { return; }
    evt.preventDefault();
    const source = button.dataset.copy ? document.querySelector(button.dataset.copy) : null;
    const text = button.dataset.copyText || (source ? (source.value !== undefined ? source.value : source.textContent) : "");
    if (!text) { return; }
    const fallback = function () {
      if (source) { select(source); }
      say(button, button.dataset.selectedLabel || "Press Ctrl+C");
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text.trim()).then(function () {
        say(button, button.dataset.copiedLabel || "Copied");
      }, fallback);
    } else {
      fallback();
    }
  });
})();
