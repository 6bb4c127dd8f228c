// Starts ReDoc on the API's own OpenAPI document (no inline script: see the CSP).
window.addEventListener("DOMContentLoaded", function () {
  var root = document.getElementById("docs");
  Redoc.init(root.dataset.openapi, { hideDownloadButton: false }, root);
});
