package api

import (
	"embed"
	"io/fs"
	"net/http"

	"github.com/go-chi/chi/v5"
)

// openAPI is the hand-written OpenAPI document; TestOpenAPIListsEveryRoute keeps it honest.
//
//go:embed openapi.json
var openAPI []byte

// swaggerUI is swagger-ui-dist (see swaggerui/VERSION) with our own index.html and init.js.
//
//go:embed swaggerui
var swaggerUI embed.FS

var swaggerAssets, _ = fs.Sub(swaggerUI, "swaggerui")

func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPI)
}

func serveSwaggerIndex(w http.ResponseWriter, r *http.Request) {
	http.ServeFileFS(w, r, swaggerAssets, "index.html")
}

// docsRoutes serves the document and viewer at the top-level paths the original service's nginx
// config forwarded (/swagger.json, /swaggerui); /api/swagger.json and /api/ are in the /api router.
func docsRoutes(r chi.Router) {
	r.Get("/swagger.json", serveOpenAPI)
	r.Get("/swaggerui", http.RedirectHandler("/swaggerui/", http.StatusMovedPermanently).ServeHTTP)
	r.Get("/swaggerui/", serveSwaggerIndex)
	r.Get("/swaggerui/*", http.StripPrefix("/swaggerui/", http.FileServerFS(swaggerAssets)).ServeHTTP)
}
