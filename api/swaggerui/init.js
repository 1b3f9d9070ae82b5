// Initialises Swagger UI. Kept out of index.html so a strict
// Content-Security-Policy (script-src 'self') needs no 'unsafe-inline'.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/api/swagger.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    // BaseLayout: the standalone preset/top bar is not shipped.
    layout: "BaseLayout",
    // No badge fetched from validator.swagger.io (external request, CSP img-src).
    validatorUrl: null,
  });
});
