/* Appliance tracker: pageviews and custom events for one site, with no cookies.
 *
 * This is the readable source. The appliance serves the minified ../tracker.js, built from this
 * file with `npm run build` (terser), so the running appliance never needs Node. Every data-*
 * attribute it reads is documented in ../README.md; the size budget is 1,024 bytes gzipped.
 *
 * Rule for everything below: the host page must never notice us. Every entry point (load,
 * history wrappers, listeners, window.appliance) catches its own errors, and failed requests
 * are swallowed.
 */
(function (window, document, location, navigator, history) {
  try {
    // Read at load time: document.currentScript is null inside later callbacks.
    var script = document.currentScript;
    var queued = window.appliance;
    // Not a classic <script> (nothing to read settings from), or already loaded on this page.
    if (!script || (queued && queued.loaded)) return;

    var attribute = function (name) {
      return script.getAttribute("data-" + name);
    };
    var domain = attribute("domain") || location.hostname;
    // "api/events" next to the script, so an appliance behind a path prefix works too.
    var endpoint = attribute("api") || new URL("api/events", script.src);
    var hashRouting = attribute("hash") != null;
    var outboundLinks = attribute("outbound-links") != null;
    var fileTypes = attribute("file-downloads");
    // A file: URL has an empty host name.
    var automatedOrLocal =
      attribute("include-localhost") == null &&
      (/^(localhost|127\..*|\[::1\]|)$/.test(location.hostname) || navigator.webdriver);

    // One id per tab, kept across reloads and navigations in it (sessionStorage, not a cookie).
    var sessionId = Math.random().toString(36).slice(2);
    try {
      sessionId = sessionStorage.appliance_sid || (sessionStorage.appliance_sid = sessionId);
    } catch (storageDenied) {
      // Sandboxed frames and disabled storage: the id lives as long as the page.
    }

    var currentPath = function () {
      return location.pathname + (hashRouting ? location.hash : "");
    };

    // window.appliance(name, {props: {...}}). Never throws, whatever it is given; without a
    // name it sends nothing (the appliance would take a nameless event for a pageview).
    var appliance = function (name, options) {
      try {
        if (automatedOrLocal || !name) return;
        try {
          if (localStorage.appliance_ignore == "true") return;
        } catch (storageDenied) {
          // no opt-out can have been set
        }
        // Lengths are the ingest schema's: a longer field would get the whole event refused.
        var body = JSON.stringify({
          name: name,
          domain: domain,
          path: currentPath().slice(0, 2048),
          url: location.href.slice(0, 4096),
          title: document.title.slice(0, 512),
          referrer: document.referrer.slice(0, 2048) || null,
          sessionId: sessionId,
          viewport: { width: window.innerWidth, height: window.innerHeight },
          props: options && options.props,
        });
        // A beacon outlives the page (outbound clicks) and sends text/plain, which needs no
        // CORS preflight. Missing or refused: fetch with keepalive, its failure swallowed.
        if (!(navigator.sendBeacon && navigator.sendBeacon(endpoint, body))) {
          fetch(endpoint, { method: "POST", body: body, keepalive: true })["catch"](
            function () {}
          );
        }
      } catch (error) {
        // never break the host page
      }
    };
    appliance.loaded = 1;
    window.appliance = appliance;

    // Single-page apps: every history change lands here, and only a new path is a pageview,
    // so a replaceState that changes only the query or the state counts nothing.
    var lastPath;
    var pageview = function () {
      var path = currentPath();
      if (path != lastPath) {
        lastPath = path;
        appliance("pageview");
      }
    };
    var wrapHistory = function (method) {
      var original = history[method];
      history[method] = function () {
        // The host's own call comes first and unguarded: its errors are the host's to see.
        var result = original.apply(this, arguments);
        pageview();
        return result;
      };
    };

    pageview();
    wrapHistory("pushState");
    wrapHistory("replaceState");
    // Also fires on every fragment navigation, so data-hash needs no hashchange listener.
    window.addEventListener("popstate", pageview);

    // Calls made through the snippet's stub before this script loaded, in their order.
    var waiting = (queued && queued.q) || [];
    for (var i = 0; i < waiting.length; i++) appliance.apply(null, waiting[i]);

    if (outboundLinks || fileTypes != null) {
      var downloads = new RegExp(
        "\\.(" +
          (fileTypes || "pdf,xlsx?,docx?,pptx?,csv,txt,zip,gz,dmg,exe,mp3,mp4").replace(
            /[ ,]+/g,
            "|"
          ) +
          ")$",
        "i"
      );
      var onLinkClick = function (event) {
        try {
          // Left click, Enter, or the middle button (auxclick); a right click opens a menu.
          var link = event.button < 2 && event.target.closest("a[href]");
          if (!link) return;
          // An SVG link's href is no string: slice throws below and the click is ignored.
          // mailto:, tel: and javascript: links have no host: not outbound.
          var props = { props: { url: link.href.slice(0, 512) } };
          if (fileTypes != null && downloads.test(link.pathname)) {
            appliance("File Download", props);
          } else if (outboundLinks && link.host && link.host != location.host) {
            appliance("Outbound Link: Click", props);
          }
        } catch (error) {
          // an SVG link, or a target that is no element: nothing to count
        }
      };
      document.addEventListener("click", onLinkClick);
      document.addEventListener("auxclick", onLinkClick);
    }
  } catch (error) {
    // never break the host page
  }
})(window, document, location, navigator, history);
