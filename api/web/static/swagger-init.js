// Starts Swagger UI on the API's own OpenAPI document (kept out of the page: the
// Content-Security-Policy allows no inline script).
window.addEventListener("DOMContentLoaded", function () {
  var root = document.getElementById("docs");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapi,
    dom_id: "#docs",
    deepLinking: false, // a deep link inside each summary button is a focusable in a focusable (WCAG 4.1.2)
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
