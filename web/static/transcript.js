// postdesk transcript page: decrypts the conversation here, with the key after the link's "#".
// The server holds only the ciphertext (core/transcripts.py) and never sees the key: browsers do not send
// the fragment. The decrypted document was written by a template, escaped; it is still never inserted
// as HTML: it is parsed apart (DOMParser loads and runs nothing; the page's policy refuses a handler or
// style it meets) and rebuilt from known elements with their class and datetime alone, so no script,
// handler, link or style of any kind reaches this page.
(function () {
  "use strict";
  var NO_KEY = "This link has no key: the part after \u201c#\u201d is missing. Open the link exactly as it was mailed.";
  var WRONG_KEY = "The key does not open this transcript: the link was cut or changed. Open it exactly as it " +
    "was mailed.";
  var KEPT = {ARTICLE: 1, SECTION: 1, H1: 1, H2: 1, P: 1, PRE: 1, TIME: 1, B: 1, EM: 1, STRONG: 1, BR: 1};
  var ATTRIBUTES = ["class", "datetime"];
  var box = document.getElementById("transcript");
  var status = document.getElementById("transcript-status");

  function fail(text) {
    status.textContent = text;
    status.className = "error";
    status.setAttribute("role", "alert");
  }
  function bytes(base64) {
    var raw = atob(base64), out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out;
  }
  function keyOf(fragment) {  // URL-safe base64 without padding (core/transcripts.py _fragment)
    var base64 = fragment.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) base64 += "=";
    return bytes(base64);
  }
  function rebuild(from, into) {
    Array.prototype.forEach.call(from.childNodes, function (node) {
      if (node.nodeType === Node.TEXT_NODE) {
        into.appendChild(document.createTextNode(node.data));
      } else if (node.nodeType === Node.ELEMENT_NODE && KEPT[node.tagName]) {
        var copy = document.createElement(node.tagName.toLowerCase());
        ATTRIBUTES.forEach(function (name) {
          if (node.hasAttribute(name)) copy.setAttribute(name, node.getAttribute(name));
        });
        rebuild(node, copy);
        into.appendChild(copy);
      } else if (node.nodeType === Node.ELEMENT_NODE) {
        into.appendChild(document.createTextNode(node.textContent));
      }
    });
  }
  function show(html) {
    var parsed = new DOMParser().parseFromString(html, "text/html");
    var view = document.createElement("div");
    view.id = "transcript-view";
    view.lang = parsed.documentElement.lang || "";
    rebuild(parsed.body, view);
    box.replaceChildren(view);
    if (parsed.title) document.title = parsed.title + " \u00b7 postdesk";
  }

  var fragment = window.location.hash.slice(1);
  if (!fragment) { fail(NO_KEY); return; }
  if (!window.crypto || !window.crypto.subtle) {
    fail("This browser cannot decrypt the transcript: open the link in a current browser.");
    return;
  }
  var key;
  try { key = keyOf(decodeURIComponent(fragment)); } catch (notAKey) { fail(WRONG_KEY); return; }
  if (key.length !== 32) { fail(WRONG_KEY); return; }
  window.crypto.subtle.importKey("raw", key, {name: "AES-GCM"}, false, ["decrypt"]).then(function (opened) {
    return window.crypto.subtle.decrypt({name: "AES-GCM", iv: bytes(box.dataset.nonce),
                                         additionalData: new TextEncoder().encode(box.dataset.id)},
                                        opened, bytes(box.dataset.ciphertext));
  }).then(function (plain) {
    // authentic once decrypted: a failure from here on is the page's, not the key's
    show(new TextDecoder().decode(plain));
  }, function () {
    fail(WRONG_KEY);
  }).catch(function () {
    fail("The transcript was decrypted but could not be shown: try another browser.");
  });
})();
