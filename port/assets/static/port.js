// Port's own script: times in the viewer's time zone. Pages work without it (they say UTC).
(function () {
  "use strict";
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (node) {
      var when = new Date(node.getAttribute("datetime"));
      if (isNaN(when.getTime())) return;
      node.textContent = when.toLocaleString(undefined, {
        dateStyle: "medium",
        timeStyle: "short",
      });
      node.title = when.toISOString();
    });
  }
  document.addEventListener("DOMContentLoaded", function () { localTimes(document); });
  // htmx swaps in fresh parts of a page: their times too.
  document.addEventListener("htmx:afterSwap", function (event) { localTimes(event.target); });
})();
