// Ward overview: poll /twins/ward.json and swap in the table body it renders, so the page
// stays current within the poll interval without a reload. The body is replaced only when it
// changed and not while a control in it has the focus (a nurse about to acknowledge).
(function () {
  "use strict";
  var table = document.getElementById("ward");
  var body = document.getElementById("ward-rows");
  var status = document.getElementById("ward-updated");
  if (!table || !body || !status) return;
  var url = table.getAttribute("data-url");
  var every = parseInt(table.getAttribute("data-poll-ms"), 10) || 1500;
  var shown = null;
  var busy = false;
  var lastOk = new Date();

  function time(d) {
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  function tick() {
    if (busy) return;
    busy = true;
    fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (data) {
        var focused = body.contains(document.activeElement);
        if (data.html !== shown && !focused) {
          body.innerHTML = data.html;
          shown = data.html;
        }
        lastOk = new Date(data.generated);
        status.textContent = "Updated " + time(lastOk) + " (" + data.patients.length + " patients)";
        status.parentNode.classList.remove("twins-stale");
      })
      .catch(function () {
        status.textContent = "Not updated since " + time(lastOk) + ": retrying";
        status.parentNode.classList.add("twins-stale");
      })
      .then(function () {
        busy = false;
      });
  }

  window.setInterval(tick, every);
  tick();
})();
