// Kept out of the page so a strict Content-Security-Policy (no inline scripts) can apply.
window.addEventListener("load", function () {
  var schemaUrl = document.currentScript
    ? document.currentScript.dataset.schemaUrl
    : document.querySelector("script[data-schema-url]").dataset.schemaUrl;
  window.ui = SwaggerUIBundle({
    url: schemaUrl,
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: true,
  });
});
