/* Appliance tracker (first version): one pageview per page load, no cookies.
   <script defer data-domain="example.com" src="https://APPLIANCE/tracker.js"></script> */
(function () {
  "use strict";
  try {
    var script = document.currentScript;
    if (!script) return;
    var domain = script.getAttribute("data-domain") || location.hostname;
    var api = script.getAttribute("data-api") || new URL("/api/events", script.src).href;
    var local = /^localhost$|^127\.|^\[::1\]$/.test(location.hostname) || location.protocol === "file:";
    if ((local || navigator.webdriver) && !script.hasAttribute("data-include-localhost")) return;
    if (localStorage.getItem("appliance_ignore") === "true") return;

    var sessionId = sessionStorage.getItem("appliance_sid");
    if (!sessionId) {
      sessionId = Math.random().toString(36).slice(2) + Date.now().toString(36);
      sessionStorage.setItem("appliance_sid", sessionId);
    }
    var send = function (name, props) {
      var body = JSON.stringify({
        name: name, domain: domain, path: location.pathname, url: location.href,
        title: document.title.slice(0, 512), referrer: document.referrer || null,
        sessionId: sessionId, viewport: { width: innerWidth, height: innerHeight }, props: props
      });
      if (navigator.sendBeacon && navigator.sendBeacon(api, body)) return;
      fetch(api, { method: "POST", body: body, keepalive: true, headers: { "Content-Type": "text/plain" } })
        .catch(function () {});
    };
    window.appliance = function (name, options) {
      try { send(name, options && options.props); } catch (e) { /* never break the host page */ }
    };
    send("pageview");
  } catch (e) { /* never break the host page */ }
})();
